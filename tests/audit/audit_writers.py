"""Writer processes for test_concurrency: each opens its own sink (and engine) and appends.

A separate module so that "spawn" children import only this, not the test module.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from securecustomer.audit import AuditEvent, AuditSink, AuditTrail, JsonlAuditSink, SqlAuditSink

AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def open_sink(kind: str, where: str) -> tuple[AuditSink, Any]:
    """A sink on *where* (a file path for ``jsonl``, a database URL for ``sql``)."""
    if kind == "jsonl":
        return JsonlAuditSink(where, fsync="never"), None
    engine = sa.create_engine(where)
    return SqlAuditSink(engine), engine


def write(kind: str, where: str, key: bytes, writer: int, count: int) -> None:
    """Append *count* events, one at a time (``count`` < 0: until killed)."""
    sink, engine = open_sink(kind, where)
    trail = AuditTrail(sink, key=key)
    n = 0
    try:
        while count < 0 or n < count:
            trail.append(AuditEvent(action="write", actor=f"writer-{writer}", resource_id=str(n)))
            n += 1
    finally:
        if engine is not None:
            engine.dispose()
