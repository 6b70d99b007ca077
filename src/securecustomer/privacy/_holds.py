"""Legal holds: a subject's records that must not be erased or deleted while a matter runs.

A hold is a row of a SQL table in the application's database, chained under a key (see
`_ledger`). Releasing a hold adds a release record and keeps the hold's row, so the table
is also the record of past holds.
`erase_subject` refuses to erase a held subject, and `apply_retention` keeps the rows of
held subjects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import attrs
from sqlalchemy import Column, DateTime, MetaData, String, Table, select
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect, Engine, RowMapping
from sqlalchemy.types import TypeDecorator

from securecustomer.audit import AuditEvent, current_actor
from securecustomer.exceptions import (
    ConfigurationError,
    LegalHoldError,
    RecordNotFoundError,
    UnpicklableError,
)
from securecustomer.privacy._ledger import LedgerChain, LedgerProblem, chain_columns, new_id
from securecustomer.privacy._subject_key import canonical_subject_key, check_subject_type

__all__ = [
    "NO_LEGAL_HOLDS",
    "LegalHold",
    "LegalHolds",
    "NoLegalHolds",
    "legal_hold_table",
    "required_holds",
]

#: The time of a head record (not a hold: its time means nothing).
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

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
    """The table `LegalHolds` keeps its holds in (for Alembic or ``metadata.create_all``;
    then call `LegalHolds.create`, which writes the chain's head)."""
    return Table(
        name,
        metadata,
        Column("id", String(32), primary_key=True),
        Column("subject_id", String(255), nullable=False, index=True),
        Column("matter", String(500), nullable=False),
        Column("placed_by", String(255), nullable=True),
        Column("placed_at", UtcDateTime(), nullable=False),
        Column("released_at", UtcDateTime(), nullable=True),
        Column("releases", String(32), nullable=True),
        *chain_columns(),
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


@attrs.frozen
class NoLegalHolds:
    """The explicit choice that no legal hold can apply: `NO_LEGAL_HOLDS`, the value of
    ``holds=`` for `erase_subject` and `apply_retention` where that is really meant."""

    def __repr__(self) -> str:
        return "NO_LEGAL_HOLDS"


#: ``holds=NO_LEGAL_HOLDS``: erase or apply retention without checking any legal hold.
NO_LEGAL_HOLDS: Final = NoLegalHolds()


def required_holds(holds: object, what: str) -> LegalHolds | None:
    """The holds *what* checks (None for `NO_LEGAL_HOLDS`); `ConfigurationError` when
    *holds* was not given: erasure and retention never run without saying."""
    if isinstance(holds, LegalHolds):
        return holds
    if isinstance(holds, NoLegalHolds):
        return None
    raise ConfigurationError(
        f"{what} needs holds=: the application's LegalHolds, or NO_LEGAL_HOLDS where no "
        "legal hold can apply (a deliberate choice, not a default)"
    )


class LegalHolds:
    """Legal holds in a SQL table of the application's database, as a keyed chain.

    *key* is a secret of at least 32 bytes, from the application's configuration like the
    audit trail's key (it may be the same secret: the ledger derives keys of its own from
    it). Every placement and release is a chained record (`securecustomer.audit.KeyedChain`):
    a hold deleted, a release forged, a ``released_at`` changed, is found on the next read
    (`active`, `held`, `all`), which then raises `LegalHoldError` (every subject is taken to
    be held). A table of an earlier version is refused until `migrate` chains it.

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
    the record: a release is a record of its own, the hold's row is never changed.

    Example:
        ```python
        holds = LegalHolds(engine, key=settings.ledger_key)
        holds.create()
        hold = holds.place(42, matter="case 2026-17", placed_by="dpo@example.com")
        holds.release(hold.id)
        ```
    """

    def __init__(
        self,
        engine: Engine,
        *,
        key: bytes | None = None,
        table: str = "securecustomer_legal_holds",
        subject_type: type[Any] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.table = legal_hold_table(MetaData(), table)
        self.subject_type = check_subject_type(subject_type)
        self._clock = clock if clock is not None else utc_now
        self._chain = LedgerChain(
            engine,
            self.table,
            key,
            what="legal holds",
            content=_CONTENT,
            note="matter",
            head=self._head_values,
        )

    def __repr__(self) -> str:
        return f"<LegalHolds table={self.table.name!r}>"

    def __getstate__(self) -> None:
        raise UnpicklableError("LegalHolds holds its chain key and cannot be pickled")

    def _head_values(self) -> dict[str, Any]:
        return {"id": "head-" + new_id(), "placed_at": EPOCH}

    def create(self) -> None:
        """Create the table if it does not exist, and its chain's head if it has none."""
        self._chain.create()

    def migrate(self) -> int:
        """Chain a table written by an earlier version (unchained): add the chain's columns
        and chain every hold as it is now, oldest first. Returns how many rows were chained
        (0 when the table already was). Run it once, when the table is known to be intact,
        after `rekey_subject_ids`: a row whose subject id is not its canonical key (under
        *subject_type*) is refused, naming the row, and nothing is chained.
        """
        return self._chain.migrate([self.table.c.placed_at, self.table.c.id], self.subject_type)

    def verify(self) -> int:
        """Read and check the whole table; the number of records. `AuditError` when it
        does not verify."""
        return self._chain.verify()

    def _now(self) -> dt.datetime:
        return aware(self._clock(), "the clock of LegalHolds")

    def place(self, subject_id: object, *, matter: str, placed_by: str | None = None) -> LegalHold:
        """Place a hold on *subject_id*'s records for *matter* (a case or ticket name)."""
        if not isinstance(matter, str) or not matter.strip():
            raise ConfigurationError("a legal hold needs a matter: the case it is kept for")
        hold = LegalHold(
            id=new_id(),
            subject_id=canonical_subject_key(subject_id, self.subject_type),
            matter=matter,
            placed_by=placed_by,
            placed_at=self._now(),
        )
        with self._chain.transaction() as conn:
            self._chain.append(conn, hold.subject_id, [_row(hold)])
        return hold

    def release(self, hold_id: str) -> LegalHold:
        """Release a hold (kept, with a release record); `KeyError` for an unknown id.

        Releasing a released hold changes nothing and returns it as it is.
        """
        table = self.table
        with self._chain.transaction() as conn:
            self._chain.check_ledger(conn, lock=True)
            query = select(table.c.subject_id).where(
                table.c.id == hold_id, table.c.seq >= 1, table.c.releases.is_(None)
            )
            subject = conn.execute(query).scalar()
            if not isinstance(hold_id, str) or subject is None:
                raise RecordNotFoundError(f"no legal hold with id {hold_id!r}")
            found = {h.id: h for h in self._read(conn, [subject]).get(subject, ())}
            hold = found.get(hold_id)
            if hold is None:
                raise RecordNotFoundError(f"no legal hold with id {hold_id!r}")
            if not hold.active:
                return hold
            now = self._now()
            released = attrs.evolve(hold, released_at=now)
            record = attrs.evolve(released, id=new_id(), placed_by=None, placed_at=now)
            self._chain.append(conn, subject, [{**_row(record), "releases": hold.id}])
        return released

    def _read(self, conn: Connection, wanted: Sequence[str]) -> dict[str, tuple[LegalHold, ...]]:
        """The verified holds of *wanted* subjects, releases applied, oldest first."""
        table = self.table
        out: dict[str, tuple[LegalHold, ...]] = {}
        for chunk in chunks(sorted(set(wanted))):
            rows = conn.execute(select(table).where(table.c.subject_id.in_(chunk))).mappings()
            for subject, records in self._chain.subjects(conn, rows, chunk).items():
                out[subject] = _resolve(records, self._chain)
        return out

    def _verified(self, wanted: Sequence[str]) -> dict[str, tuple[LegalHold, ...]]:
        try:
            with self.engine.connect() as conn:
                self._chain.check_ledger(conn)
                return self._read(conn, wanted)
        except LedgerProblem as exc:
            raise LegalHoldError(
                f"{exc}; until it is repaired, every subject is taken to be held",
                subject=wanted[0] if len(wanted) == 1 else "",
            ) from exc

    def active(self, subject_id: object) -> tuple[LegalHold, ...]:
        """The holds on *subject_id* not yet released, oldest first (verified first:
        `LegalHoldError` when the table does not verify)."""
        key = canonical_subject_key(subject_id, self.subject_type)
        return tuple(h for h in self._verified([key]).get(key, ()) if h.active)

    def held(self, subject_ids: Iterable[object]) -> frozenset[str]:
        """Which of *subject_ids* (as keys) have an active hold: one query per 500 ids
        (verified first: `LegalHoldError` when the table does not verify)."""
        wanted = sorted({canonical_subject_key(s, self.subject_type) for s in subject_ids})
        if not wanted:
            return frozenset()
        found = self._verified(wanted)
        return frozenset(s for s, holds in found.items() if any(h.active for h in holds))

    def all(self) -> tuple[LegalHold, ...]:
        """Every hold, released or not, oldest first (the whole table verified first)."""
        table = self.table
        try:
            self._chain.verify()
            with self.engine.connect() as conn:
                rows = conn.execute(select(table).where(table.c.seq >= 1)).mappings().all()
        except LedgerProblem as exc:
            raise LegalHoldError(str(exc), subject="") from exc
        subjects = {row["subject_id"] for row in rows}
        holds = [
            hold
            for subject in subjects
            for hold in _resolve([r for r in rows if r["subject_id"] == subject], self._chain)
        ]
        return tuple(sorted(holds, key=lambda h: (h.placed_at, h.id)))


_CONTENT: Final = (
    "id",
    "subject_id",
    "matter",
    "placed_by",
    "placed_at",
    "released_at",
    "releases",
)


def _row(hold: LegalHold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "subject_id": hold.subject_id,
        "matter": hold.matter,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at,
        "released_at": hold.released_at,
        "releases": None,
    }


def _resolve(records: Iterable[RowMapping], chain: LedgerChain) -> tuple[LegalHold, ...]:
    """The holds of one subject's verified records, their release records applied."""
    holds: dict[str, LegalHold] = {}
    releases = []
    for row in records:
        if row["releases"] is None:
            holds[row["id"]] = _hold(row)
        else:
            releases.append(row)
    for row in releases:
        hold = holds.get(row["releases"])
        if hold is None or row["released_at"] is None:
            raise LedgerProblem(
                f"the legal holds table {chain.table.name!r} does not verify: "
                "a release names no hold of its subject"
            )
        if hold.active:
            holds[hold.id] = attrs.evolve(hold, released_at=row["released_at"])
    return tuple(sorted(holds.values(), key=lambda h: (h.placed_at, h.id)))
