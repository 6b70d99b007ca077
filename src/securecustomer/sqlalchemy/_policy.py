"""`PolicyEngine.query_filter`: the policy's decision for every row, as one SQL where-clause.

A condition over ``resource.*`` is evaluated by the database, but it must mean exactly what
`PolicyEngine.evaluate` means for the row: strict kinds, ``NULL`` handled like ``None``,
errors failing closed. Every condition node is therefore translated into three disjoint
predicates: *true*, *false* and *error* (a missing value or a type mismatch in Python). An
allow rule matches a row where its condition is true; a deny rule where it is true or in
error. ``subject.*`` and ``context.*`` are known when the filter is built and become
literals. What cannot be translated exactly (nested resource paths, encrypted or decimal
columns, lists stored in a column) raises `UnsupportedQueryError` instead of over-returning.

String comparisons are made code-point exact on every dialect, whatever the column's own
collation or character set (``COLLATE "C"`` on PostgreSQL, ``COLLATE BINARY`` on SQLite, a
binary cast of the utf8mb4 text on MySQL/MariaDB), so that they order and compare like
Python strings. Numbers compare exactly as Python compares them: an integer column is never
rounded to a float against a float (nor a float column against an integer), NaN, infinities
and integers beyond 64 bits become the constants they amount to instead of values the
database cannot bind, and a single-precision float column (``FLOAT`` on MySQL/MariaDB,
``REAL`` on PostgreSQL) is compared as the shortest decimal text the text-protocol drivers
read it as. A naive datetime column never equals an aware value (as in Python). A boolean
column is true for every nonzero value stored where booleans are numbers (SQLite,
MySQL/MariaDB), as `row_resource` reads it: ``x == true`` is ``x <> 0`` there, not ``x = 1``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.elements import ColumnElement

from securecustomer.exceptions import UnsupportedQueryError
from securecustomer.policy._expr import (
    And,
    Attr,
    Compare,
    EvaluationError,
    Expr,
    Literal,
    Not,
    Or,
    Request,
    _lookup,
    compile_expr,
    kind,
    mfa_fresh,
)
from securecustomer.policy._model import Resource, Subject
from securecustomer.sqlalchemy._policy_sql import (
    _ORDERED,
    _aware_check,
    _bind,
    _Column,
    _compare,
    _new_column,
    _pair_test,
    _test,
)

if TYPE_CHECKING:
    from securecustomer.policy._document import Rule
    from securecustomer.policy._engine import PolicyEngine

__all__ = ["query_filter", "row_resource"]

Clause = ColumnElement[bool]
_TRUE: Final = sa.true()
_FALSE: Final = sa.false()


class _Tri:
    """Three disjoint predicates of one condition node: true, false, error."""

    __slots__ = ("e", "f", "t")

    def __init__(self, t: Clause, f: Clause, e: Clause) -> None:
        self.t, self.f, self.e = t, f, e

    @classmethod
    def const(cls, value: bool | None) -> _Tri:
        """A constant node: True, False, or None for an error."""
        if value is None:
            return cls(_FALSE, _FALSE, _TRUE)
        return cls(_TRUE, _FALSE, _FALSE) if value else cls(_FALSE, _TRUE, _FALSE)

    def negated(self) -> _Tri:
        return _Tri(self.f, self.t, self.e)


#: How deeply the SQL expression of one rule's condition may nest (in SQLAlchemy elements).
#: SQLite's parser overflows its stack past about 60 (some 19 levels of parentheses in the
#: SQL text), and SQLAlchemy's compiler recurses about five Python frames per level, which
#: must stay well inside Python's recursion limit. Alternating ``and`` / ``or`` costs about
#: three levels each; a ``not`` none.
MAX_SQL_DEPTH: Final = 50


def _sql_depth(clause: Any) -> int:
    """How deeply *clause* nests, measured without recursion; shared parts once."""
    depths: dict[int, int] = {}
    stack: list[tuple[Any, Iterator[Any], list[int]]] = [(clause, iter(clause.get_children()), [0])]
    while stack:
        element, children, below = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            depths[id(element)] = below[0] + 1
            if stack:
                stack[-1][2][0] = max(stack[-1][2][0], below[0] + 1)
        elif id(child) in depths:
            below[0] = max(below[0], depths[id(child)])
        else:
            stack.append((child, iter(child.get_children()), [0]))
    return depths[id(clause)]


def _combine(parts: list[_Tri], conjunction: bool) -> _Tri:
    """``and`` / ``or`` of *parts* with Python's short-circuit: the first part that decides
    (false for ``and``, true for ``or``) or errs gives the result. Halves are combined, so
    the SQL grows as n log n and nests log n deep in the number of parts (a left-to-right
    fold would repeat every prefix: quadratic size)."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    a, b = _combine(parts[:middle], conjunction), _combine(parts[middle:], conjunction)
    if conjunction:  # b is evaluated when a is true
        return _Tri(
            sa.and_(a.t, b.t), sa.or_(a.f, sa.and_(a.t, b.f)), sa.or_(a.e, sa.and_(a.t, b.e))
        )
    return _Tri(  # b is evaluated when a is false
        sa.or_(a.t, sa.and_(a.f, b.t)), sa.and_(a.f, b.f), sa.or_(a.e, sa.and_(a.f, b.e))
    )


class _Translator:
    def __init__(
        self,
        model: Any,
        resource_type: str,
        columns: Mapping[str, Any],
        tenant_column: Any,
        request: Request,
    ) -> None:
        self.resource_type = resource_type
        self.request = request
        self.attributes = _attribute_columns(model)
        self.attributes.update({name: _expression(value) for name, value in columns.items()})
        self.model = model
        self.tenant = None if tenant_column is None else _expression(tenant_column)

    # operands: a constant (kind != "column"), a column, or an error
    def operand(self, expr: Expr) -> tuple[str, Any]:
        if isinstance(expr, Literal):
            return "const", expr.value
        if isinstance(expr, Attr) and expr.root == "resource":
            return self.resource_operand(expr)
        if isinstance(expr, Attr):
            try:
                return "const", _lookup(self.request, expr)
            except EvaluationError:
                return "error", None
        return "bool", self.condition(expr)

    def resource_operand(self, attr: Attr) -> tuple[str, Any]:
        name = attr.path[0]
        if len(attr.path) > 1:
            raise UnsupportedQueryError(f"{attr}: nested resource paths cannot be filtered in SQL")
        if name == "type":
            return "const", self.resource_type
        if name == "id":
            return "column", _new_column(_primary_key(self.model), name)
        if name == "tenant":
            if self.tenant is None:
                return "const", None
            return "column", _Column(self.tenant, "string", name)
        if name not in self.attributes:
            return "error", None  # the row has no such attribute: evaluate fails closed too
        return "column", _new_column(self.attributes[name], name)

    def condition(self, expr: Expr) -> _Tri:
        if isinstance(expr, Not):
            return self.condition(expr.item).negated()
        if isinstance(expr, And | Or):
            return _combine([self.condition(item) for item in expr.items], isinstance(expr, And))
        if isinstance(expr, Compare):
            return self.compare(expr)
        return self.boolean(self.operand(expr))

    def boolean(self, operand: tuple[str, Any]) -> _Tri:
        tag, value = operand
        if tag == "bool":
            return value  # type: ignore[no-any-return]
        if tag == "const":
            return _Tri.const(value if value is True or value is False else None)
        if tag == "error" or value.kind != "bool":
            return _Tri.const(None)
        col = value.expr
        return _Tri(
            sa.and_(col.is_not(None), col == sa.true()),
            sa.and_(col.is_not(None), col == sa.false()),
            col.is_(None),
        )

    def compare(self, expr: Compare) -> _Tri:
        left, right = self.operand(expr.left), self.operand(expr.right)
        if left[0] == "error" or right[0] == "error":
            return _Tri.const(None)
        if left[0] == "bool" or right[0] == "bool":  # "(resource.level > 1) == true" parses
            raise UnsupportedQueryError("a comparison of conditions cannot be filtered in SQL")
        op = expr.op
        if left[0] == "const" and right[0] == "const":
            probe = Compare(op, Literal(left[1]), Literal(right[1]))
            try:
                return _Tri.const(compile_expr(probe)(self.request))
            except EvaluationError:
                return _Tri.const(None)
        if op in ("in", "not in"):
            if right[0] == "column" or kind(right[1]) != "list":
                return _Tri.const(None)  # a column never holds a list: 'in' errors
            tri = self.member(left[1], right[1])
            return tri.negated() if op == "not in" else tri
        if left[0] == "const":  # put the column on the left
            left, right = right, left
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        column: _Column = left[1]
        if right[0] == "column":
            return self.column_pair(op, column, right[1])
        value = right[1]
        if op in ("==", "!="):
            tri = self.equal(column, value)
            return tri.negated() if op == "!=" else tri
        return self.order(op, column, value)

    def equal(self, column: _Column, value: Any) -> _Tri:
        col = column.expr
        if kind(value) == "null":
            t: Clause = col.is_(None)
        elif kind(value) == column.kind:
            t = sa.and_(col.is_not(None), _test("==", column, value))
        else:
            t = _FALSE
        return _Tri(t, sa.not_(t), _FALSE)

    def order(self, op: str, column: _Column, value: Any) -> _Tri:
        if kind(value) != column.kind or column.kind not in (
            "number",
            "string",
            "datetime",
            "date",
        ):
            return _Tri.const(None)
        _aware_check(column, value)
        col = column.expr
        test = _test(op, column, value)
        present = col.is_not(None)
        return _Tri(sa.and_(present, test), sa.and_(present, sa.not_(test)), col.is_(None))

    def member(self, value: Any, items: Iterable[Any]) -> _Tri:
        if not isinstance(value, _Column):
            raise UnsupportedQueryError("'in' can be filtered only with a column on the left")
        col = value.expr
        same = [item for item in items if kind(item) == value.kind]
        has_null = any(item is None for item in items)
        t: Clause = _FALSE
        if same:
            tests = [_test("==", value, item) for item in same]
            t = sa.and_(col.is_not(None), sa.or_(*tests))
        if has_null:
            t = sa.or_(col.is_(None), t)
        return _Tri(t, sa.not_(t), _FALSE)

    def column_pair(self, op: str, a: _Column, b: _Column) -> _Tri:
        both = sa.and_(a.expr.is_not(None), b.expr.is_not(None))
        if op in ("==", "!="):
            t: Clause = sa.and_(a.expr.is_(None), b.expr.is_(None))
            if a.kind == b.kind:
                t = sa.or_(t, sa.and_(both, _pair_test("==", a, b)))
            tri = _Tri(t, sa.not_(t), _FALSE)
            return tri.negated() if op == "!=" else tri
        if a.kind != b.kind or a.kind not in _ORDERED:
            return _Tri.const(None)
        test = _pair_test(op, a, b)
        return _Tri(sa.and_(both, test), sa.and_(both, sa.not_(test)), sa.not_(both))


def _expression(value: Any) -> Any:
    expr = getattr(value, "expression", value)
    if not isinstance(expr, ColumnElement):
        raise UnsupportedQueryError(f"{value!r} is not a column or column expression")
    return expr


def _mapper(model: Any) -> Mapper[Any]:
    """The mapper of an ORM class; anything else is refused (no SQLAlchemy error escapes)."""
    mapper = sa.inspect(model, raiseerr=False)
    if not isinstance(mapper, Mapper):
        raise UnsupportedQueryError(
            f"{getattr(model, '__name__', type(model).__name__)!r} is not a mapped class or a Table"
        )
    return mapper


def _attribute_columns(model: Any) -> dict[str, Any]:
    if isinstance(model, sa.Table):
        return {column.key: column for column in model.columns}
    mapper = _mapper(model)
    return {prop.key: getattr(model, prop.key).expression for prop in mapper.column_attrs}


def _primary_key(model: Any) -> Any:
    keys = (
        list(model.primary_key) if isinstance(model, sa.Table) else list(_mapper(model).primary_key)
    )
    if len(keys) != 1:
        raise UnsupportedQueryError("resource.id needs a single-column primary key")
    return keys[0]


def query_filter(
    engine: PolicyEngine,
    subject: Subject,
    action: str,
    model: Any,
    *,
    resource_type: str,
    columns: Mapping[str, Any] | None,
    tenant_column: Any,
    fields: Iterable[str] | None,
    purpose: str | None,
    context: Mapping[str, Any] | None,
    now: dt.datetime,
) -> Clause:
    if engine.violation(subject) is not None:
        return _FALSE
    request = Request(subject, engine.policy.effective_roles(subject.roles), None, context or {})
    translator = _Translator(model, resource_type, columns or {}, tenant_column, request)
    tenant = subject.tenant

    def matches(rule: Rule) -> Clause:
        if rule.when is None:
            return _TRUE
        tri = translator.condition(rule.when)
        clause = tri.t if rule.allow else sa.or_(tri.t, tri.e)
        depth = _sql_depth(clause)
        if depth > MAX_SQL_DEPTH:
            raise UnsupportedQueryError(
                f"rule {rule.id!r}: the condition nests {depth} levels deep in SQL, more than "
                f"the {MAX_SQL_DEPTH} that can be compiled; simplify it"
            )
        return clause

    full_denies: list[Clause] = []
    field_denies: list[tuple[Rule, Clause]] = []
    granting: list[tuple[Rule, Clause]] = []
    for rule in engine.candidate_rules(subject, action, resource_type):
        if rule.tenants is not None and tenant not in rule.tenants:
            continue
        if rule.purposes is not None and purpose not in rule.purposes:
            continue
        if rule.mfa_max_age is not None and not mfa_fresh(subject.mfa_at, rule.mfa_max_age, now):
            continue  # a step-up rule allows no row until the MFA is fresh
        if not rule.allow and rule.fields is None:
            full_denies.append(matches(rule))
        elif not rule.allow:
            field_denies.append((rule, matches(rule)))
        else:
            granting.append((rule, matches(rule)))

    def hidden(field: str) -> Clause:
        return sa.or_(_FALSE, *(m for rule, m in field_denies if field in (rule.fields or ())))

    if fields is None:
        allowed = sa.or_(
            _FALSE,
            *(
                sa.and_(m, _TRUE)
                if rule.fields is None
                else sa.and_(m, sa.or_(*(sa.not_(hidden(f)) for f in sorted(rule.fields))))
                for rule, m in granting
            ),
        )
    else:
        wanted = sorted(set(fields))
        allowed = sa.and_(
            sa.or_(_FALSE, *(m for _, m in granting)),
            *(
                sa.and_(
                    sa.not_(hidden(f)),
                    sa.or_(
                        _FALSE,
                        *(m for rule, m in granting if rule.fields is None or f in rule.fields),
                    ),
                )
                for f in wanted
            ),
        )
    clause = sa.and_(sa.not_(sa.or_(_FALSE, *full_denies)), allowed)
    if translator.tenant is not None:
        isolation = translator.tenant.is_(None)
        if tenant is not None:
            own = _compare(
                "==", _Column(translator.tenant, "string", "tenant"), _bind(tenant, None)
            )
            isolation = sa.or_(isolation, own)
        clause = sa.and_(isolation, clause)
    return clause


def row_resource(
    row: Any,
    resource_type: str,
    *,
    tenant_column: Any = None,
    columns: Mapping[str, Any] | None = None,
) -> Resource:
    """The `Resource` that `PolicyEngine.query_filter` assumes for an ORM object *row*:
    its mapped columns as attributes, its primary key as id, *tenant_column* as tenant.

    Example:
        ```python
        decision = engine.evaluate(agent, "read", row_resource(customer, "customer"))
        ```
    """
    mapper = _mapper(type(row))
    attributes = {prop.key: getattr(row, prop.key) for prop in mapper.column_attrs}
    for name, value in (columns or {}).items():
        attributes[name] = getattr(row, getattr(value, "key", name))
    keys = mapper.primary_key
    identity = getattr(row, mapper.get_property_by_column(keys[0]).key) if len(keys) == 1 else None
    tenant = None
    if tenant_column is not None:
        tenant = getattr(row, getattr(tenant_column, "key", tenant_column))
    return Resource(resource_type, id=identity, attributes=attributes, tenant=tenant)
