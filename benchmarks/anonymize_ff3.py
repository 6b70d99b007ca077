"""FF3-1 benchmark: encryptions per second of `securecustomer`'s FF3Cipher against the
`ff3` package (PyPI ``ff3``, github.com/mysto/python-fpe), on the same inputs, in one run.

Run ``python benchmarks/anonymize_ff3.py``; ``--help`` lists the options. The `ff3`
package must be installed (it is what a user would otherwise pick; it is not a
dependency of securecustomer).

Cases: radix 10 with 16-digit strings (card-number-like) and radix 62 (``0-9a-zA-Z``) with
12-character strings. Each candidate is a plain loop that encrypts the same list of N
random strings under one key and one 56-bit tweak and keeps the results; both libraries'
outputs are checked to be equal before timing. One *round* times every (case, candidate)
once in a freshly shuffled order, the garbage collector off; the figure is the median over
the rounds, and the ratio is taken between medians of the same run. ``encrypt_many`` is
shown as an extra row; the target (5x the ff3 package) is for single ``encrypt`` calls.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DOCS, environment, write_docs

from securecustomer.anonymize._ff3 import FF3Cipher

START = "<!-- ff3-results:start -->"
END = "<!-- ff3-results:end -->"

TARGET = 5.0  # securecustomer encrypt / ff3 encrypt, in encryptions per second
CASES = (
    ("radix 10, 16 digits", string.digits, 16),
    (
        "radix 62, 12 characters",
        string.digits + string.ascii_lowercase + string.ascii_uppercase,
        12,
    ),
)


@dataclass
class Candidate:
    case: str
    name: str
    role: str  # "single", "reference" or "batch"
    run: Callable[[], Any]
    samples: list[float] = field(default_factory=list)  # ns per encryption

    def per_second(self) -> float:
        return 1e9 / statistics.median(self.samples)


def build(count: int, seed: int) -> list[Candidate]:
    import ff3

    rnd = random.Random(seed)
    candidates = []
    for label, alphabet, length in CASES:
        key, tweak = rnd.randbytes(16), rnd.randbytes(7)
        texts = ["".join(rnd.choice(alphabet) for _ in range(length)) for _ in range(count)]
        ours = FF3Cipher(key, tweak, alphabet=alphabet)
        theirs = ff3.FF3Cipher.withCustomAlphabet(key.hex(), tweak.hex(), alphabet)
        expected = [theirs.encrypt(t) for t in texts]
        if [ours.encrypt(t) for t in texts] != expected or ours.encrypt_many(texts) != expected:
            raise SystemExit(f"{label}: securecustomer and ff3 disagree")

        def single(texts: list[str] = texts, encrypt: Any = ours.encrypt) -> list[str]:
            return [encrypt(t) for t in texts]

        def reference(texts: list[str] = texts, encrypt: Any = theirs.encrypt) -> list[str]:
            return [encrypt(t) for t in texts]

        def batch(texts: list[str] = texts, many: Any = ours.encrypt_many) -> list[str]:
            return many(texts)  # type: ignore[no-any-return]

        candidates += [
            Candidate(label, "securecustomer FF3Cipher.encrypt", "single", single),
            Candidate(label, f"ff3 {_version('ff3')} FF3Cipher.encrypt", "reference", reference),
            Candidate(label, "securecustomer FF3Cipher.encrypt_many", "batch", batch),
        ]
    return candidates


def measure(candidates: list[Candidate], count: int, rounds: int, seed: int) -> None:
    """Time every candidate once per round, in a new random order each round."""
    rnd = random.Random(seed)
    order = list(candidates)
    clock = time.perf_counter_ns
    for c in order:  # warm-up round, not recorded
        c.run()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            rnd.shuffle(order)
            for c in order:
                start = clock()
                c.run()
                c.samples.append((clock() - start) / count)
            gc.collect()  # between rounds, outside any timing
    finally:
        if gc_was_enabled:
            gc.enable()


def rows(candidates: list[Candidate]) -> list[list[str]]:
    reference = {c.case: c for c in candidates if c.role == "reference"}
    out = []
    for c in candidates:
        ratio = c.per_second() / reference[c.case].per_second()
        out.append(
            [
                c.case,
                c.name,
                f"{c.per_second():,.0f}",
                f"{statistics.median(c.samples) / 1000:.2f}",
                f"{ratio:.1f}x",
            ]
        )
    return out


HEAD = ["case", "candidate", "encryptions/s", "µs each", "vs ff3"]


def text_table(body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEAD)]
    fmt = [f"{{:<{w}}}" for w in widths[:2]] + [f"{{:>{w}}}" for w in widths[2:]]
    lines = ["  ".join(f.format(h) for f, h in zip(fmt, HEAD, strict=True))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(f.format(x) for f, x in zip(fmt, r, strict=True)) for r in body]
    return "\n".join(lines)


def markdown(env: dict[str, str], args: argparse.Namespace, body: list[list[str]]) -> str:
    lines = [
        f"Measured {env['date']} on {env['machine']}; {env['python']}, securecustomer "
        f"{env['securecustomer']}, cryptography {env['cryptography']}; ff3 {env['ff3']} "
        f"(pycryptodome {env['pycryptodome']}). {args.values:,} random strings per loop, "
        f"one AES-128 key and one 56-bit tweak per case; median of {args.rounds} "
        "interleaved rounds.",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|---|---|--:|--:|--:|",
        *["| " + " | ".join(r) + " |" for r in body],
    ]
    return "\n".join(lines) + "\n"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=2000, help="strings per loop")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds to time")
    parser.add_argument("--seed", type=int, default=2024, help="seed for inputs and order")
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite the FF3-1 table in docs/performance.md"
    )
    args = parser.parse_args(argv)

    import securecustomer

    env = environment()
    if env["securecustomer"] == "not installed":  # run from a checkout: src/ on the path
        env["securecustomer"] = f"{securecustomer.__version__} (source tree)"
    env["ff3"], env["pycryptodome"] = _version("ff3"), _version("pycryptodome")
    if env["ff3"] == "not installed":
        raise SystemExit("the ff3 package is not installed: pip install ff3")
    print(f"{env['machine']}\n{env['python']}; ff3 {env['ff3']}\n")
    candidates = build(args.values, args.seed)
    print(f"timing {args.rounds} rounds of {len(candidates)} loops of {args.values:,} (checked)")
    measure(candidates, args.values, args.rounds, args.seed)
    body = rows(candidates)
    print()
    print(text_table(body))
    reference = {c.case: c for c in candidates if c.role == "reference"}
    for c in candidates:
        if c.role == "single":
            ratio = c.per_second() / reference[c.case].per_second()
            verdict = "met" if ratio >= TARGET else "NOT met"
            print(f"{c.case}: {ratio:.1f}x the ff3 package (target {TARGET:.0f}x: {verdict})")
    if args.write_docs:
        text = DOCS.read_text(encoding="utf-8")
        start, end = text.find(START), text.find(END)
        if start < 0 or end < start:
            print(f"{DOCS.name}: markers {START} ... {END} not found; docs not rewritten")
        else:
            write_docs(markdown(env, args, body), START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
