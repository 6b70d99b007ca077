"""Several processes and threads appending to one trail, and a writer killed midway.

Each "spawn" child opens its own sink (and engine) from a path or URL; the parent's threads
share one sink. Afterwards the chain verifies and holds exactly the events appended.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_writers import open_sink, write
from dbservers import reset_database

from securecustomer.audit import AuditEvent, AuditTrail

KEY = bytes(range(32))
PROCESSES = 4
THREADS = 4
EACH = 40
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["jsonl", "sqlite", "postgresql", "mariadb"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, where) of an empty trail: a JSONL file, or a table on each SQL backend
    (the database is emptied afterwards)."""
    if request.param == "jsonl":
        yield "jsonl", str(tmp_path / "audit.jsonl")
        return
    url: str = request.getfixturevalue(f"{request.param}_url")
    sink, engine = open_sink("sql", url)
    sink.create()  # type: ignore[attr-defined]
    engine.dispose()
    try:
        yield "sql", url
    finally:
        reset_database(url)


def count_and_verify(kind: str, where: str) -> tuple[bool, int]:
    sink, engine = open_sink(kind, where)
    try:
        report = AuditTrail(sink, key=KEY).verify()
        return report.ok, report.checked
    finally:
        if engine is not None:
            engine.dispose()


class TestConcurrentWriters:
    """Processes and threads append to one trail at once: no fork, no lost event."""

    def test_processes_and_threads(self, target: tuple[str, str]) -> None:
        kind, where = target
        children = [
            SPAWN.Process(target=write, args=(kind, where, KEY, n, EACH)) for n in range(PROCESSES)
        ]
        for child in children:
            child.start()
        sink, engine = open_sink(kind, where)
        trail = AuditTrail(sink, key=KEY)

        def work(n: int) -> None:
            for i in range(EACH):
                trail.append(AuditEvent(action="write", actor=f"thread-{n}", resource_id=str(i)))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for child in children:
            child.join(timeout=60)
        if engine is not None:
            engine.dispose()

        assert [0] * PROCESSES == [child.exitcode for child in children]
        assert (True, (PROCESSES + THREADS) * EACH) == count_and_verify(kind, where)


class TestKilledWriter:
    """A writer killed with SIGKILL in the middle of its appends leaves no partial event;
    the chain still verifies and later appends continue it."""

    def test_sigkill(self, target: tuple[str, str]) -> None:
        kind, where = target
        busy = [SPAWN.Process(target=write, args=(kind, where, KEY, n, -1)) for n in range(2)]
        for child in busy:
            child.start()
        deadline = time.monotonic() + 30
        while count_and_verify(kind, where)[1] < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(busy[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
        busy[0].join(timeout=30)
        time.sleep(0.2)  # the other writer goes on appending after the kill
        os.kill(busy[1].pid, signal.SIGKILL)  # type: ignore[arg-type]
        busy[1].join(timeout=30)

        ok, before = count_and_verify(kind, where)
        assert (-signal.SIGKILL, -signal.SIGKILL) == (busy[0].exitcode, busy[1].exitcode)
        assert ok
        assert before >= 50

        write(kind, where, KEY, 99, 5)
        after: Any = count_and_verify(kind, where)

        assert (True, before + 5) == after
