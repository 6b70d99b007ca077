"""Comparisons in SQL that mean what the policy language means, on every dialect.

Strings compare code-point exact whatever the column's collation or character set
(``COLLATE "C"`` on PostgreSQL, ``COLLATE BINARY`` on SQLite, a binary cast of the utf8mb4
text on MySQL/MariaDB). Numbers compare exactly as Python compares them: an integer column
is never rounded to a float against a float (nor a float column against an integer), NaN,
infinities and integers beyond 64 bits become the constants they amount to, and a
single-precision float column is compared as the decimal text drivers read it as. A naive
datetime column never equals an aware value. A boolean column where booleans are stored as
numbers (SQLite, MySQL/MariaDB) is true for every nonzero value, as SQLAlchemy reads it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import sys
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from securecustomer.exceptions import UnsupportedQueryError

if TYPE_CHECKING:
    pass
__all__: list[str] = []

Clause = ColumnElement[bool]
_TRUE: Final = sa.true()
_FALSE: Final = sa.false()


class _Exact(ColumnElement[Any]):
    """A string expression compared byte by byte (code point order), whatever the collation."""

    inherit_cache = True
    _traverse_internals = [("expr", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, expr: ColumnElement[Any]) -> None:
        self.expr = expr
        self.type = expr.type


@compiles(_Exact)
def _exact_default(element: _Exact, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.expr, **kw))


@compiles(_Exact, "postgresql")
def _exact_postgresql(element: _Exact, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.expr, **kw)} COLLATE "C")'


@compiles(_Exact, "sqlite")
def _exact_sqlite(element: _Exact, compiler: Any, **kw: Any) -> str:
    # A column declared COLLATE NOCASE or RTRIM would otherwise compare with its collation.
    return f"({compiler.process(element.expr, **kw)} COLLATE BINARY)"


@compiles(_Exact, "mysql")
@compiles(_Exact, "mariadb")
def _exact_mysql(element: _Exact, compiler: Any, **kw: Any) -> str:
    # Converted first: the bytes of a latin1 column are not those of the same text in the
    # connection's character set. A binary string has no pad space ('eu' != 'eu ').
    return f"CAST(CONVERT({compiler.process(element.expr, **kw)} USING utf8mb4) AS BINARY)"


class _Float(ColumnElement[Any]):
    """A float column as the driver reads it.

    Text-protocol drivers (psycopg, PyMySQL, mysqlclient, asyncmy...) read a single-precision
    value as its shortest decimal text, ``0.1``, while SQL compares its binary value,
    ``0.10000000149011612``; the column is compared through that text. asyncpg reads the
    binary value, and a double-precision column is exact either way.
    """

    inherit_cache = True
    _traverse_internals = [("expr", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, expr: ColumnElement[Any]) -> None:
        self.expr = expr
        self.type = expr.type


_SINGLE: Final = re.compile(r"(REAL|FLOAT)(\((\d+)(,[^)]*)?\))?(\s|$)")


def _single_precision(element: _Float, compiler: Any, real: bool) -> bool:
    """Whether the column is stored as a 4-byte float (*real*: the dialect's REAL is one)."""
    dialect = compiler.dialect
    declared = dialect.type_compiler_instance.process(element.type)  # as in CREATE TABLE
    match = _SINGLE.match(declared.upper())
    if match is None:
        return False
    if match.group(3) is not None:
        return int(match.group(3)) <= 24
    return real if match.group(1) == "REAL" else not real


@compiles(_Float)
def _float_default(element: _Float, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.expr, **kw))


@compiles(_Float, "postgresql")
def _float_postgresql(element: _Float, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.expr, **kw)
    if compiler.dialect.driver != "asyncpg" and _single_precision(element, compiler, real=True):
        return f"CAST(CAST({inner} AS TEXT) AS DOUBLE PRECISION)"
    return str(inner)


@compiles(_Float, "mysql")
@compiles(_Float, "mariadb")
def _float_mysql(element: _Float, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.expr, **kw)
    if _single_precision(element, compiler, real=False):
        return f"CAST(CAST({inner} AS CHAR) AS DOUBLE)"
    return str(inner)


class _Truth(ColumnElement[Any]):
    """A boolean column as SQLAlchemy reads it: ``bool(value)``, NULL as NULL.

    Without a boolean type (SQLite, MySQL/MariaDB) the column holds numbers, and any other
    than 0 reads as True: ``x = 1`` would miss a stored 2 or -1, so it becomes ``x <> 0``.
    SQLite's columns may also hold text or blobs, true when not empty.
    """

    inherit_cache = True
    _traverse_internals = [("expr", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, expr: ColumnElement[Any]) -> None:
        self.expr = expr
        self.type = expr.type


@compiles(_Truth)
def _truth_default(element: _Truth, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.expr, **kw)
    if compiler.dialect.supports_native_boolean:
        return str(inner)
    return f"({inner} <> 0)"


@compiles(_Truth, "sqlite")
def _truth_sqlite(element: _Truth, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.expr, **kw)
    return (
        f"(CASE WHEN typeof({inner}) IN ('text', 'blob') THEN length({inner}) > 0"
        f" ELSE {inner} <> 0 END)"
    )


class _Column:
    """A row value: the SQL expression, the kind of its non-NULL values, and for numbers
    whether they are integers."""

    __slots__ = ("expr", "integral", "kind", "name")

    def __init__(
        self, expr: ColumnElement[Any], kind_: str, name: str, integral: bool = False
    ) -> None:
        self.expr, self.kind, self.name, self.integral = expr, kind_, name, integral


def _new_column(expr: Any, name: str) -> _Column:
    kind_ = _column_kind(expr, name)
    if kind_ == "bool":
        return _Column(_Truth(expr), kind_, name)
    if kind_ != "number":
        return _Column(expr, kind_, name)
    if expr.type.python_type is int:
        return _Column(expr, kind_, name, integral=True)
    return _Column(_Float(expr), kind_, name)


_ORDERED: Final = ("number", "string", "datetime", "date")
_KINDS: Final = {
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    dt.datetime: "datetime",
    dt.date: "date",
}


def _column_kind(expr: Any, name: str) -> str:
    try:
        python_type = expr.type.python_type
    except NotImplementedError:
        python_type = None
    if python_type is decimal.Decimal:  # Numeric() and Float(asdecimal=True)
        raise UnsupportedQueryError(
            f"resource.{name}: a Numeric column returns Decimal values, which the policy "
            "language does not compare; use Numeric(asdecimal=False) or Float"
        )
    found = _KINDS.get(python_type)
    if found is None:
        raise UnsupportedQueryError(
            f"resource.{name}: a column of type {expr.type!r} cannot be filtered in SQL "
            "(only booleans, numbers, strings, dates and datetimes can; encrypted columns "
            "cannot be compared in the database)"
        )
    return found


def _compare(op: str, column: _Column, other: Any) -> Clause:
    left: Any = column.expr
    if column.kind == "string":
        left, other = _Exact(left), _Exact(other)
    if op == "==":
        return left == other  # type: ignore[no-any-return]
    if op == "<":
        return left < other  # type: ignore[no-any-return]
    if op == "<=":
        return left <= other  # type: ignore[no-any-return]
    if op == ">":
        return left > other  # type: ignore[no-any-return]
    return left >= other  # type: ignore[no-any-return]


def _test(op: str, column: _Column, value: Any) -> Clause:
    """*column* OP *value* for a non-NULL column and a constant of the column's kind."""
    if column.kind == "number":
        return _number_test(op, column, value)
    if column.kind == "datetime" and _aware(column) != (value.tzinfo is not None):
        return _FALSE  # only == gets here (ordering raised): naive never equals aware
    return _compare(op, column, _bind(value, column.expr))


_FLOAT_MAX: Final = sys.float_info.max
_FLIP: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def _number_test(op: str, column: _Column, value: float) -> Clause:
    """*column* OP *value* exactly as Python compares an int or float with *value*."""
    if isinstance(value, float) and math.isnan(value):
        return _FALSE  # NaN is equal to nothing and orders against nothing, without an error
    bound = _integer_bound(op, value, column) if column.integral else _float_bound(op, value)
    if isinstance(bound, bool):
        return _TRUE if bound else _FALSE
    op, value = bound
    literal = sa.literal(value, sa.BigInteger() if column.integral else sa.Float())
    return _compare(op, column, literal)


def _integer_range(column: _Column) -> tuple[int, int]:
    if getattr(column.expr.type, "unsigned", False):
        return 0, 2**64 - 1
    return -(2**63), 2**63 - 1


def _integer_bound(op: str, value: float, column: _Column) -> tuple[str, int] | bool:
    """``col OP value`` for an integer column as ``col OP' n`` with a bindable integer, or
    as the constant it is for every integer the column can hold."""
    if isinstance(value, float):
        if math.isinf(value):
            return op in ("<", "<=") if value > 0 else op in (">", ">=")
        if not value.is_integer():
            if op == "==":
                return False
            # col < 2.5 <=> col < 3; col <= 2.5 <=> col <= 2; col > 2.5 <=> col > 2; ...
            value = math.floor(value) if op in ("<=", ">") else math.ceil(value)
        value = int(value)
    low, high = _integer_range(column)
    if value > high:
        return op in ("<", "<=")
    if value < low:
        return op in (">", ">=")
    return op, value


def _float_bound(op: str, value: float) -> tuple[str, float] | bool:
    """``col OP value`` for a float column as ``col OP' f`` with a finite float, or a constant."""
    if isinstance(value, int):
        try:
            near = float(value)
        except OverflowError:
            near = math.inf if value > 0 else -math.inf
        if near != value:  # no float equals it: compare with the floats on either side
            if op == "==":
                return False
            if near > value:
                below, above = math.nextafter(near, -math.inf), near
            else:
                below, above = near, math.nextafter(near, math.inf)
            op, value = ("<=", below) if op in ("<", "<=") else (">=", above)
        else:
            value = near
    if not math.isinf(value):
        return op, value
    if value < 0:  # col OP -inf is -col OP' +inf
        flipped = _float_bound(_FLIP[op], math.inf)
        if isinstance(flipped, bool):
            return flipped
        return _FLIP[flipped[0]], -flipped[1]
    # col OP +inf, with only +inf itself above the largest finite float
    against_infinity: dict[str, tuple[str, float] | bool] = {
        "==": (">", _FLOAT_MAX),
        "<": ("<=", _FLOAT_MAX),
        "<=": True,
        ">": False,
        ">=": (">", _FLOAT_MAX),
    }
    return against_infinity[op]


def _pair_test(op: str, a: _Column, b: _Column) -> Clause:
    """*a* OP *b* for two non-NULL columns of one kind."""
    if a.kind != "number" or a.integral == b.integral:
        return _compare(op, a, b.expr)
    if b.integral:
        return _mixed_test(_FLIP[op], b, a)
    return _mixed_test(op, a, b)


def _mixed_test(op: str, a: _Column, b: _Column) -> Clause:
    """*a* OP *b* for an integer column *a* and a float column *b*, exactly: the database
    would round *a* to a float (2**53 + 1 == 2.0**53 there, not in Python)."""
    if getattr(a.expr.type, "unsigned", False):
        raise UnsupportedQueryError(
            f"resource.{a.name} against resource.{b.name}: an unsigned integer column "
            "cannot be compared exactly with a float column in SQL"
        )
    rounded = _Column(sa.cast(a.expr, sa.Double()), "number", a.name)
    above = op in ("<", "<=")  # a < b when b is 2**63, above every 64-bit integer
    return sa.case(
        (rounded.expr != b.expr, _FALSE if op == "==" else _compare(op, rounded, b.expr)),
        (b.expr >= sa.literal(2.0**63, sa.Float()), _TRUE if above else _FALSE),
        # a rounds to b: b is an integer (or a is below 2**53 and equal to it)
        else_=_compare(op, a, sa.cast(b.expr, sa.BigInteger())),
    )


def _aware(column: _Column) -> bool:
    return bool(getattr(column.expr.type, "timezone", False))


def _bind(value: Any, column: Any) -> Any:
    """A bound boolean, string, date or datetime literal, typed by the Python value but by
    the column for datetimes (their time-zone flag); numbers are bound by `_number_test`."""
    if isinstance(value, bool):
        return sa.literal(value, sa.Boolean())
    if isinstance(value, str):
        return sa.literal(value, sa.String())
    if isinstance(value, dt.datetime):
        return sa.literal(value, column.type)
    return sa.literal(value, sa.Date())


def _aware_check(column: _Column, value: Any) -> None:
    if column.kind == "datetime" and _aware(column) != (value.tzinfo is not None):
        raise UnsupportedQueryError(
            f"resource.{column.name}: comparing a naive and an aware datetime; make the "
            "column DateTime(timezone=True) or the value naive"
        )
