"""`SqlAuditSink`: the trail in one append-only table (SQLite, PostgreSQL, MariaDB).

One append is one transaction: take the dialect's lock, read the head row, link, insert.

- PostgreSQL: ``pg_advisory_xact_lock`` on a key derived from the table name (released at
  commit or rollback);
- MariaDB / MySQL: ``GET_LOCK`` on a name derived from the table name, held around the
  transaction and released after it; the head is read with ``SELECT ... FOR UPDATE`` so
  it is the latest committed row, not a snapshot;
- SQLite: ``BEGIN IMMEDIATE`` (the database's write lock, taken before the head is read).

Connections: the sink never takes one from the application's pool. An audited call runs
while the request's session holds one of the application's pooled connections; an append
that waited for a second from the same pool would, with as many requests as the pool has
connections, wait on connections held by requests that are themselves waiting to append
(hold and wait: the pool runs dry and every request stalls until the pool's timeout). So the
sink builds a pool of its own from the engine's (`Pool.recreate`: the same URL, connect
arguments and pool events) and uses at most ``pool_size`` of its connections at once; a
caller waits at most ``pool_timeout`` seconds for one, then gets an `AuditError`. An append
holds one of those connections only for its own short transaction and never waits for the
application's pool, so it always finishes; the event is committed on its own, whatever the
request's transaction does afterwards (a denied or failed attempt is recorded too).
Engines whose pool has no shared limit to exhaust (``NullPool``; ``StaticPool`` and
``SingletonThreadPool``, which an in-memory SQLite database needs) are used as they are.

The primary key on ``seq`` is the final guard: two writers that still read the same head
(another program writing the table without the lock) cannot both store the same ``seq``;
the loser gets an ``IntegrityError``, rolls back and retries from the new head. Driver
errors become `AuditError` here, with the error's type only (never parameters, which hold
event content).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import attrs
from sqlalchemy import (
    CHAR,
    BigInteger,
    Column,
    DateTime,
    Engine,
    MetaData,
    Table,
    Text,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from securecustomer.audit._chain import GENESIS, NOT_CANONICAL, Record, parse_line
from securecustomer.audit._trail import EventLike, Linker
from securecustomer.exceptions import AuditError, ConfigurationError

__all__ = ["SqlAuditSink", "audit_table"]

_PAGE: Final = 1000
_RETRIES: Final = 50
_LOCK_WAIT: Final = 60  # seconds MariaDB's GET_LOCK waits
_BUSY: Final = ("locked", "deadlock", "lock wait timeout", "could not serialize")


def audit_table(metadata: MetaData, name: str = "audit_events") -> Table:
    """Define the audit table in *metadata* (for ``create_all`` or an Alembic migration)."""
    return Table(
        name,
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("prev", CHAR(64), nullable=False),
        Column("hash", CHAR(64), nullable=False),
        Column("event", Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"), nullable=False),
        Column("recorded_at", DateTime, nullable=False),  # naive UTC; not covered by the hash
    )


class SqlAuditSink:
    """An `AuditSink` in one append-only table of the application's database.

    Columns: ``seq`` (BIGINT primary key), ``prev`` and ``hash`` (CHAR(64), hex), ``event``
    (the event's canonical JSON, which is what the hash covers) and ``recorded_at`` (when
    the row was written, naive UTC; informational, not covered by the hash). Any number of
    threads and processes may append at once: see the module docstring.

    The sink reads and writes through a small pool of its own, made from *engine*'s, never
    through *engine*'s pool itself: sharing the application's engine is safe however many
    requests hold its connections (see the module docstring). At most *pool_size*
    connections are used at once (appends are serialised by the chain's lock anyway); a
    call that finds none free within *pool_timeout* seconds raises `AuditError`. Configure
    *engine* (pool events, connect arguments) before making the sink. ``engine.dispose()``
    closes the sink's connections too (or `dispose`, for the sink's alone).

    Create the table with ``sink.create()``, with ``metadata.create_all()`` when you pass
    your own *metadata*, or in an Alembic migration from ``sink.table`` (or `audit_table`).
    Grant the application INSERT and SELECT on it, not UPDATE or DELETE.

    Example:
        ```python
        sink = SqlAuditSink(engine)
        sink.create()
        trail = AuditTrail(sink, key=audit_key)
        ```
    """

    def __init__(
        self,
        engine: Engine,
        *,
        table: str = "audit_events",
        metadata: MetaData | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        pool_size: int = 2,
        pool_timeout: float = 30.0,
    ) -> None:
        if pool_size < 1:
            raise ConfigurationError("pool_size must be at least 1")
        if not pool_timeout > 0:
            raise ConfigurationError("pool_timeout must be a positive number of seconds")
        self.engine = engine
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        self._engine, self._close = _own_pool(engine)
        weakref.finalize(self, self._close)
        self._slots = threading.BoundedSemaphore(pool_size)
        self.metadata = metadata if metadata is not None else MetaData()
        existing = self.metadata.tables.get(table)
        self.table = existing if existing is not None else audit_table(self.metadata, table)
        self._clock = clock
        digest = hashlib.sha256(b"securecustomer.audit:" + table.encode()).digest()
        self._pg_key = int.from_bytes(digest[:8], "big", signed=True)
        self._lock_name = "sc_audit_" + digest[:16].hex()

    def __repr__(self) -> str:
        return f"<SqlAuditSink {self.table.name!r} on {self.engine.url.render_as_string()!r}>"

    def _error(self, exc: BaseException) -> AuditError:
        cause = getattr(exc, "orig", None) or exc
        return AuditError(f"audit table {self.table.name!r}: {type(cause).__name__}")

    def dispose(self) -> None:
        """Close the connections of the sink's own pool (it reopens them when used again)."""
        self._close()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """One of the sink's own connections, waited for at most ``pool_timeout`` seconds."""
        if not self._slots.acquire(timeout=self.pool_timeout):
            raise AuditError(
                f"audit table {self.table.name!r}: none of the sink's {self.pool_size} "
                f"connection(s) came free within {self.pool_timeout:g} s"
            )
        try:
            with self._engine.connect() as conn:
                yield conn
        finally:
            self._slots.release()

    def create(self) -> None:
        """Create the audit table if it does not exist."""
        try:
            with self._connect() as conn, conn.begin():
                self.table.create(conn, checkfirst=True)
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    # -- appending -------------------------------------------------------------------------

    def append(self, events: Sequence[EventLike], link: Linker) -> list[Record]:
        """Link *events* after the head row and insert them, in one locked transaction."""
        for attempt in range(_RETRIES):
            try:
                with self._transaction() as conn:
                    return self._append_in(conn, events, link)
            except IntegrityError as exc:  # another writer stored this seq first
                if attempt == _RETRIES - 1:
                    raise self._error(exc) from exc
            except OperationalError as exc:
                message = str(getattr(exc, "orig", exc)).lower()
                if attempt == _RETRIES - 1 or not any(m in message for m in _BUSY):
                    raise self._error(exc) from exc
            except SQLAlchemyError as exc:
                raise self._error(exc) from exc
            time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))  # noqa: S311 - jitter
        raise AuditError("unreachable")  # pragma: no cover

    def _append_in(
        self, conn: Connection, events: Sequence[EventLike], link: Linker
    ) -> list[Record]:
        t = self.table
        query = select(t).order_by(t.c.seq.desc()).limit(1)
        if conn.dialect.name in ("mysql", "mariadb"):
            query = query.with_for_update()
        row = conn.execute(query).first()
        new = link(None if row is None else self._head_record(row), events)
        if new:
            at = self._clock().astimezone(dt.UTC).replace(tzinfo=None)
            conn.execute(
                insert(t),
                [
                    {
                        "seq": r.seq,
                        "prev": r.prev,
                        "hash": r.hash,
                        "event": r.canonical_event().decode("ascii"),
                        "recorded_at": at,
                    }
                    for r in new
                ],
            )
        return new

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            with self._connect() as conn:
                # the driver must not open its own deferred transaction: take the write lock
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
        elif dialect in ("mysql", "mariadb"):
            with self._connect() as conn:
                got = conn.execute(
                    text("SELECT GET_LOCK(:name, :wait)"),
                    {"name": self._lock_name, "wait": _LOCK_WAIT},
                ).scalar()
                conn.commit()
                if got != 1:
                    raise AuditError(
                        f"audit table {self.table.name!r}: lock not granted in {_LOCK_WAIT} s"
                    )
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": self._lock_name})
                    conn.commit()
        elif dialect == "postgresql":
            # READ COMMITTED: the head is read after the lock is granted, never from a
            # snapshot taken before it (as REPEATABLE READ or SERIALIZABLE would)
            with self._connect() as conn:
                conn = conn.execution_options(isolation_level="READ COMMITTED")
                with conn.begin():
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._pg_key})
                    yield conn
        else:
            with self._connect() as conn, conn.begin():
                yield conn

    # -- reading ---------------------------------------------------------------------------

    def head(self) -> Record | None:
        """The record with the highest ``seq`` (what a checkpoint signs), in one query."""
        t = self.table
        try:
            with self._connect() as conn:
                row = conn.execute(select(t).order_by(t.c.seq.desc()).limit(1)).first()
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc
        return None if row is None else self._head_record(row)

    def _head_record(self, row: Any) -> Record:
        record = _record(row)
        if not record.hash:
            raise AuditError(
                f"audit table {self.table.name!r}: the last row is not a valid record "
                f"({record.problem}); nothing can be linked or signed after it"
            )
        return record

    def records(self) -> Iterator[Record]:
        """Every stored record in ``seq`` order (read in pages of 1,000 rows)."""
        t = self.table
        after: int | None = None
        last: Record | None = None
        while True:
            query = select(t).order_by(t.c.seq).limit(_PAGE)
            if after is not None:
                query = query.where(t.c.seq > after)
            try:
                with self._connect() as conn:
                    rows = conn.execute(query).all()
            except SQLAlchemyError as exc:
                raise self._error(exc) from exc
            for row in rows:
                record = _record(row, last)
                last = record
                yield record
            if len(rows) < _PAGE:
                return
            after = rows[-1].seq


def _own_pool(engine: Engine) -> tuple[Engine, Callable[[], None]]:
    """*engine* on a new pool of its own (same class, creator, options and pool events),
    and what closes that pool's connections; or *engine* itself (and nothing to close)
    when its pool has no shared limit to run out of.

    The new pool is closed when *engine* is disposed, and when the sink is garbage
    collected; in a forked child its connections (the parent's) are only dropped, as
    ``dispose(close=False)`` does: closing them would end the parent's database sessions.
    """
    if not isinstance(engine.pool, QueuePool):
        return engine, lambda: None
    own = Engine(
        engine.pool.recreate(),
        engine.dialect,
        engine.url,
        echo=engine.echo,
        hide_parameters=engine.hide_parameters,
        execution_options=engine.get_execution_options(),
    )
    parent = os.getpid()

    def close(own: Engine = own) -> None:
        own.dispose(close=os.getpid() == parent)

    mine = weakref.ref(own)  # the application's engine must not keep the sink's pool alive

    def follow(disposed: Engine) -> None:
        alive = mine()
        if alive is not None:
            close(alive)

    event.listen(engine, "engine_disposed", follow)
    return own, close


def _record(row: Any, last: Record | None = None) -> Record:
    """The record a row holds: its columns must spell the record's canonical line exactly
    (`parse_line` over ``{"event":<event>,"hash":"<hash>","prev":"<prev>","seq":<seq>}``),
    so the stored JSON text is byte for byte what was signed and the typed columns are the
    record's own fields. Otherwise a record with a ``problem``, placed after *last*."""
    prev = GENESIS if last is None else last.hash
    seq = row.seq
    if type(seq) is not int:  # SQLite keeps what it is given: text, a float
        seq = 1 if last is None else last.seq + 1
        return Record.unreadable(seq, prev, f"row after seq={seq - 1}: seq is not an integer")
    where = f"row seq={seq}"
    texts = (row.event, row.hash, row.prev)
    if not all(isinstance(text, str) for text in texts):
        return Record.unreadable(seq, prev, f"{where}: not a record (a column is not text)")
    event, digest, before = (text.encode("utf-8", "backslashreplace") for text in texts)
    line = b'{"event":%s,"hash":"%s","prev":"%s","seq":%d}' % (event, digest, before, seq)
    try:
        record = parse_line(line)
    except ValueError as exc:
        return Record.unreadable(seq, prev, f"{where}: {exc}")
    if (record.seq, record.prev, record.hash) != (seq, row.prev, row.hash):
        return Record.unreadable(seq, prev, f"{where}: {NOT_CANONICAL}")
    if record.problem is not None:
        return attrs.evolve(record, problem=f"{where} {record.problem}")
    return record
