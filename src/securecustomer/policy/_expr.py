"""The condition language's evaluation: parsed conditions compiled to closures.

The closures never call ``eval``: each node of the tree becomes a small Python function.
Evaluation is strict (see `securecustomer.policy._parse` for the grammar): ``and``/``or``/
``not`` need booleans, ordering needs two numbers, strings, dates or datetimes (both naive or
both aware), ``in`` needs a list or set on the right, equality between different kinds of
value is false. A missing attribute or a type mismatch raises `EvaluationError`, which the
engine turns into a fail-closed rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from securecustomer.policy._parse import (
    And,
    Attr,
    Compare,
    EvaluationError,
    Expr,
    ExprSyntaxError,
    Literal,
    Not,
    Or,
    attributes,
    kind,
    parse,
    unparse,
)

__all__ = [
    "And",
    "Attr",
    "Compare",
    "EvaluationError",
    "Expr",
    "ExprSyntaxError",
    "Literal",
    "Not",
    "Or",
    "Request",
    "attributes",
    "compile_expr",
    "kind",
    "mfa_fresh",
    "parse",
    "reads_roles",
    "unparse",
]


@attrs.define(slots=True)
class Request:
    """What a condition can see: the subject with its effective roles, resource, context."""

    subject: Any
    roles: frozenset[str]
    resource: Any
    context: Mapping[str, Any]


_ORDERED: Final = frozenset({"number", "string", "datetime", "date"})


def _equal(a: object, b: object) -> bool:
    ka, kb = kind(a), kind(b)
    if ka != kb:
        return False
    if ka == "list":
        sa, sb = list(a), list(b)  # type: ignore[call-overload]
        if isinstance(a, set | frozenset) or isinstance(b, set | frozenset):
            # Sets have no order: equal when each item of one is in the other.
            return all(any(_equal(x, y) for y in sb) for x in sa) and all(
                any(_equal(y, x) for x in sa) for y in sb
            )
        return len(sa) == len(sb) and all(map(_equal, sa, sb))
    if ka == "map":
        ma: Mapping[Any, Any] = a  # type: ignore[assignment]
        mb: Mapping[Any, Any] = b  # type: ignore[assignment]
        return ma.keys() == mb.keys() and all(_equal(ma[k], mb[k]) for k in ma)
    return a == b


def _order(op: str, a: Any, b: Any) -> bool:
    ka, kb = kind(a), kind(b)
    if ka != kb or ka not in _ORDERED:
        raise EvaluationError(f"cannot compare {ka} {op} {kb}")
    if ka == "datetime" and (a.tzinfo is None) != (b.tzinfo is None):
        raise EvaluationError(f"cannot compare a naive and an aware datetime with {op}")
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _member(a: object, b: object) -> bool:
    if kind(b) != "list":
        raise EvaluationError(f"'in' needs a list on the right, not {kind(b)}")
    return any(_equal(a, item) for item in b)  # type: ignore[attr-defined]


def _lookup(request: Request, attr: Attr) -> Any:
    name = attr.path[0]
    value: Any
    if attr.root == "subject":
        subject = request.subject
        if name == "id":
            value = subject.id
        elif name == "roles":
            value = request.roles
        elif name == "tenant":
            value = subject.tenant
        elif name in subject.attributes:
            value = subject.attributes[name]
        else:
            raise EvaluationError(f"subject has no attribute {name!r}")
    elif attr.root == "resource":
        resource = request.resource
        if name == "type":
            value = resource.type
        elif name == "id":
            value = resource.id
        elif name == "tenant":
            value = resource.tenant
        elif name in resource.attributes:
            value = resource.attributes[name]
        else:
            raise EvaluationError(f"resource has no attribute {name!r}")
    else:
        if name not in request.context:
            raise EvaluationError(f"context has no key {name!r}")
        value = request.context[name]
    for index, part in enumerate(attr.path[1:], start=1):
        if not isinstance(value, Mapping) or part not in value:
            prefix = ".".join((attr.root, *attr.path[:index]))
            raise EvaluationError(f"{prefix} has no key {part!r}")
        value = value[part]
    return value


Compiled = Callable[[Request], Any]


def _boolean(fn: Compiled, what: str) -> Callable[[Request], bool]:
    def check(request: Request) -> bool:
        value = fn(request)
        if value is True or value is False:
            return value
        raise EvaluationError(f"{what} is {kind(value)}, not a boolean")

    return check


def compile_expr(expr: Expr) -> Callable[[Request], bool]:
    """Turn a parsed condition into a closure ``fn(request) -> bool``."""
    if isinstance(expr, Compare | And | Or | Not):
        return _compile(expr)  # these always give a boolean
    return _boolean(_compile(expr), "the condition")


_BOOLEAN_NODES: Final = (Compare, And, Or, Not)
_PLAIN: Final = frozenset({str, int, float, bool})  # values whose == is the language's ==


def _operand(expr: Expr, what: str) -> Compiled:
    fn = _compile(expr)
    return fn if isinstance(expr, _BOOLEAN_NODES) else _boolean(fn, what)


def _attribute(attr: Attr) -> Compiled:
    """A lookup specialised for the common one-level paths; the general one otherwise."""
    name = attr.path[0]
    if len(attr.path) > 1 or name in ("id", "roles", "tenant", "type"):
        return lambda request: _lookup(request, attr)
    if attr.root == "context":

        def from_context(request: Request) -> Any:
            try:
                return request.context[name]
            except KeyError:
                raise EvaluationError(f"context has no key {name!r}") from None

        return from_context
    if attr.root == "resource":

        def from_resource(request: Request) -> Any:
            try:
                return request.resource.attributes[name]
            except KeyError:
                raise EvaluationError(f"resource has no attribute {name!r}") from None

        return from_resource

    def from_subject(request: Request) -> Any:
        try:
            return request.subject.attributes[name]
        except KeyError:
            raise EvaluationError(f"subject has no attribute {name!r}") from None

    return from_subject


def _compile(expr: Expr) -> Compiled:
    if isinstance(expr, Literal):
        value = expr.value
        return lambda request: value
    if isinstance(expr, Attr):
        return _attribute(expr)
    if isinstance(expr, Not):
        inner = _operand(expr.item, "the operand of 'not'")
        return lambda request: not inner(request)
    if isinstance(expr, And):
        parts = [_operand(item, "an operand of 'and'") for item in expr.items]
        return lambda request: all(part(request) for part in parts)
    if isinstance(expr, Or):
        parts = [_operand(item, "an operand of 'or'") for item in expr.items]
        return lambda request: any(part(request) for part in parts)
    left, right, op = _compile(expr.left), _compile(expr.right), expr.op
    if op in ("==", "!="):
        negate = op == "!="

        def equal(request: Request) -> bool:
            a = left(request)
            b = right(request)
            kind_a = type(a)
            if kind_a is type(b) and kind_a in _PLAIN:
                return (a == b) is not negate
            return _equal(a, b) is not negate

        return equal
    if op == "in":
        return lambda request: _member(left(request), right(request))
    if op == "not in":
        return lambda request: not _member(left(request), right(request))
    return lambda request: _order(op, left(request), right(request))


CLOCK_SKEW: Final = timedelta(minutes=1)


def mfa_fresh(mfa_at: datetime | None, max_age: timedelta, now: datetime) -> bool:
    """Whether an MFA at *mfa_at* is recent enough at *now* (one minute of clock skew)."""
    return mfa_at is not None and now - max_age <= mfa_at <= now + CLOCK_SKEW


# --- the engine's fast path ---------------------------------------------------------------

Direct = Callable[[Any, Any, Mapping[str, Any]], bool]


def _source(expr: Expr) -> tuple[int, str] | None:
    """(0 subject / 1 resource / 2 context, key) of a one-level, non-built-in attribute."""
    if not isinstance(expr, Attr) or len(expr.path) > 1:
        return None
    if expr.path[0] in ("id", "roles", "tenant", "type"):
        return None
    return ("subject", "resource", "context").index(expr.root), expr.path[0]


_MISSING: Final = (
    "subject has no attribute {!r}",
    "resource has no attribute {!r}",
    "context has no key {!r}",
)


def _direct_equal(expr: Compare) -> Direct | None:
    """``attr == attr`` / ``attr == literal`` (and ``!=``) read straight from the subject's
    and resource's attribute maps and the context: no request object, one call."""
    left = _source(expr.left)
    if left is None or expr.op not in ("==", "!="):
        return None
    negate = expr.op == "!="
    index_a, key_a = left
    missing_a = _MISSING[index_a].format(key_a)
    right = _source(expr.right)
    if right is not None:
        index_b, key_b = right
        missing_b = _MISSING[index_b].format(key_b)

        if (index_a, index_b) == (1, 0):  # resource.x == subject.y, the commonest

            def resource_subject(subject: Any, resource: Any, context: Mapping[str, Any]) -> bool:
                try:
                    x = resource.attributes[key_a]
                except KeyError:
                    raise EvaluationError(missing_a) from None
                try:
                    y = subject.attributes[key_b]
                except KeyError:
                    raise EvaluationError(missing_b) from None
                kind_x = type(x)
                if kind_x is type(y) and kind_x in _PLAIN:
                    return (x == y) is not negate
                return _equal(x, y) is not negate

            return resource_subject

        def attr_equal(subject: Any, resource: Any, context: Mapping[str, Any]) -> bool:
            maps = (subject.attributes, resource.attributes, context)
            try:
                x = maps[index_a][key_a]
            except KeyError:
                raise EvaluationError(missing_a) from None
            try:
                y = maps[index_b][key_b]
            except KeyError:
                raise EvaluationError(missing_b) from None
            kind_x = type(x)
            if kind_x is type(y) and kind_x in _PLAIN:
                return (x == y) is not negate
            return _equal(x, y) is not negate

        return attr_equal
    if not isinstance(expr.right, Literal) or type(expr.right.value) not in _PLAIN:
        return None
    value = expr.right.value
    kind_value = type(value)

    def literal_equal(subject: Any, resource: Any, context: Mapping[str, Any]) -> bool:
        maps = (subject.attributes, resource.attributes, context)
        try:
            x = maps[index_a][key_a]
        except KeyError:
            raise EvaluationError(missing_a) from None
        if type(x) is kind_value:
            return (x == value) is not negate
        return _equal(x, value) is not negate

    return literal_equal


def reads_roles(expr: Expr) -> bool:
    """Whether the condition reads ``subject.roles`` (its compiled form then depends on the
    subject's effective roles, and cannot be shared between role sets)."""
    return any(a.root == "subject" and a.path[0] == "roles" for a in attributes(expr))


def compile_direct(expr: Expr, roles: frozenset[str]) -> Direct:
    """The condition as ``fn(subject, resource, context) -> bool`` for subjects whose
    effective roles are *roles*: same results and errors as `compile_expr`."""
    if isinstance(expr, Compare):
        direct = _direct_equal(expr)
        if direct is not None:
            return direct
    general = compile_expr(expr)

    def through_request(subject: Any, resource: Any, context: Mapping[str, Any]) -> bool:
        return general(Request(subject, roles, resource, context))

    return through_request
