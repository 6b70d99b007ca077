"""The schema a statement really uses, under SQLAlchemy's ``schema_translate_map``.

Encrypted values are bound to the schema of their table (`Encrypted` binds
``Table.schema`` when the column joins its table). The schema-per-tenant setup renames
schemas at execution time instead: ``engine.execution_options(schema_translate_map={None:
"tenant_a"})``. SQLAlchemy compiles such a statement once, with placeholders, and applies
the map when it executes; bind and result processors are cached per dialect and never see
the map. So:

- **Parameters.** A ``before_execute`` listener on every `Engine` records the map of the
  statement about to execute in a context variable, and ``after_execute`` restores what
  was there before (executions nest: a Python-side default, or the key store, runs its
  own statement while parameters are processed). SQLAlchemy processes the parameters of
  a statement inside ``Connection.execute``, after ``before_execute`` and before
  ``after_execute``, in the same thread or task, so an encrypted column's bind processor
  reads the map of its own statement.
- **Results.** Rows are processed when they are fetched, possibly long after other
  statements ran. ``after_execute`` receives the statement's result before it is
  returned: when the map renames the schema of an encrypted column of the result, the
  result gets processors bound to the schema it read (the way SQLAlchemy itself replaces
  a result's metadata in ``CursorResult._rewind``), so the map travels with the result.
- **ORM writes** of row-bound models (`encrypt_rows`) and blind indexes are computed in
  mapper events, which receive the flush's connection: they read its map directly.

What cannot be known is refused, never guessed: a result whose encrypted columns the map
renames but whose processors cannot be found raises `UnsupportedQueryError`.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.engine.cursor import CursorResultMetaData

from securecustomer.exceptions import UnsupportedQueryError

if TYPE_CHECKING:
    from securecustomer.sqlalchemy._types import Encrypted

__all__: list[str] = []

SchemaMap = Mapping[str | None, str | None]

#: The schema_translate_map of the statement being executed (None: no map).
_current: contextvars.ContextVar[SchemaMap | None] = contextvars.ContextVar(
    "securecustomer_schema_translate_map", default=None
)
#: What _current held before each execution in progress, innermost last.
_saved: contextvars.ContextVar[tuple[SchemaMap | None, ...]] = contextvars.ContextVar(
    "securecustomer_schema_translate_saved", default=()
)
_MAX_SAVED = 64  # executions that failed never restore: do not grow without bound

#: Result processors of encrypted columns: processor -> (column type, dialect, coltype).
_result_processors: weakref.WeakKeyDictionary[Callable[[Any], Any], tuple[Encrypted, Dialect, Any]]
_result_processors = weakref.WeakKeyDictionary()


def current_map() -> SchemaMap | None:
    """The schema_translate_map of the statement whose parameters are being processed."""
    return _current.get()


def schema_under(own: str | None, schema_map: SchemaMap | None) -> str | None:
    """The schema a table whose own schema is *own* has under *schema_map*.

    As SQLAlchemy renders it: a schema that is a key of the map is replaced by its value,
    any other stays (None, a table without a schema, is a key like any other).
    """
    if schema_map is None or own not in schema_map:
        return own
    return schema_map[own]


def connection_map(connection: Any) -> SchemaMap | None:
    """The schema_translate_map of a Connection (its own and its engine's options)."""
    options = connection.get_execution_options()
    return options.get("schema_translate_map") or None


@contextmanager
def kept() -> Iterator[None]:
    """Keep the current map across a block that may execute statements of its own
    (key-store reads and writes while parameters are processed), even if one fails."""
    value = _current.get()
    try:
        yield
    finally:
        _current.set(value)


def register_result_processor(
    processor: Callable[[Any], Any], column_type: Encrypted, dialect: Dialect, coltype: Any
) -> None:
    """Remember that *processor* decrypts *column_type* (made once per dialect and coltype)."""
    _result_processors[processor] = (column_type, dialect, coltype)


@event.listens_for(Engine, "before_execute")
def _enter(
    conn: Any, clauseelement: Any, multiparams: Any, params: Any, execution_options: Any
) -> None:
    saved = (*_saved.get()[-_MAX_SAVED:], _current.get())
    _saved.set(saved)
    _current.set(execution_options.get("schema_translate_map") or None)


@event.listens_for(Engine, "after_execute")
def _exit(
    conn: Any,
    clauseelement: Any,
    multiparams: Any,
    params: Any,
    execution_options: Any,
    result: Any,
) -> None:
    saved = _saved.get()
    if saved:
        _current.set(saved[-1])
        _saved.set(saved[:-1])
    else:
        _current.set(None)
    schema_map = execution_options.get("schema_translate_map") or None
    if schema_map is not None and isinstance(result, CursorResult) and result.returns_rows:
        _bind_result(result, schema_map)


def _bind_result(result: CursorResult[Any], schema_map: SchemaMap) -> None:
    """Give *result* processors that decrypt in the schemas *schema_map* gives its tables."""
    metadata = result._metadata
    if not isinstance(metadata, CursorResultMetaData):
        return
    processors = metadata._processors
    replaced: list[Any] = list(processors)
    changed = False
    for i, processor in enumerate(processors):
        found = _result_processors.get(processor) if processor is not None else None
        if found is None:
            continue
        column_type, dialect, coltype = found
        own = column_type._schema
        if own not in schema_map or schema_map[own] == own:
            continue
        replaced[i] = column_type._result_processor_in(dialect, coltype, schema_map[own])
        changed = True
    if not changed:
        return
    make = getattr(metadata, "_make_new_metadata", None)
    reset = getattr(result, "_reset_memoizations", None)
    if make is None or reset is None:  # another SQLAlchemy: refuse rather than guess
        raise UnsupportedQueryError(
            "this SQLAlchemy version's results cannot be bound to a schema_translate_map: "
            "read encrypted columns of translated schemas without the map (declare the "
            "schema on the table)"
        )
    result._metadata = make(
        unpickled=metadata._unpickled,
        processors=replaced,
        keys=metadata._keys,
        keymap=metadata._keymap,
        tuplefilter=metadata._tuplefilter,
        translated_indexes=metadata._translated_indexes,
        safe_for_cache=False,
        keymap_by_result_column_idx=metadata._keymap_by_result_column_idx,
    )
    reset()
