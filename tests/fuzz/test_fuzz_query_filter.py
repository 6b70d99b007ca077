"""Fuzzing `PolicyEngine.query_filter` (issue 14) on SQLite, PostgreSQL and MariaDB.

Properties, for generated conditions (grammatical ones over every kind of column, token
soup, deep and wide ones) in allow and deny rules, generated subjects and contexts:

- building the filter returns a where-clause or raises `PolicyError` (the condition does
  not load) or `UnsupportedQueryError` (it cannot be translated exactly, or would nest too
  deeply for the database): never a raw SQLAlchemy, driver or Python error;
- a returned filter runs on the database and selects exactly the rows that `evaluate`
  allows, row by row (fail-closed semantics included).

``SECURECUSTOMER_FUZZ_EXAMPLES`` (default 200) sets the number of examples per target;
`nox -s fuzz` raises it.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql

from securecustomer.exceptions import PolicyError, UnsupportedQueryError
from securecustomer.policy import Policy, PolicyEngine, Resource, Subject

EXAMPLES = int(os.environ.get("SECURECUSTOMER_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

# The database fixtures of tests/sqlalchemy (`db_url`: sqlite, postgresql, mariadb), loaded
# by path as tests/policy/conftest.py does.
_PATH = Path(__file__).parent.parent / "sqlalchemy" / "conftest.py"
_SPEC = importlib.util.spec_from_file_location("_fuzz_db_fixtures", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
_fixtures = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_fixtures)
db_url = _fixtures.db_url
sqlite_url = _fixtures.sqlite_url
postgresql_url = _fixtures.postgresql_url
mariadb_url = _fixtures.mariadb_url

# --- the table and its rows ------------------------------------------------------------------

METADATA = sa.MetaData()
TABLE = sa.Table(
    "fuzz_policy_rows",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.String(16)),
    sa.Column("n", sa.BigInteger),
    sa.Column("x", sa.Double),
    sa.Column("s", sa.String(16)),
    sa.Column("flag", sa.Boolean),
    sa.Column("day", sa.Date),
    sa.Column("seen", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")),
    sa.Column("amount", sa.Numeric(10, 2)),  # Decimal: cannot be filtered
    sa.Column("blob", sa.LargeBinary),  # bytes: cannot be filtered
)
DAY = dt.date(2024, 5, 1)
SEEN = dt.datetime(2024, 5, 1, 12, 0, 0, 500)
ROWS: list[dict[str, Any]] = [
    {"id": 1},
    {"id": 2, "tenant": "acme", "n": 0, "x": 0.0, "s": "", "flag": False, "day": DAY},
    {"id": 3, "tenant": "acme", "n": 1, "x": 0.5, "s": "a", "flag": True, "seen": SEEN},
    {"id": 4, "tenant": "globex", "n": -1, "x": -1.5, "s": "A", "flag": True},
    {"id": 5, "n": 2**53 + 1, "x": 2.0**53, "s": "a ", "flag": False, "day": DAY},
    {"id": 6, "n": 3, "x": 3.0, "s": "é", "seen": SEEN + dt.timedelta(days=1)},
    {"id": 7, "tenant": "acme", "n": -(2**62), "x": 1e300, "s": "eu", "flag": None},
    {"id": 8, "n": 7, "x": -0.0, "s": "EU", "day": DAY - dt.timedelta(days=400)},
]
COLUMNS = ("id", "tenant", "n", "x", "s", "flag", "day", "seen", "amount", "blob", "missing")


@pytest.fixture(scope="module")
def database(db_url: str) -> Iterator[tuple[sa.Engine, list[Resource]]]:
    """The table with its rows on one database, and each row as `evaluate` sees it."""
    engine = sa.create_engine(db_url)
    METADATA.drop_all(engine)
    METADATA.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(TABLE.insert(), [{c.key: None for c in TABLE.c} | r for r in ROWS])
            rows = connection.execute(sa.select(TABLE).order_by(TABLE.c.id)).mappings().all()
        resources = [
            Resource("customer", id=row["id"], attributes=dict(row), tenant=row["tenant"])
            for row in rows
        ]
        yield engine, resources
    finally:
        METADATA.drop_all(engine)
        engine.dispose()


# --- conditions -------------------------------------------------------------------------------

plain_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([2**53, 2**53 + 1, 2**63, -(2**62), 2**70]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, -0.0, 2.0**53, 1e300]),
    st.sampled_from(["", "a", "A", "a ", "é", "é", "eu", "EU", "acme", "z"]),
    st.lists(st.integers(-2, 3) | st.sampled_from(["a", "eu", None]), max_size=3),
)
#: Values of subject attributes and context keys; the dates have no literal in the language.
values = plain_values | st.sampled_from([DAY, SEEN, SEEN.replace(tzinfo=dt.UTC)])


def _literal(value: Any) -> str:
    """*value* as a literal of the language (NaN and infinities, which have none, as 0.0)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else "0.0"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    raise AssertionError(value)


literals = plain_values.map(_literal)
attributes = st.one_of(
    st.sampled_from(COLUMNS).map(lambda name: f"resource.{name}"),
    st.sampled_from(("resource.type", "resource.s.deeper")),
    st.sampled_from(("a", "b", "missing", "id", "tenant", "roles")).map(lambda n: f"subject.{n}"),
    st.sampled_from(("a", "b", "missing")).map(lambda name: f"context.{name}"),
)
operands = st.one_of(attributes, attributes, literals)
OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
comparisons = st.one_of(
    attributes,
    st.builds(lambda a, op, b: f"{a} {op} {b}", operands, st.sampled_from(OPERATORS), operands),
)
grammatical = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"({e})"),
        st.lists(inner, min_size=2, max_size=5).map(lambda items: " and ".join(items)),
        st.lists(inner, min_size=2, max_size=5).map(lambda items: " or ".join(items)),
        st.builds(lambda a, b: f"({a}) == ({b})", inner, inner),
    ),
    max_leaves=12,
)
TOKENS = (
    "(", ")", "[", "]", ",", "not", "and", "or", "in", "==", "!=", "<", ">=",
    "resource.n", "resource.s", "resource.flag", "resource.amount", "subject.a", "context.b",
    "1", "2.5", '"a"', "true", "null",
)  # fmt: skip
token_soup = st.lists(st.sampled_from(TOKENS), max_size=20).map(" ".join)
deep = st.builds(
    lambda n, inner, word: f"resource.n > 0 {word} (" * n + inner + ")" * n,
    st.integers(0, 40),
    comparisons,
    st.sampled_from(("and", "or")),
)
conditions = st.one_of(grammatical, grammatical, token_soup, deep)

subjects = st.builds(
    Subject,
    st.sampled_from(("u1", "u2")),
    roles=st.just(["agent"]),
    attributes=st.dictionaries(st.sampled_from(("a", "b")), values, max_size=2),
    tenant=st.sampled_from((None, "acme")),
)
contexts = st.dictionaries(st.sampled_from(("a", "b")), values, max_size=2)


def _rule(rule_id: str, effect: str, when: str | None, fields: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": rule_id,
        "effect": effect,
        "roles": ["agent"],
        "actions": ["read"],
        "resources": ["customer"],
    }
    if when is not None:
        spec["when"] = when
    if fields is not None:
        spec["fields"] = fields
    return spec


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    """One to three rules with generated conditions: allows, denies, field denies."""
    rules = []
    for index in range(draw(st.integers(1, 3))):
        effect = draw(st.sampled_from(("allow", "allow", "deny")))
        when = draw(st.none() | conditions)
        fields = draw(st.none() | st.lists(st.sampled_from(("name", "ssn")), min_size=1))
        rules.append(_rule(f"r{index}", effect, when, fields))
    return {"version": 1, "roles": {"agent": {}}, "rules": rules}


# --- the target -------------------------------------------------------------------------------


class TestQueryFilter:
    """A filter, or PolicyError / UnsupportedQueryError; a filter selects what evaluate allows."""

    @FUZZ
    @given(
        document=policies(),
        subject=subjects,
        context=contexts,
        fields=st.none() | st.just(["name"]),
        tenant_column=st.booleans(),
    )
    def test_filter_or_documented_error(
        self,
        database: tuple[sa.Engine, list[Resource]],
        document: dict[str, Any],
        subject: Subject,
        context: dict[str, Any],
        fields: list[str] | None,
        tenant_column: bool,
    ) -> None:
        engine, resources = database
        try:
            policy_engine = PolicyEngine(Policy.from_dict(document))
        except PolicyError:
            event("the policy does not load")
            return
        try:
            clause = policy_engine.query_filter(
                subject,
                "read",
                TABLE,
                resource_type="customer",
                tenant_column=TABLE.c.tenant if tenant_column else None,
                fields=fields,
                context=context,
            )
        except UnsupportedQueryError as exc:
            event(f"unsupported: {str(exc).split(':')[-1][:40]}")
            return
        with engine.connect() as connection:
            query = sa.select(TABLE.c.id).where(clause).order_by(TABLE.c.id)
            selected = list(connection.execute(query).scalars())
        expected = []
        for resource in resources:
            if not tenant_column:
                resource = Resource("customer", id=resource.id, attributes=resource.attributes)
            decision = policy_engine.evaluate(
                subject, "read", resource, fields=fields, context=context
            )
            if decision.allowed:
                expected.append(resource.id)
        event(f"a filter selecting {len(selected)} of {len(resources)} rows")
        assert expected == selected
