"""``securecustomer demo``: the library's whole story in one run, on SQLite and a key file.

The steps live in `_demo_steps` (keys, table, search, policy) and `_demo_compliance`
(audit, subject rights, anonymization, breach scope); the world they act on (models,
policy, customers) in `_demo_model`. Each step prints what it does in plain words and
checks what it claims; a step that sees something else stops the demo with exit status 1.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from securecustomer.exceptions import ConfigurationError

__all__ = ["StepTimer", "run_demo"]

#: Called after each step with its title and its duration in seconds (benchmarks).
StepTimer = Callable[[str, float], None]


def run_demo(directory: str | None = None, *, on_step: StepTimer | None = None) -> int:
    """Print the demo; returns 0 when every step behaved as the library promises.

    *directory* keeps the key files, the database, the audit trail and the exports; it
    may be given again: the master and audit keys are reused, everything else is
    written afresh. None uses a temporary directory, removed afterwards.
    """
    started = time.perf_counter()
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="securecustomer-demo-") as tmp:
            return _run(Path(tmp), on_step, started, keep=False)
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"--dir {directory!r}: not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return _run(path, on_step, started, keep=True)


def _run(directory: Path, on_step: StepTimer | None, started: float, *, keep: bool) -> int:
    # Imported here so that `securecustomer --help` and the other commands stay fast.
    from securecustomer.cli._demo_compliance import (
        step_anonymize,
        step_audit,
        step_breach,
        step_subject_rights,
    )
    from securecustomer.cli._demo_steps import (
        RUN_FILES,
        Demo,
        Misbehaved,
        step_keys,
        step_policy,
        step_search,
        step_table,
    )

    if on_step is not None:
        on_step("imports", time.perf_counter() - started)
    earlier = [name for name in RUN_FILES if (directory / name).exists()]
    for name in earlier:
        (directory / name).unlink()
    print(f"securecustomer demo in {directory}")
    if earlier:
        print("(an earlier run's database, key store, trail and exports were replaced)")
    demo = Demo(directory)
    steps = (
        step_keys,
        step_table,
        step_search,
        step_policy,
        step_audit,
        step_subject_rights,
        step_anonymize,
        step_breach,
    )
    try:
        for number, step in enumerate(steps, 1):
            begun = time.perf_counter()
            try:
                step(demo)
            except Misbehaved as exc:
                print(f"\n!! step {number} did not behave as expected: {exc}")
                return 1
            if on_step is not None:
                on_step(
                    f"{number}. {step.__name__.removeprefix('step_')}", time.perf_counter() - begun
                )
    finally:
        demo.close()
    elapsed = time.perf_counter() - started
    print(f"\nDemo finished: every step behaved as expected. ({elapsed:.1f} s)")
    if keep:
        print(f"Look around: {directory} holds the key files, demo.db, audit.jsonl and exports.")
    return 0
