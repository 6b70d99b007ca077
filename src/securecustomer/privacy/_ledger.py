"""The keyed chain of a ledger table (consents, legal holds): writes, checks, migration.

Safety argument, for reviewers. A ledger table is in the application's database, where
whoever can write can also UPDATE, DELETE or INSERT rows. Three kinds of row protect it,
all under MACs of a `KeyedChain` keyed from the application's secret:

- **records** (``seq`` 1, 2, ...): each is chained, ``hash = link(seq, prev, tag(content))``
  (`securecustomer.audit.KeyedChain`). A changed field, a forged or back-dated row fails its
  MAC. An erased record (a *tombstone*: the subject id emptied, the content's tag kept in
  its place) still links; only the key's holder can make one.
- **one head per subject** (``seq`` = minus the subject's latest record): how many live
  records the subject has, the latest one's position and hash. Deleting a subject's record
  (the latest one too), or moving it to another subject, leaves the subject's records
  disagreeing with its head.
- **the ledger's head** (``seq`` 0): how many records and subject heads there are and the
  last record's hash. Deleting every row of a subject (its head too), or the last record,
  leaves the counts disagreeing with the head.

A reader checks the ledger's head, the counts (one aggregate query) and the last record,
then the wanted subjects' heads and records: the cost is one query plus the subjects' own
rows, whatever the size of the table. What it cannot see: a row copied earlier and put
back later (a rollback of a head to an older state kept by the attacker): `verify` reads
every row and finds those whose records no longer match, and the audit trail (``trail=``)
records every change with its position and hash, to compare with a ledger restored from
an old copy.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    String,
    Table,
    case,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.schema import CreateColumn

from securecustomer.audit import KeyedChain
from securecustomer.exceptions import AuditError, ConfigurationError
from securecustomer.privacy._subject_key import canonical_subject_key

__all__ = ["LedgerChain", "LedgerProblem", "SubjectRows", "chain_columns"]

GENESIS: Final = KeyedChain.GENESIS
CHAIN: Final = ("seq", "prev", "hash")


class LedgerProblem(AuditError):
    """A ledger table does not verify (changed, deleted or added rows)."""


def chain_columns() -> list[Column[Any]]:
    """The columns every ledger table has for its chain."""
    return [
        Column("seq", BigInteger, nullable=True, index=True, unique=True),
        Column("prev", String(64), nullable=True),
        Column("hash", String(64), nullable=True),
    ]


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if isinstance(value, bool | int) or value is None:
        return value
    return str(value)


class SubjectRows:
    """One subject's verified records (oldest first), as the ledger found them."""

    def __init__(self, records: Sequence[RowMapping]) -> None:
        self.records = records


class LedgerChain:
    """The chain of one ledger table.

    *content* names the columns a record's MAC covers; *subject* the subject column;
    *note* a text column that holds a head's counts and a tombstone's tag; *head* the
    values a head row needs in the table's other NOT NULL columns.
    """

    def __init__(
        self,
        engine: Engine,
        table: Table,
        secret: bytes | None,
        *,
        what: str,
        content: Sequence[str],
        note: str,
        head: Callable[[], dict[str, Any]],
    ) -> None:
        if secret is None:
            owner = "ConsentLedger" if what == "consent ledger" else "LegalHolds"
            raise ConfigurationError(
                f"{owner} needs key=: the secret (32 bytes or more) its records are "
                "chained with, from the application's configuration like the audit trail key"
            )
        self.engine = engine
        self.table = table
        self.what = what
        self.keys = KeyedChain(secret, what)
        self.content = tuple(content)
        self.note = note
        self._head_values = head
        self._checked_columns = False

    def __repr__(self) -> str:
        return f"<LedgerChain {self.what} table={self.table.name!r}>"

    def _problem(self, detail: str) -> LedgerProblem:
        return LedgerProblem(f"the {self.what} table {self.table.name!r} does not verify: {detail}")

    # -- MACs ------------------------------------------------------------------------------

    def tag(self, row: Mapping[Any, Any]) -> str:
        return self.keys.tag({name: _value(row[name]) for name in self.content})

    def _head_tag(self, subject: str | None, prev: str, counts: str) -> str:
        kind = "ledger" if subject is None else "subject"
        return self.keys.tag({"head": kind, "subject": subject, "prev": prev, "counts": counts})

    def check_record(self, row: Mapping[Any, Any]) -> None:
        """Raise unless *row*, a record (``seq`` >= 1), verifies on its own."""
        seq = row["seq"]
        tombstone = row["subject_id"] == ""
        digest = row[self.note] if tombstone else self.tag(row)
        if not isinstance(digest, str) or len(digest) != 64 or not digest.isascii():
            raise self._problem(f"record {seq} is not a record of this ledger")
        prev = row["prev"] if isinstance(row["prev"], str) and row["prev"].isascii() else ""
        if not self.keys.matches(self.keys.link(seq, prev, digest), row["hash"]):
            raise self._problem(f"record {seq} was changed, or not written by this ledger")

    def _read_head(self, row: Mapping[Any, Any], subject: str | None) -> tuple[int, ...]:
        """The counts of a head row, after checking its MAC."""
        counts, prev = row[self.note], row["prev"]
        which = "the ledger's head" if subject is None else "a subject's head"
        if not isinstance(counts, str) or not isinstance(prev, str) or not prev.isascii():
            raise self._problem(f"{which} is not a head of this ledger")
        if not self.keys.matches(self._head_tag(subject, prev, counts), row["hash"]):
            raise self._problem(f"{which} was changed, or not written by this ledger")
        try:
            return tuple(int(part) for part in counts.split("/"))
        except ValueError:
            raise self._problem(f"{which} is not a head of this ledger") from None

    # -- the table as a whole --------------------------------------------------------------

    def _require_chained(self, conn: Connection) -> None:
        if self._checked_columns:
            return
        columns = {c["name"] for c in inspect(conn).get_columns(self.table.name)}
        missing = sorted(set(self.table.c.keys()) - columns)
        if missing:
            raise ConfigurationError(
                f"the {self.what} table {self.table.name!r} is not chained (written by an "
                f"earlier version: no column {', '.join(missing)}): run migrate() once"
            )
        self._checked_columns = True

    def check_ledger(self, conn: Connection, *, lock: bool = False) -> tuple[int, int, str]:
        """Check the ledger's head, the counts and the last record: (records, subjects,
        the last record's hash)."""
        self._require_chained(conn)
        t = self.table
        query = select(t).where(t.c.seq == 0)
        if lock and conn.dialect.name != "sqlite":
            query = query.with_for_update()
        heads = conn.execute(query).mappings().all()
        if len(heads) != 1:
            if not heads and conn.execute(select(func.count()).select_from(t)).scalar() == 0:
                raise ConfigurationError(
                    f"the {self.what} table {self.table.name!r} has no head: call create() "
                    "(or migrate() for a table of an earlier version)"
                )
            raise self._problem("its head record is missing")
        head = heads[0]
        n, h = (*self._read_head(head, None), 0, 0)[:2]
        last: str = head["prev"]
        query = select(
            func.count(),
            func.count(t.c.seq),
            func.sum(case((t.c.seq >= 1, 1), else_=0)),
            func.max(t.c.seq),
            func.sum(case((t.c.seq <= -1, 1), else_=0)),
        ).select_from(t)
        total, chained, found, top, subjects = conn.execute(query).one()
        found, subjects = int(found or 0), int(subjects or 0)
        if total != chained:
            raise self._problem(f"{total - chained} row(s) have no place in the chain")
        if found != n or (top or 0) != n:
            raise self._problem(f"it should hold {n} records, it holds {found} (deleted or added)")
        if subjects != h:
            raise self._problem(f"it should hold {h} subject heads, it holds {subjects}")
        if n:
            row = conn.execute(select(t).where(t.c.seq == n)).mappings().one()
            self.check_record(row)
            if not self.keys.matches(last, row["hash"]):
                raise self._problem(f"its last record, {n}, is not the one its head names")
        return n, h, last

    def subjects(
        self, conn: Connection, rows: Iterable[RowMapping], wanted: Iterable[str]
    ) -> dict[str, list[RowMapping]]:
        """The verified live records of each of *wanted* (oldest first) among *rows* (the
        rows whose subject column is one of *wanted*, heads too)."""
        wanted = set(wanted)
        records: dict[str, list[RowMapping]] = {}
        heads: dict[str, list[RowMapping]] = {}
        for row in rows:
            subject = row["subject_id"]
            if subject not in wanted or row["seq"] is None:  # exact, whatever the collation
                continue
            if row["seq"] >= 1:
                self.check_record(row)
                records.setdefault(subject, []).append(row)
            elif row["seq"] <= -1:
                heads.setdefault(subject, []).append(row)
        for subject in wanted:
            mine = sorted(records.get(subject, []), key=lambda r: int(r["seq"]))
            found = heads.get(subject, [])
            if not mine and not found:
                continue
            if len(found) != 1:
                raise self._problem(f"a subject has {len(found)} heads instead of 1")
            count, latest = self._read_head(found[0], subject)[:2]
            if not mine or -found[0]["seq"] != latest or len(mine) != count:
                raise self._problem(
                    f"a subject should have {count} records, it has {len(mine)} "
                    "(deleted, or moved to another subject)"
                )
            named = self.keys.matches(found[0]["prev"], mine[-1]["hash"])
            if mine[-1]["seq"] != latest or not named:
                raise self._problem("a subject's latest record is not the one its head names")
            records[subject] = mine
        return {subject: rows for subject, rows in records.items() if rows}

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction that holds the ledger's write lock (the head row's)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                # the driver must not open its own deferred transaction: take the write lock
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
        else:
            with self.engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="READ COMMITTED")
                with conn.begin():
                    yield conn

    def append(
        self, conn: Connection, subject: str, rows: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Insert *rows* (records of *subject*) at the end of the chain, in *conn*'s locked
        transaction; the rows as inserted."""
        n, h, last = self.check_ledger(conn, lock=True)
        t = self.table
        mine = [
            row
            for row in conn.execute(select(t).where(t.c.subject_id == subject)).mappings()
            if row["subject_id"] == subject
        ]
        count = len(self.subjects(conn, mine, [subject]).get(subject, []))
        old = [row for row in mine if row["seq"] is not None and row["seq"] <= -1]
        out = []
        for row in rows:
            n += 1
            digest = self.tag(row)
            chained = {**row, "seq": n, "prev": last, "hash": self.keys.link(n, last, digest)}
            out.append(chained)
            last = chained["hash"]
        if out:
            conn.execute(t.insert(), out)
        count += len(out)
        self.write_subject_head(conn, subject, old[0] if old else None, n, count, last)
        if not old:
            h += 1
        self.write_head(conn, n, h, last)
        return out

    def write_subject_head(
        self,
        conn: Connection,
        subject: str,
        old: Mapping[Any, Any] | None,
        latest: int,
        count: int,
        last: str,
    ) -> None:
        t = self.table
        counts = f"{count}/{latest}"
        values = {
            "seq": -latest,
            "prev": last,
            "hash": self._head_tag(subject, last, counts),
            self.note: counts,
        }
        if old is None:
            conn.execute(t.insert().values(**self._head_values(), subject_id=subject, **values))
        else:
            conn.execute(update(t).where(t.c.seq == old["seq"]).values(**values))

    def write_head(self, conn: Connection, records: int, subjects: int, last: str) -> None:
        t = self.table
        counts = f"{records}/{subjects}"
        values = {"prev": last, "hash": self._head_tag(None, last, counts), self.note: counts}
        done = conn.execute(update(t).where(t.c.seq == 0).values(**values))
        if done.rowcount == 0:
            conn.execute(t.insert().values(**self._head_values(), subject_id="", seq=0, **values))

    # -- create, migrate, verify -----------------------------------------------------------

    def create(self) -> None:
        self.table.create(self.engine, checkfirst=True)
        self._checked_columns = False
        with self.transaction() as conn:
            self._require_chained(conn)
            t = self.table
            if conn.execute(select(func.count()).select_from(t)).scalar() == 0:
                self.write_head(conn, 0, 0, GENESIS)

    def migrate(self, order: Sequence[Any], subject_type: type[Any] | None) -> int:
        """Chain a table of an earlier version: add the chain's columns, chain every row in
        *order*, write the heads. Returns how many records were chained (0: already).

        A chained subject id can't be changed any more (it is chained content), so every
        row's id must already be its canonical key (under *subject_type*): the first that
        is not is named (its row, never the id) and nothing is chained; the table's ids are
        moved to their keys by `rekey_subject_ids`, before this."""
        t = self.table
        with self.engine.begin() as conn:
            present = {c["name"] for c in inspect(conn).get_columns(t.name)}
            table = conn.dialect.identifier_preparer.format_table(t)
            for column in t.columns:
                if column.name not in present:
                    ddl = CreateColumn(column).compile(dialect=conn.dialect)
                    conn.execute(text(f"ALTER TABLE {table} ADD {ddl}"))
            for index in t.indexes:
                index.create(conn, checkfirst=True)
        self._checked_columns = False
        with self.transaction() as conn:
            self._require_chained(conn)
            if conn.execute(select(t.c.seq).where(t.c.seq == 0)).first() is not None:
                loose = conn.execute(
                    select(func.count()).select_from(t).where(t.c.seq.is_(None))
                ).scalar()
                if loose:
                    raise self._problem(
                        f"{loose} row(s) were written without the chain after it was chained "
                        "(by an earlier version?): review them, then delete or re-enter them"
                    )
                return 0
            rows = conn.execute(select(t).order_by(*order)).mappings().all()
            pk = next(iter(t.primary_key.columns))
            for row in rows:
                self._check_key(row["subject_id"], subject_type, row[pk.name])
            last = GENESIS
            per_subject: dict[str, tuple[int, int, str]] = {}
            for n, row in enumerate(rows, start=1):
                digest = self.tag(row)
                digest_hash = self.keys.link(n, last, digest)
                conn.execute(
                    update(t).where(pk == row[pk.name]).values(seq=n, prev=last, hash=digest_hash)
                )
                last = digest_hash
                count = per_subject.get(row["subject_id"], (0, 0, ""))[0]
                per_subject[row["subject_id"]] = (count + 1, n, last)
            for subject, (count, latest, hash_) in per_subject.items():
                self.write_subject_head(conn, subject, None, latest, count, hash_)
            self.write_head(conn, len(rows), len(per_subject), last)
            return len(rows)

    def _check_key(self, stored: str, subject_type: type[Any] | None, row: Any) -> None:
        """Raise `ConfigurationError` unless *stored* is a canonical subject key."""
        where = f"the {self.what} table {self.table.name!r}, row {row}"
        try:
            key = canonical_subject_key(stored, subject_type)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{where}: {exc}; nothing was chained (correct or delete the row, or run "
                "rekey_subject_ids with the subject column's type, then migrate again)"
            ) from None
        if key != stored:
            raise ConfigurationError(
                f"{where}: the subject id is not stored as its canonical key; nothing was "
                "chained (run rekey_subject_ids with the subject column's type first, then "
                "migrate again)"
            )

    def verify(self) -> int:
        """Read and check every row; the number of records. Raises `LedgerProblem`."""
        t = self.table
        with self.engine.connect() as conn:
            n, _, last = self.check_ledger(conn)
            prev = GENESIS
            expected = 1
            subjects: dict[str, list[RowMapping]] = {}
            query = select(t).where(t.c.seq >= 1).order_by(t.c.seq)
            for row in conn.execute(query).mappings():
                if row["seq"] != expected or not self.keys.matches(prev, row["prev"]):
                    raise self._problem(f"record {expected} is missing or out of place")
                self.check_record(row)
                if row["subject_id"] != "":
                    subjects.setdefault(row["subject_id"], []).append(row)
                prev = row["hash"]
                expected += 1
            if expected - 1 != n or not self.keys.matches(last, prev):
                raise self._problem("its records end before the one its head names (cut)")
            heads = conn.execute(select(t).where(t.c.seq <= -1)).mappings().all()
            named = {row["subject_id"] for row in heads}
            if set(subjects) - named:
                raise self._problem("a subject with records has no head")
            for subject in named:
                rows = [row for row in heads if row["subject_id"] == subject]
                self.subjects(conn, [*subjects.get(subject, []), *rows], [subject])
            return n


def new_id() -> str:
    """A random row id of 16 hex digits."""
    return secrets.token_hex(8)
