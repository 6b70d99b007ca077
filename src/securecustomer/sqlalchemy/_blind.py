"""Blind indexes: equality search on randomized encrypted columns.

A blind-index column holds, for each row, ``HMAC-SHA256(K_index, table, column, type,
normalize(value))`` truncated to ``size`` bytes, where ``K_index`` is derived from the data
key of the *source column's own scope* (never a subject's scope: otherwise nobody could
search without knowing the subject first). A search computes the tokens of the value under
every key version that may still decrypt, selects the rows whose index is one of them, and
drops the false positives that truncation lets through by comparing the decrypted values.

What an index column reveals to someone who can read it, and the planner that chooses
its size, are described in the docstrings of `BlindIndex` and `plan_blind_index`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

import attrs
from sqlalchemy import VARBINARY, Column, LargeBinary, Table, event, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    Mapped,
    MappedColumn,
    Mapper,
    Session,
)
from sqlalchemy.orm.attributes import get_history
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from securecustomer.exceptions import (
    ConfigurationError,
    UnsupportedQueryError,
    UnsupportedValueError,
)
from securecustomer.sqlalchemy._normalizers import (
    Normalizer,
    casefold,
    compose,
    digits_only,
    name_of,
    nfkc,
    normalize_email,
    normalize_phone,
    strip,
)
from securecustomer.sqlalchemy._orm import _PLAIN, ERASED
from securecustomer.sqlalchemy._planner import IndexPlan, plan_blind_index
from securecustomer.sqlalchemy._refusal import _unwrapped
from securecustomer.sqlalchemy._schemas import connection_map, schema_under
from securecustomer.sqlalchemy._types import OWN, Encrypted, Sealed, _Own

__all__ = [
    "BlindIndex",
    "IndexPlan",
    "Normalizer",
    "casefold",
    "compose",
    "digits_only",
    "nfkc",
    "normalize_email",
    "normalize_phone",
    "plan_blind_index",
    "reindex",
    "strip",
]


#: Source value types with one encoding per Python-equal value, so that equal values get
#: equal tokens. Not Decimal (``1.0`` / ``1.00``), datetime (one instant in two offsets),
#: JSON (``1`` / ``1.0`` / ``True``).
_INDEXABLE: Final = frozenset({str, bytes, int, dt.date, uuid.UUID})
_MAX_SIZE: Final = 32

# -- the column type ---------------------------------------------------------------------


class BlindIndex(TypeDecorator[bytes]):
    """A column holding a blind index (truncated HMAC-SHA256 token) of an encrypted column.

    Declare it next to its source column; mapped classes need nothing else: at mapper
    configuration, the index of each row is computed from the plaintext at every INSERT
    and at every UPDATE that changes the source, before the source is encrypted, also for
    row-bound and subject-scoped models (`encrypt_rows`). Core statements and ORM bulk
    INSERT / UPDATE statements bypass the ORM events: compute the value with `token`.

    The token is keyed by the source column's own key scope (`Encrypted.scope_name`),
    never by a subject scope, and binds the source's table and column names. When that
    scope rotates, new rows get tokens of the new key version, and `search` matches the
    tokens of every version that may still decrypt; `reindex` moves old rows on.

    Parameters:
        source: the source column: its mapped attribute name (or its column name), the
            class-body attribute itself (``BlindIndex(email, ...)``), or a Core `Column`.
            It must be an `Encrypted` column of ``str``, ``bytes``, ``int``, ``date`` or
            ``UUID`` values (types whose equal values have one encoding; normalise others
            to ``str`` yourself).
        size: bytes kept of the HMAC (1 to 32), or an `IndexPlan` from `plan_blind_index`.
            There is no default: the right size depends on the population.
        normalizer: applied to ``str`` values before hashing and comparing: `casefold`,
            `nfkc`, `strip`, `digits_only`, `normalize_email`, `normalize_phone`, a
            `compose` of them, or any callable ``str -> str``; only for ``str`` columns.
            None matches exactly.

    Values: a NULL source gives a NULL index (declare the index column nullable when the
    source is). A normalised empty string is indexed like any other value: every value
    that normalises to ``""`` (``""``, ``"  "``, or ``"n/a"`` under `normalize_phone`)
    shares one token, and a search for any of them finds all of them.

    What the column reveals to someone who can read it, without keys: which rows hold
    equal normalised values (within one key version), hence how often each value occurs,
    and which rows were indexed under which key version. Truncation blurs this only when
    many values share a token (see `IndexPlan.colliding_values`). Whoever holds the
    scope's key can test guesses against every row. Subject erasure (`Keyring.destroy` of
    a subject scope) does not erase an index: `reindex` nulls the index of erased values.

    Example:
        ```python
        class Customer(Base):
            __tablename__ = "customers"
            id: Mapped[int] = mapped_column(primary_key=True)
            email: Mapped[str] = mapped_column(EncryptedString())
            email_index: Mapped[bytes] = mapped_column(
                BlindIndex("email", normalizer=normalize_email, size=plan_blind_index(1_000_000)),
                index=True,
            )

        found = search(session, Customer.email, "Ada@Example.COM ")
        ```
    """

    impl = LargeBinary
    cache_ok = True

    def __init__(
        self,
        source: str | KeyedColumnElement[Any] | Mapped[Any],
        *,
        size: int | IndexPlan,
        normalizer: Normalizer | None = None,
    ) -> None:
        if isinstance(source, MappedColumn):
            source = source.column
        if not (isinstance(source, Column) or (isinstance(source, str) and source)):
            raise ConfigurationError(
                "BlindIndex() needs its source column: the attribute name or the Column"
            )
        if isinstance(size, IndexPlan):
            size = size.size
        if type(size) is not int or not 1 <= size <= _MAX_SIZE:
            raise ConfigurationError(
                "BlindIndex size must be an int from 1 to 32 bytes, or an IndexPlan"
            )
        if isinstance(normalizer, MappedColumn):
            raise ConfigurationError(
                "normalizer is a mapped column: a class attribute declared above shadows the "
                "normaliser's name"
            )
        if normalizer is not None and not callable(normalizer):
            raise ConfigurationError("normalizer must be a callable from str to str")
        self.source = source
        self.size = size
        self.normalizer = normalizer
        #: The index column's own (table, name), bound when it joins a table.
        self._table: Table | None = None
        self._name: str | None = None
        self._source_column: Column[Any] | None = None
        super().__init__(size)

    def __repr__(self) -> str:
        source = self.source
        args = [repr(source) if isinstance(source, str) else _column_name(source)]
        if self.normalizer is not None:
            args.append(f"normalizer={name_of(self.normalizer)}")
        args.append(f"size={self.size}")
        return f"BlindIndex({', '.join(args)})"

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # MySQL and MariaDB cannot index a BLOB without a prefix length; SQL Server has no
        # indexable unbounded binary type: a bounded VARBINARY is what an index needs.
        if dialect.name in ("mysql", "mariadb", "mssql"):
            return dialect.type_descriptor(VARBINARY(self.size))
        return dialect.type_descriptor(LargeBinary(self.size))

    # -- the source column ----------------------------------------------------------------

    def _where(self) -> str:
        if self._table is not None and self._name is not None:
            return f"{self._table.name}.{self._name}"
        return repr(self)

    def _use_source(self, column: Column[Any]) -> None:
        """Check that *column* can be the source of this index, and bind it."""
        column_type = column.type
        where = self._where()
        if not isinstance(column_type, Encrypted):
            raise ConfigurationError(
                f"the source of blind index {where} must be an encrypted column, not "
                f"{type(column_type).__name__}: index a plaintext column in the database"
            )
        types = set(column_type.python_types)
        if not types <= _INDEXABLE:
            raise ConfigurationError(
                f"blind index {where}: {type(column_type).__name__} values have no single "
                "encoding per equal value; index a normalised str column instead"
            )
        if self.normalizer is not None and types != {str}:
            raise ConfigurationError(f"blind index {where}: normalizers apply to str columns only")
        self._source_column = column

    def _resolve(self) -> Column[Any]:
        column = self._source_column
        if column is not None:
            return column
        if isinstance(self.source, Column):
            column = self.source
        else:
            if self._table is None:
                raise ConfigurationError(
                    f"{self!r} is not attached to a table: declare it on a column of the "
                    "table that holds its source"
                )
            column = self._table.c.get(self.source)
            if column is None:
                raise ConfigurationError(
                    f"blind index {self._where()}: {self._table.name} has no column {self.source!r}"
                )
        self._use_source(column)
        return column

    @property
    def source_type(self) -> Encrypted:
        """The `Encrypted` type of the source column (resolved on first use)."""
        column_type = self._resolve().type
        assert isinstance(column_type, Encrypted)  # noqa: S101 (checked by _use_source)
        return column_type

    # -- values ---------------------------------------------------------------------------

    def normalize(self, value: object) -> Any:
        """Check *value* against the source column's type and normalise it.

        Raises `UnsupportedValueError` (a `TypeError`) for a value of another type,
        None included.
        """
        self.source_type.check_value(value)
        normalizer = self.normalizer
        if normalizer is None or type(value) is not str:
            return value
        result = normalizer(value)
        if type(result) is not str:
            raise ConfigurationError(
                f"normalizer {name_of(normalizer)} of {self._where()} returned "
                f"{type(result).__qualname__}, not str"
            )
        return result

    def _token(self, normalized: Any, schema: str | _Own | None = OWN) -> bytes:
        source = self.source_type
        return source.cipher(schema=schema).blind_index(
            normalized, context=source.column_context(schema=schema), size=self.size
        )

    def _tokens(self, normalized: Any, schema: str | _Own | None = OWN) -> list[bytes]:
        source = self.source_type
        tokens = source.cipher(schema=schema).blind_indexes(
            normalized, context=source.column_context(schema=schema), size=self.size
        )
        return list(dict.fromkeys(tokens))  # short tokens of two versions may coincide

    def token(self, value: object, *, schema: str | _Own | None = OWN) -> bytes:
        """The index of *value* under the scope's active key: what a row stores.

        For Core inserts: ``email_index=index.token(email) if email is not None else None``.
        The index is bound to the source table's schema; pass *schema* where a
        ``schema_translate_map`` puts the table in another one.
        """
        return self._token(self.normalize(value), schema)

    def tokens(self, value: object, *, schema: str | _Own | None = OWN) -> list[bytes]:
        """The indexes of *value* under every key version that may still decrypt, newest
        first: what a query matches while a key rotation is in progress."""
        return self._tokens(self.normalize(value), schema)

    def matches(self, plaintext: object, value: object) -> bool:
        """Decrypt-and-compare: whether a decrypted *plaintext* equals *value* once normalised.

        A NULL or erased plaintext matches nothing.
        """
        return self._equals(plaintext, self.normalize(value))

    def _equals(self, plaintext: object, normalized: object) -> bool:
        if type(plaintext) is Sealed:
            raise UnsupportedQueryError(
                f"{'.'.join(self.source_type.names)} is row-bound or subject-scoped: load the "
                "rows through the ORM (or decrypt them) before comparing"
            )
        if type(plaintext) not in self.source_type.python_types:
            return False  # None, ERASED
        return bool(self.normalize(plaintext) == normalized)

    # -- SQL ------------------------------------------------------------------------------

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or (type(value) is bytes and len(value) == self.size):
            return value
        error = UnsupportedValueError(
            f"{self._where()} holds {self.size}-byte blind-index tokens, not "
            f"{type(value).__qualname__} values: set the source column, or search with "
            "securecustomer.sqlalchemy.search() / blind_match()"
        )
        raise _unwrapped(error)  # not a StatementError, whose text would show the value

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes(value)

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        raise UnsupportedQueryError(
            "blind-index tokens are never rendered as SQL literals: use bound parameters"
        )


def _column_name(column: Column[Any]) -> str:
    table = getattr(column, "table", None)
    return f"{table.name}.{column.name}" if isinstance(table, Table) else str(column.name)


@event.listens_for(Column, "after_parent_attach")
def _bind_index_column(column: Column[Any], table: Any) -> None:
    """Tell each blind-index type which table (where its source lives) it belongs to."""
    index = column.type
    if not isinstance(index, BlindIndex) or not isinstance(table, Table):
        return
    if index._table is not None and (index._table is not table or index._name != column.name):
        column.type = index = index.copy()  # one type object shared by two columns
    index._table, index._name = table, column.name
    index._source_column = None


# -- ORM: computing the index at flush -----------------------------------------------------


@attrs.frozen(eq=False)
class _Bound:
    """One blind index of a mapped class: its attribute, its source's attribute, its type."""

    key: str
    source_key: str
    index: BlindIndex

    def value(self, state: InstanceState[Any], connection: Any = None) -> bytes | None:
        """The index of the instance's current source value (its plaintext), in the
        schema the flush's *connection* writes the table to."""
        value = state.dict.get(self.source_key)
        if type(value) is Sealed:  # encrypt_rows sealed it first: read the plaintext
            value = state.info.get(_PLAIN, {}).get(self.source_key, value)
            if type(value) is Sealed:
                raise ConfigurationError(
                    f"{state.class_.__name__}.{self.source_key} holds a sealed token, not its "
                    f"plaintext: {self.key} cannot be computed"
                )
        if value is None or value is ERASED:
            return None
        if connection is None:
            return self.index.token(value)
        own = self.index.source_type.schema
        return self.index.token(value, schema=schema_under(own, connection_map(connection)))


_indexes: dict[Mapper[Any], tuple[_Bound, ...]] = {}


def _source_key(mapper: Mapper[Any], key: str, index: BlindIndex) -> str:
    """The attribute of *mapper* that is the source of *index* (declared on *key*)."""
    source, name = index.source, mapper.class_.__name__
    if isinstance(source, str):
        if source in mapper.column_attrs:
            return source
        # Not an attribute name: maybe the column's name, where it differs.
        column = index._table.c.get(source) if index._table is not None else None
        if column is None:
            raise ConfigurationError(
                f"{name}.{key}: the source of its blind index, {source!r}, is not a column "
                f"attribute of {name}"
            )
    else:
        column = source
    try:
        return mapper.get_property_by_column(column).key
    except Exception:  # UnmappedColumnError
        raise ConfigurationError(
            f"{name}.{key}: the source of its blind index is not a mapped column of {name}"
        ) from None


@event.listens_for(Mapper, "mapper_configured")
def _register_mapper(mapper: Mapper[Any], class_: type[Any]) -> None:
    """Register the blind indexes of a mapped class and the events that compute them."""
    bounds = []
    for prop in mapper.column_attrs:
        index = prop.columns[0].type
        if isinstance(index, BlindIndex):
            source_key = _source_key(mapper, prop.key, index)
            index._use_source(mapper.column_attrs[source_key].columns[0])  # type: ignore[arg-type]
            bounds.append(_Bound(prop.key, source_key, index))
    if not bounds:
        return
    _indexes[mapper] = found = tuple(bounds)

    def before_insert(mapper: Mapper[Any], connection: Any, target: Any) -> None:
        state: InstanceState[Any] = inspect(target)
        for bound in found:
            setattr(target, bound.key, bound.value(state, connection))

    def before_update(mapper: Mapper[Any], connection: Any, target: Any) -> None:
        state: InstanceState[Any] = inspect(target)
        for bound in found:
            changed = (
                get_history(target, key, passive=PASSIVE_NO_INITIALIZE).has_changes()
                for key in (bound.source_key, bound.key)
            )
            if not any(changed):
                continue
            if bound.source_key not in state.dict:
                raise ConfigurationError(
                    f"{class_.__name__}.{bound.key} changed but {bound.source_key} is not "
                    "loaded: the index is computed from it, load it first"
                )
            setattr(target, bound.key, bound.value(state, connection))

    # insert=True: run before encrypt_rows replaces the plaintexts by sealed tokens.
    event.listen(mapper, "before_insert", before_insert, insert=True)
    event.listen(mapper, "before_update", before_update, insert=True)


@event.listens_for(Session, "before_flush")
def _prepare_index_keys(session: Session, flush_context: Any, instances: Any) -> None:
    """Load (or create) the index keys a flush will need before it writes anything.

    A subject-scoped model may never have used its columns' own scopes; on SQLite, a key
    created during the flush from another connection would wait for the flush's lock.
    """
    seen: set[int] = set()
    for target in (*session.new, *session.dirty):
        mapper = inspect(target).mapper
        for bound in _indexes.get(mapper, ()):
            if id(bound.index) not in seen:
                seen.add(id(bound.index))
                source = bound.index.source_type
                connection = session.connection(bind_arguments={"mapper": mapper})
                schema = schema_under(source.schema, connection_map(connection))
                source.resolve_keyring().keyset(source.scope_name(schema=schema))


def reindex(*instances: Any) -> None:
    """Recompute the blind indexes of loaded *instances* under the active key.

    The next flush writes those that changed. Use it after a key rotation, once the
    rows' values are re-encrypted, before the old key version is disabled; or after
    changing a normaliser. The index of an erased value (`ERASED`) becomes NULL.
    """
    for instance in instances:
        state: InstanceState[Any] = inspect(instance)
        for bound in _indexes.get(state.mapper, ()):
            getattr(instance, bound.source_key)  # load it if expired
            setattr(instance, bound.key, bound.value(state))
