"""Hypothesis strategies shared by the test suite (one file, as attrs does)."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
from hypothesis import strategies as st

from securecustomer.crypto import Context
from securecustomer.policy import AccessRequest, Resource, Subject

_zones = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])

aware_datetimes = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC)),
    st.datetimes(timezones=_zones.map(zoneinfo.ZoneInfo), allow_imaginary=False),
    st.datetimes(
        timezones=st.integers(-23 * 60, 23 * 60).map(
            lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
        )
    ),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

#: Every type the value format carries.
values: st.SearchStrategy[Any] = st.one_of(
    st.text(),
    st.binary(),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False),
    st.dates(),
    aware_datetimes,
    st.uuids(),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    st.lists(json_values, max_size=4),
)

_names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)

contexts = st.builds(
    Context,
    table=_names,
    column=_names,
    row=st.none() | _names | st.integers(),
)


# --- policy ---------------------------------------------------------------------------------
#
# Generators for `securecustomer.policy`, kept to small universes so that a test can enumerate
# every request rather than sample a few. Everything above this line is unrelated to policies.

POLICY_USERS: Final = ("alice", "bob", "carol")
POLICY_TENANTS: Final = ("acme", "globex")
POLICY_ACTIONS: Final = ("read", "write", "delete")
POLICY_TYPES: Final = ("customer", "invoice", "ticket")
POLICY_FIELDS: Final = ("name", "email", "phone", "ssn")
POLICY_PURPOSES: Final = ("support", "billing")
POLICY_MASKS: Final = ("redact", "email", "initial")
#: Values of ``context.level`` a generated request carries; conditions compare it to 0..3.
POLICY_LEVELS: Final = (0, 1, 2, 3, 4)
#: A role subjects may hold that no policy declares (as an identity provider may send).
UNDECLARED_ROLE: Final = "ghost"
#: The "now" of every generated request; MFA timestamps are drawn relative to it.
POLICY_NOW: Final = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@st.composite
def role_hierarchies(draw: st.DrawFn, *, max_roles: int = 5) -> dict[str, tuple[str, ...]]:
    """Role name -> the roles it inherits; acyclic (a role inherits only roles drawn before it).

    The dict is in topological order: a role comes after every role it inherits. Chains
    are common (a role often inherits the one just before it), so that tests see
    inheritance two and three levels deep.
    """
    count = draw(st.integers(1, max_roles))
    order = draw(st.permutations([f"role{i}" for i in range(count)]))
    hierarchy: dict[str, tuple[str, ...]] = {}
    for index, name in enumerate(order):
        earlier = order[:index]
        parents: set[str] = set()
        if earlier:
            some = st.sets(st.sampled_from(earlier), min_size=1, max_size=2)
            parents = draw(st.one_of(st.just(set()), st.just({earlier[-1]}), some))
        hierarchy[name] = tuple(sorted(parents))
    return hierarchy


def _basic_and_senior(hierarchy: Mapping[str, Any]) -> tuple[st.SearchStrategy[str], ...]:
    """Roles favouring the inherited (early) ones, and roles favouring the inheriting ones:
    rules granted to basic roles and users holding senior ones exercise inheritance."""
    order = list(hierarchy)
    half = (len(order) + 1) // 2
    anyone = st.sampled_from(order)
    return anyone | st.sampled_from(order[:half]), anyone | st.sampled_from(order[-half:])


def policy_roles_table(hierarchy: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """The ``roles`` table of a policy document for a hierarchy from `role_hierarchies`."""
    return {name: {"inherits": sorted(parents)} for name, parents in hierarchy.items()}


@attrs.frozen
class RbacRule:
    """``effect`` for ``principal`` (a role, or one user) on (tenant, resource type, action)."""

    effect: str
    principal: str
    tenant: str
    resource: str
    action: str


@attrs.frozen
class RbacWorld:
    """Roles with inheritance, per-tenant role assignments, and rules: RBAC with domains."""

    roles: Mapping[str, tuple[str, ...]]
    assignments: Mapping[tuple[str, str], frozenset[str]]  # (user, tenant) -> assigned roles
    rules: tuple[RbacRule, ...]

    def requests(self) -> list[tuple[str, str, str, str]]:
        """Every (user, tenant, resource type, action) of the universe."""
        return list(itertools.product(POLICY_USERS, POLICY_TENANTS, POLICY_TYPES, POLICY_ACTIONS))


@st.composite
def rbac_worlds(draw: st.DrawFn, *, max_rules: int = 10) -> RbacWorld:
    """An `RbacWorld`; rules name two of the three actions and types, so some never match."""
    roles = draw(role_hierarchies())
    basic, senior = _basic_and_senior(roles)
    assignments = {
        (user, tenant): frozenset(draw(st.sets(senior, max_size=2)))
        for user in POLICY_USERS
        for tenant in POLICY_TENANTS
    }
    rule = st.builds(
        RbacRule,
        effect=st.sampled_from(("allow", "deny")),
        principal=st.one_of(basic, basic, st.sampled_from(POLICY_USERS)),
        tenant=st.sampled_from(POLICY_TENANTS),
        resource=st.sampled_from(POLICY_TYPES[:2]),
        action=st.sampled_from(POLICY_ACTIONS[:2]),
    )
    rules = draw(st.lists(rule, min_size=1, max_size=max_rules, unique=True))
    return RbacWorld(roles=roles, assignments=assignments, rules=tuple(rules))


@attrs.frozen
class LevelCondition:
    """``context.level OP value`` for each comparison, joined by ``joiner``, maybe negated."""

    comparisons: tuple[tuple[str, int], ...]
    joiner: str  # "and" | "or"
    negated: bool


@attrs.frozen
class ConditionalRule:
    """A permit/forbid rule; ``None`` means any principal, any action or any resource type."""

    effect: str
    principal: tuple[str, str] | None  # ("role", name) or ("user", name)
    actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    condition: LevelCondition | None


@attrs.frozen
class ConditionalWorld:
    """Roles with inheritance, users' roles, and rules with conditions on ``context.level``."""

    roles: Mapping[str, tuple[str, ...]]
    members: Mapping[str, frozenset[str]]  # user -> assigned roles
    rules: tuple[ConditionalRule, ...]

    def requests(self) -> list[tuple[str, str, str, int]]:
        """Every (user, action, resource type, level) of the universe."""
        return list(itertools.product(POLICY_USERS, POLICY_ACTIONS, POLICY_TYPES, POLICY_LEVELS))


level_conditions = st.builds(
    LevelCondition,
    comparisons=st.lists(
        st.tuples(st.sampled_from(("==", "!=", "<", "<=", ">", ">=")), st.integers(0, 3)),
        min_size=1,
        max_size=2,
    ).map(tuple),
    joiner=st.sampled_from(("and", "or")),
    negated=st.booleans(),
)


def _some(names: Sequence[str]) -> st.SearchStrategy[tuple[str, ...] | None]:
    """``None`` (any) or a non-empty sorted subset of *names*."""
    subsets = st.sets(st.sampled_from(names), min_size=1, max_size=len(names) - 1)
    return st.none() | subsets.map(lambda chosen: tuple(sorted(chosen)))


@st.composite
def conditional_worlds(draw: st.DrawFn, *, max_rules: int = 8) -> ConditionalWorld:
    """A `ConditionalWorld`: permit/forbid rules over roles, single users or anyone."""
    roles = draw(role_hierarchies())
    basic, senior = _basic_and_senior(roles)
    members = {user: frozenset(draw(st.sets(senior, max_size=2))) for user in POLICY_USERS}
    role = st.tuples(st.just("role"), basic)
    principal = st.one_of(
        role,
        role,
        st.tuples(st.just("user"), st.sampled_from(POLICY_USERS)),
        st.none(),
    )
    rule = st.builds(
        ConditionalRule,
        effect=st.sampled_from(("allow", "deny")),
        principal=principal,
        actions=_some(POLICY_ACTIONS),
        resources=_some(POLICY_TYPES),
        condition=st.none() | level_conditions,
    )
    rules = draw(st.lists(rule, min_size=1, max_size=max_rules))
    return ConditionalWorld(roles=roles, members=members, rules=tuple(rules))


@functools.cache
def _sampled(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """``st.sampled_from`` built once per tuple: building strategies dominates otherwise."""
    return st.sampled_from(values)


@functools.cache
def _subsets(values: tuple[Any, ...], max_size: int) -> st.SearchStrategy[list[Any]]:
    """Non-empty lists of distinct *values*, at most *max_size* long."""
    return st.lists(_sampled(values), min_size=1, max_size=max_size, unique=True)


@functools.cache
def _names_or_any(names: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    """``["*"]`` or one or two of *names* (twice as likely)."""
    return st.one_of(st.just(["*"]), _subsets(names, 2), _subsets(names, 2))


@functools.cache
def _sometimes(strategy: st.SearchStrategy[Any], one_in: int) -> st.SearchStrategy[Any]:
    """A value of *strategy* once in *one_in* draws, else ``None``."""
    return st.integers(1, one_in).flatmap(lambda n: strategy if n == 1 else st.none())


_CONDITION_ATOMS: Final = (
    st.integers(0, 3).map(lambda n: f"context.level >= {n}"),
    st.sampled_from(("sales", "support")).map(lambda dept: f'subject.dept == "{dept}"'),
    st.just("resource.owner == subject.id"),
    st.just('resource.region in ["eu", "us"]'),
    st.just("context.urgent"),
    st.just("subject.tenant == resource.tenant"),
)


@functools.cache
def policy_conditions(roles: tuple[str, ...]) -> st.SearchStrategy[str]:
    """``when`` conditions; some requests lack what they read or have the wrong type there.

    Role names appear only as the quoted literal of ``"ROLE" in subject.roles``, so a test
    can rename roles inside a condition by rewriting quoted literals.
    """
    has_role = _sampled(roles).map(lambda role: f'"{role}" in subject.roles')
    parts = st.lists(st.one_of(*_CONDITION_ATOMS, has_role), min_size=1, max_size=3)

    def join(parts: list[str], joiner: str, negated: bool) -> str:
        text = joiner.join(f"({part})" for part in parts)
        return f"not ({text})" if negated else text

    return st.builds(join, parts, st.sampled_from((" and ", " or ")), st.booleans())


@st.composite
def policy_rules(
    draw: st.DrawFn, roles: Sequence[str], *, effect: str | None = None
) -> dict[str, Any]:
    """One rule table (without ``id``) using every rule key but ``description``.

    Tenants, purposes and MFA are rarer than roles, actions and types, so that generated
    requests often match a rule and reach fields, masks and deny-with-fields.
    """
    roles = tuple(roles)
    effect = effect or draw(_sampled(("allow", "allow", "deny")))
    rule: dict[str, Any] = {"effect": effect}
    who = draw(_sampled(("roles", "roles", "subjects", "both")))
    if who in ("roles", "both"):
        rule["roles"] = draw(_names_or_any(roles))
    if who in ("subjects", "both"):
        rule["subjects"] = draw(_subsets(POLICY_USERS, len(POLICY_USERS)))
    rule["actions"] = draw(_names_or_any(POLICY_ACTIONS))
    rule["resources"] = draw(_names_or_any(POLICY_TYPES))
    if tenants := draw(_sometimes(_subsets(POLICY_TENANTS, 2), 4)):
        rule["tenants"] = tenants
    fields = draw(_sometimes(_subsets(POLICY_FIELDS, 3), 2 if effect == "deny" else 3))
    if fields is None and effect == "allow" and draw(st.booleans()):
        fields = draw(_subsets(POLICY_FIELDS, 3))  # allows list fields two times in three
    if fields is not None:
        rule["fields"] = fields
    if effect == "allow":
        maskable = tuple(fields) if fields is not None else POLICY_FIELDS
        masks = draw(st.dictionaries(_sampled(maskable), _sampled(POLICY_MASKS)))
        if masks:
            rule["masks"] = masks
        clear = tuple(f for f in maskable if f not in masks)
        if clear and (unmask := draw(_sometimes(_subsets(clear, 2), 5))):
            rule["unmask"] = unmask
        if draw(_sometimes(st.just("15m"), 5)):
            rule["mfa_max_age"] = "15m"
    if condition := draw(_sometimes(policy_conditions(roles), 2)):
        rule["when"] = condition
    if purposes := draw(_sometimes(_subsets(POLICY_PURPOSES, 2), 4)):
        rule["purposes"] = purposes
    return rule


@st.composite
def policy_documents(draw: st.DrawFn, *, max_rules: int = 8) -> dict[str, Any]:
    """A valid policy document (a dict for `Policy.from_dict`) with rules ``rule0``, ``rule1``..."""
    hierarchy = draw(role_hierarchies())
    rules = draw(st.lists(policy_rules(sorted(hierarchy)), max_size=max_rules))
    return {
        "version": 1,
        "roles": policy_roles_table(hierarchy),
        "rules": [{"id": f"rule{index}", **rule} for index, rule in enumerate(rules)],
    }


def document_roles(document: Mapping[str, Any]) -> list[str]:
    """Every role a request may hold against *document*: the declared ones and an undeclared one."""
    return [*sorted(document["roles"]), UNDECLARED_ROLE]


_MISSING: Final = object()


def _attributes(draw: st.DrawFn, choices: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """For each key, one of its choices or (as often as any one choice) no such key."""
    drawn = {key: draw(_sampled((*values, _MISSING))) for key, values in choices.items()}
    return {key: value for key, value in drawn.items() if value is not _MISSING}


def _pick(draw: st.DrawFn, names: object, default: tuple[str, ...]) -> str:
    """One of a rule's *names*, or of *default* when the rule says any (``["*"]``) or nothing."""
    if isinstance(names, list) and names != ["*"]:
        return draw(_sampled(tuple(names)))
    return draw(_sampled(default))


#: A fresh MFA (within the generated "15m") and a stale one.
_MFA_TIMES: Final = (POLICY_NOW - dt.timedelta(minutes=5), POLICY_NOW - dt.timedelta(hours=1))
_REQUESTED_FIELDS: Final = st.none() | st.sets(st.sampled_from(POLICY_FIELDS), max_size=3)


@st.composite
def access_requests(
    draw: st.DrawFn, roles: Sequence[str], *, aim: Mapping[str, Any] | None = None
) -> AccessRequest:
    """A request by a subject holding some of *roles*, with attributes conditions may read.

    With *aim* (a rule table), the subject, action, type, tenant and purpose are drawn so that
    the rule applies before its condition and MFA are checked; attributes stay random.
    """
    aim = aim or {}
    held = set(draw(st.sets(_sampled(tuple(roles)), max_size=2)))
    if aim.get("roles", ["*"]) != ["*"]:
        held.add(draw(_sampled(tuple(aim["roles"]))))
    user = _pick(draw, aim.get("subjects"), POLICY_USERS)
    tenant = draw(_sampled((*POLICY_TENANTS, *POLICY_TENANTS, None)))
    if "tenants" in aim:
        tenant = draw(_sampled(tuple(aim["tenants"])))
    subject = Subject(
        user,
        roles=held,
        attributes=_attributes(draw, {"dept": ("sales", "support", 7)}),
        tenant=tenant,
        mfa_at=draw(_sampled((None, *_MFA_TIMES))),
    )
    other = tuple(t for t in POLICY_TENANTS if t != tenant)
    resource = Resource(
        _pick(draw, aim.get("resources"), POLICY_TYPES),
        id=draw(st.integers(1, 3)),
        attributes=_attributes(
            draw, {"owner": (*POLICY_USERS, user, user), "region": ("eu", "us", "apac", 7)}
        ),
        # mostly the subject's own tenant, sometimes none, sometimes another one
        tenant=draw(_sampled((tenant, tenant, tenant, tenant, None, *other))),
    )
    purposes = tuple(aim.get("purposes", (*POLICY_PURPOSES, None)))
    return AccessRequest(
        subject,
        _pick(draw, aim.get("actions"), POLICY_ACTIONS),
        resource,
        fields=draw(_REQUESTED_FIELDS),
        purpose=draw(_sampled(purposes)),
        context=_attributes(draw, {"level": (0, 1, 2, 3, 4, "high"), "urgent": (True, False, 1)}),
        now=POLICY_NOW,
    )


@st.composite
def policy_requests(draw: st.DrawFn, document: Mapping[str, Any]) -> AccessRequest:
    """A request against *document*: two times in three aimed at one of its rules."""
    roles = document_roles(document)
    rules = document["rules"]
    if rules and draw(st.integers(0, 2)):
        return draw(access_requests(roles, aim=draw(st.sampled_from(rules))))
    return draw(access_requests(roles))
