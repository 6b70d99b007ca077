"""Fuzzing the policy engine's inputs (issue 14): documents and conditions.

Properties, whatever the input:

- text given to `Policy.from_toml` / `from_json` / `from_yaml`, and structures given to
  `Policy.from_dict`, load or raise `PolicyError`: never another exception type, never a
  `RecursionError`, never a hang (generated sizes are bounded; the pathological shapes of
  100 KB and more are explicit tests at the end);
- a condition, as text (random, token soup, or grammatical), loads or raises `PolicyError`;
  one that loads evaluates over a generated subject, resource and context to a `Decision`
  that fails closed: an allow rule allows exactly when the condition is true, a deny rule
  (next to an allow for everyone) allows exactly when it is false, a condition that cannot
  be evaluated denies either way. `evaluate`, `evaluate_many` and `explain` agree.

``SECURECUSTOMER_FUZZ_EXAMPLES`` (default 200) sets the number of examples per target;
`nox -s fuzz` raises it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import policy_documents

from securecustomer.exceptions import PolicyError
from securecustomer.policy import (
    AccessRequest,
    Decision,
    Outcome,
    Policy,
    PolicyEngine,
    Resource,
    Subject,
)
from securecustomer.policy._expr import EvaluationError, Request, compile_expr, parse

EXAMPLES = int(os.environ.get("SECURECUSTOMER_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
NAMES = ("a", "b", "c", "id", "tenant", "roles", "type", "missing")

# --- values, documents and texts ------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["", "a", "eu", "EU", "eu ", "é", "é", "15m", "*", "allow", "deny"]),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
#: JSON-like structures with the other values of the condition language mixed in.
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.frozensets(st.integers(0, 3) | st.text(max_size=2), max_size=3),
        st.dictionaries(st.text(max_size=6) | st.sampled_from(NAMES), inner, max_size=4),
    ),
    max_leaves=12,
)

TOP_KEYS = ("version", "roles", "rules", "constraints", "description", "extra")
RULE_KEYS = (
    "id",
    "effect",
    "roles",
    "subjects",
    "actions",
    "resources",
    "tenants",
    "fields",
    "masks",
    "when",
    "mfa_max_age",
    "purposes",
    "description",
    "field",
)


@st.composite
def near_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Documents with the right keys and arbitrary values: valid ones with a few parts
    replaced by anything, so that the loader's every check is reached."""
    document: dict[str, Any] = draw(policy_documents(max_rules=3))
    wheres = draw(st.lists(st.sampled_from(("rule", "role", "top")), max_size=3))
    for where in sorted(wheres, key=("rule", "role", "top").index):  # top-level ones last
        if where == "rule" and document["rules"]:
            rule = draw(st.sampled_from(document["rules"]))
            rule[draw(st.sampled_from(RULE_KEYS))] = draw(structures | conditions)
        elif where == "role":
            role = draw(st.sampled_from(sorted(document["roles"])))
            document["roles"][role] = draw(structures | st.builds(dict, inherits=structures))
        elif where == "top":
            document[draw(st.sampled_from(TOP_KEYS))] = draw(structures)
    return document


def _string(text: str, quote: str) -> str:
    escaped = text.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return quote + escaped.replace("\n", "\\n").replace("\t", "\\t") + quote


literal_texts = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e999", "-0.0", "0", "1.5e-3", "true", "false", "null", "9" * 5000]),
    st.builds(_string, st.text(max_size=6), st.sampled_from(['"', "'"])),
)
attribute_texts = st.builds(
    lambda root, path: ".".join((root, *path)),
    st.sampled_from(("subject", "resource", "context")),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
)
list_texts = st.lists(literal_texts, max_size=4).map(lambda items: f"[{', '.join(items)}]")
operands = st.one_of(literal_texts, attribute_texts, list_texts)
OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
comparisons = st.one_of(
    operands,
    st.builds(lambda a, op, b: f"{a} {op} {b}", operands, st.sampled_from(OPERATORS), operands),
)
#: Grammatical conditions (some still refused: a chained comparison, ``1e999``...).
grammatical = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"({e})"),
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(("and", "or")), inner),
        st.builds(lambda a, b: f"({a}) == ({b})", inner, inner),
    ),
    max_leaves=10,
)
TOKENS = (
    "(", ")", "[", "]", ",", ".", "not", "and", "or", "in", "==", "!=", "<", "<=", ">", ">=",
    "subject", "resource", "context", "subject.a", "resource.b.c", "context.c", "1", "-2.5",
    "1e3", '"x"', "'y'", '"\\q"', '"', "true", "false", "null", "id", "!", "=", "\\",
)  # fmt: skip
token_soup = st.lists(st.sampled_from(TOKENS) | st.text(max_size=2), max_size=25).map(" ".join)
conditions = st.one_of(grammatical, token_soup, st.text(max_size=40))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{json.dumps(k, ensure_ascii=False)} = {_toml_value(v)}" for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    return repr(value)


def to_toml(document: dict[str, Any]) -> str:
    """A TOML text of a document from `policy_documents` (inline tables, one line each)."""
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in document.items())


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """*text* with a few characters inserted, deleted or replaced."""
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        insert = draw(st.text(alphabet="[]{}()\"',:=.\\#-\n 0123456789abc", max_size=4))
        text = text[:at] + insert + text[at + cut :]
    return text


def serialized(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=1)
    if fmt == "toml":
        return to_toml(document)
    return str(yaml.safe_dump(document))


LOADERS = {"json": Policy.from_json, "toml": Policy.from_toml, "yaml": Policy.from_yaml}

# --- requests ---------------------------------------------------------------------------------

attribute_maps = st.dictionaries(st.sampled_from(("a", "b", "c")), structures, max_size=3)
subjects = st.builds(
    Subject,
    st.sampled_from(("u1", "u2")),
    roles=st.just(["agent"]),
    attributes=attribute_maps,
    tenant=st.sampled_from((None, "acme")),
    mfa_at=st.sampled_from((None, NOW)),
)
resources = st.builds(
    Resource,
    st.just("customer"),
    id=scalars,
    attributes=attribute_maps,
    tenant=st.sampled_from((None, "acme")),
)
contexts = st.none() | attribute_maps


def rule(when: str, effect: str = "allow") -> dict[str, Any]:
    return {
        "id": "r",
        "effect": effect,
        "roles": ["agent"],
        "actions": ["read"],
        "resources": ["customer"],
        "when": when,
    }


def exercise(
    engine: PolicyEngine, subject: Subject, resource: Resource, context: Any, *, review: bool
) -> Decision:
    """evaluate, evaluate_many and explain of one request (and, with *review*, lint,
    who_can and review): they raise nothing and agree on the decision."""
    decision = engine.evaluate(subject, "read", resource, context=context, now=NOW)
    assert isinstance(decision, Decision)
    request = AccessRequest(subject, "read", resource, context=context, now=NOW)
    assert [decision] == engine.evaluate_many([request])
    explanation = engine.explain(subject, "read", resource, context=context, now=NOW)
    assert decision == explanation.decision
    if review:
        str(explanation)
        engine.policy.lint()
        engine.who_can("read", "customer")
        engine.review([subject]).to_markdown()
    return decision


def truth(when: str, subject: Subject, resource: Resource, context: Any) -> bool | None:
    """The condition's value for the request, or None when it cannot be evaluated (any
    other exception is a bug and fails the test)."""
    request = Request(subject, subject.roles, resource, context or {})
    try:
        return compile_expr(parse(when))(request)
    except EvaluationError:
        return None


# --- the targets ------------------------------------------------------------------------------


class TestDocuments:
    """Any document loads or raises PolicyError; a loaded one decides without raising."""

    @FUZZ
    @given(text=st.text(max_size=200), fmt=st.sampled_from(sorted(LOADERS)))
    def test_random_text(self, text: str, fmt: str) -> None:
        with contextlib.suppress(PolicyError):
            LOADERS[fmt](text + "\n")  # a line break: text, never a file name

    @FUZZ
    @given(
        document=policy_documents(max_rules=4), fmt=st.sampled_from(sorted(LOADERS)), data=st.data()
    )
    def test_mutated_text(self, document: dict[str, Any], fmt: str, data: st.DataObject) -> None:
        text = data.draw(mutated(serialized(document, fmt)))
        try:
            engine = PolicyEngine(LOADERS[fmt](text + "\n"))  # an unknown mask: PolicyError
        except PolicyError:
            return
        engine.evaluate(Subject("u1", roles=["role0"]), "read", Resource("customer"))

    @FUZZ
    @given(
        document=near_documents() | structures,
        subject=subjects,
        resource=resources,
        context=contexts,
    )
    def test_structures(
        self, document: Any, subject: Subject, resource: Resource, context: Any
    ) -> None:
        try:
            engine = PolicyEngine(Policy.from_dict(document))
        except PolicyError:
            return
        exercise(engine, subject, resource, context, review=True)


class TestConditions:
    """Any condition loads or raises PolicyError; a loaded one decides fail-closed."""

    @FUZZ
    @given(
        when=conditions,
        effect=st.sampled_from(("allow", "deny")),
        subject=subjects,
        resource=resources,
        context=contexts,
    )
    def test_fail_closed(
        self, when: str, effect: str, subject: Subject, resource: Resource, context: Any
    ) -> None:
        rules = [rule(when, effect)]
        if effect == "deny":
            rules.append({**rule("true"), "id": "everyone"})
        document = {"version": 1, "roles": {"agent": {}}, "rules": rules}
        try:
            engine = PolicyEngine(Policy.from_dict(document))
        except PolicyError:
            return
        decision = exercise(engine, subject, resource, context, review=False)
        if resource.tenant not in (None, subject.tenant):
            assert not decision.allowed  # another tenant's resource: no rule is consulted
            return
        value = truth(when, subject, resource, context)
        if effect == "allow":
            assert decision.allowed == (value is True)
        else:
            assert decision.allowed == (value is False)
        assert decision.outcome in (Outcome.ALLOW, Outcome.DENY)
        assert bool(decision.errors) == (value is None)


# --- pathological shapes: 100 KB and more, each well under a second --------------------------

SHAPES = {
    "10000 parentheses": "(" * 10_000 + "true" + ")" * 10_000,
    "10000 nots": "not " * 10_000 + "true",
    "unclosed parentheses": "(" * 100_000,
    "1 MB string": 'resource.a == "' + "x" * 1_000_000 + '"',
    "1 MB of escapes": 'resource.a == "' + "\\n" * 500_000 + '"',
    "unterminated 1 MB string": 'resource.a == "' + "x" * 1_000_000,
    "12500 ands": " and ".join(["true"] * 12_500),
    "12500 ors of comparisons": " or ".join(f"resource.a == {i}" for i in range(12_500)),
    "30000-part path": "resource" + ".a" * 30_000 + " == 1",
    "30000-item list": "resource.a in [" + ", ".join(["1"] * 30_000) + "]",
    "50000 unknown names": "x " * 50_000,
}


class TestPathologicalShapes:
    """Conditions and documents of 100 KB and more, built to hurt a recursive parser or a
    regular expression, load (and then evaluate) or raise PolicyError."""

    @pytest.mark.parametrize("when", SHAPES.values(), ids=SHAPES.keys())
    def test_condition(self, when: str) -> None:
        try:
            engine = PolicyEngine(
                Policy.from_dict({"version": 1, "roles": {"agent": {}}, "rules": [rule(when)]})
            )
        except PolicyError:
            return
        subject = Subject("u1", roles=["agent"])
        engine.evaluate(subject, "read", Resource("customer", attributes={"a": 1}))

    @pytest.mark.parametrize(
        ("fmt", "text"),
        [
            ("json", '{"version": 1, "description": ' + "[" * 100_000 + "]" * 100_000 + "}"),
            ("json", '{"a": ' * 50_000),
            ("json", '{"version": 1, "description": "' + "x" * 1_000_000 + '"}'),
            ("json", '{"version": 1, "description": "' + '\\"[' * 100_000 + '"}'),
            ("toml", "version = 1\ndescription = " + "[" * 100_000),
            ("toml", 'version = 1\ndescription = """' + '\\"""[' * 20_000 + '"""\n'),
            ("toml", "version = 1\n" + "# [[[[[[\n" * 10_000),
            ("toml", "version = 1\ndescription = '" + "x" * 1_000_000 + "'\n"),
            ("toml", "version = 1\n[" + ".".join(["a"] * 30_000) + "]\n"),
            ("yaml", "version: 1\ndescription: " + "[" * 50_000),
            ("yaml", "version: 1\n" + "".join(" " * i + f"k{i}:\n" for i in range(300)) + "x"),
            ("yaml", "version: 1\ndescription: " + "- " * 20_000 + "x\n"),
            ("yaml", "a: &a [" + ", ".join(["x"] * 9) + "]\n" + "".join(
                f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9) + "]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            )),
        ],
        ids=[
            "json-deep", "json-open", "json-1MB-string", "json-escaped-brackets",
            "toml-open", "toml-multiline-brackets", "toml-comments", "toml-1MB-string",
            "toml-30000-part-table", "yaml-open", "yaml-indented", "yaml-dashes",
            "yaml-billion-laughs",
        ],
    )  # fmt: skip
    def test_document(self, fmt: str, text: str) -> None:
        with contextlib.suppress(PolicyError):
            LOADERS[fmt](text + "\n")

    def test_shared_structure(self) -> None:
        """A document whose lists share items 4**25 ways (as YAML aliases make) is
        measured in time linear in its distinct lists."""
        value: list[Any] = []
        for _ in range(25):
            value = [value, value, value, value]
        doc = {"version": 1, "roles": {"agent": {}}, "rules": [rule("true")]}
        doc["rules"][0]["description"] = value
        with pytest.raises(PolicyError, match="must be a string"):
            Policy.from_dict(doc)

    def test_nan_and_infinite_durations(self) -> None:
        for value in (math.nan, math.inf, 10**400, "9" * 5000 + "d", 1e300):
            doc = {"version": 1, "roles": {"agent": {}}, "rules": [rule("true")]}
            doc["rules"][0]["mfa_max_age"] = value
            with pytest.raises(PolicyError, match="mfa_max_age"):
                Policy.from_dict(doc)
