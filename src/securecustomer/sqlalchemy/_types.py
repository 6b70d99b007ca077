"""Encrypted column types: one TypeDecorator, bound to its table and column on attach."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import sys
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar, Literal

from sqlalchemy import Column, LargeBinary, Table, Text, event
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.types import TypeDecorator, TypeEngine
from typing_extensions import TypeVar

from securecustomer.crypto import Context, FieldCipher
from securecustomer.exceptions import (
    ConfigurationError,
    DecryptionError,
    SecureCustomerError,
    UnsupportedQueryError,
    UnsupportedValueError,
)
from securecustomer.keys import Keyring
from securecustomer.sqlalchemy._keyring_slot import KeyringSlot, Sealed, default_keyring
from securecustomer.sqlalchemy._refusal import _UNWRAPPED as _UNWRAPPED
from securecustomer.sqlalchemy._refusal import _deferred as _deferred
from securecustomer.sqlalchemy._refusal import _permits as _permits
from securecustomer.sqlalchemy._refusal import _refusal as _refusal
from securecustomer.sqlalchemy._refusal import _unwrapped as _unwrapped
from securecustomer.sqlalchemy._schemas import (
    _current,
    current_map,
    kept,
    register_result_processor,
)

__all__ = [
    "Encrypted",
    "EncryptedBytes",
    "EncryptedDate",
    "EncryptedDateTime",
    "EncryptedInteger",
    "EncryptedJSON",
    "EncryptedNumeric",
    "EncryptedString",
    "EncryptedText",
    "EncryptedUUID",
    "KeyringSlot",
    "Sealed",
    "default_keyring",
]

#: The most bytes a stored token may take, by dialect, unless ``length=`` says less.
#: MySQL and MariaDB: a BLOB or TEXT holds 64 KiB; `Encrypted._large` columns are LONGBLOB
#: or LONGTEXT there (4 GiB). PostgreSQL: 1 GB a field; SQLite: SQLITE_MAX_LENGTH.
_MYSQL = frozenset({"mysql", "mariadb"})
_MYSQL_BLOB = 65_535
_MYSQL_LONG = 2**32 - 1
_MAX_STORED = {"postgresql": 2**30 - 1, "sqlite": 1_000_000_000}


class _Binding:
    """Whether a column is row-bound: shared by its type and the type's dialect copies.

    SQLAlchemy makes one shallow copy of the type per dialect on first use (and caches
    its bind and result processors); a flag set on the type afterwards would not reach
    those copies, but this object does, so `encrypt_rows` binds a column whenever it
    is called. A copy of the type attached to another column gets its own (see
    `_bind_column_names`): *owner* is the type the state belongs to.
    """

    __slots__ = ("owner", "row_bound")

    def __init__(self, owner: Encrypted, row_bound: bool = False) -> None:
        self.owner = owner
        self.row_bound = row_bound


class _Own(enum.Enum):
    OWN = "the schema of the column's table"


#: The ``schema=`` default of `Encrypted`'s methods: the schema of the column's own table.
OWN = _Own.OWN

#: The Python type of a column's values; a bare ``Encrypted`` means ``Encrypted[Any]``.
_T = TypeVar("_T", default=Any)


class Encrypted(TypeDecorator[_T]):
    """A column whose values are encrypted before they reach the database.

    Values are bound to the column's schema (when its table has one), table and name
    (and key scope), so a token copied to another column, or to the same table of another
    schema (another tenant), fails to decrypt. The schema is the table's ``schema``, as
    renamed by a ``schema_translate_map`` execution option where one is in effect. Tokens
    are stored as binary by default; ``storage="text"`` stores them as base64 in a text
    column.

    Parameters:
        value_type: the type of the values (``str``, ``int``, ``Decimal``, ...).
        keyring: a `Keyring`, or a `KeyringSlot` bound later; default `default_keyring`.
        scope: the key scope; default ``"<table>.<column>"``, and
            ``"<schema>.<table>.<column>"`` for a table in a schema.
        deterministic: AES-SIV, so equal values give equal tokens and ``==`` / ``IN``
            filters work; it reveals which rows hold equal values.
        storage: ``"binary"`` (BYTEA / BLOB / VARBINARY) or ``"text"`` (base64).
        context: ``(table, column)`` to bind instead of the real names, so that a
            column can be renamed without re-encrypting it. The schema is bound all the
            same.
        length: the most bytes a stored token may take (base64 characters with
            ``storage="text"``); a longer one is refused before it is written. It sizes
            the column on MySQL and MariaDB. Without it, a column holds what its
            database type holds (on MySQL and MariaDB: 64 KiB, or 4 GiB for
            `EncryptedText`, `EncryptedJSON` and `EncryptedBytes`).

    ``Encrypted`` is generic in its value type, and `EncryptedString` and its siblings are
    its subclasses for one type each (``EncryptedString`` is an ``Encrypted[str]``). A
    plugin subclasses either; a subclass sets ``cache_ok = True`` itself (SQLAlchemy does
    not inherit it) and, when it subclasses ``Encrypted``, its ``python_types``.

    Example:
        ```python
        class Customer(Base):
            __tablename__ = "customers"
            id: Mapped[int] = mapped_column(primary_key=True)
            email: Mapped[str] = mapped_column(EncryptedString())

        class Email(EncryptedString):  # a plugin's own column type
            cache_ok = True
        ```
    """

    impl = LargeBinary
    cache_ok = True
    python_types: ClassVar[tuple[type, ...]] = ()
    #: Values may be large: LONGBLOB / LONGTEXT on MySQL and MariaDB.
    _large: ClassVar[bool] = False

    def __init__(
        self,
        value_type: type[_T] | None = None,
        *,
        keyring: Keyring | KeyringSlot | None = None,
        scope: str | None = None,
        deterministic: bool = False,
        storage: Literal["binary", "text"] = "binary",
        context: tuple[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        if value_type is not None:
            accepted = _PYTHON_TYPES.get(value_type)
            if accepted is None:
                raise ConfigurationError(
                    f"Encrypted() does not support {value_type!r}; use one of "
                    + ", ".join(t.__name__ for t in _PYTHON_TYPES)
                )
            self.python_types = accepted  # type: ignore[misc]
        elif not self.python_types:
            raise ConfigurationError("Encrypted() needs a value type, e.g. Encrypted(str)")
        if storage not in ("binary", "text"):
            raise ConfigurationError('storage must be "binary" or "text"')
        if context is not None and (
            len(context) != 2 or not all(isinstance(p, str) and p for p in context)
        ):
            raise ConfigurationError("context must be a (table, column) pair of non-empty str")
        if length is not None and (type(length) is not int or length < 1):
            raise ConfigurationError(f"length must be a positive int, got {length!r}")
        if value_type in (bytes, dict, list):
            self._large = True  # type: ignore[misc]
        self.value_type = value_type
        self.keyring = keyring
        self.scope = scope
        self.deterministic = deterministic
        self.storage = storage
        self.context = context
        self.length = length
        #: (table, column) names bound when the column joins a table.
        self._names: tuple[str, str] | None = context
        #: The schema of the table, bound with the names (None: a table without one).
        self._schema: str | None = None
        self._attached = False
        self._column_context: Context | None = None
        #: Its row_bound is set by `encrypt_rows`: the ORM encrypts with the row's context.
        self._binding = _Binding(self)
        self._lock = threading.Lock()
        self._cipher: tuple[Keyring, FieldCipher] | None = None
        #: Ciphers of schemas that a schema_translate_map gives the table, by schema.
        self._schema_ciphers: dict[str | None, tuple[Keyring, FieldCipher]] = {}
        super().__init__()

    @property
    def _static_cache_key(self) -> tuple[Any, ...]:
        # SQLAlchemy derives the key from positional __init__ arguments only; these are
        # keyword-only, and two columns with different keyrings must never share a
        # compiled statement.
        return (
            type(self),
            ("value_type", self.value_type),
            ("keyring", self.keyring),
            ("scope", self.scope),
            ("deterministic", self.deterministic),
            ("storage", self.storage),
            ("context", self.context),
            ("length", self.length),
            ("names", self._names),
            ("schema", self._schema),
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_cipher"] = None  # never pickle key material
        state["_schema_ciphers"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def _row_bound(self) -> bool:
        """Whether `encrypt_rows` binds this column (read through `_binding`)."""
        return self._binding.row_bound

    @_row_bound.setter
    def _row_bound(self, value: bool) -> None:
        self._binding.row_bound = value

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        text = self.storage == "text"
        impl: TypeEngine[Any] = Text() if text else LargeBinary()
        if dialect.name in _MYSQL:  # where a BLOB or TEXT is cut at 64 KiB
            if self.length is not None:
                impl = Text(self.length) if text else LargeBinary(self.length)
            elif self._large:
                # here, not at the top: the MySQL dialect costs 7 ms to import
                from sqlalchemy.dialects.mysql import LONGBLOB, LONGTEXT

                impl = LONGTEXT() if text else LONGBLOB()
        return dialect.type_descriptor(impl)

    def __repr__(self) -> str:
        args = [] if self.value_type is None else [self.value_type.__name__]
        args += [
            f"{name}={value!r}"
            for name, value, default in (
                ("scope", self.scope, None),
                ("deterministic", self.deterministic, False),
                ("storage", self.storage, "binary"),
                ("context", self.context, None),
                ("length", self.length, None),
            )
            if value != default
        ]
        return f"{type(self).__name__}({', '.join(args)})"

    # -- binding ------------------------------------------------------------------------

    def bind_names(self, table: str, column: str, schema: str | None = None) -> None:
        """Bind the table and column names and the table's schema (done for you when the
        column joins a table)."""
        if self.context is None:
            self._names = (str(table), str(column))  # not quoted_name: it is bound as text
        self._schema = None if schema is None else str(schema)
        self._attached = True
        self._column_context = None
        self._cipher = None
        self._schema_ciphers = {}

    @property
    def names(self) -> tuple[str, str]:
        """The (table, column) pair bound into every token of this column."""
        if self._names is None:
            raise ConfigurationError(
                f"{self!r} is not attached to a table column: declare it on a Column of a "
                "Table, or pass context=(table, column)"
            )
        return self._names

    @property
    def schema(self) -> str | None:
        """The schema of the column's table, None when the table has none."""
        return self._schema

    def column_context(
        self, row: str | int | uuid.UUID | None = None, *, schema: str | _Own | None = OWN
    ) -> Context:
        """The encryption context of this column, optionally bound to a row.

        *schema* is the schema the table is in (default: its own; pass the schema a
        ``schema_translate_map`` gives it).
        """
        if schema is OWN:
            if row is None:
                cached = self._column_context
                if cached is None:
                    cached = self._column_context = Context(*self.names, schema=self._schema)
                return cached
            schema = self._schema
        table, column = self.names
        return Context(table, column, row=row, schema=schema)

    def resolve_keyring(self) -> Keyring:
        """The keyring this column uses now."""
        source = self.keyring if self.keyring is not None else default_keyring
        return source.get() if isinstance(source, KeyringSlot) else source

    def scope_name(self, *, schema: str | _Own | None = OWN) -> str:
        """The key scope of this column (in its table's own schema, or in *schema*)."""
        if self.scope is not None:
            return self.scope
        if schema is OWN:
            schema = self._schema
        return ".".join(self.names if schema is None else (schema, *self.names))

    def cipher(self, *, schema: str | _Own | None = OWN) -> FieldCipher:
        """The FieldCipher of this column's scope under the current keyring."""
        if schema is not OWN and schema != self._schema:
            return self._cipher_in(schema)
        # resolve_keyring(), inlined: this runs once per value. A slot is read once, so
        # a concurrent rebind gives the old or the new keyring, never None.
        source = self.keyring
        if source is None:
            source = default_keyring
        if type(source) is KeyringSlot:
            keyring = source._keyring
            if keyring is None:
                keyring = source.get()  # raises ConfigurationError: not bound
        else:
            keyring = source.get() if isinstance(source, KeyringSlot) else source
        cached = self._cipher
        if cached is None or cached[0] is not keyring:
            with self._lock:
                with kept():  # a key-store read may execute SQL while parameters are bound
                    cipher = keyring.cipher(
                        self.scope_name(), deterministic=self.deterministic, create=False
                    )  # a read creates no key; the first write does
                self._cipher = cached = (keyring, cipher)
        return cached[1]

    def _cipher_in(self, schema: str | None) -> FieldCipher:
        """The FieldCipher of this column's scope when its table is in *schema*."""
        keyring = self.resolve_keyring()
        cached = self._schema_ciphers.get(schema)
        if cached is None or cached[0] is not keyring:
            with self._lock, kept():
                cipher = keyring.cipher(
                    self.scope_name(schema=schema), deterministic=self.deterministic, create=False
                )
                self._schema_ciphers[schema] = cached = (keyring, cipher)
        return cached[1]

    # -- values -------------------------------------------------------------------------

    def check_value(self, value: object) -> None:
        """Raise `UnsupportedValueError` unless *value* has this column's type."""
        if type(value) not in self.python_types:
            table, column = self._names or ("?", "?")
            expected = " or ".join(t.__name__ for t in self.python_types)
            kind = type(value)
            got = kind.__qualname__
            base = next((t for t in self.python_types if isinstance(value, t)), None)
            if base is not None:  # a subclass: an enum of str, a bool, a datetime for a date
                if kind.__module__ != "builtins":
                    got = f"{kind.__module__}.{got}"
                got += f", a subclass of {base.__name__}; convert it first"
            raise UnsupportedValueError(f"{table}.{column} holds {expected} values, got {got}")

    def max_stored_size(self, dialect: Dialect) -> int | None:
        """The most bytes a stored token may take in this column on *dialect*."""
        if dialect.name in _MYSQL:
            limit: int | None = _MYSQL_LONG if self._large else _MYSQL_BLOB
        else:
            limit = _MAX_STORED.get(dialect.name)
        if self.length is not None and (limit is None or self.length < limit):
            limit = self.length
        return limit

    def check_stored_size(self, stored: bytes | str, dialect: Dialect) -> None:
        """Raise `UnsupportedValueError` if *stored* is longer than this column holds."""
        limit = self.max_stored_size(dialect)
        if limit is not None and len(stored) > limit:
            table, column = self._names or ("?", "?")
            bound = (
                f"its declared length={self.length}"
                if limit == self.length
                else f"what the column holds on {dialect.name} ({limit:,} bytes)"
            )
            raise UnsupportedValueError(
                f"{table}.{column}: the encrypted value takes {len(stored):,} bytes, more "
                f"than {bound}; nothing was written"
            )

    def encode_token(self, token: bytes) -> bytes | str:
        """The stored form of *token* (bytes, or base64 text)."""
        return base64.b64encode(token).decode("ascii") if self.storage == "text" else token

    def decode_token(self, stored: object) -> bytes:
        """The token bytes of a stored value."""
        if self.storage == "text":
            if not isinstance(stored, str):
                raise DecryptionError("the stored value is not base64 text")
            try:
                return base64.b64decode(stored, validate=True)
            except binascii.Error:
                raise DecryptionError("the stored value is not valid base64") from None
        if isinstance(stored, (bytes, bytearray, memoryview)):
            return bytes(stored)
        raise DecryptionError(f"the stored value is {type(stored).__qualname__}, not bytes")

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """Bind tokens as ``bytes``, without the DB-API ``Binary`` wrapper of `LargeBinary`.

        Every driver the library is tested with (sqlite3, psycopg, pymysql, aiosqlite,
        asyncpg, asyncmy) binds ``bytes`` as binary data; the wrapper only costs time
        (about a third of an insert of short values on SQLite). Text storage keeps it.
        """
        if self.storage == "text":
            return super().bind_processor(dialect)
        process_param = self.process_bind_param
        column_type = self
        types = self.python_types
        limit = self.max_stored_size(dialect) or sys.maxsize
        binding = self._binding  # shared with the type: encrypt_rows() after this call
        schema_map = _current.get  # the map of the statement being executed (usually None)

        def process(value: Any) -> Any:
            # The common case (a value of the column's type, a warm cipher for the keyring
            # bound now) without method calls; everything else in process_bind_param.
            cached = column_type._cipher
            context = column_type._column_context
            if (
                cached is not None
                and context is not None
                and type(value) in types
                and not binding.row_bound
                and schema_map() is None
            ):
                source = column_type.keyring
                if source is None:
                    source = default_keyring
                keyring = source._keyring if type(source) is KeyringSlot else source
                if cached[0] is keyring:
                    try:
                        token = cached[1].encrypt(value, context=context)
                    except SecureCustomerError as exc:
                        raise _unwrapped(exc) from exc.__cause__
                    if len(token) <= limit:
                        return token
                    # too long: process_bind_param() raises, naming the column
            return process_param(value, dialect)

        return process

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        try:
            if value is None:
                return None
            if type(value) is Sealed:
                stored = self.encode_token(value.token)
                self.check_stored_size(stored, dialect)
                return stored
            if self._binding.row_bound:
                raise UnsupportedQueryError(
                    f"{'.'.join(self.names)} is row-bound or subject-scoped: write it through "
                    "the ORM (the flush encrypts it with the row's context)"
                )
            if type(value) not in self.python_types:  # check_value()'s test, inlined
                self.check_value(value)  # raises UnsupportedValueError
            schema_map = current_map()
            context: Context | None
            if schema_map is not None and self._schema in schema_map:
                schema = schema_map[self._schema]  # the schema this statement writes to
                cipher = self.cipher(schema=schema)
                context = self.column_context(schema=schema)
            else:
                context = self._column_context  # column_context(), inlined when cached
                if context is None:
                    context = self.column_context()
                cipher = self.cipher()
            token = cipher.encrypt(value, context=context)
            stored = self.encode_token(token) if self.storage == "text" else token
            self.check_stored_size(stored, dialect)
            return stored
        except SecureCustomerError as exc:
            # SQLAlchemy wraps errors of bind processors in StatementError; ours reach
            # the caller as they are, so `except UnsupportedValueError` works.
            raise _unwrapped(exc) from exc.__cause__

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        processor = super().result_processor(dialect, coltype)
        if processor is not None:  # so that a result can be bound to a schema_translate_map
            register_result_processor(processor, self, dialect, coltype)
        return processor

    def _result_processor_in(
        self, dialect: Dialect, coltype: Any, schema: str | None
    ) -> Callable[[Any], Any]:
        """A result processor for this column when its table is read in *schema*."""
        impl = self.impl_instance.result_processor(dialect, coltype)
        context = self.column_context(schema=schema)

        def process(value: Any) -> Any:
            if impl is not None:
                value = impl(value)
            if value is None:
                return None
            token = value if type(value) is bytes and self.storage != "text" else None
            if token is None:
                token = self.decode_token(value)
            if self._row_bound:
                return Sealed(token, schema=schema, translated=True)
            return self.cipher(schema=schema).decrypt(token, context=context)

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if type(value) is bytes and self.storage != "text":
            token = value  # what decode_token() returns for it, without the call
        else:
            token = self.decode_token(value)
        if self._binding.row_bound:
            return Sealed(token)
        context = self._column_context  # column_context(), inlined when it is cached
        if context is None:
            context = self.column_context()
        return self.cipher().decrypt(token, context=context)

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        raise UnsupportedQueryError(
            "encrypted values are never rendered as SQL literals: use bound parameters"
        )

    def coerce_compared_value(self, op: OperatorType | None, value: Any) -> TypeEngine[Any]:
        return self

    class comparator_factory(TypeDecorator.Comparator[Any]):
        """Refuses SQL operators an encrypted column cannot answer (see `_refusal`).

        Constructs that apply no operator (``order_by(c)``, ``group_by(c)``,
        ``distinct()``, ``func.lower(c)``) are refused when the statement runs: see
        `_statements`.
        """

        def operate(self, op: OperatorType, *other: Any, **kwargs: Any) -> Any:
            column_type = self.type
            if (
                isinstance(column_type, Encrypted)
                and not _permits(column_type, self.expr, op, other)
                and not _deferred(op, other)
            ):
                raise _refusal(column_type, op)
            return super().operate(op, *other, **kwargs)

        def reverse_operate(self, op: OperatorType, other: Any, **kwargs: Any) -> Any:
            column_type = self.type
            if (
                isinstance(column_type, Encrypted)
                and not _permits(column_type, self.expr, op, (other,))
                and not _deferred(op, (other,))
            ):
                raise _refusal(column_type, op)
            return super().reverse_operate(op, other, **kwargs)


_PYTHON_TYPES: dict[type, tuple[type, ...]] = {
    str: (str,),
    bytes: (bytes,),
    int: (int,),
    Decimal: (Decimal,),
    dt.date: (dt.date,),
    dt.datetime: (dt.datetime,),
    uuid.UUID: (uuid.UUID,),
    dict: (dict, list),
    list: (dict, list),
}

# The column types: real classes, so that a plugin can subclass them and name them in
# annotations. Each sets `cache_ok` itself (SQLAlchemy does not inherit it), and all are
# shown by their public path (repr, Alembic, docs): `_PUBLIC_TYPES` sets ``__module__``.


class EncryptedString(Encrypted[str]):
    """An encrypted `str` column.

    Example:
        ```python
        email: Mapped[str] = mapped_column(EncryptedString())
        ```
    """

    cache_ok = True
    python_types = (str,)


class EncryptedText(Encrypted[str]):
    """An encrypted `str` column for long text (LONGBLOB on MySQL and MariaDB).

    Example:
        ```python
        notes: Mapped[str] = mapped_column(EncryptedText())
        ```
    """

    cache_ok = True
    python_types = (str,)
    _large = True


class EncryptedBytes(Encrypted[bytes]):
    """An encrypted `bytes` column (LONGBLOB on MySQL and MariaDB).

    Example:
        ```python
        photo: Mapped[bytes] = mapped_column(EncryptedBytes())
        ```
    """

    cache_ok = True
    python_types = (bytes,)
    _large = True


class EncryptedInteger(Encrypted[int]):
    """An encrypted `int` column (not `bool`: a bool is refused).

    Example:
        ```python
        salary: Mapped[int] = mapped_column(EncryptedInteger())
        ```
    """

    cache_ok = True
    python_types = (int,)


class EncryptedNumeric(Encrypted[Decimal]):
    """An encrypted `Decimal` column.

    Example:
        ```python
        balance: Mapped[Decimal] = mapped_column(EncryptedNumeric())
        ```
    """

    cache_ok = True
    python_types = (Decimal,)


class EncryptedDate(Encrypted[dt.date]):
    """An encrypted `datetime.date` column (not `datetime`: a datetime is refused).

    Example:
        ```python
        born: Mapped[datetime.date] = mapped_column(EncryptedDate())
        ```
    """

    cache_ok = True
    python_types = (dt.date,)


class EncryptedDateTime(Encrypted[dt.datetime]):
    """An encrypted, timezone-aware `datetime` column.

    Example:
        ```python
        seen: Mapped[datetime.datetime] = mapped_column(EncryptedDateTime())
        ```
    """

    cache_ok = True
    python_types = (dt.datetime,)


class EncryptedJSON(Encrypted[dict[str, Any] | list[Any]]):
    """An encrypted JSON (`dict`/`list`) column (LONGBLOB on MySQL and MariaDB).

    Example:
        ```python
        prefs: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON())
        ```
    """

    cache_ok = True
    python_types = (dict, list)
    _large = True


class EncryptedUUID(Encrypted[uuid.UUID]):
    """An encrypted `uuid.UUID` column.

    Example:
        ```python
        ref: Mapped[uuid.UUID] = mapped_column(EncryptedUUID())
        ```
    """

    cache_ok = True
    python_types = (uuid.UUID,)


_PUBLIC_TYPES: tuple[type[Encrypted], ...] = (
    Encrypted,
    EncryptedString,
    EncryptedText,
    EncryptedBytes,
    EncryptedInteger,
    EncryptedNumeric,
    EncryptedDate,
    EncryptedDateTime,
    EncryptedJSON,
    EncryptedUUID,
)
for _cls in _PUBLIC_TYPES:
    _cls.__module__ = "securecustomer.sqlalchemy"
del _cls


@event.listens_for(Column, "after_parent_attach")
def _bind_column_names(column: Column[Any], table: Any) -> None:
    """Bind each encrypted column's type to its table and column names."""
    column_type = column.type
    if not isinstance(column_type, Encrypted) or not isinstance(table, Table):
        return
    names = (table.name, column.name)
    schema = None if table.schema is None else str(table.schema)
    if column_type._attached and (
        column_type._schema != schema
        or (column_type.context is None and column_type._names != names)
    ):
        column.type = column_type = column_type.copy()  # one type object shared by two columns
    binding = column_type._binding
    if binding.owner is not column_type:  # a copied column's type (mixins, to_metadata, above)
        column_type._binding = _Binding(column_type, binding.row_bound)
    column_type.bind_names(*names, schema=schema)
