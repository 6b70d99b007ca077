"""How encrypted columns refuse SQL: the operators they refuse, the errors they raise.

SQLAlchemy wraps errors raised while it processes a statement; `_unwrapped` gives ours a
twin class that it lets through unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy.exc import DontWrapMixin
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, Null
from sqlalchemy.sql.operators import OperatorType

from securecustomer.exceptions import SecureCustomerError, UnsupportedQueryError

if TYPE_CHECKING:
    from securecustomer.sqlalchemy._types import Encrypted

__all__: list[str] = []


#: What SQL can do with a randomized column: test it for NULL. Every other operator
#: (comparison, LIKE, IN, ordering, arithmetic, collation, custom ``op()``) is refused: an
#: allow-list, so an operator SQLAlchemy adds later is refused until someone decides.
_RANDOMIZED_OK = frozenset({operators.is_, operators.is_not})
#: A deterministic column adds equality: equal values (under one key) have equal tokens.
_DETERMINISTIC_OK = _RANDOMIZED_OK | {
    operators.eq,
    operators.ne,
    operators.in_op,
    operators.not_in_op,
    operators.is_distinct_from,
    operators.is_not_distinct_from,
    operators.distinct_op,
}


def _permits(
    column_type: Encrypted, expr: object, op: OperatorType, other: tuple[Any, ...]
) -> bool:
    """Whether SQL may apply *op* to the column expression *expr* of *column_type*."""
    if op in (_DETERMINISTIC_OK if column_type.deterministic else _RANDOMIZED_OK):
        return True
    if (op is operators.eq or op is operators.ne) and len(other) == 1:
        value = other[0]
        # ``c == None`` is SQLAlchemy's spelling of IS NULL; ``c == c`` (the column, or
        # an annotated copy of it, which hashes the same) is always true.
        return (
            value is None
            or isinstance(value, Null)
            or (isinstance(value, ColumnElement) and hash(value) == hash(expr))
        )
    return False


def _deferred(op: OperatorType, other: tuple[Any, ...]) -> bool:
    """Whether the comparator leaves *op* to the statement check (`_statements`).

    SQLAlchemy compares columns with ``==`` in its own code (``col in list_of_columns``,
    dict and set look-ups in the ORM's UPDATE, INSERT and RETURNING): the result is only
    used as a bool that compares hashes, and never reaches SQL. So ``==`` and ``!=``
    between a column and another SQL expression are built; if such a comparison is put
    in a statement, the statement check refuses it before it is sent.
    """
    return (
        (op is operators.eq or op is operators.ne)
        and len(other) == 1
        and isinstance(other[0], ColumnElement)
    )


_UNWRAPPED: dict[type[SecureCustomerError], type[SecureCustomerError]] = {}


_E = TypeVar("_E", bound=SecureCustomerError)


def _unwrapped(exc: _E) -> _E:
    """*exc* as an instance of a subclass that SQLAlchemy does not wrap (DontWrapMixin)."""
    cls = type(exc)
    twin = _UNWRAPPED.get(cls)
    if twin is None:
        twin = _UNWRAPPED[cls] = type(
            cls.__name__, (cls, DontWrapMixin), {"__module__": cls.__module__}
        )
    copy = twin.__new__(twin)
    copy.__dict__.update(exc.__dict__)
    copy.args = exc.args
    return cast("_E", copy.with_traceback(exc.__traceback__))


def _refusal(column_type: Encrypted, op: OperatorType | str) -> UnsupportedQueryError:
    """The error for SQL that *op* (an operator, or a construct such as "ORDER BY") would
    apply to the ciphertext of *column_type*'s column; raised through `_unwrapped`."""
    name = ".".join(column_type._names) if column_type._names else repr(column_type)
    what = op if isinstance(op, str) else getattr(op, "__name__", str(op))
    if column_type.deterministic:
        error = UnsupportedQueryError(
            f"{name} is encrypted deterministically: only ==, != and IN (and GROUP BY, "
            f"DISTINCT) work on it, not {what}; order, compare or transform its decrypted "
            "values in Python"
        )
    else:
        error = UnsupportedQueryError(
            f"{name} is encrypted with random nonces, so SQL cannot compare, match, order, "
            f"group or transform it ({what}); search it through a blind index "
            "(securecustomer.sqlalchemy.BlindIndex) or declare it deterministic=True if "
            "revealing equal values is acceptable; order its decrypted values in Python"
        )
    return _unwrapped(error)
