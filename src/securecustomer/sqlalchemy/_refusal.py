"""How encrypted columns refuse SQL: the operators they refuse, the errors they raise.

SQLAlchemy wraps errors raised while it processes a statement; `_unwrapped` gives ours a
twin class that it lets through unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.exc import DontWrapMixin
from sqlalchemy.sql import operators
from sqlalchemy.sql.operators import OperatorType

from securecustomer.exceptions import SecureCustomerError, UnsupportedQueryError

if TYPE_CHECKING:
    from securecustomer.sqlalchemy._types import Encrypted

__all__: list[str] = []


_REFUSED = {
    operators.eq,
    operators.ne,
    operators.in_op,
    operators.not_in_op,
    operators.like_op,
    operators.not_like_op,
    operators.ilike_op,
    operators.not_ilike_op,
    operators.lt,
    operators.le,
    operators.gt,
    operators.ge,
    operators.between_op,
    operators.not_between_op,
    operators.asc_op,
    operators.desc_op,
    operators.startswith_op,
    operators.endswith_op,
    operators.contains_op,
    operators.concat_op,
    operators.regexp_match_op,
}
_DETERMINISTIC_OK = {
    operators.eq,
    operators.ne,
    operators.in_op,
    operators.not_in_op,
}


_UNWRAPPED: dict[type[SecureCustomerError], type[SecureCustomerError]] = {}


def _unwrapped(exc: SecureCustomerError) -> SecureCustomerError:
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
    return copy.with_traceback(exc.__traceback__)


def _refusal(column_type: Encrypted, op: OperatorType) -> UnsupportedQueryError:
    name = ".".join(column_type._names) if column_type._names else repr(column_type)
    what = getattr(op, "__name__", str(op))
    if column_type.deterministic:
        return UnsupportedQueryError(
            f"{name} is encrypted deterministically: only ==, != and IN work on it, not {what}"
        )
    return UnsupportedQueryError(
        f"{name} is encrypted with random nonces, so SQL cannot compare, match or order it "
        f"({what}); search it through a blind index (securecustomer.sqlalchemy.BlindIndex) "
        "or declare it deterministic=True if revealing equal values is acceptable"
    )
