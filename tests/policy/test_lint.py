"""Policy.lint(): each finding where it belongs, and none in the near misses."""

from __future__ import annotations

from typing import Any

import pytest

from securecustomer.policy import Finding, Policy, PolicyEngine, Resource, Subject

ROLES: dict[str, Any] = {
    "agent": {},
    "manager": {"inherits": ["agent"]},
    "admin": {"inherits": ["manager"]},
}


def rule(rule_id: str, effect: str = "allow", **keys: Any) -> dict[str, Any]:
    """A rule table: agents reading customers unless *keys* say otherwise."""
    table: dict[str, Any] = {
        "id": rule_id,
        "effect": effect,
        "actions": ["read"],
        "resources": ["customer"],
    }
    if "subjects" not in keys:
        table["roles"] = ["agent"]
    return table | keys


def make(*rules: dict[str, Any], roles: dict[str, Any] | None = None) -> Policy:
    return Policy.from_dict(
        {"version": 1, "roles": ROLES if roles is None else roles, "rules": list(rules)}
    )


def found(policy: Policy, code: str | None = None) -> list[tuple[str, str | None]]:
    """(code, rule) of every finding, or of those with *code*."""
    return [(f.code, f.rule) for f in policy.lint() if code is None or f.code == code]


class TestClean:
    """A policy without problems has no findings."""

    def test_no_findings(self) -> None:
        policy = make(
            rule("agents-read", fields=["name"]),
            rule("managers-write", roles=["manager"], actions=["write"]),
            rule("admins-delete", roles=["admin"], actions=["delete"], when="context.ok"),
            rule("no-vip", "deny", when="resource.vip == true"),
        )
        assert [] == policy.lint()

    def test_empty_policy(self) -> None:
        assert [] == Policy.from_dict({"version": 1}).lint()


class TestUnknownRole:
    """A role a rule names but [roles] does not declare."""

    def test_typo_in_allow(self) -> None:
        policy = make(rule("agents-read", roles=["agnet"]), rule("ok"))
        expected = [
            Finding("unknown-role", "role 'agnet' is not declared under [roles]", "agents-read")
        ]
        assert expected == [f for f in policy.lint() if f.code == "unknown-role"]

    def test_in_deny(self) -> None:
        policy = make(rule("ok"), rule("no-interns", "deny", roles=["intern"]))
        assert [("unknown-role", "no-interns")] == found(policy, "unknown-role")

    def test_one_finding_per_role_sorted(self) -> None:
        policy = make(rule("r", roles=["zeta", "agent", "alpha"]))
        messages = [f.message for f in policy.lint() if f.code == "unknown-role"]
        assert [
            "role 'alpha' is not declared under [roles]",
            "role 'zeta' is not declared under [roles]",
        ] == messages

    @pytest.mark.parametrize(
        "table",
        [
            rule("declared"),
            rule("inherited-role", roles=["admin"]),
            rule("anyone", roles=["*"], fields=["name"]),
            rule("by-subject", subjects=["alice"]),
        ],
        ids=["declared", "declared-with-parents", "star", "subjects-only"],
    )
    def test_near_misses(self, table: dict[str, Any]) -> None:
        assert [] == found(make(table), "unknown-role")


class TestUnusedRole:
    """A declared role that grants nothing: not named, not inherited, inheriting nothing."""

    def test_found(self) -> None:
        policy = make(rule("r"), roles={**ROLES, "auditor": {}})
        expected = [Finding("unused-role", "role 'auditor' is declared but grants nothing")]
        assert expected == [f for f in policy.lint() if f.code == "unused-role"]

    def test_every_unused_role_sorted(self) -> None:
        policy = make(roles={"zeta": {}, "alpha": {}})
        assert [("unused-role", None), ("unused-role", None)] == found(policy)
        assert ["alpha", "zeta"] == [f.message.split("'")[1] for f in policy.lint()]

    @pytest.mark.parametrize(
        ("roles", "rules"),
        [
            ({"agent": {}}, [rule("r")]),
            ({"agent": {}}, [rule("d", "deny")]),
            ({"agent": {}}, [rule("r", when="false")]),
            # inherited by a role a rule names
            ({"base": {}, "agent": {"inherits": ["base"]}}, [rule("r")]),
            # only bundles other roles
            ({"agent": {}, "bundle": {"inherits": ["agent"]}}, [rule("r")]),
        ],
        ids=["named-by-allow", "named-by-deny", "named-by-unreachable", "inherited", "bundle"],
    )
    def test_near_misses(self, roles: dict[str, Any], rules: list[dict[str, Any]]) -> None:
        assert [] == found(make(*rules, roles=roles), "unused-role")


class TestShadowed:
    """An allow that an unconditional deny always overrides, and the denies that do not."""

    @pytest.mark.parametrize(
        ("allow", "deny"),
        [
            (rule("a"), rule("d", "deny")),
            (rule("a"), rule("d", "deny", roles=["*"])),
            (rule("a", roles=["*"]), rule("d", "deny", roles=["*"])),
            # the allow's role inherits the deny's role: every holder is denied
            (rule("a", roles=["admin"]), rule("d", "deny", roles=["agent"])),
            (rule("a"), rule("d", "deny", actions=["*"])),
            (rule("a"), rule("d", "deny", actions=["read", "write"], resources=["*"])),
            (rule("a", fields=["name"], masks={"name": "initial"}), rule("d", "deny")),
            (rule("a", when="context.ok", mfa_max_age="5m"), rule("d", "deny")),
            (rule("a", subjects=["alice"]), rule("d", "deny", subjects=["alice", "bob"])),
            (rule("a", subjects=["alice"]), rule("d", "deny", roles=["*"])),
            (
                rule("a", roles=["agent"], subjects=["alice"]),
                rule("d", "deny", roles=["agent"], subjects=["alice"]),
            ),
            (rule("a", roles=["manager", "admin"]), rule("d", "deny", roles=["agent"])),
        ],
        ids=[
            "same-role",
            "deny-anyone",
            "anyone-denied-anyone",
            "inherited",
            "deny-every-action",
            "deny-more",
            "allow-with-fields",
            "conditional-allow",
            "subjects",
            "subject-denied-anyone",
            "roles-and-subjects",
            "every-role-inherits",
        ],
    )
    def test_found(self, allow: dict[str, Any], deny: dict[str, Any]) -> None:
        for order in ((allow, deny), (deny, allow)):
            policy = make(*order)
            expected = [Finding("shadowed", "always overridden by deny rule 'd'", "a")]
            assert expected == [f for f in policy.lint() if f.code == "shadowed"]

    @pytest.mark.parametrize(
        ("allow", "deny"),
        [
            (rule("a"), rule("d", "deny", when="resource.vip == true")),
            (rule("a"), rule("d", "deny", tenants=["acme"])),
            (rule("a"), rule("d", "deny", purposes=["marketing"])),
            (rule("a"), rule("d", "deny", fields=["ssn"])),
            (rule("a", actions=["read", "write"]), rule("d", "deny")),
            (rule("a", resources=["customer", "invoice"]), rule("d", "deny")),
            (rule("a", actions=["*"], fields=["name"]), rule("d", "deny")),
            (rule("a"), rule("d", "deny", actions=["write"])),
            # the deny's role inherits the allow's: an agent is not a manager
            (rule("a"), rule("d", "deny", roles=["manager"])),
            (rule("a", roles=["*"]), rule("d", "deny")),
            (rule("a", roles=["agent", "auditor"]), rule("d", "deny")),
            (rule("a", roles=["agent"], subjects=["alice"]), rule("d", "deny")),
            (rule("a", subjects=["alice", "bob"]), rule("d", "deny", subjects=["alice"])),
            (rule("a", subjects=["alice"]), rule("d", "deny")),
        ],
        ids=[
            "conditional-deny",
            "deny-in-some-tenants",
            "deny-for-some-purposes",
            "deny-some-fields",
            "deny-some-actions",
            "deny-some-resources",
            "deny-one-of-every-action",
            "other-action",
            "child-role",
            "allow-anyone",
            "one-role-not-denied",
            "subject-not-denied",
            "one-subject-not-denied",
            "subject-may-lack-role",
        ],
    )
    def test_near_misses(self, allow: dict[str, Any], deny: dict[str, Any]) -> None:
        roles = {**ROLES, "auditor": {}}
        assert [] == found(make(allow, deny, roles=roles), "shadowed")

    def test_first_deny_named_once(self) -> None:
        policy = make(rule("d1", "deny", roles=["*"]), rule("a"), rule("d2", "deny"))
        expected = [Finding("shadowed", "always overridden by deny rule 'd1'", "a")]
        assert expected == [f for f in policy.lint() if f.code == "shadowed"]

    def test_denies_are_never_shadowed(self) -> None:
        policy = make(rule("d1", "deny", fields=["ssn"]), rule("d2", "deny"))
        assert [] == found(policy, "shadowed")

    def test_shadowed_allow_never_allows(self) -> None:
        # the finding's claim, checked against the engine for every role
        policy = make(rule("a", roles=["admin"], fields=["name"]), rule("d", "deny"))
        engine = PolicyEngine(policy)
        outcomes = {
            engine.evaluate(Subject("u", roles=[role]), "read", Resource("customer")).allowed
            for role in ROLES
        }
        assert [("shadowed", "a")] == found(policy, "shadowed")
        assert {False} == outcomes


class TestUnreachable:
    """A rule whose condition is never true, and conditions that may be."""

    @pytest.mark.parametrize(
        "when",
        ["false", "not true", "1 > 2", '"a" == "b"', "true and false", "[1] == [2]"],
    )
    def test_constant_false(self, when: str) -> None:
        policy = make(rule("a", when=when), rule("d", "deny", when=when))
        assert [("unreachable", "a"), ("unreachable", "d")] == found(policy, "unreachable")

    @pytest.mark.parametrize("when", ['1 < "a"', "1", '"a" in 1', "not null"])
    def test_allow_failing_closed(self, when: str) -> None:
        policy = make(rule("a", when=when))
        engine = PolicyEngine(policy)
        decision = engine.evaluate(Subject("u", roles=["agent"]), "read", Resource("customer"))
        assert [("unreachable", "a")] == found(policy, "unreachable")
        assert [Finding("unreachable", "its condition is never true", "a")] == policy.lint()
        assert not decision.allowed

    @pytest.mark.parametrize("when", ['1 < "a"', "1"])
    def test_deny_failing_closed_always_applies(self, when: str) -> None:
        # A deny whose condition cannot be evaluated fails closed by applying: far from
        # unreachable, it denies every request it covers.
        policy = make(rule("a"), rule("d", "deny", when=when))
        engine = PolicyEngine(policy)
        decision = engine.evaluate(Subject("u", roles=["agent"]), "read", Resource("customer"))
        assert ("d",) == decision.rule_ids
        assert [] == found(policy, "unreachable")

    @pytest.mark.parametrize(
        "when",
        [
            "true",
            "not false",
            "1 < 2",
            '"a" in ["a", "b"]',
            "false or true",
            "context.level > 2",
            "false or context.ok",
            "resource.owner == subject.id",
            '"agent" in subject.roles',
        ],
    )
    def test_near_misses(self, when: str) -> None:
        policy = make(rule("a", when=when), rule("d", "deny", when=when))
        assert [] == found(policy, "unreachable")

    def test_no_condition(self) -> None:
        assert [] == found(make(rule("a"), rule("d", "deny", roles=["admin"])), "unreachable")


class TestWildcardFields:
    """An allow over every action or resource type that does not list fields."""

    @pytest.mark.parametrize(
        "keys",
        [
            {"actions": ["*"]},
            {"resources": ["*"]},
            {"actions": ["*"], "resources": ["*"]},
            {"resources": ["*"], "when": "context.ok", "masks": {"email": "email"}},
        ],
        ids=["every-action", "every-resource", "both", "conditional-and-masked"],
    )
    def test_found(self, keys: dict[str, Any]) -> None:
        policy = make(rule("a", **keys))
        expected = [
            Finding(
                "wildcard-fields",
                "allows every field of every action or resource type; list fields",
                "a",
            )
        ]
        assert expected == policy.lint()

    @pytest.mark.parametrize(
        ("effect", "keys"),
        [
            ("allow", {"resources": ["*"], "fields": ["name"]}),
            ("allow", {"actions": ["*"], "resources": ["*"], "fields": ["name", "email"]}),
            ("allow", {}),
            ("allow", {"actions": ["read", "write"], "resources": ["customer", "invoice"]}),
            ("deny", {"actions": ["*"], "resources": ["*"]}),
        ],
        ids=["fields-listed", "all-wildcards-fields-listed", "specific", "several", "deny"],
    )
    def test_near_misses(self, effect: str, keys: dict[str, Any]) -> None:
        policy = make(rule("a", effect, **keys), rule("other"))
        assert [] == found(policy, "wildcard-fields")


class TestOverlappingMasks:
    """Two allows that can grant one field to one role for one action and resource type,
    masking it differently (another mask, or in clear): the strictest mask applies."""

    def test_different_masks(self) -> None:
        policy = make(
            rule("general", fields=["name", "ssn"], masks={"ssn": "last4"}),
            rule("vip", fields=["ssn"], masks={"ssn": "redact"}, when="resource.vip"),
        )
        expected = [
            Finding(
                "overlapping-masks",
                "field 'ssn': masks it ('redact') where rule 'general' masks it ('last4'); "
                "the strictest, 'redact', applies",
                "vip",
            )
        ]
        assert expected == policy.lint()

    def test_clear_grant_through_inheritance(self) -> None:
        policy = make(
            rule("agents", fields=["email"], masks={"email": "email"}),
            rule("managers", roles=["manager"], fields=["name", "email"]),
        )
        expected = [
            Finding(
                "overlapping-masks",
                "field 'email': grants it in clear where rule 'agents' masks it ('email'); "
                "the mask applies (list the field in unmask to lift it)",
                "managers",
            )
        ]
        assert expected == policy.lint()

    def test_mask_after_a_clear_grant(self) -> None:
        policy = make(
            rule("everyone", roles=["*"], fields=["email"]),
            rule("agents", masks={"email": "email"}),
        )
        expected = [
            Finding(
                "overlapping-masks",
                "field 'email': masks it ('email') where rule 'everyone' grants it in clear; "
                "the mask applies",
                "agents",
            )
        ]
        assert expected == policy.lint()

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            ({"subjects": ["u-1"], "masks": {"ssn": "redact"}}, {"subjects": ["u-1"]}),
            ({"masks": {"ssn": "redact"}}, {"actions": ["*"], "fields": ["ssn"]}),
            ({"masks": {"ssn": "redact"}, "tenants": ["a"]}, {"fields": ["ssn"]}),
            ({"masks": {"ssn": "redact"}, "roles": ["manager"]}, {"roles": ["agent"]}),
        ],
        ids=["same-subject", "any-action", "tenant-and-any-tenant", "inherited-the-other-way"],
    )
    def test_other_overlaps(self, first: dict[str, Any], second: dict[str, Any]) -> None:
        policy = make(rule("a", **first), rule("b", **second))
        assert [("overlapping-masks", "b")] == found(policy, "overlapping-masks")

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            ({"masks": {"ssn": "redact"}}, {"masks": {"ssn": "redact"}}),
            ({"masks": {"ssn": "redact"}}, {"fields": ["ssn"], "unmask": ["ssn"]}),
            ({"masks": {"ssn": "redact"}}, {"fields": ["name"]}),
            ({"masks": {"ssn": "redact"}}, {"actions": ["write"]}),
            ({"masks": {"ssn": "redact"}}, {"resources": ["invoice"]}),
            ({"masks": {"ssn": "redact"}, "tenants": ["a"]}, {"tenants": ["b"]}),
            ({"masks": {"ssn": "redact"}, "purposes": ["x"]}, {"purposes": ["y"]}),
            ({"masks": {"ssn": "redact"}}, {"roles": ["auditor"]}),
            ({"subjects": ["u-1"], "masks": {"ssn": "redact"}}, {"subjects": ["u-2"]}),
            ({"masks": {"ssn": "redact"}}, {"effect": "deny", "fields": ["ssn"]}),
            ({}, {"fields": ["ssn"]}),
        ],
        ids=[
            "same-mask",
            "explicit-unmask",
            "other-fields",
            "other-action",
            "other-resource",
            "other-tenant",
            "other-purpose",
            "unrelated-role",
            "other-subject",
            "deny",
            "no-masks",
        ],
    )
    def test_near_misses(self, first: dict[str, Any], second: dict[str, Any]) -> None:
        roles = {**ROLES, "auditor": {}}
        policy = make(rule("a", **first), rule("b", **second), roles=roles)
        assert [] == found(policy, "overlapping-masks")

    def test_what_it_reports_is_what_the_engine_does(self) -> None:
        policy = make(
            rule("agents", fields=["email"], masks={"email": "email"}),
            rule("managers", roles=["manager"], fields=["name", "email"]),
        )
        manager = Subject("u-1", roles=["manager"])
        decision = PolicyEngine(policy).evaluate(manager, "read", Resource("customer"))
        assert {"email": "email"} == dict(decision.masks)


class TestOrder:
    """Findings come in rule order, then the role findings."""

    def test_order(self) -> None:
        policy = make(
            rule("first", roles=["ghost"], when="false"),
            rule("second", roles=["manager"], actions=["*"]),
            rule("deny", "deny", roles=["manager"], actions=["*"], resources=["*"]),
            roles={**ROLES, "spare": {}, "idle": {}},
        )
        expected = [
            ("unknown-role", "first"),
            ("unreachable", "first"),
            ("shadowed", "second"),
            ("wildcard-fields", "second"),
            ("unused-role", None),
            ("unused-role", None),
        ]
        assert expected == found(policy)
        assert ["idle", "spare"] == [
            f.message.split("'")[1] for f in policy.lint() if f.code == "unused-role"
        ]


class TestFindingStr:
    """Finding renders as "code: rule 'id': message", or without a rule."""

    def test_with_rule(self) -> None:
        finding = Finding("shadowed", "always overridden by deny rule 'd'", "a")
        assert "shadowed: rule 'a': always overridden by deny rule 'd'" == str(finding)

    def test_without_rule(self) -> None:
        finding = Finding("unused-role", "role 'x' is declared but grants nothing")
        assert "unused-role: role 'x' is declared but grants nothing" == str(finding)

    def test_from_lint(self) -> None:
        policy = make(rule("a", roles=["ghost"]), roles={"admin": {}})
        assert [
            "unknown-role: rule 'a': role 'ghost' is not declared under [roles]",
            "unused-role: role 'admin' is declared but grants nothing",
        ] == [str(f) for f in policy.lint()]
