"""Policies at the size of a real company: the rule index, the bounded role-set cache, and
`who_can` / `review` against reference copies of their first (quadratic) implementations.

No timings here (benchmarks/policy.py has them): the index is checked by counting which
rules a decision looks at, the cache by what it still holds after many role sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import document_roles, policy_documents, policy_requests

from securecustomer.policy import (
    Grant,
    Policy,
    PolicyEngine,
    Resource,
    Subject,
)

EXAMPLES = settings(max_examples=150, deadline=None)


class CountingSet(frozenset[str]):
    """A frozenset that counts the membership tests made on it (a rule's ``actions`` or
    ``roles``): how many rules a decision looked at."""

    tests: list[int] = [0]  # noqa: RUF012 - one counter shared by every instance

    def __contains__(self, item: object) -> bool:
        self.tests[0] += 1
        return super().__contains__(item)

    def isdisjoint(self, other: Iterable[object]) -> bool:
        self.tests[0] += 1
        return super().isdisjoint(other)


def counted(policy: Policy, field: str) -> Policy:
    """*policy* with each rule's *field* (``actions`` or ``roles``) a `CountingSet`."""
    rules = tuple(attrs.evolve(r, **{field: CountingSet(getattr(r, field))}) for r in policy.rules)
    return attrs.evolve(policy, rules=rules)


def big_policy(rules: int) -> dict[str, Any]:
    """One rule for ``agent`` reading customers, and *rules* for other roles and actions."""
    roles: dict[str, Any] = {"agent": {}}
    table = [
        {
            "id": "agents-read",
            "effect": "allow",
            "roles": ["agent"],
            "actions": ["read"],
            "resources": ["customer"],
        }
    ]
    for n in range(rules):
        roles[f"team-{n}"] = {"inherits": ["agent"]} if n % 2 else {}
        table.append(
            {
                "id": f"rule-{n}",
                "effect": "allow" if n % 5 else "deny",
                "roles": [f"team-{n}"],
                "actions": ["read" if n % 3 else "update"],
                "resources": ["customer" if n % 4 else "order"],
            }
        )
    return {"version": 1, "roles": roles, "rules": table}


AGENT = Subject("u1", roles=["agent"])
CUSTOMER = Resource("customer", id=1)


class TestRuleIndex:
    """A new engine's first decision looks only at the rules of its action, resource type
    and roles, not at every rule of the policy."""

    def test_rules_of_other_actions_are_not_looked_at(self) -> None:
        policy = counted(Policy.from_dict(big_policy(600)), "actions")
        engine = PolicyEngine(policy)
        CountingSet.tests[0] = 0
        decision = engine.evaluate(AGENT, "create", CUSTOMER)  # no rule has this action
        assert not decision.allowed
        assert 0 == CountingSet.tests[0]

    def test_rules_of_other_roles_are_not_looked_at(self) -> None:
        policy = counted(Policy.from_dict(big_policy(600)), "roles")
        engine = PolicyEngine(policy)
        CountingSet.tests[0] = 0
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert ["agents-read"] == list(decision.rule_ids)
        assert 0 == CountingSet.tests[0]

    def test_same_answers_as_a_scan(self) -> None:
        """Role sets of one, two and three roles, on every action and type of the policy,
        decided by one warm engine and by a new engine each: the same decisions."""
        policy = Policy.from_dict(big_policy(60))
        warm = PolicyEngine(policy)
        roles = sorted(policy.roles)
        sets = [[r] for r in roles] + [
            [roles[i], roles[(i * 7 + 3) % len(roles)], roles[(i * 13 + 5) % len(roles)]]
            for i in range(len(roles))
        ]
        for held in sets:
            subject = Subject("u", roles=held)
            for action in ("read", "update", "create"):
                for kind in ("customer", "order", "invoice"):
                    resource = Resource(kind, id=1)
                    first = PolicyEngine(policy).evaluate(subject, action, resource)
                    assert first == warm.evaluate(subject, action, resource)
                    explained = warm.explain(subject, action, resource)
                    matched = {s.rule_id for s in explained.steps if s.matched}
                    assert set(first.rule_ids) <= matched


class TestRoleSetCache:
    """The role-set cache is bounded and evicts the least recently used sets, one at a
    time: it never empties itself whole."""

    def test_eight_thousand_role_sets_stay_cached(self) -> None:
        engine = PolicyEngine(Policy.from_dict(big_policy(10)))
        subjects = [Subject("u", roles=["agent", f"extra-{n}"]) for n in range(8000)]
        for subject in subjects:
            engine.evaluate(subject, "read", CUSTOMER)
        assert all(s.roles in engine._views for s in subjects)

    def test_eviction_keeps_the_recent_sets(self) -> None:
        engine = PolicyEngine(Policy.from_dict(big_policy(10)))
        subjects = [Subject("u", roles=["agent", f"extra-{n}"]) for n in range(40_000)]
        for subject in subjects:
            assert engine.evaluate(subject, "read", CUSTOMER).allowed
        held = len(engine._views)
        assert 8000 <= held < 40_000
        assert all(s.roles in engine._views for s in subjects[-held:])
        assert not any(s.roles in engine._views for s in subjects[:-held])

    def test_a_used_set_is_kept(self) -> None:
        engine = PolicyEngine(Policy.from_dict(big_policy(10)))
        for n in range(40_000):
            engine.evaluate(AGENT, "read", CUSTOMER)  # used all along: never the oldest
            engine.evaluate(Subject("u", roles=[f"extra-{n}"]), "read", CUSTOMER)
        assert AGENT.roles in engine._views


@EXAMPLES
@given(st.data())
def test_one_engine_and_new_engines_agree(data: st.DataObject) -> None:
    """Plans shared between role sets (also by conditions that read ``subject.roles``) give
    the decisions a new engine gives each request."""
    document = data.draw(policy_documents())
    requests = data.draw(st.lists(policy_requests(document), min_size=1, max_size=12))
    policy = Policy.from_dict(document)
    engine = PolicyEngine(policy)
    for _ in range(2):
        for r in requests:
            fresh = PolicyEngine(policy).evaluate_many([r])[0]
            args = (r.subject, r.action, r.resource)
            keys = {"purpose": r.purpose, "context": r.context, "now": r.now}
            assert fresh == engine.evaluate(*args, fields=r.fields, **keys)  # type: ignore[arg-type]
        assert [PolicyEngine(policy).evaluate_many([r])[0] for r in requests] == (
            engine.evaluate_many(requests)
        )


# --- who_can and review against their first implementations -------------------------------


def _names(value: frozenset[str] | None) -> str:
    return "*" if value is None else ", ".join(sorted(value))


def reference_role_path(policy: Policy, start: str, target: str) -> tuple[str, ...] | None:
    if start == target:
        return (start,)
    queue: list[tuple[str, ...]] = [(start,)]
    seen = {start}
    while queue:
        path = queue.pop(0)
        for parent in policy.roles.get(path[-1], ()):
            if parent == target:
                return (*path, parent)
            if parent not in seen:
                seen.add(parent)
                queue.append((*path, parent))
    return None


def reference_rule_via(policy: Policy, rule: Any, roles: Iterable[str]) -> tuple[str, ...] | None:
    if "*" in rule.roles:
        return ("*",)
    best: tuple[str, ...] | None = None
    for start in sorted(roles):
        for target in sorted(rule.roles):
            path = reference_role_path(policy, start, target)
            if path is not None and (best is None or len(path) < len(best)):
                best = path
    return best


def _matches(rule: Any, action: str, resource_type: str, field: str | None) -> bool:
    return (
        (rule.actions is None or action in rule.actions)
        and (rule.resources is None or resource_type in rule.resources)
        and (field is None or rule.fields is None or field in rule.fields)
    )


def reference_who_can(
    policy: Policy, action: str, resource_type: str, field: str | None
) -> list[Grant]:
    """`who_can` as first written: every role times every rule, a path search each."""
    grants: list[Grant] = []
    denies = [
        rule
        for rule in policy.rules
        if not rule.allow
        and rule.when is None
        and rule.tenants is None
        and rule.purposes is None
        and _matches(rule, action, resource_type, None)
        and (rule.fields is None or (field is not None and field in rule.fields))
    ]
    for role in sorted({*policy.roles, *(r for rule in policy.rules for r in rule.roles)}):
        effective = policy.effective_roles([role])
        if any("*" in d.roles or not d.roles.isdisjoint(effective) for d in denies):
            continue
        for rule in policy.rules:
            if not rule.allow or not _matches(rule, action, resource_type, field):
                continue
            via = reference_rule_via(policy, rule, [role]) if role != "*" else None
            if role == "*" and "*" in rule.roles:
                via = ("*",)
            if via is not None:
                grants.append(Grant.of(f"role:{role}", rule, via))
    for rule in policy.rules:
        if rule.allow and _matches(rule, action, resource_type, field):
            for subject_id in sorted(rule.subjects):
                if not any("*" in d.roles or subject_id in d.subjects for d in denies):
                    grants.append(Grant.of(f"subject:{subject_id}", rule, ()))
    return grants


def reference_review_vias(
    policy: Policy, assignments: Mapping[str, Iterable[str]]
) -> list[tuple[str, str, str]]:
    """(subject, rule, via) of each review row, as `review` first computed them."""
    out = []
    for subject_id in sorted(assignments):
        held = frozenset(assignments[subject_id])
        effective = policy.effective_roles(held)
        for rule in policy.rules:
            if subject_id in rule.subjects:
                via: tuple[str, ...] | None = (f"subject:{subject_id}",)
            elif "*" in rule.roles:
                via = ("*",)
            elif rule.roles.isdisjoint(effective):
                continue
            else:
                via = reference_rule_via(policy, rule, held)
            out.append((subject_id, rule.id, " -> ".join(via or ())))
    return out


def diamond_policy(depth: int) -> dict[str, Any]:
    """Roles in a ladder of diamonds (two shortest paths to each rung), rules on each rung,
    some on roles of the same length of path: ties between paths are broken as before."""
    roles: dict[str, Any] = {"r0": {}}
    for n in range(1, depth + 1):
        roles[f"a{n}"] = {"inherits": [f"r{n - 1}"]}
        roles[f"b{n}"] = {"inherits": [f"r{n - 1}"]}
        roles[f"r{n}"] = {"inherits": [f"b{n}", f"a{n}"]}
    rules = [
        {
            "id": f"rule-{n}",
            "effect": "allow",
            "roles": [f"r{n}", f"a{n + 1}"] if n < depth else [f"r{n}"],
            "actions": ["read"],
            "resources": ["customer"],
        }
        for n in range(depth + 1)
    ]
    rules.append(
        {"id": "anyone", "effect": "allow", "roles": ["*"], "actions": ["read"], "resources": ["*"]}
    )
    rules.append(
        {
            "id": "alice",
            "effect": "allow",
            "subjects": ["alice"],
            "actions": ["read"],
            "resources": ["*"],
        }
    )
    rules.append(
        {
            "id": "no-b3",
            "effect": "deny",
            "roles": ["b3"],
            "actions": ["read"],
            "resources": ["customer"],
            "fields": ["ssn"],
        }
    )
    return {"version": 1, "roles": roles, "rules": rules}


class TestWhoCanAndReview:
    """`who_can` and `review` (linear in the policy) give what the first versions gave."""

    @EXAMPLES
    @given(st.data())
    def test_who_can_as_before(self, data: st.DataObject) -> None:
        document = data.draw(policy_documents())
        request = data.draw(policy_requests(document))
        field = data.draw(st.sampled_from([None, "email", "ssn", "name"]))
        policy = Policy.from_dict(document)
        expected = reference_who_can(policy, request.action, request.resource.type, field)
        assert expected == PolicyEngine(policy).who_can(
            request.action, request.resource.type, field
        )

    @EXAMPLES
    @given(st.data())
    def test_review_as_before(self, data: st.DataObject) -> None:
        document = data.draw(policy_documents())
        roles = document_roles(document)
        assignments = data.draw(
            st.dictionaries(
                st.sampled_from(["alice", "bob", "carol", "dave"]),
                st.lists(st.sampled_from(roles), max_size=3),
                max_size=4,
            )
        )
        policy = Policy.from_dict(document)
        review = PolicyEngine(policy).review(assignments)
        assert reference_review_vias(policy, assignments) == [
            (row["subject"], row["rule"], row["via"]) for row in review.rows
        ]

    def test_ties_between_paths(self) -> None:
        policy = Policy.from_dict(diamond_policy(6))
        engine = PolicyEngine(policy)
        for field in (None, "ssn"):
            assert reference_who_can(policy, "read", "customer", field) == engine.who_can(
                "read", "customer", field
            )
        assignments = {"alice": ["r6"], "bob": ["b2", "a5"], "carol": ["r3", "b3"]}
        assert reference_review_vias(policy, assignments) == [
            (row["subject"], row["rule"], row["via"]) for row in engine.review(assignments).rows
        ]
