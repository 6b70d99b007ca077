"""Import benchmark: what ``import securecustomer`` adds to importing its dependencies.

Run ``python benchmarks/imports.py`` (or ``nox -s bench``); ``--help`` lists the options.
The issue's target: ``import securecustomer`` and ``import securecustomer.sqlalchemy`` add
at most 50 ms to what importing SQLAlchemy, cryptography and attrs alone costs.

Each sample is one new interpreter started with ``python -X importtime -c CODE``, where CODE
first imports the *baseline* and then the library, so both are measured in the same process:
the baseline's cost is the sum of the cumulative times of the top-level imports before a
marker, the library's added cost the sum of those after it (what is already loaded by the
baseline costs the library nothing). Bytecode is cached as in an installed package: the
children write ``.pyc`` files to a temporary ``PYTHONPYCACHEPREFIX``, after one warm-up run
of each case that is not counted. A round runs every case once, in a shuffled order; the
figures are medians over the rounds, with the spread (min to max).

Two baselines:

- *dependencies as used* (the target's): ``sqlalchemy``, ``sqlalchemy.orm`` (the library's
  columns bind ORM rows and listen to Session events), ``cryptography``'s AEAD ciphers (its
  Rust bindings: every cipher needs them) and ``attrs``;
- *top-level packages*: ``import sqlalchemy, cryptography, attrs`` and nothing more, so that
  the added figure also holds what the library makes those packages load.

``--against DIR`` measures another source tree in the same rounds (say, the main branch's
``src``), for a before/after comparison on one loaded machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import RESULTS, environment, write_docs

START = "<!-- import-results:start -->"
END = "<!-- import-results:end -->"
TARGET_MS = 50.0
BASELINES = {
    "dependencies as used": (
        "import sqlalchemy, sqlalchemy.orm, cryptography.hazmat.primitives.ciphers.aead, attrs"
    ),
    "top-level packages": "import sqlalchemy, cryptography, attrs",
}
TARGETS = ["securecustomer", "securecustomer.sqlalchemy"]
MARK = "--- securecustomer benchmark mark ---"
_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)")


def _code(baseline: str, target: str) -> str:
    return (
        f"import sys\nsys.stderr.write({MARK!r} + '\\n')\n{baseline}\n"
        f"sys.stderr.write({MARK!r} + '\\n')\nimport {target}\n"
    )


def _env(source: str | None, pycache: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode
    path = [source] if source else []
    path += [p for p in sys.path if p]  # a checkout: the child finds what we find
    env["PYTHONPATH"] = os.pathsep.join(path)
    return env


def sample(baseline: str, target: str, env: dict[str, str]) -> tuple[float, float]:
    """(baseline ms, added ms) of one new interpreter."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-X", "importtime", "-c", _code(baseline, target)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"importing {target} failed:\n{result.stderr[-3000:]}")
    parts: list[float] = [0.0, 0.0, 0.0]  # before the first mark, baseline, added
    part = 0
    for line in result.stderr.splitlines():
        if line == MARK:
            part += 1
            continue
        match = _LINE.match(line)
        if match and not match.group(2):  # a top-level import: its cumulative time
            parts[part] += int(match.group(1)) / 1000
    return parts[1], parts[2]


def measure(rounds: int, against: str | None, seed: int) -> dict[str, dict[str, list[float]]]:
    """Case label -> {"baseline": [ms], "added": [ms]} over the rounds."""
    sources = {"": None} if against is None else {"": None, f" ({against})": against}
    cases = [
        (f"{target} over {name}{suffix}", baseline, target, source)
        for suffix, source in sources.items()
        for name, baseline in BASELINES.items()
        for target in TARGETS
    ]
    found: dict[str, dict[str, list[float]]] = {
        label: {"baseline": [], "added": []} for label, *_ in cases
    }
    order = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="sc-import-bench-") as tmp:
        envs = {
            source: _env(source, Path(tmp) / (source or "this").strip("/"))
            for source in sources.values()
        }
        for _, baseline, target, source in cases:  # warm-up: writes the bytecode
            sample(baseline, target, envs[source])
        for number in range(rounds):
            order.shuffle(cases)
            for label, baseline, target, source in cases:
                base, added = sample(baseline, target, envs[source])
                found[label]["baseline"].append(base)
                found[label]["added"].append(added)
            print(f"round {number + 1}/{rounds}", file=sys.stderr)
    return found


def _spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


def markdown(env: dict[str, str], found: dict[str, dict[str, list[float]]], rounds: int) -> str:
    lines = [
        f"Measured {env['date']} on {env['machine']}; {env['python']}; sqlalchemy "
        f"{env['sqlalchemy']}, cryptography {env['cryptography']}. {rounds} rounds, each "
        "case a new interpreter under `python -X importtime`, bytecode cached; medians "
        "(min-max) in ms.",
        "",
        "| import | over baseline | baseline ms | added ms | target (added at most "
        f"{TARGET_MS:.0f} ms) |",
        "|---|---|--:|--:|---|",
    ]
    for label, samples in found.items():
        target, _, rest = label.partition(" over ")
        added = statistics.median(samples["added"])
        checked = rest.startswith("dependencies as used")
        status = ("met" if added <= TARGET_MS else "NOT met") if checked else "(for reference)"
        lines.append(
            f"| `import {target}` | {rest} | {statistics.median(samples['baseline']):.0f} "
            f"({_spread(samples['baseline'])}) | {added:.0f} ({_spread(samples['added'])}) "
            f"| {status} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the case order")
    parser.add_argument("--against", help="another source tree to measure in the same rounds")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"rewrite the section between {START} and {END} in docs/performance.md",
    )
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5 (the figure is a median)")
    env = environment()
    found = measure(args.rounds, args.against, args.seed)
    report = markdown(env, found, args.rounds)
    print(report)
    met = True
    for label, samples in found.items():
        if " (" not in label and "dependencies as used" in label:
            added = statistics.median(samples["added"])
            met = met and added <= TARGET_MS
            print(f"result: {label}: {added:.1f} ms added; at most {TARGET_MS:.0f} ms")
    record: dict[str, Any] = {"environment": env, "target_ms": TARGET_MS, "samples_ms": found}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"imports-{stamp}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    if args.write_docs:
        write_docs(report, START, END)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
