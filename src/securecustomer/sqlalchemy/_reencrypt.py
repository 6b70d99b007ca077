"""Jobs over whole tables: re-encrypt to the current keys, encrypt a plaintext column in place.

- `reencrypt` moves every value of a model to its scope's current data key (after
  `Keyring.rotate`), batch by batch, resumable from a checkpoint row in the same database.
- `encrypt_column` backfills a new encrypted column from an existing plaintext column and
  verifies every row; `swap_columns` then drops the plaintext column and gives its name to
  the encrypted one.

Every batch is read, worked out (decrypt, encrypt) before anything is written, and written in
one short transaction whose UPDATEs are guarded by what was read (``WHERE pk = :pk AND
col = :token_read``): a row that another writer changed meanwhile keeps that writer's value
and is counted as a conflict. A killed job loses nothing: each committed batch is complete,
the batch in flight rolls back, and the next run continues.

Example:
    ```python
    keyring.rotate("customers.email")
    report = reencrypt(engine, Customer)             # or: securecustomer keys reencrypt
    print(report.values_reencrypted, report.errors)
    ```
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import attrs
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from securecustomer.crypto import Context, FieldCipher, KeySet, KeyState
from securecustomer.crypto._format import AES_256_GCM, AES_256_SIV, FORMAT_VERSION, HEADER_SIZE
from securecustomer.exceptions import (
    ConfigurationError,
    ContextError,
    DecryptionError,
    KeyDestroyedError,
    KeyDisabledError,
    KeyStateError,
    UnsupportedValueError,
)
from securecustomer.keys import Keyring
from securecustomer.sqlalchemy._blind import BlindIndex
from securecustomer.sqlalchemy._orm import RowEncryption, _registry
from securecustomer.sqlalchemy._types import Encrypted, Sealed

__all__ = [
    "CHECKPOINT_TABLE",
    "EncryptColumnReport",
    "FailedValue",
    "ReencryptReport",
    "encrypt_column",
    "reencrypt",
    "swap_columns",
]

#: The default name of the table where `reencrypt` keeps one checkpoint row per table.
CHECKPOINT_TABLE: Final = "securecustomer_reencrypt_progress"
_MAX_FAILURES: Final = 100
#: A progress hook: called with (rows done, rows in all) at the start and after each batch.
Progress = Callable[[int, int], object]


@attrs.frozen
class FailedValue:
    """One value a job could not process: where it is and why, never the value itself.

    *primary_key* is the row's primary key as a tuple; *key_id* the id of the data key in
    the stored token's header, when there is one.

    Example:
        ```python
        for failure in report.failures:
            print(failure.column, failure.primary_key, failure.reason)
        ```
    """

    column: str
    primary_key: tuple[Any, ...]
    reason: str
    key_id: int | None = None


@attrs.frozen
class ReencryptReport:
    """What `reencrypt` did (or, with ``dry_run=True``, would do). Holds no secret.

    Counts cover the rows this run scanned: a run resumed from a checkpoint
    (*resumed_from* is the primary key it started after) does not see earlier batches.
    *key_ids_before* counts the values per key id as found; *key_ids_after* as the run
    left them (rows with conflicts are not in it). Values whose key was destroyed
    (crypto-shredded subjects) are *values_destroyed*: left as they are, never an error.
    *indexes_updated* counts blind-index values recomputed. *errors* counts the values
    that could not be moved; *failures* lists the first 100.

    Example:
        ```python
        report = reencrypt(engine, Customer)
        if not report.ok:
            raise SystemExit(f"{report.errors} values could not be re-encrypted")
        ```
    """

    table: str
    dry_run: bool
    resumed_from: tuple[Any, ...] | None
    rows_scanned: int
    rows_changed: int
    values_reencrypted: int
    values_current: int
    values_destroyed: int
    indexes_updated: int
    conflicts: int
    errors: int
    failures: tuple[FailedValue, ...]
    key_ids_before: Mapping[int, int]
    key_ids_after: Mapping[int, int]

    @property
    def ok(self) -> bool:
        """True when no value failed (destroyed values and conflicts are not failures)."""
        return self.errors == 0


@attrs.frozen
class EncryptColumnReport:
    """What `encrypt_column` (or the check of `swap_columns`) found. Holds no secret.

    *verified* is None when verification was not asked for, else True when every row's
    encrypted value decrypts to its plaintext (NULL where the plaintext is NULL).
    *errors* counts plaintexts that could not be encrypted (a wrong type, a row without
    its subject), *conflicts* rows whose plaintext changed while the batch was worked on
    (both left NULL for the next run); *failures* lists the first 100 of either kind and
    of the *mismatches*.

    Example:
        ```python
        report = encrypt_column(engine, Customer, "email", "email_enc")
        assert report.ok, report.failures
        ```
    """

    table: str
    plaintext_column: str
    encrypted_column: str
    rows_scanned: int
    values_encrypted: int
    conflicts: int
    errors: int
    rows_verified: int
    mismatches: int
    verified: bool | None
    failures: tuple[FailedValue, ...]

    @property
    def ok(self) -> bool:
        """True when every value was encrypted and, if verified, every row matched."""
        return self.errors == 0 and self.conflicts == 0 and self.verified is not False


# -- what a job reads and writes ------------------------------------------------------------


class _Plan:
    """A table seen with raw token columns, its primary key and how each value is bound."""

    def __init__(
        self,
        target: type[Any] | Table,
        *,
        encrypted: Sequence[str] | None = None,
        plaintext: str | None = None,
    ) -> None:
        table, self.config, self.mapper = _resolve(target)
        self.table = table
        self.pk = [c.name for c in table.primary_key.columns]
        if not self.pk:
            raise ConfigurationError(
                f"table {table.fullname!r} has no primary key: the job pages through rows by it"
            )
        keys = _attribute_keys(self.mapper, table)
        names = (
            encrypted
            if encrypted is not None
            else [c.name for c in table.columns if isinstance(c.type, Encrypted)]
        )
        if not names:
            raise ConfigurationError(f"table {table.fullname!r} has no encrypted columns")
        #: column name -> (attribute key, column type)
        self.encrypted: dict[str, tuple[str, Encrypted]] = {}
        for name in names:
            column_type = _column(table, name).type
            if not isinstance(column_type, Encrypted):
                raise ConfigurationError(f"{table.fullname}.{name} is not an encrypted column")
            self.encrypted[name] = (keys.get(name, name), column_type)
        #: attribute key -> column name of the row and subject attributes
        self.bindings: dict[str, str] = {}
        if self.config is not None:
            for attr in (self.config.row, self.config.subject):
                if attr is not None:
                    column = self.config.mapper.columns[attr]
                    if column.table is not table:
                        raise ConfigurationError(
                            f"{table.fullname}: the row or subject attribute {attr!r} is in "
                            "another table"
                        )
                    self.bindings[attr] = column.name
        if plaintext is not None and isinstance(_column(table, plaintext).type, Encrypted):
            raise ConfigurationError(f"{table.fullname}.{plaintext} is already encrypted")
        #: index column name -> (source column name, BlindIndex), for the columns above
        self.indexes: dict[str, tuple[str, BlindIndex]] = {}
        for column in table.columns:
            if isinstance(column.type, BlindIndex):
                source = column.type.source_type
                for name, (_, column_type) in self.encrypted.items():
                    if column_type is source:
                        self.indexes[column.name] = (name, column.type)
        extra = [plaintext] if plaintext is not None else []
        wanted = [*self.pk, *self.bindings.values(), *self.encrypted, *self.indexes, *extra]
        #: A private copy of the table with the columns the job needs, tokens untyped.
        self.raw = self._raw_table(wanted)

    def _raw_table(self, wanted: list[str]) -> Table:
        columns: list[Column[Any]] = []
        for name in dict.fromkeys(wanted):
            column = _column(self.table, name)
            column_type: TypeEngine[Any] = column.type
            if isinstance(column_type, Encrypted):
                column_type = Text() if column_type.storage == "text" else LargeBinary()
            elif isinstance(column_type, BlindIndex):
                column_type = LargeBinary()
            columns.append(Column(column.name, column_type, primary_key=column.primary_key))
        return Table(self.table.name, MetaData(), *columns, schema=self.table.schema)

    # -- paging -----------------------------------------------------------------------------

    def pk_of(self, row: Row[Any]) -> tuple[Any, ...]:
        return tuple(row._mapping[name] for name in self.pk)

    def after(self, position: tuple[Any, ...]) -> ColumnElement[bool]:
        if len(self.pk) == 1:
            first: ColumnElement[bool] = self.raw.c[self.pk[0]] > position[0]
            return first
        return tuple_(*(self.raw.c[n] for n in self.pk)) > tuple_(*position)

    def at(self, position: tuple[Any, ...]) -> ColumnElement[bool]:
        return and_(*(self.raw.c[n] == v for n, v in zip(self.pk, position, strict=True)))

    def page(self, position: tuple[Any, ...] | None, size: int, *where: ColumnElement[bool]) -> Any:
        stmt = select(self.raw)
        conditions = [*where, *([self.after(position)] if position is not None else [])]
        if conditions:
            stmt = stmt.where(*conditions)
        return stmt.order_by(*(self.raw.c[n] for n in self.pk)).limit(size)

    # -- binding ----------------------------------------------------------------------------

    def values(self, row: Row[Any]) -> dict[str, Any]:
        """The row and subject attributes of *row*, keyed as `RowEncryption` expects."""
        return {attr: row._mapping[name] for attr, name in self.bindings.items()}

    def indexes_of(self, name: str) -> list[str]:
        """The blind-index columns whose source is the encrypted column *name*."""
        return [ix for ix, (source, _) in self.indexes.items() if source == name]

    def locate(self, name: str, values: dict[str, Any]) -> tuple[str, Context]:
        """The key scope and context of column *name* in the row with *values*."""
        column_type = self.encrypted[name][1]
        if self.config is None:
            return column_type.scope_name(), column_type.column_context()
        return self.config.scope(column_type, values), self.config.context(column_type, values)


def _resolve(target: type[Any] | Table) -> tuple[Table, RowEncryption | None, Mapper[Any] | None]:
    if isinstance(target, Table):
        config = next((c for c in _registry.values() if c.mapper.local_table is target), None)
        return target, config, config.mapper if config is not None else None
    try:
        mapper = inspect(target)
    except NoInspectionAvailable:
        mapper = None
    if not isinstance(mapper, Mapper):
        raise ConfigurationError(f"{target!r} is neither a mapped class nor a Table")
    table = mapper.local_table
    if not isinstance(table, Table):
        raise ConfigurationError(f"{target!r} is not mapped to a single table")
    return table, _registry.get(mapper), mapper


def _attribute_keys(mapper: Mapper[Any] | None, table: Table) -> dict[str, str]:
    """Column name -> mapped attribute key, for the columns of *table*."""
    if mapper is None:
        return {}
    return {
        column.name: prop.key
        for prop in mapper.column_attrs
        if isinstance(column := prop.columns[0], Column) and column.table is table
    }


def _column(table: Table, name: str) -> Column[Any]:
    try:
        return table.c[name]
    except KeyError:
        raise ConfigurationError(f"table {table.fullname!r} has no column {name!r}") from None


class _Unit:
    """Reads and per-batch transactions on an Engine, or on a Session (committed per batch)."""

    def __init__(self, bind: Engine | Session, plan: _Plan) -> None:
        if isinstance(bind, Session):
            if bind.new or bind.dirty or bind.deleted:
                raise ConfigurationError(
                    "the session has unflushed changes: commit or roll them back first "
                    "(the job commits the session once per batch)"
                )
            arguments = {"mapper": plan.mapper} if plan.mapper is not None else {}
            self._conn: Callable[[], Connection] = lambda: bind.connection(
                bind_arguments={**arguments, "clause": plan.table}
            )
        elif not isinstance(bind, Engine):
            raise ConfigurationError(f"bind must be an Engine or a Session, got {bind!r}")
        self.bind = bind

    def read(self, stmt: Any) -> Sequence[Row[Any]]:
        if isinstance(self.bind, Session):
            return self._conn().execute(stmt).all()
        with self.bind.connect() as conn:
            return conn.execute(stmt).all()

    def scalar(self, stmt: Any) -> Any:
        return self.read(stmt)[0][0]

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        if isinstance(self.bind, Session):
            try:
                yield self._conn()
                self.bind.commit()
            except BaseException:
                self.bind.rollback()
                raise
        else:
            with self.bind.begin() as conn:
                yield conn


def _check_batch_size(batch_size: int) -> None:
    if type(batch_size) is not int or batch_size < 1:
        raise ConfigurationError("batch_size must be a positive int")


class _Failures:
    def __init__(self) -> None:
        self.count = 0
        self.kept: list[FailedValue] = []

    def add(self, column: str, pk: tuple[Any, ...], reason: str, key_id: int | None) -> None:
        self.count += 1
        if len(self.kept) < _MAX_FAILURES:
            self.kept.append(FailedValue(column, pk, reason, key_id))


# -- checkpoints ----------------------------------------------------------------------------


class _Checkpoint:
    """One row per table in the checkpoint table: the last primary key of a committed batch.

    It is written in the transaction of the batch it describes, so it never claims a batch
    that did not commit. *fingerprint* identifies the rotated keys of the job's scopes: if a
    key was rotated since, the checkpoint is stale and the job starts again from the top.
    """

    def __init__(self, name: str, plan: _Plan) -> None:
        self.job = plan.table.fullname
        self.table = Table(
            name,
            MetaData(),
            Column("job", String(255), primary_key=True),
            Column("position", Text, nullable=False),
            Column("fingerprint", String(64), nullable=False),
            Column("updated_at", DateTime, nullable=False),
        )

    def load(self, unit: _Unit, fingerprint: str) -> tuple[Any, ...] | None:
        with unit.write() as conn:
            self.table.create(conn, checkfirst=True)
        t = self.table
        rows = unit.read(select(t.c.position, t.c.fingerprint).where(t.c.job == self.job))
        if not rows or rows[0].fingerprint != fingerprint:
            return None
        return _decode_position(rows[0].position)

    def save(self, conn: Connection, position: str, fingerprint: str) -> None:
        t = self.table
        values = {
            "position": position,
            "fingerprint": fingerprint,
            "updated_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        }
        if conn.execute(update(t).where(t.c.job == self.job).values(values)).rowcount == 0:
            conn.execute(insert(t).values(job=self.job, **values))

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(self.table).where(self.table.c.job == self.job))


def _encode_position(position: tuple[Any, ...], plan: _Plan) -> str:
    parts: list[object] = []
    for name, value in zip(plan.pk, position, strict=True):
        if isinstance(value, uuid.UUID):
            parts.append({"uuid": str(value)})
        elif isinstance(value, bytes):
            parts.append({"bytes": base64.b64encode(value).decode("ascii")})
        elif isinstance(value, (int, str)) and not isinstance(value, bool):
            parts.append(value)
        else:
            raise ConfigurationError(
                f"{plan.table.fullname}.{name} holds {type(value).__qualname__} keys: a "
                "checkpoint stores int, str, UUID or bytes keys (pass checkpoint=None)"
            )
    return json.dumps(parts)


def _decode_position(stored: str) -> tuple[Any, ...] | None:
    """The primary key of a checkpoint, or None if unreadable (the job then starts over)."""
    try:
        parts = json.loads(stored)
        out: list[Any] = []
        for part in parts:
            if isinstance(part, dict) and "uuid" in part:
                out.append(uuid.UUID(part["uuid"]))
            elif isinstance(part, dict) and "bytes" in part:
                out.append(base64.b64decode(part["bytes"], validate=True))
            elif isinstance(part, (int, str)):
                out.append(part)
            else:
                return None
    except (ValueError, TypeError, binascii.Error):
        return None
    return tuple(out) or None


def _fingerprint(plan: _Plan) -> str:
    """A digest of the ids of every rotated key (version 2 or later) of the job's scopes."""
    found: set[int] = set()
    read: set[tuple[int, str]] = set()
    config = plan.config
    prefix = config.subject_prefix if config is not None and config.subject is not None else None
    for _, column_type in plan.encrypted.values():
        store = column_type.resolve_keyring().store
        scope = prefix if prefix is not None else column_type.scope_name()
        if (id(store), scope) in read:
            continue
        read.add((id(store), scope))
        if prefix is not None:  # subject scopes: every key under the prefix
            records = [r for r in store.all_data_keys() if r.scope.startswith(prefix)]
        else:
            records = store.data_keys(scope)
        found.update(r.key_id for r in records if r.version > 1)
    for _, index in plan.indexes.values():  # blind indexes: keyed by the column's own scope
        source = index.source_type
        found.update(
            r.key_id
            for r in source.resolve_keyring().store.data_keys(source.scope_name())
            if r.version > 1
        )
    digest = hashlib.sha256(b"securecustomer/reencrypt/v1")
    for key_id in sorted(found):
        digest.update(key_id.to_bytes(4, "big"))
    return digest.hexdigest()


# -- keys -----------------------------------------------------------------------------------


def _current_keys(keyring: Keyring, scopes: set[str]) -> dict[str, KeySet | None]:
    """The key set of every scope as the key store has it now; None for a scope without keys.

    No key is created: a scope the store does not know maps to None.
    """
    store = keyring.store
    many = getattr(store, "data_keys_many", None)
    wanted = sorted(scopes)
    found: Mapping[str, list[Any]] = (
        many(wanted) if many is not None else {s: store.data_keys(s) for s in wanted}
    )
    keyring.prefetch(s for s in wanted if found.get(s))
    out: dict[str, KeySet | None] = {}
    for scope in wanted:
        records = found.get(scope)
        if not records:
            out[scope] = None
            continue
        active = [r for r in records if r.state is KeyState.ACTIVE]
        expected = max(active, key=lambda r: r.version).key_id if active else None
        keyset = keyring.keyset(scope)
        if (keyset.primary.key_id if keyset.primary is not None else None) != expected:
            keyset = keyring.keyset(scope, refresh=True)  # rotated by another process
        out[scope] = keyset
    return out


def _key_id(token: bytes) -> int | None:
    if len(token) < HEADER_SIZE or token[0] != FORMAT_VERSION:
        return None
    return int.from_bytes(token[2:HEADER_SIZE], "big")


# -- re-encryption --------------------------------------------------------------------------


@attrs.define
class _Tally:
    rows: int = 0
    rows_changed: int = 0
    reencrypted: int = 0
    current: int = 0
    destroyed: int = 0
    conflicts: int = 0
    indexes: int = 0
    before: Counter[int] = attrs.Factory(Counter)
    after: Counter[int] = attrs.Factory(Counter)
    failures: _Failures = attrs.Factory(_Failures)


#: A row to rewrite: its primary key, and per column the value read, the value to write and,
#: for encrypted columns, the new key id (None for blind-index columns).
_Change = tuple[tuple[Any, ...], dict[str, tuple[Any, Any, int | None]]]


def reencrypt(
    bind: Engine | Session,
    model: type[Any] | Table,
    *,
    batch_size: int = 500,
    checkpoint: str | None = CHECKPOINT_TABLE,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ReencryptReport:
    """Move every encrypted value of *model* to its key scope's current data key.

    Run it after `Keyring.rotate`. Rows are read in primary-key order, *batch_size* at a
    time; only the key id in each token's header is compared with the scope's current key
    (no decryption), so values already current cost almost nothing. Stale ones (an older
    key, or not the algorithm of the column's ``deterministic`` setting) are decrypted and
    encrypted again with the row's own context and scope, row-bound and subject-scoped
    models (`encrypt_rows`) included. Each batch is written in one transaction, each
    UPDATE guarded by the token read, so a concurrent writer's newer value is never
    overwritten (the row counts as a conflict and keeps that value).

    Blind indexes (`BlindIndex` columns) of moved values are recomputed under the current
    key in the same UPDATE. An index's bytes do not name their key version, so while the
    index's scope has more than one usable version (a rotation in progress), every indexed
    value is decrypted to check its index; this also catches an index scope rotated under
    subject-scoped values. A search only matches indexes of usable versions: run the job
    before disabling an old version.

    The job is idempotent and safe to kill at any moment: a committed batch is complete,
    the batch in flight rolls back, and the next run continues after the last committed
    batch (or starts at the top if a key of the job's scopes was rotated meanwhile). A
    complete run deletes its checkpoint. Database errors are not caught: the batch in
    flight rolls back and the next run resumes.

    Values that cannot be moved are counted and listed in the report, never fatal: those
    whose key was destroyed (crypto-shredded subjects: *values_destroyed*, left as they
    are, not an error) and errors (a disabled or unknown key, a token that does not
    decrypt, a scope without an active key).

    Other processes keep encrypting with a rotated key for up to their keyring's
    ``cache_ttl``: start the job after that, then check with a dry run that nothing is
    left. The old key versions can then be disabled; the job never does it itself.

    Parameters:
        bind: an Engine (one transaction per batch), or a Session, committed once per
            batch (it must hold no unflushed changes).
        model: a mapped class, or a Table.
        batch_size: rows per transaction.
        checkpoint: the table that keeps one row per job, the last primary key of the
            last committed batch, written in that batch's transaction; created on first
            use. ``None`` keeps no checkpoint: every run starts at the top.
        dry_run: decrypt but write nothing (checkpoint included); count what would change.
        progress: called as ``progress(rows_done, rows_total)`` at the start and after
            each batch.

    Example:
        ```python
        keyring.rotate("customers.email")
        report = reencrypt(engine, Customer, batch_size=1000)
        check = reencrypt(engine, Customer, dry_run=True)  # a full scan, writes nothing
        if report.ok and check.ok and check.values_reencrypted == check.indexes_updated == 0:
            for key in keyring.status():  # versions no value of the table uses any more
                if (
                    key.scope == "customers.email"
                    and key.state is KeyState.DECRYPT_ONLY
                    and key.key_id not in check.key_ids_before
                ):
                    keyring.set_state(key.key_id, KeyState.DISABLED)
        ```
    """
    _check_batch_size(batch_size)
    plan = _Plan(model)
    raw = plan.raw
    unit = _Unit(bind, plan)
    job = _Checkpoint(checkpoint, plan) if checkpoint is not None and not dry_run else None
    fingerprint = _fingerprint(plan) if job is not None else ""
    start = job.load(unit, fingerprint) if job is not None else None
    total = unit.scalar(select(func.count()).select_from(raw))
    done = 0
    if start is not None:
        remaining = select(func.count()).select_from(raw).where(plan.after(start))
        done = total - unit.scalar(remaining)
    if progress is not None:
        progress(done, total)
    tally = _Tally()
    position = start
    while True:
        rows = unit.read(plan.page(position, batch_size))
        if not rows:
            break
        changes = _work_out(plan, rows, tally, dry_run=dry_run)
        position = plan.pk_of(rows[-1])
        if not dry_run:
            saved = _encode_position(position, plan) if job is not None else ""
            with unit.write() as conn:
                written = _write(conn, plan, changes)
                if job is not None:
                    job.save(conn, saved, fingerprint)
        else:
            written = [True] * len(changes)
        for (_, columns), ok in zip(changes, written, strict=True):
            if not ok:
                tally.conflicts += 1
                continue
            tally.rows_changed += 1
            moved = [new_id for _, _, new_id in columns.values() if new_id is not None]
            tally.reencrypted += len(moved)
            tally.indexes += len(columns) - len(moved)
            tally.after.update(moved)
        tally.rows += len(rows)
        done += len(rows)
        if progress is not None:
            progress(done, max(total, done))
    if job is not None:
        with unit.write() as conn:
            job.clear(conn)
    return ReencryptReport(
        table=plan.table.fullname,
        dry_run=dry_run,
        resumed_from=start,
        rows_scanned=tally.rows,
        rows_changed=tally.rows_changed,
        values_reencrypted=tally.reencrypted,
        values_current=tally.current,
        values_destroyed=tally.destroyed,
        indexes_updated=tally.indexes,
        conflicts=tally.conflicts,
        errors=tally.failures.count,
        failures=tuple(tally.failures.kept),
        key_ids_before=dict(sorted(tally.before.items())),
        key_ids_after=dict(sorted(tally.after.items())),
    )


def _work_out(
    plan: _Plan, rows: Sequence[Row[Any]], tally: _Tally, *, dry_run: bool
) -> list[_Change]:
    """Decide every value of a batch (current, re-encrypted, destroyed or failed) and the
    blind indexes to recompute."""
    fail = tally.failures.add
    # Pass 1: tokens, scopes and contexts; the scopes of the batch per keyring.
    found: list[tuple[Row[Any], tuple[Any, ...], str, bytes, int, Keyring, str, Context]] = []
    wanted: dict[int, tuple[Keyring, set[str]]] = {}
    for row in rows:
        pk = plan.pk_of(row)
        values = plan.values(row)
        for name, (_, column_type) in plan.encrypted.items():
            stored = row._mapping[name]
            if stored is None:
                continue
            try:
                token = column_type.decode_token(stored)
            except DecryptionError as exc:
                fail(name, pk, str(exc), None)
                continue
            key_id = _key_id(token)
            if key_id is None:
                fail(name, pk, "the stored value is not a securecustomer token", None)
                continue
            tally.before[key_id] += 1
            try:
                scope, context = plan.locate(name, values)
            except (ConfigurationError, ContextError) as exc:
                fail(name, pk, str(exc), key_id)
                continue
            keyring = column_type.resolve_keyring()
            wanted.setdefault(id(keyring), (keyring, set()))[1].add(scope)
            found.append((row, pk, name, token, key_id, keyring, scope, context))
    index_scopes = {}
    for ix, (_, index) in plan.indexes.items():
        source = index.source_type
        keyring = source.resolve_keyring()
        index_scopes[ix] = (id(keyring), source.scope_name())
        wanted.setdefault(id(keyring), (keyring, set()))[1].add(source.scope_name())
    keys = {
        (ident, scope): keyset
        for ident, (keyring, scopes) in wanted.items()
        for scope, keyset in _current_keys(keyring, scopes).items()
    }
    # An index is checked on every row while its scope has several usable key versions
    # (a rotation in progress): a token's header tells its key, an index's bytes do not.
    checked = {
        ix: (k := keys[where]) is not None and len(k.usable) > 1
        for ix, where in index_scopes.items()
    }
    # Pass 2: compare key ids; decrypt and encrypt only what is stale or has stale indexes.
    changes: dict[tuple[Any, ...], dict[str, tuple[Any, Any, int | None]]] = {}
    for row, pk, name, token, key_id, keyring, scope, context in found:
        column_type = plan.encrypted[name][1]
        keyset = keys[(id(keyring), scope)]
        if keyset is None:
            fail(name, pk, f"scope {scope!r} has no key in the key store", key_id)
            continue
        primary = keyset.primary if keyset.sealer is not None else None
        algorithm = AES_256_SIV if column_type.deterministic else AES_256_GCM
        stale = not (
            primary is not None and primary.key_id == key_id and token[1] & 0x0F == algorithm
        )
        indexes = [ix for ix in plan.indexes_of(name) if stale or checked[ix]]
        if not stale and not indexes:
            tally.current += 1
            tally.after[key_id] += 1
            continue
        cipher = keyring.cipher(scope, deterministic=column_type.deterministic)
        value = _open(cipher, token, context)
        if value is _DESTROYED:
            tally.destroyed += 1
            tally.after[key_id] += 1
            continue
        if type(value) is _Failed:
            fail(name, pk, value.reason, key_id)
            continue
        row_changes: dict[str, tuple[Any, Any, int | None]] = {}
        if not stale:
            tally.current += 1
            tally.after[key_id] += 1
        elif primary is None:
            fail(name, pk, f"scope {scope!r} has no active key: rotate it to create one", key_id)
            continue
        elif dry_run:
            row_changes[name] = (row._mapping[name], None, primary.key_id)
        else:
            try:
                new = cipher.encrypt(value, context=context)
            except KeyStateError as exc:  # the last active key was disabled meanwhile
                fail(name, pk, str(exc), key_id)
                continue
            new_id = int.from_bytes(new[2:HEADER_SIZE], "big")
            row_changes[name] = (row._mapping[name], column_type.encode_token(new), new_id)
        for ix in indexes:
            old, index_token = row._mapping[ix], plan.indexes[ix][1].token(value)
            if old is None or bytes(old) != index_token:
                row_changes[ix] = (old, index_token, None)
        if row_changes:
            changes.setdefault(pk, {}).update(row_changes)
    return list(changes.items())


@attrs.frozen
class _Failed:
    reason: str


_DESTROYED: Final = object()


def _open(cipher: FieldCipher, token: bytes, context: Context) -> Any:
    """The plaintext of *token*, `_DESTROYED` if its key was destroyed, or a `_Failed`."""
    try:
        return cipher.decrypt(token, context=context)
    except KeyDestroyedError:
        return _DESTROYED
    except KeyDisabledError as exc:
        return _Failed(f"{exc}: enable it again to re-encrypt its values")
    except DecryptionError as exc:  # KeyNotFoundError too: wrong key store or misplaced value
        return _Failed(str(exc))


def _write(conn: Connection, plan: _Plan, changes: list[_Change]) -> list[bool]:
    """Rewrite the changed rows, each guarded by the tokens read; False marks a conflict."""
    raw = plan.raw
    written = []
    for pk, columns in changes:
        guard = [
            raw.c[name].is_(None) if old is None else raw.c[name] == old
            for name, (old, _, _) in columns.items()
        ]
        stmt = (
            update(raw)
            .where(plan.at(pk), *guard)
            .values({name: new for name, (_, new, _) in columns.items()})
        )
        written.append(conn.execute(stmt).rowcount == 1)
    return written


# -- encrypting a plaintext column in place -------------------------------------------------


def encrypt_column(
    bind: Engine | Session,
    target: type[Any] | Table,
    plaintext_column: str,
    encrypted_column: str,
    *,
    batch_size: int = 500,
    verify: bool = True,
    convert: Callable[[Any], Any] | None = None,
    progress: Progress | None = None,
) -> EncryptColumnReport:
    """Fill the encrypted column from the plaintext column, batch by batch, then verify.

    The migration of an existing plaintext column, in three steps:

    1. Add the new encrypted column, nullable, next to the plaintext one (Alembic:
       ``op.add_column("customers", sa.Column("email_enc", EncryptedString(
       context=("customers", "email")), nullable=True))``; declare it in the model the
       same way). Pin ``context`` to the *final* name if the encrypted column will take
       over the plaintext column's name: tokens are bound to their table and column.
       Application code should write both columns from now on.
    2. Backfill and verify: ``encrypt_column(engine, Customer, "email", "email_enc")``.
       Only rows whose encrypted column is NULL are filled, so the job is idempotent and
       resumes by itself after a kill (each batch is one transaction; the encrypted column
       is its own checkpoint). Each UPDATE is guarded by the plaintext read (except JSON
       columns, which SQL cannot compare), so a row changed meanwhile is left for the next
       run and counted as a conflict. Blind indexes (`BlindIndex`) of the encrypted column
       are filled in the same UPDATE. *convert* maps each plaintext to the value to
       encrypt (e.g. naive datetimes to aware ones). ``verify=True`` then decrypts every
       row and compares it with its plaintext (the report's *mismatches*).
    3. Swap, once the report is ``ok`` and nothing writes the plaintext column any more:
       `swap_columns` (checks again, then drops and renames), or by hand::

           ALTER TABLE customers DROP COLUMN email;                 -- op.drop_column
           ALTER TABLE customers RENAME COLUMN email_enc TO email;  -- op.alter_column(
                                                                    --   new_column_name=)

       Drop indexes and constraints on the plaintext column first (use a blind index to
       search the encrypted one). If the encrypted column keeps its own name, only drop
       the plaintext column.

    Example:
        ```python
        report = encrypt_column(engine, Customer, "email", "email_enc", batch_size=1000)
        assert report.ok, report.failures
        swap_columns(engine, Customer, "email", "email_enc")
        ```
    """
    _check_batch_size(batch_size)
    plan, unit = _migration(bind, target, plaintext_column, encrypted_column)
    raw = plan.raw
    plain, enc = raw.c[plaintext_column], raw.c[encrypted_column]
    todo = and_(enc.is_(None), plain.isnot(None))
    total = unit.scalar(select(func.count()).select_from(raw).where(todo))
    if progress is not None:
        progress(0, total)
    guarded = not isinstance(_column(plan.table, plaintext_column).type, JSON)
    failures = _Failures()
    scanned = encrypted = conflicts = 0
    position = None
    while True:
        rows = unit.read(plan.page(position, batch_size, todo))
        if not rows:
            break
        position = plan.pk_of(rows[-1])
        sealed = _seal_batch(plan, rows, plaintext_column, encrypted_column, convert, failures)
        with unit.write() as conn:
            for pk, old, new_values in sealed:
                where = [plan.at(pk), enc.is_(None), *([plain == old] if guarded else [])]
                if conn.execute(update(raw).where(*where).values(new_values)).rowcount:
                    encrypted += 1
                else:
                    conflicts += 1
        scanned += len(rows)
        if progress is not None:
            progress(scanned, max(total, scanned))
    rows_verified = mismatches = 0
    if verify:
        rows_verified, mismatches = _verify(
            plan, unit, plaintext_column, encrypted_column, batch_size, convert, failures
        )
    return EncryptColumnReport(
        table=plan.table.fullname,
        plaintext_column=plaintext_column,
        encrypted_column=encrypted_column,
        rows_scanned=scanned,
        values_encrypted=encrypted,
        conflicts=conflicts,
        errors=failures.count - mismatches,
        rows_verified=rows_verified,
        mismatches=mismatches,
        verified=(mismatches == 0) if verify else None,
        failures=tuple(failures.kept),
    )


def swap_columns(
    bind: Engine | Session,
    target: type[Any] | Table,
    plaintext_column: str,
    encrypted_column: str,
    *,
    batch_size: int = 500,
    convert: Callable[[Any], Any] | None = None,
) -> EncryptColumnReport:
    """Verify every row once more, then drop the plaintext column and rename the encrypted one.

    The last step of `encrypt_column`'s migration. Refuses (`ConfigurationError`, nothing
    changed) unless the encrypted column's tokens are bound to the plaintext column's name
    (``context=(table, plaintext_column)``: after the rename they must still decrypt) and
    every row verifies. It runs ``ALTER TABLE ... DROP COLUMN`` then ``ALTER TABLE ...
    RENAME COLUMN`` (SQLite 3.35+, PostgreSQL, MariaDB 10.5.2+), in one transaction where
    the database has transactional DDL. Stop every writer of the plaintext column first,
    drop indexes on it, and change the model afterwards: the *target* object still
    describes the old columns.

    Example:
        ```python
        swap_columns(engine, Customer, "email", "email_enc")
        # then in the model: email = mapped_column(EncryptedString())
        ```
    """
    _check_batch_size(batch_size)
    plan, unit = _migration(bind, target, plaintext_column, encrypted_column)
    column_type = plan.encrypted[encrypted_column][1]
    if column_type.names != (plan.table.name, plaintext_column):
        raise ConfigurationError(
            f"{plan.table.fullname}.{encrypted_column} binds its tokens to "
            f"{'.'.join(column_type.names)}: after the rename they would not decrypt; declare "
            f"it with context=({plan.table.name!r}, {plaintext_column!r}) before the backfill, "
            "or keep its name and only drop the plaintext column"
        )
    failures = _Failures()
    rows, mismatches = _verify(
        plan, unit, plaintext_column, encrypted_column, batch_size, convert, failures
    )
    if mismatches:
        first = failures.kept[0]
        raise ConfigurationError(
            f"{plan.table.fullname}: {mismatches} rows do not verify (first: primary key "
            f"{first.primary_key!r}: {first.reason}); nothing was changed: run encrypt_column() "
            "again"
        )
    with unit.write() as conn:
        quote = conn.dialect.identifier_preparer
        name = quote.format_table(plan.table)
        conn.execute(text(f"ALTER TABLE {name} DROP COLUMN {quote.quote(plaintext_column)}"))
        conn.execute(
            text(
                f"ALTER TABLE {name} RENAME COLUMN {quote.quote(encrypted_column)} "
                f"TO {quote.quote(plaintext_column)}"
            )
        )
    return EncryptColumnReport(
        table=plan.table.fullname,
        plaintext_column=plaintext_column,
        encrypted_column=encrypted_column,
        rows_scanned=0,
        values_encrypted=0,
        conflicts=0,
        errors=0,
        rows_verified=rows,
        mismatches=0,
        verified=True,
        failures=(),
    )


def _migration(
    bind: Engine | Session, target: type[Any] | Table, plaintext: str, encrypted: str
) -> tuple[_Plan, _Unit]:
    plan = _Plan(target, encrypted=[encrypted], plaintext=plaintext)
    return plan, _Unit(bind, plan)


def _prefetch(plan: _Plan, name: str, rows: Sequence[Row[Any]]) -> None:
    """Load the subject keys of a batch with one key-store read."""
    if plan.config is None or plan.config.subject is None:
        return
    column_type = plan.encrypted[name][1]
    scopes = set()
    for row in rows:
        try:
            scopes.add(plan.locate(name, plan.values(row))[0])
        except (ConfigurationError, ContextError):
            continue  # reported when the row's value is worked on
    column_type.resolve_keyring().prefetch(scopes)


def _seal_batch(
    plan: _Plan,
    rows: Sequence[Row[Any]],
    plaintext: str,
    encrypted: str,
    convert: Callable[[Any], Any] | None,
    failures: _Failures,
) -> list[tuple[tuple[Any, ...], Any, dict[str, Any]]]:
    """(primary key, plaintext read, values to write) for every row that could be encrypted.

    The values are the stored token and the blind indexes of the encrypted column.
    """
    key, column_type = plan.encrypted[encrypted]
    indexes = {ix: plan.indexes[ix][1] for ix in plan.indexes_of(encrypted)}
    _prefetch(plan, encrypted, rows)
    out = []
    for row in rows:
        pk = plan.pk_of(row)
        old = row._mapping[plaintext]
        value = convert(old) if convert is not None else old
        try:
            if plan.config is not None:
                token = plan.config.seal(key, value, plan.values(row)).token
            else:
                column_type.check_value(value)
                token = column_type.cipher().encrypt(value, context=column_type.column_context())
            new_values: dict[str, Any] = {ix: index.token(value) for ix, index in indexes.items()}
        except (UnsupportedValueError, ConfigurationError, ContextError, KeyStateError) as exc:
            failures.add(encrypted, pk, str(exc), None)
            continue
        new_values[encrypted] = column_type.encode_token(token)
        out.append((pk, old, new_values))
    return out


def _verify(
    plan: _Plan,
    unit: _Unit,
    plaintext: str,
    encrypted: str,
    batch_size: int,
    convert: Callable[[Any], Any] | None,
    failures: _Failures,
) -> tuple[int, int]:
    """Decrypt every row's encrypted value and compare it with its plaintext."""
    key, column_type = plan.encrypted[encrypted]
    rows_verified = mismatches = 0
    position = None
    while True:
        rows = unit.read(plan.page(position, batch_size))
        if not rows:
            return rows_verified, mismatches
        position = plan.pk_of(rows[-1])
        _prefetch(plan, encrypted, rows)
        for row in rows:
            rows_verified += 1
            reason = _check_row(plan, row, plaintext, encrypted, key, column_type, convert)
            if reason is not None:
                mismatches += 1
                failures.add(encrypted, plan.pk_of(row), reason, None)


def _check_row(
    plan: _Plan,
    row: Row[Any],
    plaintext: str,
    encrypted: str,
    key: str,
    column_type: Encrypted,
    convert: Callable[[Any], Any] | None,
) -> str | None:
    """None when the row's encrypted value matches its plaintext, else why not."""
    plain, stored = row._mapping[plaintext], row._mapping[encrypted]
    if plain is None or stored is None:
        if plain is None and stored is None:
            return None
        return "not encrypted yet" if stored is None else "encrypted value without plaintext"
    try:
        token = column_type.decode_token(stored)
        if plan.config is not None:
            value = plan.config.open(key, Sealed(token), plan.values(row))
        else:
            value = column_type.cipher().decrypt(token, context=column_type.column_context())
    except (DecryptionError, ConfigurationError, ContextError) as exc:
        return f"does not decrypt: {exc}"
    expected = convert(plain) if convert is not None else plain
    if type(value) is not type(expected) or value != expected:
        return "decrypts to another value than the plaintext"
    return None
