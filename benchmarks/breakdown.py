"""Where FieldCipher's time goes above the floor: an ablation ladder for one value.

Run ``python benchmarks/breakdown.py``. Each rung adds one piece of what
``FieldCipher.encrypt`` / ``decrypt`` do to the floor recipe of ``run.py``, written out
inline on the real key set and context (the same objects the cipher uses), and is timed
with the same harness (loops over the same values, interleaved rounds, medians). The
difference between two rungs is the cost of the piece the second one adds; the last
rung is the real method. A statistical profiler cannot resolve costs of 10 to 60 ns
inside one Python function; this can, to the noise of the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Candidate, environment, make_values, measure, write_docs

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.crypto import _nonces
from securecustomer.crypto._encoding import STR
from securecustomer.keys import MemoryKeyStore

Step = Callable[..., Any]


def _loop(step: Step, items: list[Any], ctx: Context) -> Callable[[], list[Any]]:
    def run() -> list[Any]:
        out = []
        for item in items:
            out.append(step(item, context=ctx))
        return out

    return run


def ladder(values: list[str]) -> tuple[list[Candidate], list[Candidate], list[Candidate]]:
    """Encrypt rungs, decrypt rungs (each times one operation only), and ingredients."""
    keyring = Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load()
    cipher = keyring.cipher("customers.email")
    ctx = Context("customers", "email")
    keys = cipher._keys
    assert keys.sealer is not None
    _, sealer, headers = keys.sealer
    seal: Any = sealer  # typed for the cipher's use, which never passes None as AAD
    head = headers[STR]
    aad = cipher._aad(head, ctx)
    open_: Any = keys.entries[head][0]
    urandom, clock = os.urandom, cipher._clock
    tokens = cipher.encrypt_many(values, context=ctx)
    nonces = [urandom(12) for _ in values]
    floor_tokens = [n + seal(n, v.encode(), None) for n, v in zip(nonces, values, strict=True)]

    # -- encrypt ------------------------------------------------------------------------
    def e_floor(s: str, *, context: Context) -> Any:  # the floor recipe, as a function
        nonce = urandom(12)
        return nonce + seal(nonce, s.encode(), None)

    def e_aad(s: str, *, context: Context) -> Any:  # + 69 bytes of associated data
        nonce = urandom(12)
        return nonce + seal(nonce, s.encode(), aad)

    def e_head(s: str, *, context: Context) -> Any:  # + the 6-byte header in front
        nonce = urandom(12)
        return head + nonce + seal(nonce, s.encode(), aad)

    def e_clock(s: str, *, context: Context) -> Any:  # + key set and expiry check
        k = cipher._keys
        sealer = k.sealer
        if sealer is None or k.expires_at <= cipher._clock():
            raise AssertionError
        nonce = urandom(12)
        return head + nonce + seal(nonce, s.encode(), aad)

    def e_dispatch(s: str, *, context: Context) -> Any:  # + type, mode, header, memo
        k = cipher._keys
        sealer = k.sealer
        if sealer is None or k.expires_at <= cipher._clock():
            raise AssertionError
        _, seal_, headers_ = sealer
        if type(s) is str:
            code = STR
            data = s.encode()
        if cipher._deterministic:
            raise AssertionError
        h = headers_[code]
        memo_ctx, memo_head, a = cipher._memo
        if memo_ctx is not context or memo_head != h:
            raise AssertionError
        nonce = urandom(12)
        return h + nonce + seal_(nonce, data, a)

    def e_pool(s: str, *, context: Context) -> Any:  # + nonces from the per-thread block
        k = cipher._keys
        sealer = k.sealer
        if sealer is None or k.expires_at <= cipher._clock():
            raise AssertionError
        _, seal_, headers_ = sealer
        if type(s) is str:
            code = STR
            data = s.encode()
        if cipher._deterministic:
            raise AssertionError
        h = headers_[code]
        memo_ctx, memo_head, a = cipher._memo
        if memo_ctx is not context or memo_head != h:
            raise AssertionError
        try:
            nonce = _nonces._pool.nonces.pop()
        except (AttributeError, IndexError):
            nonce = _nonces.refill()
        return h + nonce + seal_(nonce, data, a)

    # -- decrypt ------------------------------------------------------------------------
    def d_floor(t: bytes, *, context: Context) -> Any:
        return open_(t[:12], t[12:], None).decode()

    def d_aad(t: bytes, *, context: Context) -> Any:  # + associated data (header+tail)
        return open_(t[6:18], t[18:], aad).decode()

    def d_clock(t: bytes, *, context: Context) -> Any:  # + token type and expiry check
        k = cipher._keys
        if type(t) is not bytes or k.expires_at <= clock():
            raise AssertionError
        return open_(t[6:18], t[18:], aad).decode()

    def d_lookup(t: bytes, *, context: Context) -> Any:  # + header slice and key lookup
        k = cipher._keys
        if type(t) is not bytes or k.expires_at <= clock():
            raise AssertionError
        h = t[:6]
        entry: Any = k.entries.get(h)
        if entry is None:
            raise AssertionError
        g, dec, _ = entry
        return dec(g(t[6:18], t[18:], aad))

    def d_memo(t: bytes, *, context: Context) -> Any:  # + the AAD memo check
        k = cipher._keys
        if type(t) is not bytes or k.expires_at <= clock():
            raise AssertionError
        h = t[:6]
        entry: Any = k.entries.get(h)
        if entry is None:
            raise AssertionError
        g, dec, _ = entry
        memo_ctx, memo_head, a = cipher._memo
        if memo_ctx is not context or memo_head != h:
            raise AssertionError
        return dec(g(t[6:18], t[18:], a))

    cipher.encrypt(values[0], context=ctx)  # fill the memo as a loop over values would
    enc_rungs = [
        ("floor recipe in a function with context=", e_floor, values),
        ("+ associated data (69 bytes)", e_aad, values),
        ("+ 6-byte header in front of the token", e_head, values),
        ("+ key set read, expiry check against the clock", e_clock, values),
        ("+ value type, mode, header and AAD-memo dispatch", e_dispatch, values),
        ("+ nonce from a per-thread block of os.urandom", e_pool, values),
        ("FieldCipher.encrypt (adds the usage counter)", cipher.encrypt, values),
    ]
    cipher.decrypt(tokens[0], context=ctx)
    dec_rungs = [
        ("floor recipe in a function with context=", d_floor, floor_tokens),
        ("+ associated data (69 bytes)", d_aad, tokens),
        ("+ token type, key set read, expiry check", d_clock, tokens),
        ("+ header slice and key-set lookup", d_lookup, tokens),
        ("+ AAD-memo check", d_memo, tokens),
        ("FieldCipher.decrypt (adds try and the usage counter)", cipher.decrypt, tokens),
    ]

    data = [v.encode() for v in values]
    count = len(values)

    def i_urandom() -> list[bytes]:
        return [urandom(12) for _ in range(count)]

    def i_urandom_batch() -> bytes:
        return urandom(12 * count)

    def i_clock() -> list[float]:
        return [clock() for _ in range(count)]

    def i_seal() -> list[bytes]:
        nonce = nonces[0]
        return [seal(nonce, d, None) for d in data]

    def i_seal_aad() -> list[bytes]:
        nonce = nonces[0]
        return [seal(nonce, d, aad) for d in data]

    ingredients = [
        ("os.urandom(12)", i_urandom),
        (f"os.urandom(12 * {count}), per value", i_urandom_batch),
        ("the keyring clock (time.monotonic)", i_clock),
        ("AESGCM.encrypt, no associated data", i_seal),
        ("AESGCM.encrypt, 69 bytes of associated data", i_seal_aad),
    ]

    def rung(name: str, step: Step, items: list[Any], op: str) -> Candidate:
        run = _loop(step, items, ctx)
        noop: Callable[[], None] = lambda: None  # noqa: E731
        return Candidate(
            name=name,
            role="extra",
            encrypt=run if op == "enc" else noop,
            decrypt=run if op == "dec" else noop,
            overhead=0.0,
        )

    return (
        [rung(n, s, i, "enc") for n, s, i in enc_rungs],
        [rung(n, s, i, "dec") for n, s, i in dec_rungs],
        [
            Candidate(name=n, role="extra", encrypt=f, decrypt=f, overhead=0.0)
            for n, f in ingredients
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite the table in docs/performance.md"
    )
    args = parser.parse_args(argv)
    env = environment()
    print(f"{env['machine']}\n{env['python']}; cryptography {env['cryptography']}\n")
    values = make_values(args.values, args.seed)
    enc, dec, ingredients = ladder(values)
    measure(enc + dec + ingredients, args.values, args.rounds, args.seed)
    lines = []
    for title, rungs, op in (("encrypt", enc, "enc"), ("decrypt", dec, "dec")):
        lines.append(f"{title:<56} {'ns/value':>9} {'step':>7}")
        previous = None
        for c in rungs:
            value = c.median(op)
            step = "" if previous is None else f"{value - previous:+7.0f}"
            lines.append(f"  {c.name:<54} {value:9,.0f} {step:>7}")
            previous = value
        lines.append("")
    lines.append(f"{'ingredients, one call':<56} {'ns/value':>9}")
    for c in ingredients:
        lines.append(f"  {c.name:<54} {c.median('enc'):9,.0f}")
    report = "\n".join(lines)
    print(report)
    if args.write_docs:
        header = (
            f"Measured {env['date']} on {env['machine']}; {env['python']}, cryptography "
            f"{env['cryptography']}. Median of {args.rounds} interleaved rounds of "
            f"{args.values} values."
        )
        write_docs(
            f"{header}\n\n```text\n{report}\n```\n",
            "<!-- benchmark-breakdown:start -->",
            "<!-- benchmark-breakdown:end -->",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
