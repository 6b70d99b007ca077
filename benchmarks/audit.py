"""Audit benchmark: the cost per audited call, side by side, in one process and one run.

Run ``python benchmarks/audit.py`` (or ``nox -s bench``); ``--help`` lists the options.
What is measured and why is explained in ``docs/performance.md`` ("Audit trail").

Every job calls one small function ``calls`` times (the function returns its argument):

- *bare call*: the function itself;
- *structlog JSON line*: the function, then one structlog line with the same keys an audit
  event has (timestamp, actor, action, resource, subject, fields, outcome, duration,
  request id), rendered as JSON and written to a file: what an application would do
  without this library;
- *audited*: the function under ``@audited`` with an `AuditTrail` over each sink: JSON lines
  (fsync every append, and batched with fsync per batch), SQLite and PostgreSQL (each
  unbatched and batched).

A *round* runs every job once, in a freshly shuffled order; the figure is the median over
the rounds, in microseconds per call, and ratios are taken between medians of the same run.
After timing, every audited trail must verify and hold exactly the events written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
import structlog
from run import RESULTS, environment, write_docs

from securecustomer.audit import (
    AuditTrail,
    JsonlAuditSink,
    SqlAuditSink,
    actor,
    audited,
)

START = "<!-- audit-results:start -->"
END = "<!-- audit-results:end -->"
BATCH = 100


@dataclass
class Job:
    name: str
    run: Callable[[], None]
    reset: Callable[[], None] = lambda: None
    trail: AuditTrail | None = None
    samples: list[float] = field(default_factory=list)
    written: int = 0

    def median(self) -> float:
        return statistics.median(self.samples)


def _target(customer_id: int) -> int:
    return customer_id


def _audited_job(name: str, trail: AuditTrail, calls: int, reset: Callable[[], None]) -> Job:
    fn = audited(
        "read",
        resource="customer",
        resource_id="customer_id",
        subject="customer_id",
        fields=["name", "email"],
        trail=trail,
    )(_target)
    job = Job(name, lambda: None, reset, trail)

    def run() -> None:
        with actor("user-7", request_id="req-1"):
            for n in range(calls):
                fn(n % 500)
        trail.flush()
        job.written += calls

    job.run = run
    return job


def _structlog_job(path: Path, calls: int) -> Job:
    stream = path.open("a", encoding="utf-8")
    logger = structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )

    def run() -> None:
        for n in range(calls):
            started = time.perf_counter()
            _target(n % 500)
            logger.info(
                "read",
                actor="user-7",
                request_id="req-1",
                resource_type="customer",
                resource_id=str(n % 500),
                subject=str(n % 500),
                fields=["name", "email"],
                outcome="success",
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        stream.flush()

    return Job("structlog JSON line to a file", run)


def _bare_job(calls: int) -> Job:
    def run() -> None:
        for n in range(calls):
            _target(n % 500)

    return Job("bare call", run)


def make_jobs(workdir: Path, calls: int, postgres: str | None) -> list[Job]:
    key = secrets.token_bytes(32)
    jobs = [_bare_job(calls), _structlog_job(workdir / "plain.jsonl", calls)]
    for label, fsync, batch in (
        ("JSON lines, fsync each event", "always", 1),
        (f"JSON lines, batches of {BATCH}", "batch", BATCH),
    ):
        trail = AuditTrail(
            JsonlAuditSink(workdir / f"{fsync}.jsonl", fsync=fsync), key=key, batch_size=batch
        )
        jobs.append(_audited_job(f"audited, {label}", trail, calls, lambda: None))
    urls = [("SQLite", f"sqlite:///{workdir / 'audit.db'}")]
    if postgres:
        urls.append(("PostgreSQL", postgres))
    for label, url in urls:
        engine = sa.create_engine(url)
        for batch in (1, BATCH):
            table = f"audit_bench_{batch}"
            sink = SqlAuditSink(engine, table=table)
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            sink.create()
            trail = AuditTrail(sink, key=key, batch_size=batch)
            name = f"audited, {label}" + (f", batches of {batch}" if batch > 1 else ", each event")
            jobs.append(_audited_job(name, trail, calls, lambda: None))
    return jobs


def measure(jobs: list[Job], rounds: int, calls: int, seed: int) -> None:
    rnd = random.Random(seed)
    order = list(jobs)
    for number in range(rounds):
        rnd.shuffle(order)
        for job in order:
            gc.collect()
            job.reset()
            start = time.perf_counter_ns()
            job.run()
            job.samples.append((time.perf_counter_ns() - start) / 1e3 / calls)
        print(f"round {number + 1}/{rounds}")


def check(jobs: list[Job]) -> None:
    for job in jobs:
        if job.trail is None:
            continue
        report = job.trail.verify()
        if not report.ok or report.checked != job.written:
            raise SystemExit(
                f"{job.name}: the trail does not verify or lost events "
                f"({report.checked} of {job.written}: {report.problem})"
            )


def markdown(jobs: list[Job], env: dict[str, str], calls: int, rounds: int) -> str:
    by = {job.name: job for job in jobs}
    plain = by["structlog JSON line to a file"].median()
    bare = by["bare call"].median()
    lines = [
        f"Measured {env['date']} on {env['machine']}; {env['python']}. {calls:,} calls per job, "
        f"median of {rounds} interleaved rounds; every audited trail verified and held "
        "exactly the events written.",
        "",
        "| job | µs per call | cost over the bare call (µs) | ÷ structlog JSON line |",
        "|---|--:|--:|--:|",
    ]
    for job in jobs:
        us = job.median()
        lines.append(f"| {job.name} | {us:.2f} | {us - bare:.2f} | {us / plain:.2f}x |")
    batched = [j for j in jobs if "batches" in j.name]
    best = min(batched, key=Job.median)
    met = best.median() <= plain
    lines += [
        "",
        "| target | measured | status |",
        "|---|--:|---|",
        f"| batched chained events at least as fast per event as a structlog JSON line "
        f"({best.name}) | {best.median() / plain:.2f}x | {'met' if met else 'NOT met'} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("SECURECUSTOMER_BENCH_POSTGRES"),
        help="a PostgreSQL URL to include (default: $SECURECUSTOMER_BENCH_POSTGRES)",
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    env = environment()
    with tempfile.TemporaryDirectory(prefix="sc-audit-bench-") as tmp:
        jobs = make_jobs(Path(tmp), args.calls, args.postgres)
        measure(jobs, args.rounds, args.calls, args.seed)
        check(jobs)
    report = markdown(jobs, env, args.calls, args.rounds)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"audit-{stamp}.json").write_text(
        json.dumps({j.name: j.samples for j in jobs}, indent=1), encoding="utf-8"
    )
    if args.write_docs:
        write_docs(report, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
