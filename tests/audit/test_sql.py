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

    def test_subject_counts_and_old_events_side_by_side(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        trail = AuditTrail(sink, key=KEY)
        sent = [event(0), event(1, subject_count=10_000), event(2, subject_count=0)]
        for e in sent:
            trail.append(e)

        read = list(sink.records())

        assert sent == [r.audit_event() for r in read]
        assert "subject_count" not in read[0].event
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


class TestConnections:
    """The sink never takes the application's pooled connections: it has a pool of its own."""

    def test_appends_while_the_application_holds_every_connection(
        self, engine: sa.Engine, db_url: str
    ) -> None:
        # A request's session holds one of the application's connections while its audit
        # event is written; with every connection so held, appends must still go through.
        # engine (the fixture) empties the database afterwards; this one is the application's
        engine = sa.create_engine(db_url, pool_size=1, max_overflow=0, pool_timeout=1)
        try:
            sink = made_sink(engine)
            trail = AuditTrail(sink, key=KEY)
            with engine.connect() as held:
                held.execute(sa.select(sa.func.count()).select_from(sink.table))
                trail.append(event(1))
                trail.append(event(2))
                assert [1, 2] == [r.seq for r in sink.records()]
                assert 2 == sink.head().seq  # type: ignore[union-attr]
                assert trail.verify().ok
        finally:
            engine.dispose()

    def test_threads_holding_connections_of_a_small_pool(
        self, engine: sa.Engine, db_url: str
    ) -> None:
        engine = sa.create_engine(db_url, pool_size=2, max_overflow=0, pool_timeout=10)
        try:
            trail = AuditTrail(made_sink(engine), key=KEY)
            errors: list[BaseException] = []

            def request(n: int) -> None:
                try:
                    with engine.connect() as conn:  # the request's own connection
                        conn.execute(sa.text("SELECT 1"))
                        trail.append(event(n))
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=request, args=(n,)) for n in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            assert [] == errors
            assert 12 == trail.verify().checked
        finally:
            engine.dispose()

    def test_waiting_for_a_connection_is_bounded(self, engine: sa.Engine) -> None:
        sink = SqlAuditSink(engine, pool_size=1, pool_timeout=0.2)
        sink.create()
        trail = AuditTrail(sink, key=KEY)

        with sink._connect(), pytest.raises(AuditError) as caught:  # its one connection
            trail.append(event(1))

        assert (
            "audit table 'audit_events': none of the sink's 1 connection(s) came free within 0.2 s"
        ) == str(caught.value.__cause__)
        trail.append(event(2))
        assert [1] == [r.seq for r in sink.records()]

    def test_disposing_the_engine_closes_the_sinks_connections(self, engine: sa.Engine) -> None:
        sink = made_sink(engine)
        AuditTrail(sink, key=KEY).append(event(1))
        own = sink._engine.pool
        assert own is not engine.pool
        assert 1 == own.checkedin()  # type: ignore[attr-defined]

        engine.dispose()

        assert 0 == own.checkedin()  # type: ignore[attr-defined]
        assert [1] == [r.seq for r in sink.records()]  # and it reconnects when used again

    def test_an_in_memory_database_is_shared(self) -> None:
        # StaticPool: one connection, one database; a pool of the sink's own would be
        # another, empty, database.
        engine = sa.create_engine("sqlite://", poolclass=sa.StaticPool)
        try:
            sink = made_sink(engine)
            AuditTrail(sink, key=KEY).append(event(1))
            with engine.connect() as conn:
                stored = conn.execute(sa.select(sink.table.c.seq)).scalars().all()
            assert [1] == stored
        finally:
            engine.dispose()

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"pool_size": 0}, "pool_size must be at least 1"),
            ({"pool_timeout": 0}, "pool_timeout must be a positive number of seconds"),
        ],
    )
    def test_pool_options_are_checked(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            SqlAuditSink(sa.create_engine("sqlite://"), **options)


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
