"""Refuses statements that would order, group, deduplicate or transform ciphertext.

The column type's comparator refuses operators (``==``, ``LIKE``, ``c.desc()``) when the
expression is built. Some constructs apply no operator to the column and never reach it:
``order_by(c)``, ``group_by(c)``, ``select(c).distinct()``, ``func.lower(c)``,
``cast(c, ...)``, ``sa.desc(c)``, ``over(order_by=c)``. SQL would run them on the tokens
and return results that look plausible and mean nothing (rows sorted by ciphertext, no
two values equal, ``lower()`` of random bytes). This module finds them in the statement
and raises `UnsupportedQueryError` before the database receives it.

Where the check runs, and what it costs:

- ``before_cursor_execute`` of every `Engine` (Core, ORM, and the engines inside async
  engines): once per *compiled* statement. SQLAlchemy caches compiled statements, so a
  statement shape is walked the first time it runs and found in a `WeakSet` afterwards;
  values (the per-row path) are not touched.
- ``do_orm_execute`` of every `Session`, for ORM UPDATE and DELETE: their
  ``synchronize_session="fetch"`` may SELECT the matching rows before the UPDATE is
  compiled, and the refusal must come before that SELECT.

The rules, and the reasoning for each:

- ORDER BY (also ``over(order_by=...)`` and ``within_group(...)``): refused for every
  encrypted column: the order of tokens is not the order of values, even deterministic.
- GROUP BY, DISTINCT, DISTINCT ON, ``over(partition_by=...)``: allowed for deterministic
  columns (equal values, equal tokens). For randomized columns, refused, unless the
  same clause also holds the whole primary key of the column's table: then every token
  stands for its own row, and grouping by it is grouping by the row (``select(Model)
  .distinct()`` deduplicating joined rows stays correct).
- SQL functions: a function of a token is not a function of the value, so every function
  with an encrypted argument is refused, except ``count`` (counting values that are not
  NULL does not look at them). ``cast`` and ``extract`` likewise.
- Comparisons between two columns (``a.c == b.c``): the comparator builds them, because
  SQLAlchemy itself compares columns with ``==`` in Python; here they are refused
  like ``a.c == value`` (a column compared with itself is allowed: it is always true).
- Tuples (``tuple_(c, x) == (v, y)``, ``tuple_(...).in_(...)``) use their own comparator:
  each encrypted item is held to its column's rule.
- Unary operators built without the comparator (``sa.desc(c)``, ``sa.distinct(c)``,
  ``sa.nulls_last(c)``): the comparator's own rule.
- ``type_coerce(c, LargeBinary)`` gives an expression of another type, which nothing
  here refuses: it is the deliberate way to reach the stored tokens.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import (
    BinaryExpression,
    Cast,
    ClauseElement,
    Extract,
    Grouping,
    Label,
    Over,
    Tuple,
    UnaryExpression,
    WithinGroup,
    _label_reference,
    _textual_label_reference,
)
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.sql.selectable import GenerativeSelect, Select

from securecustomer.sqlalchemy._refusal import _permits, _refusal
from securecustomer.sqlalchemy._types import Encrypted

__all__: list[str] = []

#: Functions that do not look at the values of their argument.
_HARMLESS_FUNCTIONS = frozenset({"count"})
_ORDERING_MODIFIERS = frozenset(
    {
        operators.asc_op,
        operators.desc_op,
        operators.nulls_first_op,
        operators.nulls_last_op,
    }
)

#: Compiled statements already found harmless (compiled objects are cached and reused).
_CHECKED: weakref.WeakSet[SQLCompiler] = weakref.WeakSet()


def _encrypted(expr: object) -> Encrypted | None:
    column_type = getattr(expr, "type", None)
    return column_type if isinstance(column_type, Encrypted) else None


def _target(expr: Any, select: GenerativeSelect | None) -> Any:
    """The expression under labels, groupings and ASC/DESC/NULLS wrappers."""
    while True:
        if isinstance(expr, _textual_label_reference):  # order_by("label")
            if select is None:
                return expr
            found = select.selected_columns.get(expr.element)
            if found is None:
                return expr
            expr = found
        elif isinstance(expr, (_label_reference, Label, Grouping)) or (
            isinstance(expr, UnaryExpression) and expr.modifier in _ORDERING_MODIFIERS
        ):
            expr = expr.element
        else:
            return expr


def _refuse_ordering(clauses: Iterable[Any], select: GenerativeSelect | None) -> None:
    for clause in clauses:
        column_type = _encrypted(_target(clause, select))
        if column_type is not None:
            raise _refusal(column_type, "ORDER BY")


def _refuse_grouping(clauses: Iterable[Any], select: GenerativeSelect | None, what: str) -> None:
    clauses = list(clauses)
    grouped: set[int] | None = None
    for clause in clauses:
        target = _target(clause, select)
        column_type = _encrypted(target)
        if column_type is None or column_type.deterministic:
            continue
        if grouped is None:
            grouped = {hash(_target(c, select)) for c in clauses}
        table = getattr(target, "table", None)
        key = getattr(table, "primary_key", None)
        if not key or not all(hash(column) in grouped for column in key):
            raise _refusal(column_type, what)


def _refuse_arguments(arguments: Iterable[Any], what: str) -> None:
    for argument in arguments:
        column_type = _encrypted(argument)
        if column_type is not None:
            raise _refusal(column_type, what)


def check_statement(statement: ClauseElement) -> None:
    """Raise `UnsupportedQueryError` if *statement* orders, groups, deduplicates or
    transforms the ciphertext of an encrypted column anywhere (subqueries included)."""
    for element in visitors.iterate(statement):
        if isinstance(element, GenerativeSelect):
            _refuse_ordering(element._order_by_clauses, element)
            _refuse_grouping(element._group_by_clauses, element, "GROUP BY")
            if isinstance(element, Select):
                if element._distinct:
                    _refuse_grouping(element.selected_columns, element, "DISTINCT")
                _refuse_grouping(element._distinct_on, element, "DISTINCT ON")
        elif isinstance(element, FunctionElement):
            name = getattr(element, "name", "")
            if name.lower() not in _HARMLESS_FUNCTIONS:
                _refuse_arguments(element.clauses, f"{name}()")
        elif isinstance(element, (Over, WithinGroup)):
            if element.order_by is not None:
                _refuse_ordering(element.order_by, None)
            partition_by = getattr(element, "partition_by", None)
            if partition_by is not None:
                _refuse_grouping(partition_by, None, "PARTITION BY")
        elif isinstance(element, BinaryExpression):
            left, right, op = element.left, element.right, element.operator
            for side, other in ((left, right), (right, left)):
                column_type = _encrypted(side)
                if column_type is not None and not _permits(column_type, side, op, (other,)):
                    raise _refusal(column_type, op)
                if isinstance(side, Tuple):  # tuple_(c, ...) == / IN: the tuple's comparator
                    for item in side.clauses:
                        column_type = _encrypted(item)
                        if column_type is not None and not _permits(column_type, item, op, ()):
                            raise _refusal(column_type, op)
        elif isinstance(element, UnaryExpression):
            column_type = _encrypted(element.element)
            unary_ops: tuple[OperatorType | None, ...] = (element.operator, element.modifier)
            for unary_op in unary_ops:
                if (
                    column_type is not None
                    and unary_op is not None
                    and not _permits(column_type, element.element, unary_op, ())
                ):
                    raise _refusal(column_type, unary_op)
        elif isinstance(element, Cast):
            _refuse_arguments((element.clause,), "CAST")
        elif isinstance(element, Extract):
            _refuse_arguments((element.expr,), "EXTRACT")


@event.listens_for(Engine, "before_cursor_execute")
def _check_compiled(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """Check each compiled statement once, before its first execution."""
    compiled = getattr(context, "compiled", None)
    if compiled is None or compiled in _CHECKED or not isinstance(compiled, SQLCompiler):
        return
    if isinstance(compiled.statement, ClauseElement):
        check_statement(compiled.statement)
    _CHECKED.add(compiled)


@event.listens_for(Session, "do_orm_execute")
def _check_orm_dml(state: ORMExecuteState) -> None:
    """ORM UPDATE and DELETE, before the session synchronizes (which may SELECT first)."""
    if (state.is_update or state.is_delete) and isinstance(state.statement, ClauseElement):
        check_statement(state.statement)
