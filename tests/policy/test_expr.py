"""The condition language: parsing, strict evaluation, and canonical text that parses back."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securecustomer.policy import Resource, Subject
from securecustomer.policy._expr import Request, compile_expr
from securecustomer.policy._parse import (
    COMPARISONS,
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
    parse,
    unparse,
)


def a(text: str) -> Attr:
    root, *path = text.split(".")
    return Attr(root, tuple(path))


def lit(value: Any) -> Literal:
    return Literal(value)


SUBJECT = Subject(
    "user-7",
    roles=["agent"],
    attributes={"region": "eu", "level": 3, "id": "not-the-id", "clearance": ["a", "b"]},
    tenant="acme",
)
RESOURCE = Resource(
    "customer",
    id=42,
    attributes={
        "region": "eu",
        "level": 2,
        "score": 2.5,
        "vip": True,
        "tags": ["gold", "late"],
        "address": {"country": "FR", "city": {"name": "Lyon"}},
        "opened": date(2020, 1, 31),
        "seen": datetime(2024, 5, 1, 12, tzinfo=UTC),
        "naive": datetime(2024, 5, 1, 12),
        "secret": "hunter2",
        "none": None,
    },
    tenant="acme",
)


def evaluate(
    text: str,
    *,
    roles: frozenset[str] = frozenset({"agent", "viewer"}),
    context: dict[str, Any] | None = None,
) -> bool:
    request = Request(SUBJECT, roles, RESOURCE, context or {"channel": "phone", "hour": 9})
    return compile_expr(parse(text))(request)


class TestParse:
    """Text to syntax tree: precedence, operands, literals."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("subject.id == 1", Compare("==", a("subject.id"), lit(1))),
            ("resource.address.country", a("resource.address.country")),
            ("context.x != null", Compare("!=", a("context.x"), lit(None))),
            (
                "resource.a or resource.b and resource.c",
                Or((a("resource.a"), And((a("resource.b"), a("resource.c"))))),
            ),
            (
                "resource.a and resource.b or resource.c",
                Or((And((a("resource.a"), a("resource.b"))), a("resource.c"))),
            ),
            (
                "(resource.a or resource.b) and resource.c",
                And((Or((a("resource.a"), a("resource.b"))), a("resource.c"))),
            ),
            (
                "not resource.a and resource.b",
                And((Not(a("resource.a")), a("resource.b"))),
            ),
            ("not resource.a == 1", Not(Compare("==", a("resource.a"), lit(1)))),
            ("not not resource.a", Not(Not(a("resource.a")))),
            (
                "resource.a and resource.b and resource.c",
                And((a("resource.a"), a("resource.b"), a("resource.c"))),
            ),
            (
                "resource.a or resource.b or resource.c",
                Or((a("resource.a"), a("resource.b"), a("resource.c"))),
            ),
            ("resource.a not in [1, 2]", Compare("not in", a("resource.a"), lit((1, 2)))),
            (
                "not resource.a in [1]",
                Not(Compare("in", a("resource.a"), lit((1,)))),
            ),
            ("'x' in subject.roles", Compare("in", lit("x"), a("subject.roles"))),
            ("resource.a<=resource.b", Compare("<=", a("resource.a"), a("resource.b"))),
            ("((resource.a))", a("resource.a")),
            ("resource . address.  country", a("resource.address.country")),
            ("true", lit(True)),
            ("false", lit(False)),
            ("null", lit(None)),
            ("[]", lit(())),
            ("[1, 'x', true, null, -2.5]", lit((1, "x", True, None, -2.5))),
            ("\n\tresource.a\n==\n1 ", Compare("==", a("resource.a"), lit(1))),
        ],
    )
    def test_trees(self, text: str, expected: Expr) -> None:
        assert expected == parse(text)

    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("42", 42),
            ("-7", -7),
            ("3.25", 3.25),
            ("-0.5", -0.5),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            ("12345678901234567890", 12345678901234567890),
        ],
    )
    def test_numbers(self, text: str, value: float) -> None:
        parsed = parse(text)
        assert isinstance(parsed, Literal)
        assert (type(value), value) == (type(parsed.value), parsed.value)

    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ('"plain"', "plain"),
            ("'single'", "single"),
            ('""', ""),
            (r'"say \"hi\""', 'say "hi"'),
            (r"'it\'s'", "it's"),
            (r'"back\\slash"', "back\\slash"),
            (r'"two\nlines\ttab"', "two\nlines\ttab"),
            ('"it\'s"', "it's"),
            ("'say \"hi\"'", 'say "hi"'),
            ('"é ✓"', "é ✓"),
        ],
    )
    def test_strings(self, text: str, value: str) -> None:
        assert lit(value) == parse(text)

    def test_keywords_are_lowercase(self) -> None:
        with pytest.raises(ExprSyntaxError, match="unknown name 'True'"):
            parse("True")


class TestSyntaxErrors:
    """Everything else is an ExprSyntaxError with the column of the first problem."""

    @pytest.mark.parametrize(
        ("text", "fragment", "position"),
        [
            ("resource.a < resource.b < 3", "chained comparisons need parentheses", 24),
            ("resource.a == resource.b == 1", "chained comparisons", 25),
            ("resource.a in [1] not in [2]", "chained comparisons", 18),
            ("user.id == 1", "unknown name 'user'", 0),
            ("x", "unknown name 'x'", 0),
            ("subject", "'subject' needs an attribute", 0),
            ("subject.1", "expected an attribute name after '.'", 8),
            ("subject.'a'", "expected an attribute name", 8),
            ("subject.in == 1", "expected an attribute name", 8),
            ("__import__('os')", "unknown name '__import__'", 0),
            ("__import__('os').system('true')", "unknown name '__import__'", 0),
            ("open('/etc/passwd')", "unknown name 'open'", 0),
            ("subject.id == eval('1')", "unknown name 'eval'", 14),
            ("lambda: true", "unexpected character ':'", 6),
            ("resource.a = 1", "unexpected character '='", 11),
            ("resource.a == @", "unexpected character '@'", 14),
            ("resource.a - 1", "unexpected character '-'", 11),
            ("resource.a ==", "expected a value, found end of condition", 13),
            ("", "expected a value, found end of condition", 0),
            ("   ", "expected a value, found end of condition", 3),
            ("not", "expected a value, found end of condition", 3),
            ("resource.a and", "expected a value", 14),
            ("resource.a or not", "expected a value", 17),
            ("(resource.a", "expected ')', found end of condition", 11),
            ("resource.a)", "unexpected ')'", 10),
            ("resource.a resource.b", "unexpected 'resource'", 11),
            ("[resource.a]", "list items must be literals", 1),
            ("[1, 2,]", "list items must be literals", 6),
            ("[1 2]", "expected ','", 3),
            ("[[1]]", "list items must be literals", 1),
            ("[1", "expected ','", 2),
            ("resource.a not == 1", "expected 'in'", 15),
            ("not in [1]", "expected a value, found 'not'", 0),
            ('"unterminated', "unexpected character '\"'", 0),
            (r'"bad \x escape"', "unknown escape \\x", 6),
            ("1e400", "number out of range", 0),
            ("resource.a == " + "9" * 5000, "number too long", 14),
            ("resource.a == 1 ; true", "unexpected character ';'", 16),
        ],
    )
    def test_refused(self, text: str, fragment: str, position: int) -> None:
        with pytest.raises(ExprSyntaxError) as info:
            parse(text)
        assert fragment in str(info.value)
        assert position == info.value.position
        assert str(info.value).endswith(f"at column {position + 1}")

    def test_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="column"):
            parse("resource.a ==")


class TestEquality:
    """== and != are strict: values of different kinds are never equal."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1 == true", False),
            ("0 == false", False),
            ("1 == 1.0", True),
            ("1 != true", True),
            ("'1' == 1", False),
            ("null == null", True),
            ("null == false", False),
            ("'' == null", False),
            ("[1, 2] == [1, 2]", True),
            ("[1, 2] == [2, 1]", False),
            ("[1] == [true]", False),
            ("[1] == [1.0]", True),
            ("resource.level == 2", True),
            ("resource.level != 2", False),
            ("resource.score == 2.5", True),
            ("resource.region == subject.region", True),
            ("resource.vip == true", True),
            ("resource.vip == 1", False),
            ("resource.none == null", True),
            ("resource.tags == ['gold', 'late']", True),
            ("resource.tags == ['late', 'gold']", False),
            ("resource.address.country == 'FR'", True),
            ("resource.address.city.name == 'Lyon'", True),
            ("resource.address == resource.address", True),
        ],
    )
    def test_equality(self, text: str, expected: bool) -> None:
        assert expected is evaluate(text)

    def test_sets_compare_without_order(self) -> None:
        roles = frozenset({"agent", "viewer", "auditor"})
        for order in ("'agent', 'viewer', 'auditor'", "'auditor', 'agent', 'viewer'"):
            assert evaluate(f"subject.roles == [{order}]", roles=roles)
        assert not evaluate("subject.roles == ['agent', 'viewer']", roles=roles)
        assert not evaluate("subject.roles == ['agent', 'viewer', 'other']", roles=roles)

    def test_maps_compare_strictly(self) -> None:
        context = {"a": {"x": 1}, "b": {"x": True}, "c": {"x": 1.0}, "d": {"x": 1, "y": 2}}
        assert not evaluate("context.a == context.b", context=context)
        assert evaluate("context.a == context.c", context=context)
        assert not evaluate("context.a == context.d", context=context)


class TestOrdering:
    """<, <=, >, >= compare two numbers, two strings, two dates or two datetimes."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1 < 2", True),
            ("2 <= 2", True),
            ("2.5 > 2", True),
            ("-1 >= 0", False),
            ("resource.level < subject.level", True),
            ("'abc' < 'abd'", True),
            ("'b' >= 'a'", True),
            ("resource.opened < context.today", True),
            ("resource.seen <= context.now", True),
            ("resource.seen > context.now", False),
        ],
    )
    def test_ordered(self, text: str, expected: bool) -> None:
        context = {"today": date(2024, 1, 1), "now": datetime(2024, 5, 1, 12, tzinfo=UTC)}
        assert expected is evaluate(text, context=context)

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("1 < '2'", "cannot compare number < string"),
            ("true > false", "cannot compare bool > bool"),
            ("null <= null", "cannot compare null <= null"),
            ("[1] < [2]", "cannot compare list < list"),
            ("resource.level >= true", "cannot compare number >= bool"),
            ("resource.opened < resource.seen", "cannot compare date < datetime"),
            ("resource.address > resource.address", "cannot compare map > map"),
            ("resource.naive < resource.seen", "naive"),
        ],
    )
    def test_refused(self, text: str, fragment: str) -> None:
        with pytest.raises(EvaluationError, match=fragment):
            evaluate(text)


class TestMembership:
    """in and not in look for an equal item in a list (or set)."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("'gold' in resource.tags", True),
            ("'silver' in resource.tags", False),
            ("'silver' not in resource.tags", True),
            ("1 in [1.0, 2]", True),
            ("1 in [true]", False),
            ("true in [1]", False),
            ("null in [null]", True),
            ("resource.level in []", False),
            ("resource.region in ['us', 'eu']", True),
            ("'agent' in subject.roles", True),
            ("'viewer' in subject.roles", True),
            ("'admin' not in subject.roles", True),
            ("subject.clearance in context.pairs", True),
        ],
    )
    def test_membership(self, text: str, expected: bool) -> None:
        context = {"pairs": [["a", "b"], ["c"]]}
        assert expected is evaluate(text, context=context)

    @pytest.mark.parametrize(
        "text",
        ["'e' in 'eu'", "'e' in resource.region", "1 in resource.address", "1 not in null"],
    )
    def test_needs_a_list(self, text: str) -> None:
        with pytest.raises(EvaluationError, match="'in' needs a list on the right"):
            evaluate(text)


class TestLogic:
    """and, or and not need booleans; the whole condition must be a boolean."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("true and false", False),
            ("true or false", True),
            ("not false", True),
            ("not (1 == 1)", False),
            ("resource.vip", True),
            ("resource.vip and resource.level == 2", True),
            ("false or true and false", False),
            ("(false or true) and true", True),
            ("not resource.vip or true", True),
        ],
    )
    def test_values(self, text: str, expected: bool) -> None:
        assert expected is evaluate(text)

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("1", "the condition is number, not a boolean"),
            ("resource.region", "the condition is string"),
            ("null", "the condition is null"),
            ("not 1", "the operand of 'not' is number"),
            ("true and 'yes'", "an operand of 'and' is string"),
            ("1 and true", "an operand of 'and' is number"),
            ("false or resource.tags", "an operand of 'or' is list"),
            ("resource.none or true", "an operand of 'or' is null"),
        ],
    )
    def test_refused(self, text: str, fragment: str) -> None:
        with pytest.raises(EvaluationError, match=fragment):
            evaluate(text)

    def test_short_circuit(self) -> None:
        assert not evaluate("context.has_level and context.level > 3", context={"has_level": False})
        assert evaluate("context.open or context.missing", context={"open": True})
        with pytest.raises(EvaluationError, match="no key 'level'"):
            evaluate("context.has_level and context.level > 3", context={"has_level": True})


class TestAttributes:
    """Paths: built-ins first, then attributes, then keys of nested maps."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("subject.id == 'user-7'", True),
            ("subject.tenant == 'acme'", True),
            ("resource.type == 'customer'", True),
            ("resource.id == 42", True),
            ("resource.tenant == subject.tenant", True),
            ("subject.region == 'eu'", True),
            ("context.channel == 'phone'", True),
            ("context.hour < 12", True),
        ],
    )
    def test_lookups(self, text: str, expected: bool) -> None:
        assert expected is evaluate(text)

    def test_attributes_listed_in_order(self) -> None:
        expr = parse("resource.a == subject.b and not context.c in [1] or resource.a.x")
        expected = [a("resource.a"), a("subject.b"), a("context.c"), a("resource.a.x")]
        assert expected == attributes(expr)
        assert [] == attributes(parse("1 == 1"))

    def test_other_kinds(self) -> None:
        context = {"d": Decimal("1.5"), "e": Decimal("1.5"), "u": uuid.UUID(int=1)}
        assert evaluate("context.d == context.e", context=context)
        assert not evaluate("context.d == 1.5", context=context)
        assert evaluate("context.u == context.u", context=context)
        with pytest.raises(EvaluationError, match="cannot compare Decimal < Decimal"):
            evaluate("context.d < context.e", context=context)

    def test_builtin_wins_over_attribute(self) -> None:
        assert evaluate("subject.id == 'user-7'")
        assert not evaluate("subject.id == 'not-the-id'")

    def test_roles_are_the_request_roles(self) -> None:
        assert evaluate("'viewer' in subject.roles", roles=frozenset({"viewer"}))
        assert not evaluate("'agent' in subject.roles", roles=frozenset({"viewer"}))

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("subject.department == 'x'", "subject has no attribute 'department'"),
            ("resource.owner == 'x'", "resource has no attribute 'owner'"),
            ("context.ip == 'x'", "context has no key 'ip'"),
            ("resource.address.zip == 'x'", "resource.address has no key 'zip'"),
            ("resource.address.country.code == 'x'", "resource.address.country has no key"),
            ("resource.address.city.name.first == 'x'", "resource.address.city.name has no"),
            ("subject.roles.admin", "subject.roles has no key 'admin'"),
            ("subject.__class__ == 1", "subject has no attribute '__class__'"),
            ("resource.__dict__ == 1", "resource has no attribute '__dict__'"),
            ("resource.attributes == 1", "resource has no attribute 'attributes'"),
        ],
    )
    def test_missing(self, text: str, fragment: str) -> None:
        with pytest.raises(EvaluationError, match=fragment):
            evaluate(text)

    @pytest.mark.parametrize(
        "text",
        [
            "resource.secret > 3",
            "resource.secret and true",
            "resource.secret in resource.secret",
            "resource.secret",
            "resource.secret.inner == 1",
        ],
    )
    def test_errors_never_show_values(self, text: str) -> None:
        with pytest.raises(EvaluationError) as info:
            evaluate(text)
        assert "hunter2" not in str(info.value)


class TestUnparse:
    """Canonical text: fully parenthesized, and it parses back to the same tree."""

    @pytest.mark.parametrize(
        ("text", "canonical"),
        [
            ("resource.a==1", "resource.a == 1"),
            ("resource.a and resource.b", "(resource.a) and (resource.b)"),
            (
                "resource.a or resource.b and not resource.c",
                "(resource.a) or ((resource.b) and (not (resource.c)))",
            ),
            (
                "resource.a not in ['x', 1.5, null, false]",
                'resource.a not in ["x", 1.5, null, false]',
            ),
            (r"""'it\'s "q" \\ \n \t'""", r'''"it's \"q\" \\ \n \t"'''),
            ("(resource.a and resource.b) == true", "((resource.a) and (resource.b)) == true"),
            ("(not resource.a) == false", "(not (resource.a)) == false"),
            ("(resource.a == 1) != (resource.b == 2)", "(resource.a == 1) != (resource.b == 2)"),
            ("-3 < 1e2", "-3 < 100.0"),
        ],
    )
    def test_canonical(self, text: str, canonical: str) -> None:
        parsed = parse(text)
        assert canonical == unparse(parsed)
        assert parsed == parse(canonical)

    def test_parenthesized_operands_keep_their_meaning(self) -> None:
        text = "(resource.vip and false) == false"
        assert evaluate(text)
        assert evaluate(unparse(parse(text)))

    def test_literals_keep_their_kind(self) -> None:
        assert parse("resource.a == 1") != parse("resource.a == true")
        assert parse("resource.a in [0]") != parse("resource.a in [false]")
        assert parse("resource.a == 1") == parse("resource.a == 1.0")
        assert hash(parse("resource.a == 1")) == hash(parse("resource.a == 1.0"))

    @given(st.data())
    def test_round_trip(self, data: st.DataObject) -> None:
        expr = data.draw(expressions)
        text = unparse(expr)
        assert expr == parse(text)
        assert text == unparse(parse(text))

    @given(st.data())
    def test_round_trip_evaluates_the_same(self, data: st.DataObject) -> None:
        expr = data.draw(expressions)
        request = Request(SUBJECT, frozenset({"agent"}), RESOURCE, {"a": True, "b": 1})
        results: list[object] = []
        for tree in (expr, parse(unparse(expr))):
            try:
                results.append(compile_expr(tree)(request))
            except EvaluationError as exc:
                results.append(str(exc))
        assert results[0] == results[1]


_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in _KEYWORDS
)
_attrs = st.builds(
    Attr,
    st.sampled_from(["subject", "resource", "context"]),
    st.lists(
        st.sampled_from(["a", "b", "id", "tags", "vip", "level"]) | _names, min_size=1, max_size=3
    ).map(tuple),
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_literals = st.builds(Literal, _scalars | st.lists(_scalars, max_size=4).map(tuple))
_operands = _literals | _attrs
_ops = st.sampled_from(sorted(COMPARISONS))
expressions: st.SearchStrategy[Expr] = st.recursive(
    _operands | st.builds(Compare, _ops, _operands, _operands),
    lambda children: (
        st.builds(And, st.lists(children, min_size=2, max_size=3).map(tuple))
        | st.builds(Or, st.lists(children, min_size=2, max_size=3).map(tuple))
        | st.builds(Not, children)
        | st.builds(Compare, _ops, children, children)
    ),
    max_leaves=10,
)
