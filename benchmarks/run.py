"""Side-by-side benchmark: FieldCipher against the raw primitive and the libraries a user
would otherwise pick, for short strings, in one process and one run.

Run ``python benchmarks/run.py`` (or ``nox -s bench``); ``--help`` lists the options.
What is measured and why is explained in ``docs/performance.md``.

Harness: every candidate is a pair of functions, ``encrypt(values)`` and
``decrypt(tokens)``, each a plain loop over the same list of N values (or one batch call)
that keeps its results, so that every candidate pays its own per-value call cost and
nothing else. One *round* times each (candidate, operation) once, in a freshly shuffled
order (interleaving spreads machine drift over all candidates); the garbage collector is
off while timing. The reported figure is the median over the rounds, in nanoseconds per
value; ratios are taken between medians of the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "performance.md"
START = "<!-- benchmark-results:start -->"
END = "<!-- benchmark-results:end -->"

try:  # a checkout without an installed package: use src/
    import securecustomer  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the script is started
    sys.path.insert(0, str(ROOT / "src"))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from securecustomer import Context, Keyring, LocalKeyProvider  # noqa: E402
from securecustomer.keys import MemoryKeyStore  # noqa: E402

#: The targets of the issue, as ratios of medians.
SINGLE_TARGET = 1.3  # FieldCipher.encrypt / decrypt against the floor
BATCH_TARGET = 1.0  # FieldCipher.encrypt_many against the floor, per value (no decrypt target)
OVERHEAD_TARGET = 34  # bytes of ciphertext overhead for randomized values

Op = Callable[[], Any]


@dataclass
class Candidate:
    """One row of the table: how it encrypts and decrypts the whole list of values."""

    name: str
    role: str  # "floor", "reference", "single", "batch", "peer" or "extra"
    encrypt: Op
    decrypt: Op
    overhead: float  # mean len(token) - len(utf-8 plaintext), in bytes
    note: str = ""
    samples: dict[str, list[float]] = field(default_factory=lambda: {"enc": [], "dec": []})

    def median(self, op: str) -> float:
        return statistics.median(self.samples[op])


# -- values -----------------------------------------------------------------------------

# fmt: off
_FIRST = [
    "ada", "alan", "grace", "linus", "margaret", "ken", "barbara", "edsger", "frances",
    "donald", "radia", "guido", "zoë", "josé", "anaïs", "björn", "li", "noor", "sam", "kim",
]
_LAST = [
    "lovelace", "turing", "hopper", "smith", "hamilton", "thompson", "liskov", "dijkstra",
    "allen", "knuth", "perlman", "rossum", "müller", "garcía", "wang", "ng", "obrien", "li",
]
_DOMAINS = ["ex.com", "mail.io", "corp.de", "web.fr", "acme.co", "post.net", "uni.edu", "x.org"]
# fmt: on


def make_values(count: int, seed: int) -> list[str]:
    """*count* distinct, e-mail-like strings of about 20 UTF-8 bytes (16 to 24)."""
    rnd = random.Random(seed)
    values: list[str] = []
    seen: set[str] = set()
    while len(values) < count:
        local = rnd.choice(_FIRST) + rnd.choice([".", "_", ""]) + rnd.choice(_LAST)
        local = local[: rnd.randint(8, 13)] + str(rnd.randint(1, 99))
        value = f"{local}@{rnd.choice(_DOMAINS)}"
        if 16 <= len(value.encode()) <= 24 and value not in seen:
            seen.add(value)
            values.append(value)
    return values


# -- candidates -------------------------------------------------------------------------


def _overhead(tokens: list[Any], values: list[str]) -> float:
    def size(token: bytes | str) -> int:
        return len(token.encode() if isinstance(token, str) else token)

    total = sum(size(t) - len(v.encode()) for t, v in zip(tokens, values, strict=True))
    return total / len(values)


def _check(name: str, decrypted: list[Any], values: list[str]) -> None:
    if decrypted != values:
        raise SystemExit(f"{name}: decrypting its own tokens did not give the values back")


def build(values: list[str]) -> list[Candidate]:
    """Every candidate, with its inputs prepared and its round trip checked."""
    urandom = os.urandom
    data = [v.encode() for v in values]
    candidates: list[Candidate] = []

    # (a) The floor: the raw recipe with cryptography's AESGCM, str in and str out.
    aesgcm = AESGCM(AESGCM.generate_key(bit_length=256))
    seal, open_ = aesgcm.encrypt, aesgcm.decrypt

    def floor_encrypt(values: list[str] = values) -> list[bytes]:
        out = []
        for s in values:
            nonce = urandom(12)
            out.append(nonce + seal(nonce, s.encode(), None))
        return out

    floor_tokens = floor_encrypt()

    def floor_decrypt(tokens: list[bytes] = floor_tokens) -> list[str]:
        out = []
        for token in tokens:
            out.append(open_(token[:12], token[12:], None).decode())
        return out

    _check("floor", floor_decrypt(), values)
    candidates.append(
        Candidate(
            name="AESGCM recipe (floor)",
            role="floor",
            encrypt=floor_encrypt,
            decrypt=floor_decrypt,
            overhead=_overhead(floor_tokens, values),
            note="nonce + aesgcm.encrypt(nonce, s.encode(), None); decrypt(...).decode()",
        )
    )

    # The bare call: no str conversion, no concatenation, no slicing; stricter still.
    pairs = [(t[:12], t[12:]) for t in floor_tokens]

    def bare_encrypt(data: list[bytes] = data) -> list[bytes]:
        out = []
        for d in data:
            out.append(seal(urandom(12), d, None))
        return out

    def bare_decrypt(pairs: list[tuple[bytes, bytes]] = pairs) -> list[bytes]:
        out = []
        for nonce, body in pairs:
            out.append(open_(nonce, body, None))
        return out

    if bare_decrypt() != data:
        raise SystemExit("bare AESGCM call: round trip failed")
    candidates.append(
        Candidate(
            name="AESGCM bare call",
            role="reference",
            encrypt=bare_encrypt,
            decrypt=bare_decrypt,
            overhead=16.0,  # the tag; the nonce is not kept with the ciphertext
            note="aesgcm.encrypt(os.urandom(12), data, None) on bytes",
        )
    )

    # (b), (c) FieldCipher from a loaded keyring with its default cache settings.
    keyring = Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load()
    cipher = keyring.cipher("customers.email")
    ctx = Context("customers", "email")  # one Context per column, shared by every value
    encrypt, decrypt = cipher.encrypt, cipher.decrypt

    def fc_encrypt(values: list[str] = values) -> list[bytes]:
        out = []
        for s in values:
            out.append(encrypt(s, context=ctx))
        return out

    fc_tokens = fc_encrypt()

    def fc_decrypt(tokens: list[bytes] = fc_tokens) -> list[Any]:
        out = []
        for token in tokens:
            out.append(decrypt(token, context=ctx))
        return out

    _check("FieldCipher", fc_decrypt(), values)
    candidates.append(
        Candidate(
            name="FieldCipher.encrypt / decrypt",
            role="single",
            encrypt=fc_encrypt,
            decrypt=fc_decrypt,
            overhead=_overhead(fc_tokens, values),
            note="one call per value, one Context per column",
        )
    )

    def fcm_encrypt(values: list[str] = values) -> list[bytes]:
        return cipher.encrypt_many(values, context=ctx)

    fcm_tokens = fcm_encrypt()

    def fcm_decrypt(tokens: list[bytes] = fcm_tokens) -> list[Any]:
        return cipher.decrypt_many(tokens, context=ctx)

    _check("FieldCipher batches", fcm_decrypt(), values)
    candidates.append(
        Candidate(
            name="FieldCipher.encrypt_many / decrypt_many",
            role="batch",
            encrypt=fcm_encrypt,
            decrypt=fcm_decrypt,
            overhead=_overhead(fcm_tokens, values),
            note=f"batches of {len(values)}, one Context per column",
        )
    )

    # Extra rows (no target): a Context per row, as when tokens are bound to row identity.
    rows = [Context("customers", "email", row=i) for i in range(len(values))]

    def row_encrypt(values: list[str] = values) -> list[bytes]:
        out = []
        for s, row in zip(values, rows, strict=True):
            out.append(encrypt(s, context=row))
        return out

    row_tokens = row_encrypt()

    def row_decrypt(tokens: list[bytes] = row_tokens) -> list[Any]:
        out = []
        for token, row in zip(tokens, rows, strict=True):
            out.append(decrypt(token, context=row))
        return out

    _check("FieldCipher per row", row_decrypt(), values)
    candidates.append(
        Candidate(
            name="FieldCipher.encrypt / decrypt, Context per row",
            role="extra",
            encrypt=row_encrypt,
            decrypt=row_decrypt,
            overhead=_overhead(row_tokens, values),
            note="no target: a different Context on every call",
        )
    )

    def rowm_encrypt(values: list[str] = values) -> list[bytes]:
        return cipher.encrypt_many(values, context=rows)

    rowm_tokens = rowm_encrypt()

    def rowm_decrypt(tokens: list[bytes] = rowm_tokens) -> list[Any]:
        return cipher.decrypt_many(tokens, context=rows)

    _check("FieldCipher batches per row", rowm_decrypt(), values)
    candidates.append(
        Candidate(
            name="FieldCipher.encrypt_many / decrypt_many, Context per row",
            role="extra",
            encrypt=rowm_encrypt,
            decrypt=rowm_decrypt,
            overhead=_overhead(rowm_tokens, values),
            note="no target: one Context per value",
        )
    )

    candidates.extend(_peers(values))
    return candidates


def _peers(values: list[str]) -> list[Candidate]:
    """(d) Tink AEAD and (e) sqlalchemy-utils, when installed (``nox -s bench`` installs them)."""
    peers: list[Candidate] = []
    try:
        import tink
        from tink import aead
    except ImportError:
        print("tink is not installed: skipping its row", file=sys.stderr)
    else:
        aead.register()
        handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
        primitive = handle.primitive(aead.Aead)
        t_encrypt, t_decrypt = primitive.encrypt, primitive.decrypt
        aad = b"customers.email"  # associated data, as FieldCipher binds its context

        def tink_encrypt(values: list[str] = values) -> list[bytes]:
            out = []
            for s in values:
                out.append(t_encrypt(s.encode(), aad))
            return out

        tink_tokens = tink_encrypt()

        def tink_decrypt(tokens: list[bytes] = tink_tokens) -> list[str]:
            out = []
            for token in tokens:
                out.append(t_decrypt(token, aad).decode())
            return out

        _check("Tink", tink_decrypt(), values)
        peers.append(
            Candidate(
                name="Tink AEAD (AES256_GCM)",
                role="peer",
                encrypt=tink_encrypt,
                decrypt=tink_decrypt,
                overhead=_overhead(tink_tokens, values),
                note="primitive.encrypt(s.encode(), aad); decrypt(...).decode()",
            )
        )
    try:
        import sqlalchemy as sa
        from sqlalchemy.dialects import sqlite
        from sqlalchemy_utils import StringEncryptedType
        from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine
    except ImportError:
        print("sqlalchemy-utils is not installed: skipping its row", file=sys.stderr)
    else:
        column = StringEncryptedType(sa.Unicode, os.urandom(32).hex(), AesGcmEngine)
        dialect = sqlite.dialect()
        bind, result = column.process_bind_param, column.process_result_value

        def sau_encrypt(values: list[str] = values) -> list[str]:
            out = []
            for s in values:
                out.append(bind(s, dialect))
            return out

        sau_tokens = sau_encrypt()

        def sau_decrypt(tokens: list[str] = sau_tokens) -> list[str]:
            out = []
            for token in tokens:
                out.append(result(token, dialect))
            return out

        _check("sqlalchemy-utils", sau_decrypt(), values)
        peers.append(
            Candidate(
                name="sqlalchemy-utils StringEncryptedType (AesGcmEngine)",
                role="peer",
                encrypt=sau_encrypt,
                decrypt=sau_decrypt,
                overhead=_overhead(sau_tokens, values),
                note="process_bind_param / process_result_value; base64 text",
            )
        )
    return peers


# -- measuring --------------------------------------------------------------------------


def measure(candidates: list[Candidate], count: int, rounds: int, seed: int) -> None:
    """Time every (candidate, operation) once per round, in a new random order each round."""
    jobs = [(c, op) for c in candidates for op in ("enc", "dec")]
    rnd = random.Random(seed)
    clock = time.perf_counter_ns
    for job, op in jobs:  # warm-up round, not recorded
        (job.encrypt if op == "enc" else job.decrypt)()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            rnd.shuffle(jobs)
            for candidate, op in jobs:
                run = candidate.encrypt if op == "enc" else candidate.decrypt
                start = clock()
                run()
                elapsed = clock() - start
                candidate.samples[op].append(elapsed / count)
            gc.collect()  # between rounds, outside any timing
    finally:
        if gc_was_enabled:
            gc.enable()


# -- reporting --------------------------------------------------------------------------


def environment() -> dict[str, str]:
    """The machine and versions the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        pass
    else:
        found = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
        if found:
            cpu = found.group(1).strip()
    from cryptography.hazmat.backends.openssl.backend import backend

    versions = {}
    for dist in ("securecustomer", "cryptography", "tink", "sqlalchemy-utils", "sqlalchemy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "openssl": backend.openssl_version_text(),
        **versions,
    }


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(candidates: list[Candidate]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and whether it is met."""
    by_role = {c.role: c for c in candidates if c.role in ("floor", "single", "batch")}
    floor, single, batch = by_role["floor"], by_role["single"], by_role["batch"]
    checks = [
        ("FieldCipher.encrypt", single, "enc", SINGLE_TARGET, ""),
        ("FieldCipher.decrypt", single, "dec", SINGLE_TARGET, ""),
        ("FieldCipher.encrypt_many", batch, "enc", BATCH_TARGET, " per value"),
    ]
    rows = []
    for name, cand, op, limit, per in checks:
        ratio = cand.median(op) / floor.median(op)
        rows.append(
            {
                "target": f"{name} <= {limit:.1f}x floor{per}",
                "measured": f"{ratio:.2f}x",
                "met": ratio <= limit,
            }
        )
    overhead = max(single.overhead, batch.overhead)
    rows.append(
        {
            "target": f"ciphertext overhead <= {OVERHEAD_TARGET} bytes (randomized)",
            "measured": f"{overhead:.0f} bytes",
            "met": overhead <= OVERHEAD_TARGET,
        }
    )
    return rows


def markdown(candidates: list[Candidate], env: dict[str, str], count: int, rounds: int) -> str:
    floor = next(c for c in candidates if c.role == "floor")
    bare = next(c for c in candidates if c.role == "reference")
    lines = [
        f"Measured {env['date']} on {env['machine']}; {env['python']}, cryptography "
        f"{env['cryptography']} ({env['openssl']}), tink {env['tink']}, sqlalchemy-utils "
        f"{env['sqlalchemy-utils']} (SQLAlchemy {env['sqlalchemy']}). {count} values of "
        f"16 to 24 UTF-8 bytes per loop; median of {rounds} interleaved rounds.",
        "",
        "| candidate | encrypt ns/value | decrypt ns/value | encrypt vs floor "
        "| decrypt vs floor | encrypt vs bare call | decrypt vs bare call | overhead (bytes) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in candidates:
        enc, dec = c.median("enc"), c.median("dec")
        lines.append(
            f"| {c.name} | {enc:,.0f} | {dec:,.0f} | {_ratio(enc, floor.median('enc'))} "
            f"| {_ratio(dec, floor.median('dec'))} | {_ratio(enc, bare.median('enc'))} "
            f"| {_ratio(dec, bare.median('dec'))} | {c.overhead:.1f} |"
        )
    lines += ["", "| target | measured | status |", "|---|--:|---|"]
    for row in targets(candidates):
        lines.append(f"| {row['target']} | {row['measured']} | {_verdict(row['met'])} |")
    return "\n".join(lines) + "\n"


def text_table(candidates: list[Candidate]) -> str:
    floor = next(c for c in candidates if c.role == "floor")
    bare = next(c for c in candidates if c.role == "reference")
    width = max(len(c.name) for c in candidates)
    head = (
        f"{'candidate':<{width}}  {'enc ns':>8} {'dec ns':>8}  {'enc/fl':>7} {'dec/fl':>7}"
        f"  {'enc/bare':>8} {'dec/bare':>8}  {'overhead':>8}  {'spread':>11}"
    )
    lines = [head, "-" * len(head)]
    for c in candidates:
        enc, dec = c.median("enc"), c.median("dec")
        spread = max(_spread(c.samples["enc"]), _spread(c.samples["dec"]))
        lines.append(
            f"{c.name:<{width}}  {enc:8,.0f} {dec:8,.0f}  {_ratio(enc, floor.median('enc')):>7} "
            f"{_ratio(dec, floor.median('dec')):>7}  {_ratio(enc, bare.median('enc')):>8} "
            f"{_ratio(dec, bare.median('dec')):>8}  {c.overhead:7.1f}B  IQR {spread:5.1%}"
        )
    lines.append("")
    for row in targets(candidates):
        lines.append(f"{row['target']:<60} {row['measured']:>9}  {_verdict(row['met'])}")
    return "\n".join(lines)


def _spread(samples: list[float]) -> float:
    """Interquartile range relative to the median: how steady the machine was."""
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return (q3 - q1) / statistics.median(samples)


def write_docs(section: str, start_marker: str = START, end_marker: str = END) -> None:
    """Replace what lies between two marker comments of docs/performance.md."""
    text = DOCS.read_text(encoding="utf-8")
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise SystemExit(f"{DOCS}: markers {start_marker} ... {end_marker} not found")
    text = text[: start + len(start_marker)] + "\n\n" + section + "\n" + text[end:]
    DOCS.write_text(text, encoding="utf-8")
    print(f"rewrote a section of {DOCS.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=1000, help="values per loop and batch")
    parser.add_argument("--rounds", type=int, default=200, help="interleaved rounds to time")
    parser.add_argument("--seed", type=int, default=2024, help="seed for values and order")
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite the table in docs/performance.md"
    )
    args = parser.parse_args(argv)

    began = time.monotonic()
    env = environment()
    values = make_values(args.values, args.seed)
    candidates = build(values)
    measure(candidates, args.values, args.rounds, args.seed)

    print(
        f"{env['machine']}\n{env['python']}; cryptography {env['cryptography']} "
        f"({env['openssl']}); tink {env['tink']}; sqlalchemy-utils {env['sqlalchemy-utils']}"
    )
    mean = statistics.fmean(len(v.encode()) for v in values)
    print(
        f"{args.values} values (mean {mean:.1f} UTF-8 bytes), median of {args.rounds} "
        "interleaved rounds, ns per value\n"
    )
    print(text_table(candidates))

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {
        "environment": env,
        "values": args.values,
        "mean_value_bytes": mean,
        "rounds": args.rounds,
        "statistic": "median of rounds, ns per value",
        "candidates": [
            {
                "name": c.name,
                "role": c.role,
                "note": c.note,
                "overhead_bytes": c.overhead,
                "encrypt_ns": c.median("enc"),
                "decrypt_ns": c.median("dec"),
                "encrypt_min_ns": min(c.samples["enc"]),
                "decrypt_min_ns": min(c.samples["dec"]),
                "samples": c.samples,
            }
            for c in candidates
        ],
        "targets": targets(candidates),
    }
    for name in (f"{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote benchmarks/results/{stamp}.json in {time.monotonic() - began:.0f} s")
    if args.write_docs:
        write_docs(markdown(candidates, env, args.values, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
