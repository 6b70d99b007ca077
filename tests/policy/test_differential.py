"""Differential tests: `PolicyEngine` against pycasbin and Cedar on generated policies.

How each generated world is expressed for the reference engine:

pycasbin (RBAC with domains; `RbacWorld` from strategies.py):
- model ``r = sub, dom, obj, act`` / ``p = sub, dom, obj, act, eft`` / ``g = _, _, _``, effect
  "some allow and no deny", matcher ``g(r.sub, p.sub, r.dom) && r.dom == p.dom &&
  r.obj == p.obj && r.act == p.act``.
- role R inheriting role V (R gets V's permissions) -> ``g, R, V, dom`` in every domain;
  user U holding role R in tenant T -> ``g, U, R, T``.
- rule (effect, principal, tenant, type, action) -> ``p, principal, tenant, type, action,
  effect``; ours: ``roles=[principal]`` (or ``subjects=[principal]`` when it is a user; casbin's
  ``g(U, U, dom)`` holds), ``tenants=[tenant]``, ``resources=[type]``, ``actions=[action]``.
- request (U, T, type, action) -> ``enforce(U, T, type, action)``; ours:
  ``Subject(U, roles=<U's roles in T>, tenant=T)``, ``Resource(type, tenant=T)``.

Cedar (permit/forbid with a role hierarchy; `ConditionalWorld` from strategies.py):
- user U -> entity ``User::"U"`` whose parents are its roles; role R -> ``Role::"R"`` whose
  parents are the roles R inherits (Cedar's ``in`` is transitive over parents).
- allow/deny -> ``permit``/``forbid``; principal role R -> ``principal in Role::"R"``
  (ours ``roles=[R]``), user U -> ``principal == User::"U"`` (ours ``subjects=[U]``), anyone ->
  ``principal`` (ours ``roles=["*"]``).
- actions -> ``action in [Action::"read", ...]`` (ours ``actions``; any -> ``action`` / ``["*"]``).
- resource type t -> the entity ``Type::"t"``; a rule's types -> ``when { [Type::"a", ...]
  .contains(resource) }`` (ours ``resources``; any -> no such clause / ``["*"]``).
- condition -> ``when { context.level >= 2 && ... }`` with ``&&``/``||``/``!`` for
  ``and``/``or``/``not`` (ours ``when = "context.level >= 2 and ..."``).
- request (U, action, t, level) -> principal ``User::"U"``, ``Action::"action"``,
  ``Type::"t"``, context ``{"level": level}``; ours ``Subject(U, roles=<U's roles>)``,
  ``Resource(t)``, ``context={"level": level}``. No tenants on this side.
"""

from __future__ import annotations

from typing import Any

import casbin
import cedarpy
from hypothesis import given, settings
from strategies import (
    POLICY_TENANTS,
    POLICY_USERS,
    ConditionalRule,
    ConditionalWorld,
    LevelCondition,
    RbacRule,
    RbacWorld,
    conditional_worlds,
    policy_roles_table,
    rbac_worlds,
)

from securecustomer.policy import Policy, PolicyEngine, Resource, Subject

CASBIN_MODEL = """
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""

# --- pycasbin ---------------------------------------------------------------------------------


def casbin_enforcer(world: RbacWorld) -> casbin.Enforcer:
    """An enforcer holding *world* in memory (no adapter, logging left disabled)."""
    model = casbin.Model()
    model.load_model_from_text(CASBIN_MODEL)
    enforcer = casbin.Enforcer(model, enable_log=False)
    for rule in world.rules:
        enforcer.add_policy(rule.principal, rule.tenant, rule.resource, rule.action, rule.effect)
    for role, parents in world.roles.items():
        for parent in parents:
            for tenant in POLICY_TENANTS:
                enforcer.add_grouping_policy(role, parent, tenant)
    for (user, tenant), roles in world.assignments.items():
        for role in roles:
            enforcer.add_grouping_policy(user, role, tenant)
    return enforcer


def rbac_policy(world: RbacWorld, *, inheritance: bool = True) -> Policy:
    """Our policy for *world*; ``inheritance=False`` drops it (a deliberately wrong mapping)."""
    rules: list[dict[str, Any]] = []
    for index, rule in enumerate(world.rules):
        who = "subjects" if rule.principal in POLICY_USERS else "roles"
        rules.append(
            {
                "id": f"p{index}",
                "effect": rule.effect,
                who: [rule.principal],
                "tenants": [rule.tenant],
                "resources": [rule.resource],
                "actions": [rule.action],
            }
        )
    hierarchy = world.roles if inheritance else dict.fromkeys(world.roles, ())
    return Policy.from_dict({"version": 1, "roles": policy_roles_table(hierarchy), "rules": rules})


def rbac_disagreements(world: RbacWorld, policy: Policy | None = None) -> list[str]:
    """Every request of the universe on which casbin and our engine disagree."""
    enforcer = casbin_enforcer(world)
    engine = PolicyEngine(policy or rbac_policy(world))
    out = []
    for user, tenant, resource_type, action in world.requests():
        subject = Subject(user, roles=world.assignments[user, tenant], tenant=tenant)
        ours = engine.evaluate(subject, action, Resource(resource_type, tenant=tenant)).allowed
        theirs = enforcer.enforce(user, tenant, resource_type, action)
        if ours != theirs:
            out.append(f"{user} {action} {resource_type} in {tenant}: ours={ours} casbin={theirs}")
    return out


def rbac_allowed(
    world: RbacWorld, user: str, tenant: str, resource_type: str, action: str
) -> dict[str, bool]:
    """The two engines' answers to one request, by engine name."""
    subject = Subject(user, roles=world.assignments[user, tenant], tenant=tenant)
    ours = PolicyEngine(rbac_policy(world)).evaluate(
        subject, action, Resource(resource_type, tenant=tenant)
    )
    theirs = casbin_enforcer(world).enforce(user, tenant, resource_type, action)
    return {"ours": ours.allowed, "casbin": theirs}


def rbac_world(
    roles: dict[str, tuple[str, ...]],
    assignments: dict[tuple[str, str], set[str]],
    rules: list[tuple[str, ...]],
) -> RbacWorld:
    """A hand-written `RbacWorld`; users and tenants not in *assignments* hold no roles."""
    everyone = {(user, tenant): frozenset() for user in POLICY_USERS for tenant in POLICY_TENANTS}
    everyone.update({key: frozenset(value) for key, value in assignments.items()})
    return RbacWorld(
        roles=roles, assignments=everyone, rules=tuple(RbacRule(*rule) for rule in rules)
    )


class TestCasbin:
    """Allow/deny with per-tenant roles and inheritance agree with pycasbin's RBAC-with-domains."""

    @settings(max_examples=300, deadline=None)
    @given(world=rbac_worlds())
    def test_every_request_agrees(self, world: RbacWorld) -> None:
        assert [] == rbac_disagreements(world)

    def test_deny_overrides_an_inherited_allow(self) -> None:
        """admin inherits viewer's allow, but a deny on admin wins; viewer alone is allowed."""
        world = rbac_world(
            {"viewer": (), "admin": ("viewer",)},
            {("alice", "acme"): {"admin"}, ("bob", "acme"): {"viewer"}},
            [
                ("allow", "viewer", "acme", "customer", "read"),
                ("deny", "admin", "acme", "customer", "read"),
            ],
        )
        expected = {"ours": False, "casbin": False}
        assert expected == rbac_allowed(world, "alice", "acme", "customer", "read")
        expected = {"ours": True, "casbin": True}
        assert expected == rbac_allowed(world, "bob", "acme", "customer", "read")
        assert [] == rbac_disagreements(world)

    def test_inheritance_is_transitive_and_per_tenant(self) -> None:
        """owner -> admin -> viewer: an owner in acme reads, the same user in globex does not."""
        world = rbac_world(
            {"viewer": (), "admin": ("viewer",), "owner": ("admin",)},
            {("carol", "acme"): {"owner"}, ("carol", "globex"): {"viewer"}},
            [
                ("allow", "viewer", "acme", "customer", "read"),
                ("allow", "admin", "globex", "customer", "write"),
            ],
        )
        expected = {"ours": True, "casbin": True}
        assert expected == rbac_allowed(world, "carol", "acme", "customer", "read")
        expected = {"ours": False, "casbin": False}
        assert expected == rbac_allowed(world, "carol", "globex", "customer", "write")
        assert expected == rbac_allowed(world, "carol", "globex", "customer", "read")
        assert [] == rbac_disagreements(world)

    def test_the_harness_notices_a_wrong_mapping(self) -> None:
        """Dropping inheritance on our side only must show up as disagreements."""
        world = rbac_world(
            {"viewer": (), "admin": ("viewer",)},
            {("alice", "acme"): {"admin"}},
            [("allow", "viewer", "acme", "customer", "read")],
        )
        expected = ["alice read customer in acme: ours=False casbin=True"]
        assert expected == rbac_disagreements(world, rbac_policy(world, inheritance=False))


# --- Cedar ----------------------------------------------------------------------------------


def _cedar_list(kind: str, names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'{kind}::"{name}"' for name in names) + "]"


def _joined(condition: LevelCondition, *, cedar: bool) -> str:
    words = {"and": " && ", "or": " || "} if cedar else {"and": " and ", "or": " or "}
    text = words[condition.joiner].join(
        f"(context.level {op} {value})" for op, value in condition.comparisons
    )
    if condition.negated:
        return f"!({text})" if cedar else f"not ({text})"
    return text


def cedar_policy_text(rule: ConditionalRule) -> str:
    """One Cedar ``permit``/``forbid`` statement for *rule*."""
    principal = "principal"
    if rule.principal is not None:
        kind, name = rule.principal
        op, entity = ("in", "Role") if kind == "role" else ("==", "User")
        principal = f'principal {op} {entity}::"{name}"'
    action = (
        "action" if rule.actions is None else f"action in {_cedar_list('Action', rule.actions)}"
    )
    head = f"{'permit' if rule.effect == 'allow' else 'forbid'}({principal}, {action}, resource)"
    clauses = []
    if rule.resources is not None:
        clauses.append(f"when {{ {_cedar_list('Type', rule.resources)}.contains(resource) }}")
    if rule.condition is not None:
        clauses.append(f"when {{ {_joined(rule.condition, cedar=True)} }}")
    return " ".join([head, *clauses]) + ";"


def cedar_entities(world: ConditionalWorld) -> list[dict[str, Any]]:
    """Users (parents: their roles) and roles (parents: the roles they inherit), as JSON."""

    def uid(kind: str, name: str) -> dict[str, str]:
        return {"type": kind, "id": name}

    users = [
        {"uid": uid("User", user), "attrs": {}, "parents": [uid("Role", r) for r in sorted(roles)]}
        for user, roles in world.members.items()
    ]
    roles = [
        {"uid": uid("Role", role), "attrs": {}, "parents": [uid("Role", p) for p in parents]}
        for role, parents in world.roles.items()
    ]
    return users + roles


def conditional_policy(world: ConditionalWorld, *, deny_overrides: bool = True) -> Policy:
    """Our policy for *world*; ``deny_overrides=False`` drops the denies (a wrong mapping)."""
    rules: list[dict[str, Any]] = []
    for index, rule in enumerate(world.rules):
        if rule.effect == "deny" and not deny_overrides:
            continue
        table: dict[str, Any] = {"id": f"c{index}", "effect": rule.effect}
        if rule.principal is None:
            table["roles"] = ["*"]
        else:
            kind, name = rule.principal
            table["roles" if kind == "role" else "subjects"] = [name]
        table["actions"] = ["*"] if rule.actions is None else list(rule.actions)
        table["resources"] = ["*"] if rule.resources is None else list(rule.resources)
        if rule.condition is not None:
            table["when"] = _joined(rule.condition, cedar=False)
        rules.append(table)
    document = {"version": 1, "roles": policy_roles_table(world.roles), "rules": rules}
    return Policy.from_dict(document)


def cedar_disagreements(world: ConditionalWorld, policy: Policy | None = None) -> list[str]:
    """Every request of the universe on which Cedar and our engine disagree."""
    engine = PolicyEngine(policy or conditional_policy(world))
    requests = world.requests()
    policies = "\n".join(cedar_policy_text(rule) for rule in world.rules)
    results = cedarpy.is_authorized_batch(
        [
            {
                "principal": {"type": "User", "id": user},
                "action": {"type": "Action", "id": action},
                "resource": {"type": "Type", "id": resource_type},
                "context": {"level": level},
            }
            for user, action, resource_type, level in requests
        ],
        policies,
        cedar_entities(world),
    )
    out = []
    for (user, action, resource_type, level), result in zip(requests, results, strict=True):
        assert [] == result.diagnostics.errors, policies  # a mapping mistake, not a verdict
        assert result.decision in (cedarpy.Decision.Allow, cedarpy.Decision.Deny)
        subject = Subject(user, roles=world.members[user])
        ours = engine.evaluate(
            subject, action, Resource(resource_type), context={"level": level}
        ).allowed
        if ours != result.allowed:
            out.append(
                f"{user} {action} {resource_type} at level {level}: "
                f"ours={ours} cedar={result.allowed}"
            )
    return out


def conditional_world(
    roles: dict[str, tuple[str, ...]],
    members: dict[str, set[str]],
    rules: list[ConditionalRule],
) -> ConditionalWorld:
    """A hand-written `ConditionalWorld`; users not in *members* hold no roles."""
    everyone = {user: frozenset(members.get(user, ())) for user in POLICY_USERS}
    return ConditionalWorld(roles=roles, members=everyone, rules=tuple(rules))


class TestCedar:
    """Permit/forbid over a role hierarchy and a context condition agree with Cedar."""

    @settings(max_examples=300, deadline=None)
    @given(world=conditional_worlds())
    def test_every_request_agrees(self, world: ConditionalWorld) -> None:
        assert [] == cedar_disagreements(world)

    def test_forbid_overrides_an_inherited_permit(self) -> None:
        """admin inherits viewer's permit; a forbid on admin at level < 2 wins over it."""
        world = conditional_world(
            {"viewer": (), "admin": ("viewer",), "owner": ("admin",)},
            {"alice": {"owner"}, "bob": {"viewer"}},
            [
                ConditionalRule("allow", ("role", "viewer"), ("read",), ("customer",), None),
                ConditionalRule(
                    "deny",
                    ("role", "admin"),
                    None,
                    None,
                    LevelCondition((("<", 2),), "and", negated=False),
                ),
            ],
        )
        engine = PolicyEngine(conditional_policy(world))

        def ours(user: str, level: int) -> bool:
            subject = Subject(user, roles=world.members[user])
            decision = engine.evaluate(
                subject, "read", Resource("customer"), context={"level": level}
            )
            return decision.allowed

        expected = {("alice", 1): False, ("alice", 2): True, ("bob", 1): True, ("carol", 3): False}
        assert expected == {key: ours(*key) for key in expected}
        policies = "\n".join(cedar_policy_text(rule) for rule in world.rules)
        theirs = {
            (user, level): cedarpy.is_authorized(
                {
                    "principal": f'User::"{user}"',
                    "action": 'Action::"read"',
                    "resource": 'Type::"customer"',
                    "context": {"level": level},
                },
                policies,
                cedar_entities(world),
            ).allowed
            for user, level in expected
        }
        assert expected == theirs
        assert [] == cedar_disagreements(world)

    def test_the_harness_notices_a_wrong_mapping(self) -> None:
        """Dropping the forbids on our side only must show up as disagreements."""
        world = conditional_world(
            {"viewer": ()},
            {"alice": {"viewer"}},
            [
                ConditionalRule("allow", None, ("read",), ("customer",), None),
                ConditionalRule("deny", ("user", "alice"), ("read",), ("customer",), None),
            ],
        )
        disagreements = cedar_disagreements(world, conditional_policy(world, deny_overrides=False))
        expected = [
            f"alice read customer at level {level}: ours=True cedar=False" for level in range(5)
        ]
        assert expected == disagreements
