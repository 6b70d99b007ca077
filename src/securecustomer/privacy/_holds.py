"""Legal holds: a subject's records that must not be erased or deleted while a matter runs.

A hold is a row of a SQL table in the application's database. Releasing a hold keeps the
row (with its release time), so the table is also the record of past holds.
`erase_subject` refuses to erase a held subject, and `apply_retention` keeps the rows of
held subjects.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import attrs
from sqlalchemy import Column, DateTime, MetaData, String, Table, select, update
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect, Engine, RowMapping
from sqlalchemy.types import TypeDecorator

from securecustomer.audit import AuditEvent, current_actor
from securecustomer.exceptions import ConfigurationError, RecordNotFoundError
from securecustomer.privacy._subject_key import canonical_subject_key, check_subject_type

__all__ = ["LegalHold", "LegalHolds", "legal_hold_table"]

#: How many ids one ``IN (...)`` query takes.
CHUNK: Final = 500


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware datetime stored as naive UTC (microseconds kept on MariaDB too).

    Every backend gets the same column type and reads back an aware UTC datetime, so the
    tables of this package behave alike on SQLite, PostgreSQL and MariaDB.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return aware(value).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: dt.datetime) -> dt.datetime:
    """*value* in UTC; a naive value is taken to be UTC already (as SQLite stores it)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def aware(value: dt.datetime, what: str = "a datetime") -> dt.datetime:
    """*value* in UTC; `ConfigurationError` when it is naive."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(f"{what} must be a timezone-aware datetime")
    return value.astimezone(dt.UTC)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def actor_event(action: str, **kwargs: Any) -> AuditEvent:
    """An audit event by the current actor (`securecustomer.audit.actor`), if any."""
    who = current_actor()
    return AuditEvent(
        action=action,
        actor=None if who is None else who.id,
        actor_attributes=None if who is None else who.plain,
        request_id=None if who is None else who.request_id,
        **kwargs,
    )


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@attrs.frozen
class LegalHold:
    """One hold on one subject's records."""

    id: str
    subject_id: str = attrs.field(repr=False)
    matter: str
    placed_by: str | None
    placed_at: dt.datetime
    released_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the hold still blocks erasure (it has not been released)."""
        return self.released_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject_id": self.subject_id,
            "matter": self.matter,
            "placed_by": self.placed_by,
            "placed_at": self.placed_at.isoformat(),
            "released_at": None if self.released_at is None else self.released_at.isoformat(),
        }


def legal_hold_table(metadata: MetaData, name: str = "securecustomer_legal_holds") -> Table:
    """The table `LegalHolds` keeps its holds in (for Alembic or ``metadata.create_all``)."""
    return Table(
        name,
        metadata,
        Column("id", String(32), primary_key=True),
        Column("subject_id", String(255), nullable=False, index=True),
        Column("matter", String(500), nullable=False),
        Column("placed_by", String(255), nullable=True),
        Column("placed_at", UtcDateTime(), nullable=False),
        Column("released_at", UtcDateTime(), nullable=True),
    )


def _hold(row: RowMapping) -> LegalHold:
    return LegalHold(
        id=row["id"],
        subject_id=row["subject_id"],
        matter=row["matter"],
        placed_by=row["placed_by"],
        placed_at=row["placed_at"],
        released_at=row["released_at"],
    )


class LegalHolds:
    """Legal holds in a SQL table of the application's database.

    Subject ids are stored as their canonical key (`canonical_subject_key`): ``42`` and
    ``"42"`` are the same subject, ``"042"``, ``"42 "`` or an upper-case UUID string are
    refused, when a hold is placed and when one is looked up. *subject_type* (int, str or
    uuid.UUID: the subject column's type) reads string ids as that type instead: with
    ``subject_type=str``, ``"042"`` is the string id "042"; with ``uuid.UUID``, a UUID
    string in any case is keyed lower-case. *clock* returns the current aware datetime
    (for tests).

    Holds are read, not locked: `erase_subject` and `apply_retention` check them before
    and again after changing rows, just before committing, so only a hold placed during
    that commit is missed. Placing and releasing write no audit event; the table keeps
    the record.

    Example:
        ```python
        holds = LegalHolds(engine)
        holds.create()
        hold = holds.place(42, matter="case 2026-17", placed_by="dpo@example.com")
        holds.release(hold.id)
        ```
    """

    def __init__(
        self,
        engine: Engine,
        *,
        table: str = "securecustomer_legal_holds",
        subject_type: type[Any] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.table = legal_hold_table(MetaData(), table)
        self.subject_type = check_subject_type(subject_type)
        self._clock = clock if clock is not None else utc_now

    def __repr__(self) -> str:
        return f"<LegalHolds table={self.table.name!r}>"

    def create(self) -> None:
        """Create the table if it does not exist."""
        self.table.create(self.engine, checkfirst=True)

    def _now(self) -> dt.datetime:
        return aware(self._clock(), "the clock of LegalHolds")

    def place(self, subject_id: object, *, matter: str, placed_by: str | None = None) -> LegalHold:
        """Place a hold on *subject_id*'s records for *matter* (a case or ticket name)."""
        if not isinstance(matter, str) or not matter.strip():
            raise ConfigurationError("a legal hold needs a matter: the case it is kept for")
        hold = LegalHold(
            id=secrets.token_hex(8),
            subject_id=canonical_subject_key(subject_id, self.subject_type),
            matter=matter,
            placed_by=placed_by,
            placed_at=self._now(),
        )
        with self.engine.begin() as conn:
            conn.execute(
                self.table.insert().values(
                    id=hold.id,
                    subject_id=hold.subject_id,
                    matter=hold.matter,
                    placed_by=hold.placed_by,
                    placed_at=hold.placed_at,
                )
            )
        return hold

    def release(self, hold_id: str) -> LegalHold:
        """Release a hold (kept, with its release time); `KeyError` for an unknown id.

        Releasing a released hold changes nothing and returns it as it is.
        """
        table = self.table
        with self.engine.begin() as conn:
            row = conn.execute(select(table).where(table.c.id == hold_id)).mappings().first()
            if row is None:
                raise RecordNotFoundError(f"no legal hold with id {hold_id!r}")
            hold = _hold(row)
            if not hold.active:
                return hold
            released = attrs.evolve(hold, released_at=self._now())
            conn.execute(
                update(table)
                .where(table.c.id == hold_id, table.c.released_at.is_(None))
                .values(released_at=released.released_at)
            )
        return released

    def active(self, subject_id: object) -> tuple[LegalHold, ...]:
        """The holds on *subject_id* not yet released, oldest first."""
        table = self.table
        key = canonical_subject_key(subject_id, self.subject_type)
        query = (
            select(table)
            .where(table.c.subject_id == key, table.c.released_at.is_(None))
            .order_by(table.c.placed_at, table.c.id)
        )
        with self.engine.connect() as conn:  # exact: a collation may ignore case or spaces
            rows = conn.execute(query).mappings()
            return tuple(_hold(row) for row in rows if row["subject_id"] == key)

    def held(self, subject_ids: Iterable[object]) -> frozenset[str]:
        """Which of *subject_ids* (as keys) have an active hold: one query per 500 ids."""
        wanted = sorted({canonical_subject_key(s, self.subject_type) for s in subject_ids})
        found: set[str] = set()
        if not wanted:
            return frozenset()
        column = self.table.c.subject_id
        with self.engine.connect() as conn:
            for chunk in chunks(wanted):
                query = (
                    select(column)
                    .where(column.in_(chunk), self.table.c.released_at.is_(None))
                    .distinct()
                )
                found.update(conn.execute(query).scalars())
        return frozenset(found.intersection(wanted))  # exact, whatever the collation

    def all(self) -> tuple[LegalHold, ...]:
        """Every hold, released or not, oldest first."""
        table = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.placed_at, table.c.id)).mappings()
            return tuple(_hold(row) for row in rows)
