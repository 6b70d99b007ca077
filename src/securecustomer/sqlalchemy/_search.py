"""Blind-index queries: the WHERE clause, the decrypt-and-compare filter, `search`.

A search computes the tokens of the value under every key version that may still decrypt,
selects the rows whose index is one of them, and drops the false positives that truncation
lets through by comparing the decrypted values. The index type and the ORM events that
fill it are in `_blind`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, inspect, select
from sqlalchemy.orm import QueryableAttribute, Session, configure_mappers
from sqlalchemy.sql.elements import ColumnElement

from securecustomer.exceptions import UnsupportedQueryError, UnsupportedValueError
from securecustomer.sqlalchemy._blind import BlindIndex, _column_name, _indexes
from securecustomer.sqlalchemy._schemas import connection_map, schema_under
from securecustomer.sqlalchemy._types import OWN, _Own

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["asearch", "blind_match", "confirm_matches", "search"]


# -- queries -------------------------------------------------------------------------------


def _lookup(attribute: Any) -> tuple[Any, Any, BlindIndex, str | None]:
    """(entity, index expression, index type, source attribute key) for *attribute*."""
    if isinstance(attribute, QueryableAttribute):
        configure_mappers()
        parent = attribute.parent
        bounds = [
            b for b in _indexes.get(parent.mapper, ()) if attribute.key in (b.key, b.source_key)
        ]
        where = f"{parent.class_.__name__}.{attribute.key}"
        if len(bounds) > 1:
            raise UnsupportedQueryError(
                f"{where} has several blind indexes: pass the index attribute instead"
            )
        if not bounds:
            raise UnsupportedQueryError(
                f"{where} has no blind index: declare one with BlindIndex(...)"
            )
        bound = bounds[0]
        return parent.entity, getattr(parent.entity, bound.key), bound.index, bound.source_key
    if isinstance(attribute, Column):
        column_type = attribute.type
        if isinstance(column_type, BlindIndex):
            return None, attribute, column_type, None
        table = attribute.table
        found = [
            c for c in table.c if isinstance(c.type, BlindIndex) and c.type._resolve() is attribute
        ]
        if len(found) != 1:
            raise UnsupportedQueryError(
                f"{_column_name(attribute)} has {'several' if found else 'no'} blind indexes"
            )
        return None, found[0], found[0].type, None  # type: ignore[return-value]
    raise UnsupportedQueryError(
        f"expected a mapped attribute or a Column, got {type(attribute).__qualname__}"
    )


def _search_value(index: BlindIndex, value: object) -> Any:
    if value is None:
        raise UnsupportedValueError(
            "a blind index cannot search for NULL: filter on the source with .is_(None)"
        )
    return index.normalize(value)


def blind_match(
    attribute: Any, value: object, *, schema: str | _Own | None = OWN
) -> ColumnElement[bool]:
    """The WHERE clause that selects the rows whose index matches *value*.

    *attribute* is a mapped source or index attribute, or a Core source or index
    `Column`. The rows it selects include false positives (values that share a truncated
    token): drop them with `confirm_matches` or `BlindIndex.matches`, or use `search`.
    Indexes are bound to the table's schema: under a ``schema_translate_map``, pass the
    *schema* the statement will read (the clause is built before it executes).
    """
    _, expression, index, _ = _lookup(attribute)
    tokens = index._tokens(_search_value(index, value), schema)
    return expression.in_(tokens)  # type: ignore[no-any-return]


def confirm_matches(instances: Iterable[Any], attribute: Any, value: object) -> list[Any]:
    """Keep the loaded *instances* whose decrypted source equals *value* once normalised."""
    _, _, index, source_key = _lookup(attribute)
    if source_key is None:
        raise UnsupportedQueryError("confirm_matches() needs a mapped attribute")
    normalized = _search_value(index, value)
    return [i for i in instances if index._equals(getattr(i, source_key), normalized)]


def search(session: Session, attribute: Any, value: object, *where: Any) -> list[Any]:
    """The instances whose *attribute* equals *value* once normalised, through its index.

    Selects the rows whose index matches any active token of *value*, with the extra
    *where* criteria, then drops the false positives by decrypt-and-compare. The order is
    the database's. (A LIMIT would apply before that filtering: none is offered.)

    Raises:
        UnsupportedValueError: *value* has the wrong type for the column, or is None.
        UnsupportedQueryError: *attribute* has no blind index, or several.

    Example:
        ```python
        ada = search(session, Customer.email, "Ada@Example.COM ")
        mine = search(session, Customer.email, "ada@example.com", Customer.tenant_id == 7)
        ```
    """
    entity, expression, index, source_key = _lookup(attribute)
    if entity is None or source_key is None:
        raise UnsupportedQueryError(
            "search() needs a mapped attribute; with Core, use blind_match() and "
            "BlindIndex.matches()"
        )
    normalized = _search_value(index, value)
    # The schema the session's connection reads the table in (schema_translate_map).
    connection = session.connection(bind_arguments={"mapper": inspect(entity).mapper})
    schema = schema_under(index.source_type.schema, connection_map(connection))
    statement = select(entity).where(expression.in_(index._tokens(normalized, schema)), *where)
    rows = session.scalars(statement).unique().all()
    return [row for row in rows if index._equals(getattr(row, source_key), normalized)]


async def asearch(session: AsyncSession, attribute: Any, value: object, *where: Any) -> list[Any]:
    """`search` through an `AsyncSession`.

    Example:
        ```python
        async with AsyncSession(engine) as session:
            ada = await asearch(session, Customer.email, "ada@example.com")
        ```
    """
    return await session.run_sync(search, attribute, value, *where)
