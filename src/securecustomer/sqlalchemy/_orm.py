"""Row binding and subject scoping for ORM models: encrypt at flush, decrypt at load.

A column type alone cannot see the rest of its row, so models that bind values to their
row or to their data subject are encrypted by mapper events instead:

- ``before_flush`` creates (or loads) the subject keys the flush will need, before any
  SQL of the flush runs;
- ``before_insert`` / ``before_update`` replace plaintexts by `Sealed` tokens encrypted
  with the row's context, and ``after_insert`` / ``after_update`` put the plaintexts
  back as committed values, so the application never sees a token;
- ``load`` / ``refresh`` decrypt tokens with the row's context; a SELECT of many rows
  decrypts them in one batch after one key-store read for all their subjects.
"""

from __future__ import annotations

import contextvars
import weakref
from typing import Any, Literal

import attrs
from sqlalchemy import event, inspect
from sqlalchemy.engine import Result
from sqlalchemy.orm import Mapper, ORMExecuteState, Session
from sqlalchemy.orm.attributes import (
    flag_modified,
    get_history,
    instance_state,
    set_committed_value,
)
from sqlalchemy.orm.base import NO_VALUE, PASSIVE_NO_INITIALIZE
from sqlalchemy.orm.state import InstanceState

from securecustomer.crypto import Context
from securecustomer.exceptions import ConfigurationError, KeyDestroyedError
from securecustomer.keys import Keyring
from securecustomer.sqlalchemy._schemas import SchemaMap, connection_map, schema_under
from securecustomer.sqlalchemy._types import OWN, Encrypted, Sealed, _Own

__all__ = ["ERASED", "RowEncryption", "encrypt_rows"]


class _Erased:
    """The value of a field whose subject key was destroyed (``on_destroyed="erased"``)."""

    _instance: _Erased | None = None

    def __new__(cls) -> _Erased:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ERASED"

    def __bool__(self) -> bool:
        return False


#: Stands for a value whose data subject was erased (crypto-shredded).
ERASED: Any = _Erased()

_PLAIN = "securecustomer.plaintexts"
_SEALED = "securecustomer.sealed"
_pending: contextvars.ContextVar[list[tuple[RowEncryption, Any]] | None] = contextvars.ContextVar(
    "securecustomer_pending_loads", default=None
)


@attrs.frozen(eq=False)
class RowEncryption:
    """How the encrypted columns of one model are bound to their row and subject.

    Made by `encrypt_rows`; its methods are what the ORM events call, and what Core
    code calls to read or write such rows by hand.
    """

    mapper: Mapper[Any]
    row: str | None
    subject: str | None
    subject_prefix: str
    on_destroyed: Literal["raise", "erased"]
    columns: dict[str, Encrypted]

    def scope(
        self,
        column_type: Encrypted,
        instance_values: dict[str, Any],
        *,
        schema: str | _Own | None = OWN,
    ) -> str:
        """The key scope of a column in a row: the subject's, or the column's own (in its
        table's schema, or in *schema*)."""
        if self.subject is None:
            return column_type.scope_name(schema=schema)
        subject = instance_values.get(self.subject)
        if subject is None:
            raise ConfigurationError(
                f"{self.mapper.class_.__name__}.{self.subject} is None: a subject-scoped row "
                "needs its subject before it is written or read"
            )
        return f"{self.subject_prefix}{subject}"

    def context(
        self,
        column_type: Encrypted,
        instance_values: dict[str, Any],
        *,
        schema: str | _Own | None = OWN,
    ) -> Context:
        """The encryption context of a column in a row (in its table's schema, or in
        *schema*: where a ``schema_translate_map`` puts the table)."""
        if self.row is None:
            return column_type.column_context(schema=schema)
        identity = instance_values.get(self.row)
        if identity is None:
            raise ConfigurationError(
                f"{self.mapper.class_.__name__}.{self.row} is None: a row-bound model needs "
                "its row identity before the row is written (use a client-side default such "
                "as uuid.uuid4, which encrypt_rows applies at flush)"
            )
        if isinstance(identity, bytes):
            identity = identity.hex()
        return column_type.column_context(row=identity, schema=schema)

    def keyring(self) -> Keyring:
        return next(iter(self.columns.values())).resolve_keyring()

    def seal(
        self,
        key: str,
        value: Any,
        instance_values: dict[str, Any],
        *,
        schema_map: SchemaMap | None = None,
    ) -> Sealed:
        """Encrypt *value* of column *key* for the row whose values are *instance_values*,
        in the schema its table has under *schema_map* (a ``schema_translate_map``)."""
        column_type = self.columns[key]
        column_type.check_value(value)
        schema = schema_under(column_type.schema, schema_map)
        keyring = column_type.resolve_keyring()
        cipher = keyring.cipher(
            self.scope(column_type, instance_values, schema=schema),
            deterministic=column_type.deterministic,
        )
        context = self.context(column_type, instance_values, schema=schema)
        return Sealed(cipher.encrypt(value, context=context))

    def open(self, key: str, sealed: Sealed, instance_values: dict[str, Any]) -> Any:
        """Decrypt the *sealed* value of column *key* in the row *instance_values*.

        A token read under a ``schema_translate_map`` carries the schema it was read from.
        """
        column_type = self.columns[key]
        schema = sealed.schema if sealed.translated else column_type.schema
        keyring = column_type.resolve_keyring()
        cipher = keyring.cipher(
            self.scope(column_type, instance_values, schema=schema),
            deterministic=column_type.deterministic,
            create=False,
        )
        context = self.context(column_type, instance_values, schema=schema)
        try:
            return cipher.decrypt(sealed.token, context=context)
        except KeyDestroyedError:
            if self.on_destroyed == "erased":
                return ERASED
            raise

    # -- event handlers -----------------------------------------------------------------

    def _ensure_row_identity(self, target: Any) -> None:
        if self.row is None or getattr(target, self.row) is not None:
            return
        column = self.mapper.columns[self.row]
        default = column.default
        if default is None or not (default.is_scalar or default.is_callable):
            raise ConfigurationError(
                f"{self.mapper.class_.__name__}.{self.row} has no value and no client-side "
                "default: a row-bound model needs its identity before the INSERT (for example "
                "mapped_column(primary_key=True, default=uuid.uuid4))"
            )
        value = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
        setattr(target, self.row, value)

    def _seal_all(self, target: Any, keys: list[str], connection: Any) -> None:
        state: InstanceState[Any] = inspect(target)
        values = state.dict
        plain = state.info.setdefault(_PLAIN, {})
        schema_map = connection_map(connection)  # the flush's schema_translate_map
        if state.session is not None:  # a failed flush expunges new objects: keep track here
            state.session.info.setdefault(_SEALED, weakref.WeakSet()).add(target)
        for key in keys:
            value = plain.get(key, values.get(key))  # after a failed flush: the plaintext
            if value is None or type(value) is Sealed:
                continue
            plain[key] = value
            values[key] = self.seal(key, value, values, schema_map=schema_map)
            flag_modified(target, key)  # an UPDATE must write it even if the value is unchanged

    def _restore(self, target: Any) -> None:
        state: InstanceState[Any] = inspect(target)
        for key, value in state.info.pop(_PLAIN, {}).items():
            set_committed_value(target, key, value)

    def before_insert(self, mapper: Mapper[Any], connection: Any, target: Any) -> None:
        self._ensure_row_identity(target)
        self._seal_all(target, list(self.columns), connection)

    def before_update(self, mapper: Mapper[Any], connection: Any, target: Any) -> None:
        rebind = [a for a in (self.row, self.subject) if a is not None]
        passive = PASSIVE_NO_INITIALIZE  # never load attributes during the flush
        if any(get_history(target, attr, passive).has_changes() for attr in rebind):
            keys = list(self.columns)  # new row or subject: every value is re-encrypted
            missing = [k for k in keys if k not in inspect(target).dict]
            if missing:
                raise ConfigurationError(
                    f"changing {', '.join(rebind)} re-encrypts every encrypted column, but "
                    f"{', '.join(missing)} are not loaded: load them first"
                )
        else:
            keys = [k for k in self.columns if get_history(target, k, passive).added]
        self._seal_all(target, keys, connection)

    def after_write(self, mapper: Mapper[Any], connection: Any, target: Any) -> None:
        self._restore(target)

    def on_load(self, target: Any, context: Any) -> None:
        pending = _pending.get()
        if pending is not None:
            pending.append((self, target))
        else:
            self.open_all(target)

    def on_refresh(self, target: Any, context: Any, attrs_: Any) -> None:
        self.open_all(target)

    def open_all(self, target: Any) -> None:
        """Decrypt every sealed column of a loaded instance, in place.

        The tokens were written with the row identity and subject the database holds,
        which differ from the instance's while a change to them is pending.
        """
        state: InstanceState[Any] = inspect(target)
        values = state.dict
        stored = {
            attr: state.committed_state[attr]
            for attr in (self.row, self.subject)
            if attr is not None and state.committed_state.get(attr, NO_VALUE) is not NO_VALUE
        }
        if stored:
            values = {**values, **stored}
        for key in self.columns:
            value = values.get(key)
            if type(value) is Sealed:
                set_committed_value(target, key, self.open(key, value, values))

    def scopes_of(self, target: Any) -> set[str]:
        values = inspect(target).dict
        if self.subject is None:
            return set()
        return {self.scope(t, values) for t in self.columns.values()}


_registry: dict[Mapper[Any], RowEncryption] = {}
_columns_of: weakref.WeakKeyDictionary[Mapper[Any], list[Encrypted]] = weakref.WeakKeyDictionary()


def _keep_old_value(target: Any, value: Any, old: Any, initiator: Any) -> Any:
    return value


def encrypt_rows(
    model: type[Any],
    *,
    row: str | None = None,
    subject: str | None = None,
    subject_prefix: str = "subject:",
    on_destroyed: Literal["raise", "erased"] = "raise",
) -> RowEncryption:
    """Bind the encrypted columns of *model* to their row and/or their data subject.

    Parameters:
        row: the attribute whose value identifies the row (usually a client-side
            primary key such as a UUID). It joins the associated data, so a value copied
            to another row fails to decrypt. When it is None at insert, its client-side
            default (``default=uuid.uuid4``) is applied before encryption.
        subject: the attribute naming the data subject (e.g. ``"customer_id"``). Values
            are encrypted under the key scope ``subject_prefix + str(value)``, so that
            `Keyring.destroy` of that scope erases the subject's values in every table.
        on_destroyed: what loading a value of a destroyed subject does: ``"raise"``
            (`KeyDestroyedError`) or ``"erased"`` (the attribute becomes `ERASED`).

    Example:
        ```python
        class Order(Base):
            __tablename__ = "orders"
            id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
            customer_id: Mapped[int]
            address: Mapped[str] = mapped_column(EncryptedString())

        encrypt_rows(Order, row="id", subject="customer_id")
        ```
    """
    if row is None and subject is None:
        raise ConfigurationError("encrypt_rows() needs row=, subject= or both")
    if on_destroyed not in ("raise", "erased"):
        raise ConfigurationError('on_destroyed must be "raise" or "erased"')
    mapper: Mapper[Any] = inspect(model)
    for name in (row, subject):
        if name is not None and name not in mapper.column_attrs:
            raise ConfigurationError(f"{model.__name__} has no column attribute {name!r}")
    columns = {
        prop.key: prop.columns[0].type
        for prop in mapper.column_attrs
        if isinstance(prop.columns[0].type, Encrypted)
    }
    if not columns:
        raise ConfigurationError(f"{model.__name__} has no encrypted columns")
    if mapper in _registry:
        raise ConfigurationError(f"encrypt_rows() was already called for {model.__name__}")
    config = RowEncryption(mapper, row, subject, subject_prefix, on_destroyed, columns)
    for column_type in columns.values():
        column_type._binding.row_bound = True  # shared with its dialect copies
    for attr in (row, subject):  # keep the stored value when it changes: see open_all
        if attr is not None:
            event.listen(getattr(model, attr), "set", _keep_old_value, active_history=True)
    event.listen(mapper, "before_insert", config.before_insert)
    event.listen(mapper, "before_update", config.before_update)
    event.listen(mapper, "after_insert", config.after_write)
    event.listen(mapper, "after_update", config.after_write)
    event.listen(mapper, "load", config.on_load)
    event.listen(mapper, "refresh", config.on_refresh)
    _registry[mapper] = config
    return config


@event.listens_for(Session, "before_flush")
def _prepare_keys(session: Session, flush_context: Any, instances: Any) -> None:
    """Create or load every data key the flush needs before the flush writes anything.

    On SQLite, a key created during the flush from another connection (a `SqlKeyStore`
    in the same database file) would wait for the flush's own write lock. Column scopes
    are worked out once per mapper; only row-bound and subject-scoped models look at
    each instance.
    """
    by_keyring: dict[int, tuple[Keyring, set[str]]] = {}
    done: set[Mapper[Any]] = set()
    maps: dict[Mapper[Any], SchemaMap | None] = {}

    def want(column_type: Encrypted, scope: str) -> None:
        keyring = column_type.resolve_keyring()
        by_keyring.setdefault(id(keyring), (keyring, set()))[1].add(scope)

    def schema_of(mapper: Mapper[Any], column_type: Encrypted) -> str | None:
        if mapper not in maps:  # the schema_translate_map of the connection the flush uses
            connection = session.connection(bind_arguments={"mapper": mapper})
            maps[mapper] = connection_map(connection)
        return schema_under(column_type.schema, maps[mapper])

    for target in (*session.new, *session.dirty):
        state: InstanceState[Any] = instance_state(target)
        mapper = state.mapper
        config = _registry.get(mapper)
        if config is None:
            if mapper not in done:
                done.add(mapper)
                for column_type in _encrypted_columns(mapper):
                    if column_type._names is not None and not column_type._binding.row_bound:
                        schema = schema_of(mapper, column_type)
                        want(column_type, column_type.scope_name(schema=schema))
            continue
        if config.row is not None:
            config._ensure_row_identity(target)
        values = state.dict
        if config.subject is not None and values.get(config.subject) is None:
            continue
        for column_type in config.columns.values():
            schema = schema_of(mapper, column_type)
            want(column_type, config.scope(column_type, values, schema=schema))
    for keyring, scopes in by_keyring.values():
        keyring.prefetch(scopes)
        for scope in scopes:
            keyring.keyset(scope)  # creates the first key of a new scope


def _encrypted_columns(mapper: Mapper[Any]) -> list[Encrypted]:
    found = _columns_of.get(mapper)
    if found is None:
        found = _columns_of[mapper] = [
            c.type for c in mapper.columns if isinstance(c.type, Encrypted)
        ]
    return found


@event.listens_for(Session, "after_soft_rollback")
def _restore_after_failed_flush(session: Session, previous_transaction: Any) -> None:
    """Put plaintexts back into instances whose flush failed after they were sealed.

    A retried flush then encrypts them again, for the row and subject they have then.
    """
    for target in list(session.info.pop(_SEALED, ())):
        state: InstanceState[Any] = inspect(target)
        config = _registry.get(state.mapper)
        if config is not None and _PLAIN in state.info:
            config._restore(target)


@event.listens_for(Session, "after_commit")
def _forget_sealed(session: Session) -> None:
    session.info.pop(_SEALED, None)


@event.listens_for(Session, "do_orm_execute")
def _decrypt_in_batches(state: ORMExecuteState) -> Result[Any] | None:
    """Decrypt the rows of a SELECT of protected models after one key read for all subjects."""
    if not state.is_select or _pending.get() is not None:
        return None
    if not any(m in _registry for m in state.all_mappers):
        return None
    options = state.execution_options
    if options.get("yield_per") or options.get("stream_results"):
        return None  # streamed: rows are decrypted one at a time as they load
    pending: list[tuple[RowEncryption, Any]] = []
    token = _pending.set(pending)
    try:
        frozen = state.invoke_statement().freeze()
    finally:
        _pending.reset(token)
    by_keyring: dict[int, tuple[Keyring, set[str]]] = {}
    for config, target in pending:
        scopes = config.scopes_of(target)
        if scopes:
            keyring = config.keyring()
            by_keyring.setdefault(id(keyring), (keyring, set()))[1].update(scopes)
    for keyring, scopes in by_keyring.values():
        keyring.prefetch(scopes)
    for config, target in pending:
        config.open_all(target)
    return frozen()
