"""`PolicyEngine.query_filter` checked against row-by-row `PolicyEngine.evaluate` on real databases.

One table per database (SQLite, PostgreSQL, MariaDB: the `db_url` fixture), created once and
shared by every test, holds nullable columns of each kind the translation supports: strings
(with a column collation that is not code-point order on each database, and a latin1 column
on MariaDB), integers, big integers, double and single precision floats, booleans, dates,
naive datetimes and a tenant. Its rows are drawn by a seeded generator from pools of edge
values (case, trailing spaces, composed and decomposed accents, 2**53 + 1, -0.0, NULL...).
Where booleans are stored as numbers (SQLite, MariaDB), the true values of the two boolean
columns are then rewritten in raw SQL as 1, 2 and -1 (and 0.5 or text on SQLite), which the
ORM reads as True.

The oracle is always the same: `select(Row.id).where(engine.query_filter(...))` must return
exactly the ids whose `engine.evaluate(subject, action, row_resource(row, ...), ...)` is ALLOW.
Hypothesis generates the policies and requests (conditions over resource.*, subject.* and
context.* with every operator and literals of every kind, allow/deny rules, field denies,
tenants, purposes, MFA, subject rules, exclusive roles); the other classes pin down specific
cases, and check some of them against sets computed directly from the rows as well.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Keyring
from securecustomer.exceptions import UnsupportedQueryError
from securecustomer.policy import Outcome, Policy, PolicyEngine, Rule, Subject
from securecustomer.sqlalchemy import EncryptedString, row_resource

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
TYPE = "customer"
FIELDS = ("name", "email", "ssn")
ROLES = ("agent", "admin", "auditor", "clerk")

# --- the table ------------------------------------------------------------------------------

#: A string column whose own collation is not code-point order: case-insensitive on SQLite
#: (NOCASE) and MariaDB (its default utf8mb4_general_ci, which also ignores trailing spaces),
#: linguistic on PostgreSQL (ICU root collation).
REGION_TYPE = (
    sa.String(32)
    .with_variant(sa.String(32, collation="NOCASE"), "sqlite")
    .with_variant(sa.String(32, collation="und-x-icu"), "postgresql")
)
#: A string column in another character set than the connection's (latin1 on MariaDB).
LABEL_TYPE = sa.String(32).with_variant(mysql.VARCHAR(32, charset="latin1"), "mysql", "mariadb")
#: Naive datetimes with microseconds on every database.
SEEN_TYPE = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
#: A single-precision float on both servers (FLOAT on MariaDB, REAL on PostgreSQL).
RATIO_TYPE = sa.Float().with_variant(sa.REAL(), "postgresql")


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "policy_filter_rows"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    tenant: Mapped[str | None] = mapped_column(sa.String(16))
    region: Mapped[str | None] = mapped_column(REGION_TYPE)
    owner: Mapped[str | None] = mapped_column(sa.String(32))
    label: Mapped[str | None] = mapped_column(LABEL_TYPE)
    level: Mapped[int | None] = mapped_column(sa.Integer)
    big: Mapped[int | None] = mapped_column(sa.BigInteger)
    score: Mapped[float | None] = mapped_column(sa.Double)
    ratio: Mapped[float | None] = mapped_column(RATIO_TYPE)
    active: Mapped[bool | None] = mapped_column(sa.Boolean)
    blocked: Mapped[bool | None] = mapped_column(sa.Boolean)
    born: Mapped[dt.date | None] = mapped_column(sa.Date)
    seen: Mapped[dt.datetime | None] = mapped_column(SEEN_TYPE)


STRINGS = (
    "eu", "EU", "Eu", "eu ", " eu", "us", "", "é", "É", "e\u0301", "ß", "ss", "a", "z", "Z",
    "😀", "alice", "ALICE", "acme", "ACME",
)  # fmt: skip
#: The strings the latin1 column can hold on MariaDB.
LATIN1 = ("eu", "EU", "eu ", "", "é", "É", "ß", "ss", "a", "z", "ä", "alice")
INTS = (-(2**31), -7, -1, 0, 1, 2, 3, 10, 2**31 - 1)
BIGS = (-(2**63), -(2**53) - 1, -1, 0, 2, 2**53, 2**53 + 1, 2**63 - 1)
DOUBLES = (-1.5, -0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 2.5, 1e300, 9007199254740992.0)
SINGLES = (0.1, 0.5, 2.0, -1.5, 0.123456789, 1e-07, 3.0e38)
DATES = (dt.date(1999, 12, 31), dt.date(2024, 1, 1), dt.date(2024, 5, 1), dt.date(2024, 5, 2))
DATETIMES = (
    dt.datetime(1999, 12, 31, 23, 59, 59),
    dt.datetime(2024, 5, 1),
    dt.datetime(2024, 5, 1, 11, 59, 59, 999999),
    dt.datetime(2024, 5, 1, 12, 0),
    dt.datetime(2024, 5, 1, 12, 0, 0, 1),
)
TENANTS = ("acme", "ACME", "acme ", "globex")
OWNERS = ("alice", "ALICE", "alice ", "bob")
COLUMN_POOLS: Mapping[str, tuple[Any, ...]] = {
    "tenant": TENANTS,
    "region": STRINGS,
    "owner": OWNERS,
    "label": LATIN1,
    "level": INTS,
    "big": BIGS,
    "score": DOUBLES,
    "ratio": SINGLES,
    "active": (True, False),
    "born": DATES,
    "seen": DATETIMES,
}
ROW_COUNT = 160
#: How rows whose boolean is True or False are stored where booleans are numbers: every
#: nonzero number (and non-empty text on SQLite) is True to the ORM (SQLAlchemy's bool()).
STORED_TRUE = {"sqlite": (1, 2, -1, 0.5, "yes"), "mariadb": (1, 2, -1, 127, -128)}
STORED_FALSE = {"sqlite": (0, 0.0, ""), "mariadb": (0,)}


def _rows() -> list[dict[str, Any]]:
    """Row 1 is NULL everywhere, row 2 NULL nowhere; the others mix both at random."""
    rng = random.Random(20240501)
    rows = [dict.fromkeys(COLUMN_POOLS, None) | {"id": 1}]
    rows.append({"id": 2} | {name: pool[0] for name, pool in COLUMN_POOLS.items()})
    for number in range(3, ROW_COUNT + 1):
        row: dict[str, Any] = {"id": number}
        for name, pool in COLUMN_POOLS.items():
            row[name] = None if rng.random() < 0.2 else rng.choice(pool)
        rows.append(row)
    more = random.Random(13)  # a column added later, with a generator of its own
    for row in rows[2:]:
        row["blocked"] = more.choice((True, False, None))
    rows[1]["blocked"] = True
    return rows


def _store_booleans_as_numbers(engine: sa.Engine) -> None:
    """Rewrite the stored booleans with the other values the database may hold for them."""
    true, false = STORED_TRUE.get(engine.dialect.name), STORED_FALSE.get(engine.dialect.name)
    if true is None or false is None:
        return  # PostgreSQL: a real boolean type, true, false or NULL
    with engine.begin() as conn:
        for column, offset in ((Row.__table__.c.active, 0), (Row.__table__.c.blocked, 1)):
            rows = conn.execute(sa.select(Row.__table__.c.id, column)).all()
            stored = []
            for key, value in rows:
                if value is not None:
                    pool = true if value else false
                    stored.append({"key": key, "raw": pool[(key + offset) % len(pool)]})
            conn.execute(
                sa.text(f"UPDATE policy_filter_rows SET {column.name} = :raw WHERE id = :key"),  # noqa: S608 (a column name of ours)
                stored,
            )


@attrs.frozen
class Table:
    """The shared table on one database: its engine and its rows as the ORM loaded them."""

    engine: sa.Engine
    rows: tuple[Row, ...] = attrs.field(repr=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def select(self, clause: Any) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.scalars(sa.select(Row.id).where(clause)))

    def ids(self, predicate: Any) -> set[int]:
        return {row.id for row in self.rows if predicate(row)}


@pytest.fixture(scope="module")
def table(db_url: str) -> Iterator[Table]:
    engine = sa.create_engine(db_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            session.add_all(Row(**values) for values in _rows())
            session.commit()
        _store_booleans_as_numbers(engine)
        with Session(engine, expire_on_commit=False) as session:
            rows = tuple(session.scalars(sa.select(Row).order_by(Row.id)))
            session.expunge_all()
        yield Table(engine, rows)
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


# --- the oracle -----------------------------------------------------------------------------

POLICY_ROLES = {"agent": {}, "admin": {"inherits": ["agent"]}, "auditor": {}, "clerk": {}}


def policy(*rules: Mapping[str, Any]) -> PolicyEngine:
    """An engine over *rules* (ids r0, r1... unless given), with the roles above and
    auditor/clerk mutually exclusive."""
    document = {
        "version": 1,
        "roles": POLICY_ROLES,
        "constraints": {"exclusive": [["auditor", "clerk"]]},
        "rules": [{"id": f"r{i}", **rule} for i, rule in enumerate(rules)],
    }
    return PolicyEngine(Policy.from_dict(document))


def rule(effect: str = "allow", when: str | None = None, **keys: Any) -> dict[str, Any]:
    """A rule for agents reading customers, unless *keys* say otherwise."""
    out: dict[str, Any] = {
        "effect": effect,
        "roles": ["agent"],
        "actions": ["read"],
        "resources": [TYPE],
    }
    if when is not None:
        out["when"] = when
    return out | keys


AGENT = Subject("alice", roles=["agent"], tenant="acme", attributes={"region": "eu", "level": 2})


@attrs.frozen
class Request:
    subject: Subject
    action: str = "read"
    fields: tuple[str, ...] | None = None
    purpose: str | None = None
    context: Mapping[str, Any] = attrs.field(factory=dict)
    tenant_column: Any = Row.tenant
    columns: Mapping[str, Any] | None = None


def compare(table: Table, engine: PolicyEngine, request: Request) -> set[int]:
    """Assert that the filter selects exactly the rows `evaluate` allows; return them."""
    r = request
    clause = engine.query_filter(
        r.subject,
        r.action,
        Row,
        resource_type=TYPE,
        columns=r.columns,
        tenant_column=r.tenant_column,
        fields=r.fields,
        purpose=r.purpose,
        context=r.context,
        now=NOW,
    )
    selected = table.select(clause)
    decisions = {
        row.id: engine.evaluate(
            r.subject,
            r.action,
            row_resource(row, TYPE, tenant_column=r.tenant_column, columns=r.columns),
            fields=r.fields,
            purpose=r.purpose,
            context=r.context,
            now=NOW,
        )
        for row in table.rows
    }
    allowed = {key for key, decision in decisions.items() if decision.allowed}
    if selected != allowed:
        by_id = {row.id: row for row in table.rows}
        lines = [
            f"query_filter disagrees with evaluate on {table.backend}",
            *(_describe(rule) for rule in engine.policy.rules),
            f"request: {request!r}, subject attributes {dict(r.subject.attributes)!r}",
        ]
        for key in sorted(selected ^ allowed)[:8]:
            row = by_id[key]
            values = {name: getattr(row, name) for name in ("id", *COLUMN_POOLS, "blocked")}
            decision = decisions[key]
            lines.append(
                f"  {'selected' if key in selected else 'not selected'} but "
                f"{decision.outcome.value}: {values} {decision.rule_ids} {decision.errors}"
            )
        compiled = clause.compile(dialect=table.engine.dialect)
        lines.append(f"SQL: {str(compiled)[:3000]}")
        raise AssertionError("\n".join(lines))
    return selected


def _describe(rule: Rule) -> str:
    keys = ("roles", "subjects", "actions", "resources", "tenants", "purposes", "fields")
    sets = {key: sorted(getattr(rule, key)) for key in keys if getattr(rule, key)}
    return f"  {rule.id} {rule.effect} {sets} mfa={rule.mfa_max_age} when: {rule.condition}"


def check(table: Table, *rules: Mapping[str, Any], **request: Any) -> set[int]:
    """`compare` for *rules*, for `AGENT` unless *request* names another subject."""
    return compare(table, policy(*rules), Request(request.pop("subject", AGENT), **request))


def own_tenant(table: Table, tenant: str | None = "acme") -> set[int]:
    """The rows a subject of *tenant* may see at all: its tenant's and those without one."""
    return table.ids(lambda row: row.tenant is None or row.tenant == tenant)


# --- generated policies ---------------------------------------------------------------------

INT_LITERALS = (
    -(2**63) - 1, -(2**63), -(2**31), -1, 0, 1, 2, 3, 10, 2**31 - 1, 2**31, 2**53, 2**53 + 1,
    2**63 - 1, 2**63, 10**30,
)  # fmt: skip
FLOAT_LITERALS = (
    -1.5, -0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 2.5, 0.123457, 1e-07, 1e300, 9007199254740992.0,
    9.3e18, 3.0e38,
)  # fmt: skip
EXTRA_STRINGS = ("eu\t", 'quo"te', "back\\slash", "alice ", "globex")

strings = st.sampled_from(STRINGS + EXTRA_STRINGS)
numbers = st.sampled_from(INT_LITERALS) | st.sampled_from(FLOAT_LITERALS)
scalar_literals = st.one_of(strings, numbers, st.booleans(), st.none())
list_literals = st.lists(scalar_literals, max_size=4).map(tuple)
dates = st.sampled_from((*DATES, dt.date(2024, 4, 30)))
naive_datetimes = st.sampled_from((*DATETIMES, dt.datetime(2024, 5, 1, 12, 0, 0, 2)))
aware_datetimes = st.sampled_from(
    [
        NOW,
        NOW.replace(hour=10),
        dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ]
)
#: Numbers no literal can write: NaN and the infinities, from subject attributes and context.
unwritten_numbers = st.sampled_from((float("nan"), float("inf"), float("-inf")))
value_numbers = st.one_of(numbers, numbers, unwritten_numbers)
#: Values of subject attributes and context keys: any kind, dates and datetimes included.
any_value = st.one_of(scalar_literals, unwritten_numbers, dates, naive_datetimes)
value_lists = st.one_of(
    st.lists(st.one_of(any_value, aware_datetimes), max_size=4),
    st.frozensets(st.one_of(strings, st.integers(-1, 3)), max_size=3),
)


def literal(value: Any) -> str:
    """The condition-language text of a literal."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    return repr(value)


#: resource.NAME -> the kind of its values (lvl is Row.level under another name, via columns=).
COLUMN_KINDS = {
    "region": "string", "owner": "string", "label": "string", "tenant": "string",
    "level": "number", "big": "number", "score": "number", "ratio": "number", "lvl": "number",
    "id": "number", "active": "bool", "blocked": "bool", "born": "date", "seen": "datetime",
}  # fmt: skip
#: Operands of each kind other than literals: subject attributes, context keys, columns.
KIND_PATHS = {
    "string": (
        "subject.id", "subject.tenant", "subject.region", "context.region", "context.map.region",
        "resource.region", "resource.owner", "resource.label", "resource.tenant", "resource.type",
    ),
    "number": (
        "subject.level", "subject.score", "context.level", "context.score", "context.map.level",
        "resource.level", "resource.big", "resource.score", "resource.ratio", "resource.id",
    ),
    "bool": ("subject.flag", "context.flag", "resource.active", "resource.blocked"),
    "date": ("subject.day", "context.day", "resource.born"),
    "datetime": ("subject.stamp", "context.stamp", "context.aware", "resource.seen"),
}  # fmt: skip
KIND_LITERALS: dict[str, st.SearchStrategy[Any]] = {
    "string": strings,
    "number": numbers,
    "bool": st.booleans(),
    "date": st.nothing(),
    "datetime": st.nothing(),
}
#: Paths that are missing, or hold a list, a set, a map.
ODD_PATHS = (
    "resource.missing", "subject.missing", "context.missing", "subject.roles",
    "subject.regions", "context.list", "context.map",
)  # fmt: skip
LIST_PATHS = ("context.list", "subject.regions", "subject.roles")
ORDERING = ("<", "<=", ">", ">=")

scalar_texts = scalar_literals.map(literal)
any_operand = st.one_of(
    scalar_texts,
    list_literals.map(literal),
    st.sampled_from([path for paths in KIND_PATHS.values() for path in paths]),
    st.sampled_from(ODD_PATHS),
)


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    """A comparison of a column with (usually) a value of its kind: a literal, a subject
    attribute, a context key or another column; sometimes with anything at all."""
    name = draw(st.sampled_from(tuple(COLUMN_KINDS)))
    column = f"resource.{name}"
    kind_ = COLUMN_KINDS[name]
    same_kind = st.one_of(KIND_LITERALS[kind_].map(literal), st.sampled_from(KIND_PATHS[kind_]))
    op = draw(st.sampled_from(("==", "!=", *ORDERING, "in", "not in")))
    if op in ("in", "not in"):
        items = st.one_of(KIND_LITERALS[kind_], KIND_LITERALS[kind_], scalar_literals)
        lists = st.lists(items, max_size=4).map(tuple).map(literal)
        right = draw(st.one_of(lists, lists, lists, st.sampled_from(LIST_PATHS), any_operand))
        return f"{column} {op} {right}"
    right = draw(st.one_of(*[same_kind] * 5, any_operand))
    left = column
    if draw(st.booleans()):
        left, right = right, left
    if op in ORDERING and "context.aware" in (left, right):
        op = "=="  # an aware datetime ordered against the naive column is untranslatable
    return f"{left} {op} {right}"


#: Bare operands of and/or/not: booleans, and sometimes what is not one (an error).
booleans_atoms = st.sampled_from(
    ("resource.active", "resource.blocked", "subject.flag", "context.flag", "true", "false") * 3
    + ("null", "resource.level", "context.missing")
)
conditions = st.recursive(
    st.one_of(*[comparisons()] * 5, booleans_atoms),
    lambda inner: st.one_of(
        inner.map(lambda text: f"not ({text})"),
        st.lists(inner, min_size=2, max_size=3).map(lambda t: " and ".join(f"({c})" for c in t)),
        st.lists(inner, min_size=2, max_size=3).map(lambda t: " or ".join(f"({c})" for c in t)),
    ),
    max_leaves=5,
)

field_sets = st.sets(st.sampled_from(FIELDS), min_size=1).map(sorted)


def one_in(draw: st.DrawFn, n: int) -> bool:
    return draw(st.integers(0, n - 1)) == 0


@st.composite
def generated_rules(draw: st.DrawFn) -> dict[str, Any]:
    """A rule that usually applies to the request (agents reading customers), so that most
    examples turn on the conditions rather than on a rule that never applies."""
    allow = not one_in(draw, 3)
    out: dict[str, Any] = {"effect": "allow" if allow else "deny"}
    who = draw(st.sampled_from(("agent", "agent", "agent", "star", "roles", "subjects")))
    if who == "agent":
        out["roles"] = ["agent"]
    elif who == "star":
        out["roles"] = ["*"]
    elif who == "roles":
        out["roles"] = sorted(draw(st.sets(st.sampled_from(ROLES), min_size=1, max_size=2)))
    else:
        out["subjects"] = [draw(st.sampled_from(("alice", "bob")))]
    out["actions"] = draw(st.sampled_from((["read"],) * 6 + (["read", "write"], ["*"], ["write"])))
    out["resources"] = draw(st.sampled_from(([TYPE],) * 6 + (["*"], ["invoice"])))
    if one_in(draw, 6):
        tenants = st.sets(st.sampled_from(("acme", "ACME", "globex")), min_size=1)
        out["tenants"] = sorted(draw(tenants))
    if one_in(draw, 6):
        purposes = st.sets(st.sampled_from(("support", "billing")), min_size=1)
        out["purposes"] = sorted(draw(purposes))
    if one_in(draw, 3):
        out["fields"] = draw(field_sets)
    if allow and one_in(draw, 6):
        out["mfa_max_age"] = "15m"
    if not one_in(draw, 6):
        out["when"] = draw(conditions)
    return out


def _attributes(**kinds: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """These keys, each usually of its own kind and sometimes of any kind (a missing key is
    what the subject.missing and context.missing paths are for)."""
    return st.fixed_dictionaries(
        {key: st.one_of(*[usual] * 5, any_value) for key, usual in kinds.items()}
    )


subject_attributes = _attributes(
    region=strings,
    level=value_numbers,
    score=value_numbers,
    flag=st.booleans(),
    day=dates,
    stamp=naive_datetimes,
    regions=value_lists,
)
contexts = st.builds(
    lambda base, extra: base | extra,
    _attributes(
        region=strings,
        level=value_numbers,
        score=value_numbers,
        flag=st.booleans(),
        day=dates,
        stamp=naive_datetimes,
        list=value_lists,
        map=st.fixed_dictionaries({}, optional={"region": strings, "level": any_value}),
    ),
    st.fixed_dictionaries({"aware": aware_datetimes}),
)
subjects = st.builds(
    Subject,
    st.sampled_from(("alice", "bob", "ALICE")),
    roles=st.builds(
        lambda agent, others: {"agent"} | others if agent else others,
        st.sampled_from((True,) * 5 + (False,)),
        st.sets(st.sampled_from((*ROLES, "ghost")), max_size=2),
    ),
    attributes=subject_attributes,
    tenant=st.sampled_from(("acme", "acme", "ACME", "globex", None)),
    mfa_at=st.sampled_from((None, NOW - dt.timedelta(minutes=5), NOW - dt.timedelta(hours=2))),
)
requests = st.builds(
    Request,
    subjects,
    action=st.sampled_from(("read",) * 9 + ("write",)),
    fields=st.one_of(st.none(), st.none(), st.sets(st.sampled_from(FIELDS)).map(sorted).map(tuple)),
    purpose=st.sampled_from((None, "support", "billing")),
    context=contexts,
    tenant_column=st.sampled_from((Row.tenant, Row.tenant, Row.tenant, None)),
    columns=st.sampled_from((None, {"lvl": Row.level})),
)


condition_rules = st.one_of(
    st.builds(lambda c: [rule("allow", c)], conditions),
    st.builds(lambda c: [rule(), rule("deny", c)], conditions),
    st.builds(lambda a, d: [rule("allow", a), rule("deny", d)], conditions, conditions),
)
agents = st.builds(
    Subject,
    st.sampled_from(("alice", "bob")),
    roles=st.just({"agent"}),
    attributes=subject_attributes,
    tenant=st.sampled_from(("acme", "acme", "ACME", None)),
)


class TestGenerated:
    """Generated policies and requests: the filter selects exactly what evaluate allows."""

    @settings(
        max_examples=500,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(rules=condition_rules, subject=agents, context=contexts)
    def test_conditions(
        self,
        table: Table,
        rules: list[dict[str, Any]],
        subject: Subject,
        context: dict[str, Any],
    ) -> None:
        # One allow and/or one deny rule with generated conditions: the translation itself.
        request = Request(subject, context=context, columns={"lvl": Row.level})
        selected = compare(table, policy(*rules), request)
        event("selects none" if not selected else "selects some")

    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(rules=st.lists(generated_rules(), min_size=1, max_size=5), request=requests)
    def test_policies(self, table: Table, rules: list[dict[str, Any]], request: Request) -> None:
        # Whole policies: roles, subjects, actions, tenants, purposes, fields, MFA, SoD.
        selected = compare(table, policy(*rules), request)
        event("selects none" if not selected else "selects some")


# --- specific cases -------------------------------------------------------------------------

ALLOW_ALL = rule()


def where(table: Table, predicate: Any, tenant: str | None = "acme") -> set[int]:
    """The ids of the rows of *tenant* (or without one) that satisfy *predicate*."""
    return own_tenant(table, tenant) & table.ids(predicate)


class TestNulls:
    """NULL is None: equal only to null, an error when ordered or used as a boolean; `not`
    flips true and false and leaves an error an error."""

    def test_not_of_a_false_equality_selects_null_rows(self, table: Table) -> None:
        selected = check(table, rule(when='not (resource.region == "eu")'))
        assert selected == where(table, lambda row: row.region != "eu")
        assert where(table, lambda row: row.region is None) <= selected

    def test_equality_with_null(self, table: Table) -> None:
        nulls = where(table, lambda row: row.region is None)
        assert nulls
        assert check(table, rule(when="resource.region == null")) == nulls
        assert check(table, rule(when="null != resource.region")) == own_tenant(table) - nulls

    def test_not_of_a_null_boolean_is_an_error(self, table: Table) -> None:
        assert check(table, rule(when="not resource.active")) == where(
            table, lambda row: row.active is False
        )
        # A deny in error matches: NULL rows are denied along with the true ones.
        assert check(table, ALLOW_ALL, rule("deny", "resource.active")) == where(
            table, lambda row: row.active is False
        )

    def test_ordering_against_null_fails_closed(self, table: Table) -> None:
        present = where(table, lambda row: row.level is not None)
        below = where(table, lambda row: row.level is not None and row.level < 3)
        assert check(table, rule(when="resource.level < 3")) == below
        assert check(table, rule(when="not (resource.level < 3)")) == present - below
        assert check(table, ALLOW_ALL, rule("deny", "resource.level >= 3")) == below
        assert check(table, ALLOW_ALL, rule("deny", "not (resource.level >= 3)")) == (
            present - below
        )

    def test_null_in_a_list(self, table: Table) -> None:
        assert check(table, rule(when='resource.region in ["eu", null]')) == where(
            table, lambda row: row.region in ("eu", None)
        )
        assert check(table, rule(when='resource.region not in ["eu", null]')) == where(
            table, lambda row: row.region not in ("eu", None)
        )

    def test_short_circuits_hide_errors_as_in_python(self, table: Table) -> None:
        # false and <error> is false; <error> and false is an error: not() tells them apart.
        first = check(table, rule(when="not ((resource.level == 2) and (resource.level < 3))"))
        second = check(table, rule(when="not ((resource.level < 3) and (resource.level == 2))"))
        assert first == where(table, lambda row: row.level is None or row.level != 2)
        assert second == where(table, lambda row: row.level is not None and row.level != 2)


class TestBooleans:
    """A boolean column means what the ORM reads: on SQLite and MariaDB any nonzero number
    is True, not only 1 (`deny when resource.blocked == true` once let a stored 2 through)."""

    def test_the_table_holds_such_values(self, table: Table) -> None:
        with table.engine.connect() as conn:
            stored = set(conn.scalars(sa.text("SELECT DISTINCT blocked FROM policy_filter_rows")))
        expected = {None, *STORED_TRUE.get(table.backend, (True,))}
        assert expected | set(STORED_FALSE.get(table.backend, (False,))) == stored

    @pytest.mark.parametrize(
        "condition",
        [
            "resource.blocked == true",
            "resource.blocked",
            "resource.blocked != false",
            "not (resource.blocked == false)",
            "resource.blocked in [true]",
            "resource.blocked == subject.flag",
            "resource.blocked == resource.active",
            "resource.blocked != resource.active",
        ],
    )
    def test_allow_and_deny(self, table: Table, condition: str) -> None:
        flagged = Subject("alice", roles=["agent"], tenant="acme", attributes={"flag": True})
        check(table, rule(when=condition), subject=flagged)
        check(table, ALLOW_ALL, rule("deny", condition), subject=flagged)

    def test_examples(self, table: Table) -> None:
        assert check(table, ALLOW_ALL, rule("deny", "resource.blocked == true")) == where(
            table, lambda row: row.blocked is not True
        )
        assert check(table, rule(when="resource.blocked")) == where(
            table, lambda row: row.blocked is True
        )
        assert check(table, rule(when="resource.blocked == false")) == where(
            table, lambda row: row.blocked is False
        )
        assert check(table, rule(when="resource.blocked == resource.active")) == where(
            table, lambda row: row.blocked == row.active
        )


class TestKinds:
    """Kinds are strict: a value of another kind is never equal to a column's values, and
    ordering it against them is an error, which fails closed."""

    def test_a_string_never_equals_an_integer_column(self, table: Table) -> None:
        assert check(table, rule(when='resource.level == "2"')) == set()
        # As a deny it denies nothing: every row not otherwise excluded is selected.
        assert check(table, ALLOW_ALL, rule("deny", 'resource.level == "2"')) == own_tenant(table)
        assert check(table, rule(when='resource.level != "2"')) == own_tenant(table)

    def test_booleans_are_not_numbers(self, table: Table) -> None:
        assert check(table, rule(when="resource.active == 1")) == set()
        assert check(table, rule(when="resource.level == true")) == set()
        assert check(table, rule(when="resource.active == true")) == where(
            table, lambda row: row.active is True
        )

    def test_ordering_across_kinds_fails_closed(self, table: Table) -> None:
        assert check(table, rule(when='resource.level < "3"')) == set()
        assert check(table, rule(when='not (resource.level < "3")')) == set()
        assert check(table, ALLOW_ALL, rule("deny", 'resource.level < "3"')) == set()

    def test_lists_mixing_kinds(self, table: Table) -> None:
        assert check(table, rule(when='resource.level in ["2", 2, true, null, 3.0]')) == where(
            table, lambda row: row.level in (2, 3, None)
        )

    def test_a_missing_subject_attribute_fails_closed(self, table: Table) -> None:
        nobody = Subject("alice", roles=["agent"], tenant="acme")
        assert check(table, rule(when="resource.region == subject.region"), subject=nobody) == set()
        assert (
            check(table, rule(when="not (resource.region == subject.region)"), subject=nobody)
            == set()
        )
        denied = rule("deny", "resource.region == subject.region")
        assert check(table, ALLOW_ALL, denied, subject=nobody) == set()
        assert check(table, ALLOW_ALL, denied) == where(table, lambda row: row.region != "eu")

    def test_missing_resource_attributes_and_context_keys_fail_closed(self, table: Table) -> None:
        assert check(table, rule(when="resource.nothing == null")) == set()
        assert check(table, rule(when="resource.level == context.nothing")) == set()
        assert check(table, ALLOW_ALL, rule("deny", "resource.nothing != 1")) == set()

    def test_columns_name_further_attributes(self, table: Table) -> None:
        lvl = {"lvl": Row.level}
        assert check(table, rule(when="resource.lvl >= 2"), columns=lvl) == where(
            table, lambda row: row.level is not None and row.level >= 2
        )
        assert check(table, rule(when="resource.lvl >= 2")) == set()


#: Conditions where a database compares numbers otherwise than Python (or cannot bind them).
NUMBER_CONDITIONS = (
    "resource.score == 9007199254740993",
    "resource.score < 9007199254740993",
    "resource.score >= 9007199254740993",
    "resource.big == 9007199254740992.0",
    "resource.big > 9007199254740992.5",
    "resource.big <= -9007199254740993.5",
    "resource.big == resource.score",
    "resource.big < resource.score",
    "resource.score <= resource.big",
    "resource.level == resource.ratio",
    "resource.level < 100000000000000000000000",
    "resource.big > -9223372036854775809",
    "resource.id in [2.0, 3.5, 1e300, 9223372036854775808]",
    "resource.score < 1" + "0" * 400,
    "resource.score > -1" + "0" * 400,
    "resource.ratio == 0.1",
    "resource.ratio == 0.123457",
    "resource.ratio >= 0.12345679",
    "resource.ratio < resource.score",
    "resource.score < context.nan",
    "not (resource.score == context.nan)",
    "resource.level in context.odd",
    "resource.score < context.inf",
    "resource.score > context.minus_inf",
    "resource.score < context.minus_inf",
    "resource.score == context.minus_inf",
    "resource.level <= context.inf",
    "resource.score == context.inf",
)
ODD_NUMBERS = {
    "nan": float("nan"),
    "inf": float("inf"),
    "minus_inf": float("-inf"),
    "odd": [float("nan"), float("inf"), 2.5, 2**64, 3],
}


class TestNumbers:
    """Numbers compare exactly as in Python: no rounding of 64-bit integers to floats, NaN
    equal to nothing, infinities and huge integers as the constants they amount to, and a
    single-precision column as the value the driver reads."""

    @pytest.mark.parametrize(
        "condition", NUMBER_CONDITIONS, ids=lambda c: c if len(c) < 60 else f"{c[:24]}..."
    )
    def test_allow_and_deny(self, table: Table, condition: str) -> None:
        check(table, rule(when=condition), context=ODD_NUMBERS)
        check(table, ALLOW_ALL, rule("deny", condition), context=ODD_NUMBERS)

    def test_examples(self, table: Table) -> None:
        assert check(table, rule(when="resource.big == 9007199254740992.0")) == where(
            table, lambda row: row.big == 2**53
        )
        assert check(table, rule(when="resource.big == resource.score")) == where(
            table,
            lambda row: row.big == row.score,  # None == None too
        )
        tenths = where(table, lambda row: row.ratio == 0.1)
        assert tenths
        assert check(table, rule(when="resource.ratio == 0.1")) == tenths

    @pytest.mark.parametrize(
        ("type_", "dialect", "cast"),
        [
            (sa.Float(), mysql.pymysql.dialect(), True),
            (sa.Float(precision=24), mysql.pymysql.dialect(), True),
            (sa.Float(precision=53), mysql.pymysql.dialect(), False),
            (sa.REAL(), mysql.pymysql.dialect(), False),  # DOUBLE on MySQL
            (sa.Double(), mysql.pymysql.dialect(), False),
            (sa.REAL(), postgresql.psycopg.dialect(), True),
            (sa.Float(precision=24), postgresql.psycopg.dialect(), True),
            (sa.Float(), postgresql.psycopg.dialect(), False),  # double precision
            (sa.REAL(), postgresql.asyncpg.dialect(), False),  # reads the binary value
            (sa.REAL(), sqlite.pysqlite.dialect(), False),  # always 8 bytes
        ],
    )
    def test_single_precision_columns_are_compared_as_read(
        self, type_: sa.types.TypeEngine[Any], dialect: Any, cast: bool
    ) -> None:
        sql = str(query(_model(value=type_), "resource.value == 0.1").compile(dialect=dialect))
        assert ("CAST(CAST(" in sql) is cast, sql


#: Column -> literals that collations and character sets confuse with its values.
STRING_CASES = [
    ("region", "eu"),
    ("region", "EU"),
    ("region", "é"),
    ("region", "e\u0301"),
    ("region", "ss"),
    ("region", "😀"),
    ("label", "é"),
    ("label", "eu "),
    ("label", "ä"),
    ("tenant", "acme"),
    ("owner", "alice"),
]


class TestStrings:
    """Strings compare by code point on every database, whatever the column's collation
    (case-insensitive, pad-space, linguistic) or character set (latin1 on MariaDB)."""

    @pytest.mark.parametrize(("column", "text"), STRING_CASES)
    @pytest.mark.parametrize("op", ["==", "!=", "<", ">="])
    def test_comparisons(self, table: Table, column: str, text: str, op: str) -> None:
        python = {"==": str.__eq__, "!=": str.__ne__, "<": str.__lt__, ">=": str.__ge__}[op]

        def expected(row: Row) -> bool:
            value = getattr(row, column)
            return (
                value is None
                if op == "!=" and value is None
                else (value is not None and python(value, text))
            )

        condition = f"resource.{column} {op} {literal(text)}"
        assert check(table, rule(when=condition)) == where(table, expected)

    def test_equal_values_are_found_and_lookalikes_are_not(self, table: Table) -> None:
        eu = check(table, rule(when='resource.region == "eu"'))
        assert eu
        assert {row.region for row in table.rows if row.id in eu} == {"eu"}
        # The same statement with another literal (SQLAlchemy caches compiled statements).
        upper = check(table, rule(when='resource.region == "EU"'))
        assert upper
        assert {row.region for row in table.rows if row.id in upper} == {"EU"}

    def test_in_lists_and_column_pairs(self, table: Table) -> None:
        check(table, rule(when='resource.region in ["eu", "É", "e\u0301", 1, null]'))
        check(table, rule(when="resource.region == resource.label"))
        check(table, rule(when="resource.region < resource.owner"))
        check(table, rule(when="resource.owner == subject.id"))


class TestDatetimes:
    """Dates and naive datetimes order as in Python; an aware value never equals a naive
    datetime (Python's == says False, it does not raise)."""

    CONTEXT: ClassVar[dict[str, Any]] = {
        "stamp": dt.datetime(2024, 5, 1, 12, 0),
        "day": dt.date(2024, 5, 1),
        "aware": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC),
        "awares": [dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)],
    }

    @pytest.mark.parametrize(
        "condition",
        [
            "resource.seen < context.stamp",
            "resource.seen >= context.stamp",
            "resource.seen == context.stamp",
            "resource.born <= context.day",
            "resource.born == context.stamp",
            "resource.seen < context.day",
            "resource.seen == context.aware",
            "resource.seen != context.aware",
            "resource.seen in context.awares",
            "resource.born < resource.seen",
        ],
    )
    def test_allow_and_deny(self, table: Table, condition: str) -> None:
        check(table, rule(when=condition), context=self.CONTEXT)
        check(table, ALLOW_ALL, rule("deny", condition), context=self.CONTEXT)

    def test_aware_never_equals_naive(self, table: Table) -> None:
        noon = where(table, lambda row: row.seen == dt.datetime(2024, 5, 1, 12, 0))
        assert noon
        assert check(table, rule(when="resource.seen == context.stamp"), context=self.CONTEXT) == (
            noon
        )
        assert check(table, rule(when="resource.seen == context.aware"), context=self.CONTEXT) == (
            set()
        )
        assert check(table, rule(when="resource.seen in context.awares"), context=self.CONTEXT) == (
            set()
        )


class TestTenants:
    """Rows of another tenant are never selected, even when the ids differ only by case or
    trailing spaces (which MariaDB's default collation ignores)."""

    @pytest.mark.parametrize("tenant", ["acme", "ACME", "acme ", "globex", None])
    def test_isolation(self, table: Table, tenant: str | None) -> None:
        subject = Subject("alice", roles=["agent"], tenant=tenant)
        selected = check(table, ALLOW_ALL, subject=subject)
        assert selected == table.ids(lambda row: row.tenant in (None, tenant))
        assert {row.tenant for row in table.rows if row.id in selected} == {None, tenant}

    def test_rule_tenants(self, table: Table) -> None:
        only_upper = rule(tenants=["ACME"])
        assert check(table, only_upper) == set()
        upper = Subject("alice", roles=["agent"], tenant="ACME")
        assert check(table, only_upper, subject=upper) == own_tenant(table, "ACME")

    def test_tenant_in_conditions(self, table: Table) -> None:
        check(table, rule(when="resource.tenant == subject.tenant"))
        check(table, rule(when='resource.tenant in ["ACME", null]'))
        upper = Subject("alice", roles=["agent"], tenant="ACME")
        check(table, rule(when='resource.tenant != "acme"'), subject=upper)

    def test_without_a_tenant_column_nothing_is_isolated(self, table: Table) -> None:
        everything = table.ids(lambda row: True)
        assert check(table, ALLOW_ALL, tenant_column=None) == everything
        assert check(table, rule(when="resource.tenant == null"), tenant_column=None) == everything


class TestRequests:
    """What the engine adds around conditions: MFA step-up, purposes, fields, subject rules,
    inherited roles, exclusive roles."""

    def test_step_up_rows_are_not_selected(self, table: Table) -> None:
        step_up = rule(when='resource.region != "eu"', mfa_max_age="15m")
        engine = policy(step_up)
        stale = attrs.evolve(AGENT, mfa_at=NOW - dt.timedelta(hours=1))
        assert compare(table, engine, Request(stale)) == set()
        outcomes = {
            engine.evaluate(
                stale, "read", row_resource(row, TYPE, tenant_column=Row.tenant)
            ).outcome
            for row in table.rows
            if row.tenant in (None, "acme")
        }
        assert Outcome.STEP_UP in outcomes
        fresh = attrs.evolve(AGENT, mfa_at=NOW - dt.timedelta(minutes=5))
        assert compare(table, engine, Request(fresh)) == where(
            table, lambda row: row.region != "eu"
        )
        # An allow without MFA still selects its own rows beside the step-up rule.
        assert check(table, step_up, rule(when='resource.region == "us"'), subject=stale) == (
            where(table, lambda row: row.region == "us")
        )

    def test_purposes(self, table: Table) -> None:
        support = rule(purposes=["support"])
        assert check(table, support) == set()
        assert check(table, support, purpose="billing") == set()
        assert check(table, support, purpose="support") == own_tenant(table)

    def test_fields(self, table: Table) -> None:
        rules = (
            rule(fields=["name", "email"]),
            rule(when="resource.level > 2", fields=["ssn"]),
            rule("deny", 'resource.region == "eu"', fields=["email"]),
        )
        high = where(table, lambda row: row.level is not None and row.level > 2)
        eu = where(table, lambda row: row.region == "eu")
        assert check(table, *rules) == own_tenant(table)
        assert check(table, *rules, fields=("name",)) == own_tenant(table)
        assert check(table, *rules, fields=("ssn",)) == high
        assert check(table, *rules, fields=("email", "name")) == own_tenant(table) - eu
        assert check(table, *rules, fields=("email", "ssn")) == high - eu
        only_email = (rule(fields=["email"]), rules[2])
        assert check(table, *only_email) == own_tenant(table) - eu

    def test_no_fields_requested(self, table: Table) -> None:
        # Asking for no fields is allowed wherever a rule grants, even one listing fields.
        assert check(table, rule(fields=["name"]), fields=()) == own_tenant(table)

    def test_subject_rules(self, table: Table) -> None:
        own = rule(when="resource.owner == subject.id", subjects=["alice"], roles=[])
        del own["roles"]
        bob = Subject("bob", tenant="acme")
        assert check(table, own, subject=Subject("alice", tenant="acme")) == where(
            table, lambda row: row.owner == "alice"
        )
        assert check(table, own, subject=bob) == set()
        assert check(table, own, subject=Subject("ALICE", tenant="acme")) == set()

    def test_inherited_roles(self, table: Table) -> None:
        admin = Subject("carol", roles=["admin"], tenant="acme")
        assert check(table, rule(when="resource.level > 0"), subject=admin) == where(
            table, lambda row: row.level is not None and row.level > 0
        )

    def test_separation_of_duties(self, table: Table) -> None:
        both = Subject("alice", roles=["agent", "auditor", "clerk"], tenant="acme")
        assert check(table, ALLOW_ALL, rule(roles=["*"]), subject=both) == set()

    def test_other_actions_and_types(self, table: Table) -> None:
        assert check(table, ALLOW_ALL, action="write") == set()
        assert check(table, rule(actions=["*"], resources=["*"]), action="write") == (
            own_tenant(table)
        )
        assert check(table, rule(when='resource.type == "customer"')) == own_tenant(table)


def _model(**columns: sa.types.TypeEngine[Any]) -> type[Any]:
    """A mapped class with an integer primary key and *columns* (no database needed)."""

    class Model(DeclarativeBase):
        pass

    namespace: dict[str, Any] = {
        "__tablename__": "unsupported",
        "id": sa.Column(sa.Integer, primary_key=True),
    }
    namespace |= {name: sa.Column(type_) for name, type_ in columns.items()}
    return type("Unsupported", (Model,), namespace)


def query(model: Any, condition: str, context: Mapping[str, Any] | None = None) -> Any:
    engine = policy(rule(when=condition))
    return engine.query_filter(AGENT, "read", model, resource_type=TYPE, context=context, now=NOW)


class TestUnsupported:
    """What cannot be translated exactly raises UnsupportedQueryError rather than returning
    rows that evaluate would deny; the rest of the model still works."""

    def test_nested_resource_paths(self) -> None:
        with pytest.raises(UnsupportedQueryError, match="nested resource paths"):
            query(Row, 'resource.region.code == "eu"')

    def test_encrypted_column(self, keyring: Keyring) -> None:
        model = _model(email=EncryptedString(keyring=keyring), level=sa.Integer())
        with pytest.raises(UnsupportedQueryError, match="encrypted"):
            query(model, 'resource.email == "ada@example.com"')
        query(model, "resource.level > 1")  # the other columns can still be filtered

    def test_decimal_column(self) -> None:
        model = _model(amount=sa.Numeric(10, 2), ratio=sa.Numeric(10, 2, asdecimal=False))
        with pytest.raises(UnsupportedQueryError, match="Decimal"):
            query(model, "resource.amount > 1")
        query(model, "resource.ratio > 1")

    @pytest.mark.parametrize("type_", [sa.JSON(), sa.Uuid(), sa.LargeBinary(), sa.Time()])
    def test_other_column_types(self, type_: sa.types.TypeEngine[Any]) -> None:
        with pytest.raises(UnsupportedQueryError, match="cannot be filtered"):
            query(_model(value=type_), "resource.value == null")

    def test_aware_against_naive_ordering(self) -> None:
        aware = {"at": NOW}
        with pytest.raises(UnsupportedQueryError, match="naive and an aware"):
            query(Row, "resource.seen < context.at", aware)
        with pytest.raises(UnsupportedQueryError, match="naive and an aware"):
            query(
                _model(at=sa.DateTime(timezone=True)),
                "resource.at > context.at",
                {"at": NOW.replace(tzinfo=None)},
            )
        query(Row, "resource.seen == context.at", aware)  # equality is exact: never equal

    def test_a_comparison_as_an_operand(self) -> None:
        with pytest.raises(UnsupportedQueryError, match="comparison of conditions"):
            query(Row, "(resource.level > 1) == true")

    def test_unsigned_integer_against_float_column(self) -> None:
        model = _model(count=mysql.BIGINT(unsigned=True), score=sa.Double())
        with pytest.raises(UnsupportedQueryError, match="unsigned"):
            query(model, "resource.count == resource.score")
        query(model, "resource.count < 18446744073709551616")

    def test_composite_primary_key(self) -> None:
        class Model(DeclarativeBase):
            pass

        table = sa.Table(
            "pairs",
            Model.metadata,
            sa.Column("a", sa.Integer, primary_key=True),
            sa.Column("b", sa.Integer, primary_key=True),
        )
        with pytest.raises(UnsupportedQueryError, match="single-column primary key"):
            query(table, "resource.id == 1")
        query(table, "resource.a == 1")
