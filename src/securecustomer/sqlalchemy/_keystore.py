"""SqlKeyStore: the key store in the application's own database, in one table.

Scopes compare byte for byte on every database, so that two scopes never share a row or
block each other. PostgreSQL (deterministic collations) and SQLite (``BINARY``) compare
text exactly; MariaDB's and MySQL's text collations do not (``'a' = 'A'``, ``'e' = 'é'``,
and PAD SPACE makes ``'x' = 'x '``, even under ``utf8mb4_bin``), so there the scope is a
``VARBINARY`` column holding the UTF-8 bytes. A table made by an older version (a
``VARCHAR`` scope) is refused at first use with a `ConfigurationError` that names
``SqlKeyStore.migrate()``, the one ``ALTER TABLE`` that brings it up to date.

Shredding is atomic. Every change to a scope's set of keys (`add_data_key`,
`destroy_scope`, `recreate_scope`) first locks the scope's *anchor*, its lowest-version
data-key row (``SELECT ... FOR UPDATE``; on SQLite, whose locks are database-wide, a
no-op ``UPDATE`` that takes the write lock at once), then reads the scope's tombstone: a
row of kind ``"scope"`` (version 0, no key) whose state is ``destroyed``, or ``active``
once re-created. So a rotation that races a destruction either commits before it (and
its key is destroyed with the others) or sees the tombstone and fails. These statements
run at READ COMMITTED on PostgreSQL and MariaDB so that, once the lock is held, they see
what the previous holder committed (and take no gap locks). Tombstone rows need no
schema change, and older versions ignore them (they only read kinds ``root`` and ``data``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Dialect, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.types import VARBINARY, TypeEngine

from securecustomer.crypto import KeyState
from securecustomer.exceptions import (
    ConfigurationError,
    KeyDestroyedError,
    KeyNotFoundError,
    KeyStateError,
    KeyStoreError,
)
from securecustomer.keys import (
    DataKeyRecord,
    RootKeyRecord,
    WrappedKey,
    check_update,
    scope_destroyed,
)

__all__ = ["SqlKeyStore"]

_ROOT, _DATA, _SCOPE = "root", "data", "scope"
_IN_CHUNK = 500
_MYSQL = frozenset({"mysql", "mariadb"})
_SCOPE_CHARS = 255
_SCOPE_BYTES = 4 * _SCOPE_CHARS  # UTF-8
_NO_TABLE = "no such table"


class ScopeType(TypeDecorator[str]):
    """A key scope, compared byte for byte: text, or UTF-8 in ``VARBINARY`` on MariaDB/MySQL."""

    impl = String(_SCOPE_CHARS)
    cache_ok = True

    @staticmethod
    def render_ddl_type() -> str:
        """This type's DDL in a migration, as plain SQLAlchemy types (for `render_item`)."""
        return (
            f"sa.String(length={_SCOPE_CHARS})"
            f".with_variant(sa.VARBINARY(length={_SCOPE_BYTES}), 'mysql', 'mariadb')"
        )

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(VARBINARY(_SCOPE_BYTES))
        return dialect.type_descriptor(String(_SCOPE_CHARS))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is not None and dialect.name in _MYSQL:
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode("utf-8")
        return None if value is None else str(value)


def key_table(metadata: MetaData, name: str = "securecustomer_keys") -> Table:
    """Define the key table in *metadata* (for ``create_all`` or Alembic)."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("kind", String(8), nullable=False),
        Column("scope", ScopeType(), nullable=False),  # "" for root keys; exact comparison
        Column("version", Integer, nullable=False),
        Column("key_id", BigInteger, nullable=True, unique=True),  # data keys only
        Column("state", String(16), nullable=False),
        Column("created_at", DateTime, nullable=False),  # naive UTC: portable everywhere
        Column("root_version", Integer, nullable=True),
        Column("wrapped", LargeBinary, nullable=False),
        Column("wrappers", Text, nullable=True),  # root keys: JSON list of wrapped copies
        UniqueConstraint("kind", "scope", "version", name=f"uq_{name}_kind_scope_version"),
    )


class SqlKeyStore:
    """A `KeyStore` in one table of the application's database (SQLite, PostgreSQL, MariaDB).

    Every call is one transaction. Concurrent creation of the same scope's key by
    several processes yields one key: the table's unique constraint decides, and the
    losers read the winner's record. Create the table with ``store.create()``, with
    ``metadata.create_all()`` when you pass your own *metadata*, or with a migration.
    Scopes compare byte for byte on every database; a MariaDB/MySQL table made by an
    older version is refused until ``store.migrate()`` (or its ``ALTER TABLE``) has run.

    Example:
        ```python
        store = SqlKeyStore(engine)
        store.create()
        keyring = Keyring(LocalKeyProvider.from_file("master.key"), store).load()
        ```
    """

    def __init__(
        self,
        engine: Engine,
        *,
        metadata: MetaData | None = None,
        table_name: str = "securecustomer_keys",
    ) -> None:
        self.engine = engine
        self.metadata = metadata if metadata is not None else MetaData()
        existing = self.metadata.tables.get(table_name)
        self.table = existing if existing is not None else key_table(self.metadata, table_name)
        self._layout_checked = False

    def __repr__(self) -> str:
        return f"<SqlKeyStore {self.table.name!r} on {self.engine.url.render_as_string()!r}>"

    def create(self) -> None:
        """Create the key table if it does not exist."""
        with self._begin() as conn:
            self.table.create(conn, checkfirst=True)

    def migrate(self) -> tuple[str, ...]:
        """Bring a key table made by an older version up to date; return the statements run.

        On MariaDB and MySQL an older table's scope column is a ``VARCHAR`` whose collation
        calls distinct scopes equal; this makes it ``VARBINARY`` (the stored bytes are kept,
        so no key is lost). Elsewhere, and on a table that is up to date, it does nothing.
        """
        statements: tuple[str, ...] = ()
        with self._begin(check=False) as conn:
            if _loose_scope(conn, self.table) not in (None, _NO_TABLE):
                name = conn.dialect.identifier_preparer.format_table(self.table)
                statements = (
                    f"ALTER TABLE {name} MODIFY scope VARBINARY({_SCOPE_BYTES}) NOT NULL",
                )
            for statement in statements:
                conn.exec_driver_sql(statement)
        self._layout_checked = False
        return statements

    def _check_layout(self, conn: Connection) -> None:
        problem = _loose_scope(conn, self.table)
        if problem == _NO_TABLE:
            return  # looked at again next time: the table may be created meanwhile
        if problem is not None:
            raise ConfigurationError(
                f"key store table {self.table.name!r} was made by an older version: its scope "
                f"column is {problem}, which calls distinct scopes equal (case, accents, "
                f"trailing spaces), so some scopes could never get a key. Run "
                f"SqlKeyStore.migrate() once, or: ALTER TABLE {self.table.name} MODIFY scope "
                f"VARBINARY({_SCOPE_BYTES}) NOT NULL (docs/sqlalchemy.md, 'Key store table')"
            )
        self._layout_checked = True

    @contextmanager
    def _begin(self, *, check: bool = True, read_committed: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if read_committed and conn.dialect.name != "sqlite":
                    conn.execution_options(isolation_level="READ COMMITTED")
                with conn.begin():
                    if check and not self._layout_checked:
                        self._check_layout(conn)
                    yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            first_line = (str(cause).splitlines() or [""])[0]
            raise KeyStoreError(
                f"key store table {self.table.name!r}: {type(cause).__name__}: {first_line}"
            ) from exc

    # -- reading --------------------------------------------------------------------------

    def roots(self) -> list[RootKeyRecord]:
        t = self.table
        with self._begin() as conn:
            rows = conn.execute(select(t).where(t.c.kind == _ROOT).order_by(t.c.version)).all()
        return [_root(r) for r in rows]

    def data_keys(self, scope: str) -> list[DataKeyRecord]:
        return self.data_keys_many([scope]).get(scope, [])

    def data_keys_many(self, scopes: Iterable[str]) -> dict[str, list[DataKeyRecord]]:
        """The data keys of many scopes in few queries (one per 500 scopes)."""
        t = self.table
        wanted = sorted(set(scopes))
        found: dict[str, list[DataKeyRecord]] = {}
        with self._begin() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = conn.execute(
                    select(t)
                    .where(and_(t.c.kind == _DATA, t.c.scope.in_(chunk)))
                    .order_by(t.c.scope, t.c.version)
                ).all()
                for row in rows:
                    found.setdefault(row.scope, []).append(_data(row))
        return found

    def data_key(self, key_id: int) -> DataKeyRecord | None:
        t = self.table
        with self._begin() as conn:
            row = conn.execute(select(t).where(t.c.key_id == key_id)).first()
        return _data(row) if row is not None else None

    def all_data_keys(self) -> list[DataKeyRecord]:
        t = self.table
        with self._begin() as conn:
            rows = conn.execute(select(t).where(t.c.kind == _DATA).order_by(t.c.id)).all()
        return [_data(r) for r in rows]

    # -- writing --------------------------------------------------------------------------

    def add_root(self, record: RootKeyRecord) -> RootKeyRecord:
        t = self.table
        try:
            with self._begin() as conn:
                conn.execute(insert(t).values(**_root_values(record)))
            return record
        except IntegrityError:
            pass
        stored = [r for r in self.roots() if r.version == record.version]
        if not stored:
            raise KeyStoreError(f"root key version {record.version} could not be stored")
        return stored[0]

    def update_root(self, record: RootKeyRecord) -> None:
        t = self.table
        with self._begin() as conn:
            self._sqlite_write_lock(conn)
            row = conn.execute(
                select(t)
                .where(and_(t.c.kind == _ROOT, t.c.version == record.version))
                .with_for_update()
            ).first()
            if row is None:
                raise KeyNotFoundError(f"no root key version {record.version}")
            check_update(_root(row), record)
            conn.execute(update(t).where(t.c.id == row.id).values(**_root_values(record)))

    def add_data_key(self, record: DataKeyRecord) -> DataKeyRecord | None:
        return self._add(record, recreate=False)

    def recreate_scope(self, record: DataKeyRecord) -> DataKeyRecord | None:
        """Lift the tombstone of *record*'s scope and add *record*, in one transaction.

        Raises `KeyStateError` if the scope is not destroyed. Returns like `add_data_key`.
        """
        return self._add(record, recreate=True)

    def _add(self, record: DataKeyRecord, *, recreate: bool) -> DataKeyRecord | None:
        t = self.table
        try:
            with self._begin(read_committed=True) as conn:
                records, mark = self._lock_scope(conn, record.scope)
                destroyed = scope_destroyed(mark, records)
                if destroyed and not recreate:
                    raise KeyDestroyedError(key_id=records[-1].key_id, scope=record.scope)
                if recreate and not destroyed:
                    raise KeyStateError(
                        f"scope {record.scope!r} is not destroyed: rotate() makes a new key",
                        scope=record.scope,
                    )
                conn.execute(insert(t).values(**_data_values(record)))
                if recreate:
                    self._mark(conn, record.scope, mark, KeyState.ACTIVE)
            return record
        except IntegrityError:
            pass  # another writer holds this (scope, version) or this key id
        existing = [r for r in self.data_keys(record.scope) if r.version == record.version]
        return existing[0] if existing else None

    def destroy_scope(self, scope: str) -> list[DataKeyRecord]:
        """Destroy every key of *scope* and leave its tombstone, in one transaction.

        From then on `add_data_key` raises `KeyDestroyedError` for the scope. Returns the
        scope's (destroyed) records, oldest first; none if it has no key.
        """
        t = self.table
        with self._begin(read_committed=True) as conn:
            records, mark = self._lock_scope(conn, scope)
            if not records:
                return []
            destroyed = [_shredded(r) for r in records]
            for old, new in zip(records, destroyed, strict=True):
                check_update(old, new)
            conn.execute(
                update(t)
                .where(and_(t.c.kind == _DATA, t.c.scope == scope))
                .values(state=KeyState.DESTROYED.value, wrapped=b"")
            )
            self._mark(conn, scope, mark, KeyState.DESTROYED)
        return destroyed

    def _lock_scope(
        self, conn: Connection, scope: str
    ) -> tuple[list[DataKeyRecord], KeyState | None]:
        """Lock *scope*'s anchor; return its keys (oldest first) and its tombstone state."""
        t = self.table
        data = and_(t.c.kind == _DATA, t.c.scope == scope)
        if conn.dialect.name == "sqlite":
            self._sqlite_write_lock(conn)
        else:
            conn.execute(
                select(t.c.id).where(data).order_by(t.c.version).limit(1).with_for_update()
            )
        rows = conn.execute(
            select(t).where(and_(t.c.scope == scope, t.c.kind.in_((_DATA, _SCOPE))))
        ).all()
        records = sorted((_data(r) for r in rows if r.kind == _DATA), key=lambda r: r.version)
        marks = [KeyState(r.state) for r in rows if r.kind == _SCOPE]
        return records, (marks[0] if marks else None)

    def _sqlite_write_lock(self, conn: Connection) -> None:
        """On SQLite, take the database's write lock now, before anything is read.

        SQLite ignores ``FOR UPDATE`` and pysqlite begins a transaction only at the first
        write, so a check made by an earlier ``SELECT`` could be stale by the time the
        write runs (a destroyed key revived by a demotion read before the destruction).
        A write statement that changes no row takes the lock at once.
        """
        if conn.dialect.name == "sqlite":
            t = self.table
            conn.execute(update(t).where(t.c.id == -1).values(version=t.c.version))

    def _mark(self, conn: Connection, scope: str, old: KeyState | None, state: KeyState) -> None:
        """Write *scope*'s tombstone row (the caller holds the scope's anchor)."""
        t = self.table
        if old is not None:
            conn.execute(
                update(t)
                .where(and_(t.c.kind == _SCOPE, t.c.scope == scope))
                .values(state=state.value)
            )
            return
        conn.execute(
            insert(t).values(
                kind=_SCOPE,
                scope=scope,
                version=0,
                key_id=None,
                state=state.value,
                created_at=_naive_utc(dt.datetime.now(dt.UTC)),
                root_version=None,
                wrapped=b"",
                wrappers=None,
            )
        )

    def update_data_keys(self, records: list[DataKeyRecord]) -> None:
        if not records:
            return
        t = self.table
        with self._begin(read_committed=True) as conn:
            # Each scope's anchor first, in one order, as destroy_scope and add_data_key take
            # it: a demotion racing a destruction waits for it instead of deadlocking.
            for scope in sorted({record.scope for record in records}):
                self._lock_scope(conn, scope)
            self._sqlite_write_lock(conn)
            for record in records:  # lock and check every row before changing any
                row = conn.execute(
                    select(t).where(t.c.key_id == record.key_id).with_for_update()
                ).first()
                if row is None:
                    raise KeyNotFoundError(
                        f"no data key {record.key_id:#010x}", key_id=record.key_id
                    )
                check_update(_data(row), record)
            for record in records:
                conn.execute(
                    update(t).where(t.c.key_id == record.key_id).values(**_data_values(record))
                )


def _loose_scope(conn: Connection, table: Table) -> str | None:
    """What makes *table*'s scope column compare loosely: None if nothing does, `_NO_TABLE`
    if there is no such table (yet)."""
    if conn.dialect.name not in _MYSQL:
        return None  # PostgreSQL and SQLite compare the text column exactly
    row = conn.execute(
        text(
            "SELECT DATA_TYPE, COLLATION_NAME FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())"
            " AND TABLE_NAME = :table AND COLUMN_NAME = 'scope'"
        ),
        {"schema": table.schema, "table": table.name},
    ).first()
    if row is None:
        return _NO_TABLE
    if str(row[0]).lower() in {"varbinary", "binary", "blob"}:
        return None
    return f"{str(row[0]).upper()} with collation {row[1]}"


def _shredded(record: DataKeyRecord) -> DataKeyRecord:
    return DataKeyRecord(
        key_id=record.key_id,
        scope=record.scope,
        version=record.version,
        state=KeyState.DESTROYED,
        created_at=record.created_at,
        root_version=record.root_version,
        wrapped=b"",
    )


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _root_values(record: RootKeyRecord) -> dict[str, Any]:
    wrappers = [
        {"provider": w.provider, "key_ref": w.key_ref, "ciphertext": _b64(w.ciphertext)}
        for w in record.wrapped
    ]
    return {
        "kind": _ROOT,
        "scope": "",
        "version": record.version,
        "key_id": None,
        "state": record.state.value,
        "created_at": _naive_utc(record.created_at),
        "root_version": None,
        "wrapped": b"",
        "wrappers": json.dumps(wrappers),
    }


def _data_values(record: DataKeyRecord) -> dict[str, Any]:
    return {
        "kind": _DATA,
        "scope": record.scope,
        "version": record.version,
        "key_id": record.key_id,
        "state": record.state.value,
        "created_at": _naive_utc(record.created_at),
        "root_version": record.root_version,
        "wrapped": record.wrapped,
        "wrappers": None,
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _root(row: Row[Any]) -> RootKeyRecord:
    try:
        wrapped = tuple(
            WrappedKey(
                provider=str(w["provider"]),
                key_ref=str(w["key_ref"]),
                ciphertext=base64.b64decode(w["ciphertext"], validate=True),
            )
            for w in json.loads(row.wrappers or "[]")
        )
        return RootKeyRecord(
            version=int(row.version),
            state=KeyState(row.state),
            created_at=_aware(row.created_at),
            wrapped=wrapped,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyStoreError(f"corrupt root key row {row.id}: {exc!r}") from None


def _data(row: Row[Any]) -> DataKeyRecord:
    try:
        return DataKeyRecord(
            key_id=int(row.key_id),
            scope=str(row.scope),
            version=int(row.version),
            state=KeyState(row.state),
            created_at=_aware(row.created_at),
            root_version=int(row.root_version),
            wrapped=bytes(row.wrapped),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyStoreError(f"corrupt data key row {row.id}: {exc!r}") from None
