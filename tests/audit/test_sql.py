"""SqlAuditSink on real SQLite, PostgreSQL and MariaDB: round trips, table, errors."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from securecustomer.audit import (
    AuditEvent,
    AuditTrail,
    Record,
    SqlAuditSink,
    audit_table,
)
from securecustomer.audit._event import canonical
from securecustomer.exceptions import AuditError

KEY = bytes(range(32))
AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
RECORDED = dt.datetime(2024, 5, 2, 8, 30, tzinfo=dt.UTC)


def event(n: int = 0, **keys: Any) -> AuditEvent:
    base: dict[str, Any] = {"action": "read", "actor": f"user-{n}", "timestamp": AT}
    return AuditEvent(**(base | keys))


def made_sink(engine: sa.Engine, **options: Any) -> SqlAuditSink:
    sink = SqlAuditSink(engine, clock=lambda: RECORDED, **options)
    sink.create()
    return sink


class TestRoundTrip:
    """What is appended is read back unchanged, in seq order, one row per record."""

    def test_records_and_events_come_back(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        trail = AuditTrail(sink, key=KEY)
        sent = [event(n, extra={"amount": 1.25, "name": "Zoë"}) for n in range(5)]
        for e in sent:
            trail.append(e)

        read = list(sink.records())

        assert [1, 2, 3, 4, 5] == [r.seq for r in read]
        assert sent == [r.audit_event() for r in read]
        assert trail.verify().ok

    def test_the_row(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        (stored,) = sink.append([event(1)], AuditTrail(sink, key=KEY)._keys.link)

        with engine.connect() as conn:
            row = conn.execute(sa.select(sink.table)).one()

        assert (1, stored.prev, stored.hash) == (row.seq, row.prev, row.hash)
        assert canonical(stored.event).decode() == row.event
        assert RECORDED.replace(tzinfo=None) == row.recorded_at

    def test_pages_of_records(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        trail = AuditTrail(sink, key=KEY, batch_size=500)
        with trail:
            for n in range(2500):
                trail.append(event(n))

        report = trail.verify()

        assert report.ok
        assert 2500 == report.checked

    def test_a_second_sink_continues_the_chain(self, engine: sa.Engine) -> None:
        first = AuditTrail(made_sink(engine), key=KEY)
        first.append(event(1))
        second = AuditTrail(made_sink(engine), key=KEY)
        second.append(event(2))
        first.append(event(3))

        assert [1, 2, 3] == [r.seq for r in first.sink.records()]
        assert first.verify().ok

    def test_threads_share_one_sink(self, engine: sa.Engine) -> None:
        trail = AuditTrail(made_sink(engine), key=KEY)

        def work(n: int) -> None:
            for i in range(15):
                trail.append(event(n * 100 + i))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = trail.verify()

        assert report.ok
        assert 60 == report.checked

    def test_a_strict_isolation_level_on_the_engine(self, engine: sa.Engine) -> None:
        made_sink(engine)
        strict = engine.execution_options(isolation_level="SERIALIZABLE")
        trail = AuditTrail(SqlAuditSink(strict), key=KEY)

        def work(n: int) -> None:
            for i in range(10):
                trail.append(event(n * 100 + i))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = trail.verify()

        assert report.ok
        assert 40 == report.checked


class TestTable:
    """One table, made by ``create``, ``create_all`` or a migration from ``sink.table``."""

    def test_create_twice(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        sink.create()

        assert {"seq", "prev", "hash", "event", "recorded_at"} == {
            c["name"] for c in sa.inspect(engine).get_columns("audit_events")
        }
        assert ["seq"] == sa.inspect(engine).get_pk_constraint("audit_events")[
            "constrained_columns"
        ]

    def test_own_metadata_and_name(self, engine: sa.Engine) -> None:
        metadata = sa.MetaData()
        sink = SqlAuditSink(engine, table="trail_2024", metadata=metadata)
        metadata.create_all(engine)
        AuditTrail(sink, key=KEY).append(event())

        assert sink.table is metadata.tables["trail_2024"]
        assert 1 == len(list(sink.records()))

    def test_migration_from_the_table_definition(self, engine: sa.Engine) -> None:
        from alembic.migration import MigrationContext
        from alembic.operations import Operations

        table = audit_table(sa.MetaData(), "audit_migrated")
        columns = [
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in table.columns
        ]
        with engine.begin() as conn:
            Operations(MigrationContext.configure(conn)).create_table(table.name, *columns)
        trail = AuditTrail(SqlAuditSink(engine, table="audit_migrated"), key=KEY)
        trail.append(event())

        assert trail.verify().ok


class TestFailures:
    """Driver errors become AuditError without event content; nothing is half-stored."""

    def test_missing_table(self, engine: sa.Engine) -> None:
        sink = SqlAuditSink(engine)
        trail = AuditTrail(sink, key=KEY)

        with pytest.raises(AuditError) as caught:
            trail.append(event(secret := 7654321))
        with pytest.raises(AuditError) as read:
            list(sink.records())

        cause = caught.value.__cause__
        assert isinstance(cause, AuditError)
        assert "audit_events" in str(cause)
        assert str(secret) not in str(cause)
        assert "audit_events" in str(read.value)

    def test_a_failing_link_stores_nothing(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        trail = AuditTrail(sink, key=KEY)
        trail.append(event(1))

        def broken(head: Record | None, events: Sequence[AuditEvent]) -> list[Record]:
            records = trail._keys.link(head, events)
            raise RuntimeError(f"died after linking {len(records)}")

        with pytest.raises(RuntimeError, match="died after linking 2"):
            sink.append([event(2), event(3)], broken)
        trail.append(event(4))

        assert [1, 2] == [r.seq for r in sink.records()]
        assert trail.verify().ok

    def test_a_duplicate_seq_is_refused_by_the_key(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        trail = AuditTrail(sink, key=KEY)
        trail.append(event(1))
        (first,) = sink.records()
        row = {**first.to_dict(), "recorded_at": RECORDED.replace(tzinfo=None)}
        row["event"] = json.dumps(row["event"])

        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.insert(sink.table), row)

    def test_an_unreadable_row_is_reported_where_it_is(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        trail = AuditTrail(sink, key=KEY)
        for n in range(4):
            trail.append(event(n))
        with engine.begin() as conn:
            conn.execute(sa.update(sink.table).where(sink.table.c.seq == 3).values(event="{broken"))

        report = trail.verify()

        assert not report.ok
        assert 3 == report.first_bad
