"""Nesting limits: deep conditions and documents are refused with `PolicyError`, never with
`RecursionError`, and whatever is allowed also evaluates, explains and filters.

The limits (documented in docs/policies.md): a condition nests at most
`MAX_CONDITION_DEPTH` (32) levels of parentheses and ``not``; a document at most
`MAX_DOCUMENT_DEPTH` (32) levels of tables and lists. The tests never change the
interpreter's recursion limit.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from securecustomer.exceptions import PolicyError, PolicyUsageError, UnsupportedQueryError
from securecustomer.policy import (
    AccessRequest,
    Outcome,
    Policy,
    PolicyEngine,
    Resource,
    Subject,
    parse_duration,
)
from securecustomer.policy._document import MAX_DOCUMENT_DEPTH
from securecustomer.policy._parse import MAX_CONDITION_DEPTH, ExprSyntaxError, parse
from securecustomer.sqlalchemy import row_resource

AGENT = Subject("u1", roles=["agent"], attributes={"level": 3})
ROW = Resource("customer", id=1, attributes={"level": 2})


def document(when: str | None = None, **rule: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": "r",
        "effect": "allow",
        "roles": ["agent"],
        "actions": ["read"],
        "resources": ["customer"],
    }
    if when is not None:
        spec["when"] = when
    spec.update(rule)
    return {"version": 1, "roles": {"agent": {}}, "rules": [spec]}


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deepest(depth: int) -> str:
    """The most syntax-tree nodes per level: or -> and -> comparison -> ( ... )."""
    text = "resource.level"
    for _ in range(depth):
        text = f"(true or true and {text} == true)"
    return text


def deepest_sql(depth: int) -> str:
    """The deepest SQL per level: or -> and -> ( ... ), over a column."""
    text = "resource.level == 2"
    for _ in range(depth):
        text = f"(resource.level > 6 or resource.level >= 1 and {text})"
    return text


class TestConditionDepth:
    """Conditions nest at most 32 levels; deeper ones are a PolicyError naming the rule."""

    @pytest.mark.parametrize(
        "when",
        [
            "(" * 200 + "resource.level == 2" + ")" * 200,
            "not " * 2000 + "true",
            "(" * 10_000 + "true" + ")" * 10_000,
            "not " * 10_000 + "true",
            "not (" * 5_000 + "true" + ")" * 5_000,
            "resource.level == " + "(" * 300 + "1" + ")" * 300,
        ],
        ids=["200-parens", "2000-nots", "10000-parens", "10000-nots", "mixed", "operand"],
    )
    def test_too_deep(self, when: str) -> None:
        with pytest.raises(PolicyError, match=f"nested more than {MAX_CONDITION_DEPTH}") as info:
            Policy.from_dict(document(when))
        assert ("r", "when") == (info.value.rule, info.value.field)

    def test_parse_names_the_column(self) -> None:
        text = "(" * (MAX_CONDITION_DEPTH + 1) + "true" + ")" * (MAX_CONDITION_DEPTH + 1)
        with pytest.raises(ExprSyntaxError) as info:
            parse(text)
        assert MAX_CONDITION_DEPTH == info.value.position

    @pytest.mark.parametrize(
        "shape",
        [
            lambda n: "(" * n + "resource.level == 2" + ")" * n,
            lambda n: "not " * n + "resource.level == 2",
            lambda n: "not (" * (n // 2) + "resource.level == 2" + ")" * (n // 2),
            deepest,
        ],
        ids=["parens", "nots", "mixed", "or-and-compare"],
    )
    def test_deepest_allowed_works_everywhere(self, shape: Callable[[int], str]) -> None:
        """At the limit, loading, evaluating, explaining, linting and reviewing all work,
        with the default recursion limit and 200 frames of a host application's callers."""
        engine = PolicyEngine(Policy.from_dict(document(shape(MAX_CONDITION_DEPTH))))
        assert 1000 == sys.getrecursionlimit()

        def deep(levels: int) -> Outcome:
            if levels:
                return deep(levels - 1)
            engine.explain(AGENT, "read", ROW)
            engine.policy.lint()
            engine.who_can("read", "customer")
            engine.review({"u1": ["agent"]}).to_markdown()
            return engine.evaluate(AGENT, "read", ROW).outcome

        assert deep(200) in (Outcome.ALLOW, Outcome.DENY)

    @pytest.mark.parametrize(
        ("shape", "filters"),
        [
            (lambda n: "(" * n + "resource.level == 2" + ")" * n, True),
            (lambda n: "not " * n + "resource.level == 2", True),
            (lambda n: "not (" * (n // 2) + "resource.level == 2" + ")" * (n // 2), True),
            (lambda n: deepest_sql(n // 8), True),
            (deepest_sql, False),
        ],
        ids=["parens", "nots", "mixed", "or-and-4", "or-and"],
    )
    @pytest.mark.parametrize("effect", ["allow", "deny"])
    def test_deepest_allowed_filters_in_sql(
        self, db_url: str, shape: Callable[[int], str], filters: bool, effect: str
    ) -> None:
        """At the limit, the SQL filter is built, compiled and run on every database with
        200 frames of callers, and selects the rows evaluate allows; a condition whose SQL
        would nest too deeply (for SQLite's parser: "parser stack overflow", and for
        SQLAlchemy's compiler) is refused with UnsupportedQueryError naming the rule when
        the filter is built."""
        doc = document(shape(MAX_CONDITION_DEPTH), effect=effect)
        if effect == "deny":
            doc["rules"].append({**document()["rules"][0], "id": "all"})
        engine = PolicyEngine(Policy.from_dict(doc))
        table = sa.Table(
            "policy_limit_rows",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("level", sa.Integer),
        )
        if not filters:
            with pytest.raises(UnsupportedQueryError, match=r"rule 'r': .* levels deep in SQL"):
                engine.query_filter(AGENT, "read", table, resource_type="customer")
            return
        db = sa.create_engine(db_url)
        levels = {1: 2, 2: 3, 3: None, 4: 7}
        try:
            table.metadata.create_all(db)
            with db.begin() as connection:
                connection.execute(
                    table.insert(), [{"id": i, "level": level} for i, level in levels.items()]
                )

                def deep(levels: int) -> list[int]:
                    if levels:
                        return deep(levels - 1)
                    clause = engine.query_filter(AGENT, "read", table, resource_type="customer")
                    query = sa.select(table.c.id).where(clause).order_by(table.c.id)
                    return list(connection.execute(query).scalars())

                ids = deep(200)
        finally:
            table.metadata.drop_all(db)
            db.dispose()
        expected = [
            i
            for i, level in levels.items()
            if engine.evaluate(
                AGENT, "read", Resource("customer", id=i, attributes={"level": level})
            ).allowed
        ]
        assert expected == ids

    def test_wide_conditions_filter_in_n_log_n(self) -> None:
        """2000 comparisons joined by 'or' (or 'and' under 'not') make SQL of a size near
        linear, not quadratic (tens of megabytes before), nesting about log2(2000) deep."""
        table = sa.Table(
            "rows",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("level", sa.Integer),
        )
        for when in [
            " or ".join(f"resource.level == {i}" for i in range(2000)),
            "not (" + " and ".join(f"resource.level != {i}" for i in range(2000)) + ")",
        ]:
            doc = document(when, effect="deny")
            doc["rules"].append({**document()["rules"][0], "id": "all"})
            engine = PolicyEngine(Policy.from_dict(doc))
            clause = engine.query_filter(AGENT, "read", table, resource_type="customer")
            sql = str(sa.select(table.c.id).where(clause).compile(dialect=sqlite.dialect()))
            assert len(sql) < 2_000_000


class TestDocumentDepth:
    """Documents nest at most 32 levels; deeper ones are a PolicyError naming the key."""

    def test_dict(self) -> None:
        doc = document()
        doc["rules"][0]["roles"] = nested_list(5000)
        with pytest.raises(PolicyError, match=f"nested more than {MAX_DOCUMENT_DEPTH}") as info:
            Policy.from_dict(doc)
        assert "r" == info.value.rule
        assert info.value.field is not None
        assert info.value.field.startswith("roles[0][0][0]")

    @pytest.mark.parametrize("key", ["version", "description", "constraints", "roles"])
    def test_dict_top_level(self, key: str) -> None:
        doc = document()
        doc[key] = nested_list(5000)
        with pytest.raises(PolicyError, match="nested more than") as info:
            Policy.from_dict(doc)
        assert info.value.field is not None
        assert info.value.field.startswith(key)

    def test_at_the_limit_the_content_is_judged(self) -> None:
        # top-level table, rules, the rule: three levels above the rule's description
        doc = document(description=nested_list(MAX_DOCUMENT_DEPTH - 3))
        with pytest.raises(PolicyError, match="must be a string"):
            Policy.from_dict(doc)
        doc = document(description=nested_list(MAX_DOCUMENT_DEPTH - 2))
        with pytest.raises(PolicyError, match="nested more than"):
            Policy.from_dict(doc)

    def test_cycle(self) -> None:
        doc = document()
        loop: list[Any] = []
        loop.append(loop)
        doc["rules"][0]["roles"] = loop
        with pytest.raises(PolicyError, match="refers to itself"):
            Policy.from_dict(doc)

    def test_shared_values_are_measured_once(self) -> None:
        """A DAG of shared lists (YAML aliases make one) is measured in linear time."""
        value: list[Any] = ["x"]
        for _ in range(MAX_DOCUMENT_DEPTH - 5):
            value = [value, value, value, value]  # 4**27 paths, 28 lists
        doc = document(description=value)
        with pytest.raises(PolicyError, match="must be a string"):
            Policy.from_dict(doc)

    @pytest.mark.parametrize(
        ("load", "text"),
        [
            (
                Policy.from_json,
                '{"version": 1, "description": ' + "[" * 50_000 + "]" * 50_000 + "}",
            ),
            (Policy.from_json, '{"a": ' + "[" * 100_000),
            (Policy.from_json, '{"a":' * 20_000 + "1" + "}" * 20_000),
            (Policy.from_toml, "version = 1\ndescription = " + "[" * 5000 + "]" * 5000 + "\n"),
            (Policy.from_toml, "version = 1\ndescription = " + "{a = " * 5000 + "1" + "}" * 5000),
            (Policy.from_toml, "version = 1\n[" + ".".join(["a"] * 5000) + "]\n"),
            (Policy.from_yaml, "version: 1\ndescription: " + "[" * 5000 + "]" * 5000 + "\n"),
            (Policy.from_yaml, "version: 1\ndescription: " + "{a: " * 5000 + "1" + "}" * 5000),
            (
                Policy.from_yaml,
                "version: 1\n" + "".join(" " * i + f"k{i}:\n" for i in range(3000)) + "x",
            ),
        ],
        ids=[
            "json",
            "json-open",
            "json-objects",
            "toml",
            "toml-tables",
            "toml-dotted",
            "yaml",
            "yaml-flow-maps",
            "yaml-block",
        ],
    )
    def test_text(self, load: Callable[[str], Policy], text: str) -> None:
        with pytest.raises(PolicyError, match=r"nested more than|not valid"):
            load(text)

    @pytest.mark.parametrize(
        ("load", "text"),
        [
            (Policy.from_json, '{"version": ' + "1" * 5000 + "}"),
            (Policy.from_toml, "version = " + "1" * 5000 + "\n"),
            (Policy.from_yaml, "version: " + "1" * 5000 + "\n"),
        ],
        ids=["json", "toml", "yaml"],
    )
    def test_huge_integers(self, load: Callable[[str], Policy], text: str) -> None:
        """Python refuses integers of more than 4300 digits with a ValueError; the loaders
        turn it into a PolicyError."""
        with pytest.raises(PolicyError, match="not valid"):
            load(text)

    def test_json_in_a_file_names_it(self, tmp_path: Any) -> None:
        path = tmp_path / "deep.json"
        path.write_text(
            json.dumps({"version": 1, "description": nested_list(20)}).replace(
                "[]", "[" * 3000 + "]" * 3000
            )
        )
        with pytest.raises(PolicyError, match="nested more than") as info:
            Policy.from_json(path)
        assert str(path) == info.value.source


class TestErrorTypes:
    """What the policy package raises is a SecureCustomerError, still the built-in it was."""

    @pytest.mark.parametrize(
        "call",
        [
            lambda: Subject("u1", roles="agent"),  # type: ignore[arg-type]
            lambda: AccessRequest(AGENT, "read", ROW, fields="name"),  # type: ignore[arg-type]
            lambda: PolicyEngine(Policy.from_dict(document())).evaluate(
                AGENT, "read", ROW, fields="name"
            ),
            lambda: bool(PolicyEngine(Policy.from_dict(document())).evaluate(AGENT, "read", ROW)),
            lambda: Policy.from_toml(b"version = 1"),  # type: ignore[arg-type]
            lambda: Policy.from_json(None),  # type: ignore[arg-type]
        ],
        ids=["roles-string", "fields-string", "evaluate-fields-string", "decision-bool",
             "toml-bytes", "json-none"],
    )  # fmt: skip
    def test_usage_errors(self, call: Callable[[], object]) -> None:
        with pytest.raises(PolicyUsageError) as info:
            call()
        assert isinstance(info.value, TypeError)

    def test_naive_times(self) -> None:
        naive = dt.datetime(2024, 5, 1, 12, 0)
        with pytest.raises(PolicyUsageError, match="timezone-aware") as info:
            Subject("u1", mfa_at=naive)
        assert isinstance(info.value, ValueError)  # as before
        doc = document(mfa_max_age="15m")
        engine = PolicyEngine(Policy.from_dict(doc))
        with pytest.raises(PolicyUsageError, match="timezone-aware"):
            engine.evaluate(AGENT, "read", ROW, now=naive)

    def test_guard_without_the_parameter(self) -> None:
        engine = PolicyEngine(Policy.from_dict(document()))

        @engine.guard("read", resource="row")
        def show(subject: Subject) -> str:
            return "ok"

        with pytest.raises(PolicyUsageError, match="no parameter named 'row'"):
            show(AGENT)

    @pytest.mark.parametrize(
        "value", [10**400, "9" * 5000 + "d", math.inf, math.nan, 1e300, "99999999999d"]
    )
    def test_durations(self, value: object) -> None:
        """float(10**400) raised OverflowError, int() of 5000 digits ValueError, a NaN
        duration was accepted, 1e300 seconds overflowed timedelta."""
        with pytest.raises(PolicyError, match="duration"):
            parse_duration(value)
        with pytest.raises(PolicyError, match="mfa_max_age"):
            Policy.from_dict(document(mfa_max_age=value))

    def test_query_filter_on_what_is_not_a_model(self) -> None:
        engine = PolicyEngine(Policy.from_dict(document("resource.level == 2")))
        for model in (object(), "customers", sa.select(sa.literal(1))):
            with pytest.raises(UnsupportedQueryError, match="not a mapped class or a Table"):
                engine.query_filter(AGENT, "read", model, resource_type="customer")
        with pytest.raises(UnsupportedQueryError, match="not a mapped class or a Table"):
            row_resource(object(), "customer")
