"""What the table jobs share: the plan of a table, its batches, transactions and failures.

`reencrypt` (in `_reencrypt`) and `encrypt_column` / `swap_columns` (in `_migrate`) see a
table through a `_Plan`: its primary key, its encrypted columns with raw (undecoded) token
columns, the row and subject columns their values are bound to, and their blind indexes.
A `_Unit` runs the reads and the one-transaction-per-batch writes on an Engine or a
Session; `_batches` pages through the rows in primary-key order; `_update_guarded` writes
a row only if it still holds what was read; `_Failures` counts the values a job could not
process and keeps the first 100 as `FailedValue`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import attrs
from sqlalchemy import (
    Column,
    Engine,
    LargeBinary,
    MetaData,
    Table,
    Text,
    and_,
    func,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from securecustomer.crypto import Context
from securecustomer.exceptions import ConfigurationError
from securecustomer.sqlalchemy._blind import BlindIndex
from securecustomer.sqlalchemy._orm import RowEncryption, _registry
from securecustomer.sqlalchemy._schemas import SchemaMap, connection_map, schema_under
from securecustomer.sqlalchemy._types import OWN, Encrypted, _Own

__all__ = ["FailedValue"]

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
        #: The schema_translate_map of the job's bind, set by `_prepare`.
        self.schema_map: SchemaMap | None = None

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

    def count(self, *where: ColumnElement[bool]) -> Any:
        return select(func.count()).select_from(self.raw).where(*where)

    # -- binding ----------------------------------------------------------------------------

    def values(self, row: Row[Any]) -> dict[str, Any]:
        """The row and subject attributes of *row*, keyed as `RowEncryption` expects."""
        return {attr: row._mapping[name] for attr, name in self.bindings.items()}

    def indexes_of(self, name: str) -> list[str]:
        """The blind-index columns whose source is the encrypted column *name*."""
        return [ix for ix, (source, _) in self.indexes.items() if source == name]

    def schema_of(self, column_type: Encrypted) -> str | None:
        """The schema the job reaches the column's table in (under its bind's map)."""
        return schema_under(column_type.schema, self.schema_map)

    def locate(
        self, name: str, values: dict[str, Any], *, schema: str | _Own | None = OWN
    ) -> tuple[str, Context]:
        """The key scope and context of column *name* in the row with *values*, in the
        schema the job reaches the table in (or in *schema*)."""
        column_type = self.encrypted[name][1]
        if schema is OWN:
            schema = self.schema_of(column_type)
        if self.config is None:
            return column_type.scope_name(schema=schema), column_type.column_context(schema=schema)
        return (
            self.config.scope(column_type, values, schema=schema),
            self.config.context(column_type, values, schema=schema),
        )


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


def _prepare(
    bind: Engine | Session,
    target: type[Any] | Table,
    batch_size: int,
    *,
    encrypted: Sequence[str] | None = None,
    plaintext: str | None = None,
) -> tuple[_Plan, _Unit]:
    """Check *batch_size*, then plan the job over *target* and open its unit on *bind*."""
    if type(batch_size) is not int or batch_size < 1:
        raise ConfigurationError("batch_size must be a positive int")
    plan = _Plan(target, encrypted=encrypted, plaintext=plaintext)
    unit = _Unit(bind, plan)  # checks bind
    if isinstance(bind, Session):
        arguments = {"mapper": plan.mapper} if plan.mapper is not None else None
        plan.schema_map = connection_map(bind.connection(bind_arguments=arguments))
    else:
        plan.schema_map = connection_map(bind)
    return plan, unit


def _batches(
    plan: _Plan,
    unit: _Unit,
    size: int,
    *where: ColumnElement[bool],
    start: tuple[Any, ...] | None = None,
) -> Iterator[Sequence[Row[Any]]]:
    """The rows matching *where*, in primary-key order after *start*, *size* at a time.

    Each batch is read once the one before it was worked on (and written), and starts
    after the last primary key of the one before.
    """
    position = start
    while True:
        rows = unit.read(plan.page(position, size, *where))
        if not rows:
            return
        yield rows
        position = plan.pk_of(rows[-1])


def _update_guarded(
    conn: Connection,
    plan: _Plan,
    pk: tuple[Any, ...],
    read: Mapping[str, Any],
    values: dict[str, Any],
) -> int:
    """Write *values* to the row *pk* if its columns still hold what was *read*; the rowcount.

    The guard is ``WHERE pk = :pk AND col = :value_read`` (``col IS NULL`` for a NULL read),
    so a row that another writer changed meanwhile is left alone: a rowcount of 0.
    """
    raw = plan.raw
    guard = [
        raw.c[name].is_(None) if old is None else raw.c[name] == old for name, old in read.items()
    ]
    return conn.execute(update(raw).where(plan.at(pk), *guard).values(values)).rowcount


class _Failures:
    def __init__(self) -> None:
        self.count = 0
        self.kept: list[FailedValue] = []

    def add(self, column: str, pk: tuple[Any, ...], reason: str, key_id: int | None) -> None:
        self.count += 1
        if len(self.kept) < _MAX_FAILURES:
            self.kept.append(FailedValue(column, pk, reason, key_id))
