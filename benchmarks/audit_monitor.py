"""Access monitor benchmark: rule time over a stored trail, before and after, and what an
audited call pays for the monitor.

Run ``python benchmarks/audit_monitor.py`` (``--help`` lists the options).

- *BulkExportRule, before*: the rule's former algorithm, kept here as a reference: a dict of
  every record an actor read in the window, rescanned on each event to drop the old ones
  (quadratic in the records per window). Timed at the sizes given by ``--before`` only
  (at 100k records it runs for many minutes).
- *BulkExportRule, now*: `AccessMonitor.scan` with ``BulkExportRule()``.
- *all rules, now*: the same scan with every rule (volume, denials, hours, bulk export,
  total volume, first access).
- *submit* and *observe*: per event, what `AuditTrail` pays on the audited call's thread
  (`AccessMonitor.submit`: a bounded queue) against checking the rules on that thread.

The trail: one actor reading N distinct customer records within one hour, the case the
issue timed (16k records: 21 s). Best of ``--rounds`` runs, garbage collector off.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:  # a checkout without an installed package: use src/
    import securecustomer  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the script is started
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from securecustomer.audit import (
    AccessMonitor,
    AuditEvent,
    BulkExportRule,
    DenialBurstRule,
    FirstAccessRule,
    OutsideHoursRule,
    TotalVolumeRule,
    VolumeRule,
)

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
WINDOW = dt.timedelta(hours=1)


def trail(n: int) -> list[AuditEvent]:
    step = WINDOW / (n + 1)
    return [
        AuditEvent(
            action="read",
            actor="user-1",
            resource_type="customer",
            resource_id=str(i),
            timestamp=T0 + i * step,
        )
        for i in range(n)
    ]


def before(events: list[AuditEvent], max_records: int = 100) -> int:
    """The former BulkExportRule's distinct-records check (the reference)."""
    seen: dict[str | None, dict[tuple[str | None, str], dt.datetime]] = {}
    alerts = 0
    for event in events:
        at = event.timestamp
        assert event.resource_id is not None
        records = seen.setdefault(event.actor, {})
        records[(event.resource_type, event.resource_id)] = at
        for key, when in list(records.items()):
            if when <= at - WINDOW:
                del records[key]
        alerts += len(records) > max_records
    return alerts


def best(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        gc.disable()
        try:
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        finally:
            gc.enable()
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16_000, 100_000])
    parser.add_argument("--before", type=int, nargs="*", default=[16_000])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    every = [
        VolumeRule(1_000, dt.timedelta(minutes=5)),
        DenialBurstRule(20, dt.timedelta(minutes=5)),
        OutsideHoursRule(0, 23),
        BulkExportRule(),
        TotalVolumeRule(10_000, WINDOW),
        FirstAccessRule(),
    ]
    print("| records | BulkExportRule, before | BulkExportRule, now | all rules, now | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for n in options.sizes:
        events = trail(n)
        old = best(lambda e=events: before(e), 1) if n in options.before else None
        new = best(lambda e=events: AccessMonitor([BulkExportRule()]).scan(e), options.rounds)
        full = best(lambda e=events: AccessMonitor(every).scan(e), options.rounds)
        old_text = "not run" if old is None else f"{old:.2f} s"
        ratio = "" if old is None else f"{old / new:.0f}x"
        print(f"| {n:,} | {old_text} | {new:.3f} s | {full:.3f} s | {ratio} |")

    events = trail(20_000)
    monitor = AccessMonitor(every, queue_size=len(events) + 1)

    def submit() -> None:
        for event in events:
            monitor.submit(event)

    submitted = best(submit, 1)
    monitor.close()
    observed = best(lambda: [monitor.observe(event) for event in events], 1)
    print()
    print("| on the audited call's thread, per event | µs |")
    print("|---|---:|")
    print(
        f"| `submit` (queue; rules on the monitor's thread) | {submitted / len(events) * 1e6:.1f} |"
    )
    print(f"| `observe` (all rules on this thread) | {observed / len(events) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
