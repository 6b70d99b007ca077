"""Questions about a policy: who_can, access reviews, explain and diff."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import access_requests, document_roles, policy_documents

from securecustomer.policy import (
    AccessRequest,
    AccessReview,
    Decision,
    DecisionChange,
    Explanation,
    Grant,
    Outcome,
    Policy,
    PolicyEngine,
    Resource,
    Step,
    Subject,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

ROLES: dict[str, Any] = {
    "agent": {},
    "manager": {"inherits": ["agent"]},
    "admin": {"inherits": ["manager"]},
    "contractor": {"inherits": ["agent"]},
    "auditor": {},
}

POLICY = """\
version = 1

[roles.agent]
[roles.manager]
inherits = ["agent"]
[roles.admin]
inherits = ["manager"]
[roles.auditor]
[roles.clerk]
[roles.senior-clerk]
inherits = ["clerk"]

[constraints]
exclusive = [["auditor", "clerk"]]

[[rules]]
id = "agents-read"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
fields = ["name", "email"]
masks = { email = "email" }

[[rules]]
id = "managers-read"
effect = "allow"
roles = ["manager"]
actions = ["read"]
resources = ["customer"]

[[rules]]
id = "hide-ssn"
effect = "deny"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
fields = ["ssn"]

[[rules]]
id = "auditors-read-eu"
effect = "allow"
roles = ["auditor"]
actions = ["read"]
resources = ["customer"]
when = 'resource.region == "eu"'
purposes = ["audit"]
tenants = ["acme"]

[[rules]]
id = "admins-delete"
effect = "allow"
roles = ["admin"]
actions = ["delete"]
resources = ["customer"]
mfa_max_age = "15m"

[[rules]]
id = "alice-export"
effect = "allow"
subjects = ["alice"]
actions = ["export"]
resources = ["customer"]

[[rules]]
id = "anyone-reads-invoices"
effect = "allow"
roles = ["*"]
actions = ["read"]
resources = ["invoice"]
fields = ["number"]

[[rules]]
id = "clerks-never-delete"
effect = "deny"
roles = ["clerk"]
actions = ["delete"]
resources = ["*"]
"""


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


def engine_of(*rules: dict[str, Any], roles: dict[str, Any] | None = None) -> PolicyEngine:
    document = {"version": 1, "roles": ROLES if roles is None else roles, "rules": list(rules)}
    return PolicyEngine(Policy.from_dict(document), clock=lambda: NOW)


def shared_engine() -> PolicyEngine:
    """An engine for POLICY, its clock stopped at NOW."""
    return PolicyEngine(Policy.from_toml(POLICY), clock=lambda: NOW)


def who(
    engine: PolicyEngine, action: str = "read", resource: str = "customer", field: str | None = None
) -> list[tuple[str, str, tuple[str, ...]]]:
    """(principal, rule, via) of every grant."""
    return [(g.principal, g.rule_id, g.via) for g in engine.who_can(action, resource, field)]


class TestWhoCanRoles:
    """who_can lists every role an allow reaches, with the inheritance path to it."""

    def test_via_inheritance(self) -> None:
        expected = [
            ("role:admin", "r", ("admin", "manager", "agent")),
            ("role:agent", "r", ("agent",)),
            ("role:contractor", "r", ("contractor", "agent")),
            ("role:manager", "r", ("manager", "agent")),
        ]
        assert expected == who(engine_of(rule("r")))

    def test_shortest_path(self) -> None:
        roles = {**ROLES, "lead": {"inherits": ["manager", "agent"]}}
        grants = who(engine_of(rule("r"), roles=roles))
        assert ("role:lead", "r", ("lead", "agent")) in grants

    def test_rule_naming_several_roles(self) -> None:
        expected = [
            ("role:admin", "r", ("admin", "manager")),
            ("role:auditor", "r", ("auditor",)),
            ("role:manager", "r", ("manager",)),
        ]
        assert expected == who(engine_of(rule("r", roles=["manager", "auditor"])))

    def test_roles_in_order_then_rules_in_order(self) -> None:
        rules = (rule("m", roles=["manager"]), rule("a", roles=["admin"]))
        expected = [
            ("role:admin", "m", ("admin", "manager")),
            ("role:admin", "a", ("admin",)),
            ("role:manager", "m", ("manager",)),
        ]
        assert expected == who(engine_of(*rules))

    def test_undeclared_role_named_by_a_rule(self) -> None:
        assert [("role:ghost", "r", ("ghost",))] == who(engine_of(rule("r", roles=["ghost"])))

    def test_anyone(self) -> None:
        grants = who(engine_of(rule("any", roles=["*"])))
        expected = [("role:*", "any", ("*",))] + [
            (f"role:{role}", "any", ("*",)) for role in sorted(ROLES)
        ]
        assert expected == grants

    def test_other_action_or_resource(self) -> None:
        engine = engine_of(rule("r"), rule("s", subjects=["alice"]))
        assert [] == who(engine, "write")
        assert [] == who(engine, "read", "invoice")

    def test_deny_rules_grant_nothing(self) -> None:
        assert [] == who(engine_of(rule("d", "deny"), rule("e", "deny", subjects=["alice"])))

    def test_grant_carries_the_rule(self) -> None:
        engine = engine_of(rule("r", fields=["name", "email"], masks={"email": "email"}))
        grant = engine.who_can("read", "customer")[1]
        expected = Grant(
            principal="role:agent",
            rule_id="r",
            effect="allow",
            actions=frozenset({"read"}),
            resources=frozenset({"customer"}),
            fields=frozenset({"name", "email"}),
            masks={"email": "email"},
            via=("agent",),
            condition=None,
            mfa_max_age=None,
            purposes=None,
            tenants=None,
        )
        assert expected == grant
        assert not grant.conditional


class TestUnmaskIsVisible:
    """A rule lifting masks with ``unmask`` shows in who_can, reviews and explanations."""

    RULES: ClassVar[tuple[dict[str, Any], ...]] = (
        rule("agents", fields=["name", "ssn"], masks={"ssn": "last4"}),
        rule("compliance", roles=["manager"], fields=["ssn"], unmask=["ssn"]),
    )

    def test_who_can(self) -> None:
        engine = engine_of(*self.RULES)
        grants = engine.who_can("read", "customer", field="ssn")
        assert {("agents", frozenset()), ("compliance", frozenset({"ssn"}))} == {
            (g.rule_id, g.unmask) for g in grants
        }

    def test_review(self) -> None:
        review = engine_of(*self.RULES).review({"carol": ["manager"]})
        cells = {row["rule"]: row["masks"] for row in review.rows}
        assert {"agents": "ssn=last4", "compliance": "unmask: ssn"} == cells
        both = rule("both", fields=["name", "ssn"], masks={"name": "initial"}, unmask=["ssn"])
        (row,) = engine_of(both).review({"bob": ["agent"]}).rows
        assert "name=initial; unmask: ssn" == row["masks"]

    def test_explain(self) -> None:
        carol = Subject("carol", roles=["manager"])
        explanation = engine_of(*self.RULES).explain(carol, "read", Resource("customer"))
        assert ({}, frozenset({"ssn"})) == (
            dict(explanation.decision.masks),
            explanation.decision.unmasked,
        )
        assert (
            "matched: allows fields [ssn], lifts every mask on [ssn] (unmask)"
            == explanation.steps[1].why
        )
        assert "lifts every mask on [ssn] (unmask)" in str(explanation)


class TestWhoCanSubjects:
    """Allows naming subject ids give subject grants with an empty path."""

    def test_subjects(self) -> None:
        expected = [("subject:alice", "s", ()), ("subject:bob", "s", ())]
        assert expected == who(engine_of(rule("s", subjects=["bob", "alice"])))

    def test_roles_and_subjects(self) -> None:
        grants = who(engine_of(rule("s", roles=["auditor"], subjects=["alice"])))
        assert [("role:auditor", "s", ("auditor",)), ("subject:alice", "s", ())] == grants


class TestWhoCanConditional:
    """Conditions, tenants, purposes and MFA limit a grant: it is listed, marked conditional."""

    @pytest.mark.parametrize(
        ("keys", "attribute", "value"),
        [
            ({"when": "context.level  >  2"}, "condition", "context.level > 2"),
            ({"tenants": ["acme"]}, "tenants", frozenset({"acme"})),
            ({"purposes": ["support"]}, "purposes", frozenset({"support"})),
            ({"mfa_max_age": "15m"}, "mfa_max_age", timedelta(minutes=15)),
        ],
        ids=["condition", "tenants", "purposes", "mfa"],
    )
    def test_conditional(self, keys: dict[str, Any], attribute: str, value: object) -> None:
        grants = engine_of(rule("r", roles=["auditor"], **keys)).who_can("read", "customer")
        assert [("role:auditor", True, value)] == [
            (g.principal, g.conditional, getattr(g, attribute)) for g in grants
        ]

    def test_unconditional(self) -> None:
        grants = engine_of(rule("r", roles=["auditor"])).who_can("read", "customer")
        assert [False] == [g.conditional for g in grants]

    def test_conditional_subject_grant(self) -> None:
        grants = engine_of(rule("s", subjects=["alice"], when="context.ok")).who_can(
            "read", "customer"
        )
        assert [("subject:alice", True)] == [(g.principal, g.conditional) for g in grants]


class TestWhoCanDenies:
    """An unconditional deny removes the roles (and subjects) it always stops; others stay."""

    def test_deny_on_inheriting_role(self) -> None:
        engine = engine_of(rule("r"), rule("d", "deny", roles=["contractor"]))
        assert ["role:admin", "role:agent", "role:manager"] == [p for p, _, _ in who(engine)]

    def test_deny_on_inherited_role_stops_every_heir(self) -> None:
        engine = engine_of(rule("r", roles=["agent", "auditor"]), rule("d", "deny"))
        assert [("role:auditor", "r", ("auditor",))] == who(engine)

    def test_deny_on_anyone_stops_everyone(self) -> None:
        engine = engine_of(
            rule("r"),
            rule("any", roles=["*"]),
            rule("s", subjects=["alice"]),
            rule("d", "deny", roles=["*"]),
        )
        decision = engine.evaluate(Subject("alice"), "read", Resource("customer"))
        assert Outcome.DENY == decision.outcome
        assert [] == who(engine)

    def test_deny_on_a_role_does_not_stop_anyone(self) -> None:
        engine = engine_of(rule("any", roles=["*"]), rule("d", "deny"))
        assert [("role:*", "any", ("*",)), ("role:auditor", "any", ("*",))] == who(engine)

    def test_deny_on_subject(self) -> None:
        engine = engine_of(
            rule("r", roles=["auditor"]),
            rule("s", subjects=["alice", "bob"]),
            rule("d", "deny", subjects=["bob"]),
        )
        expected = [("role:auditor", "r", ("auditor",)), ("subject:alice", "s", ())]
        assert expected == who(engine)

    @pytest.mark.parametrize(
        "keys",
        [
            {"when": "resource.vip == true"},
            {"tenants": ["acme"]},
            {"purposes": ["marketing"]},
            {"actions": ["write"]},
            {"resources": ["invoice"]},
            {"fields": ["ssn"]},
        ],
        ids=["condition", "tenants", "purposes", "other-action", "other-resource", "fields"],
    )
    def test_denies_that_do_not_stop(self, keys: dict[str, Any]) -> None:
        engine = engine_of(
            rule("r", roles=["manager"]),
            rule("s", subjects=["bob"]),
            rule("d", "deny", roles=["agent"], subjects=["bob"], **keys),
        )
        expected = [
            ("role:admin", "r", ("admin", "manager")),
            ("role:manager", "r", ("manager",)),
            ("subject:bob", "s", ()),
        ]
        assert expected == who(engine)


class TestWhoCanFields:
    """With a field, rules listing other fields and denies on that field drop out."""

    def test_rule_with_fields(self) -> None:
        engine = engine_of(rule("names", fields=["name"]), rule("all", roles=["manager"]))
        everything = [
            ("role:admin", "all", ("admin", "manager")),
            ("role:admin", "names", ("admin", "manager", "agent")),
            ("role:agent", "names", ("agent",)),
            ("role:contractor", "names", ("contractor", "agent")),
            ("role:manager", "all", ("manager",)),
            ("role:manager", "names", ("manager", "agent")),
        ]
        assert everything == sorted(who(engine))
        assert everything == sorted(who(engine, field="name"))
        assert [
            ("role:admin", "all", ("admin", "manager")),
            ("role:manager", "all", ("manager",)),
        ] == who(engine, field="ssn")

    def test_field_level_deny(self) -> None:
        engine = engine_of(
            rule("r", roles=["manager", "auditor"]),
            rule("s", subjects=["alice"]),
            rule("d", "deny", roles=["agent"], subjects=["alice"], fields=["ssn"]),
        )
        with_ssn = [("role:auditor", "r", ("auditor",))]
        others = [
            ("role:admin", "r", ("admin", "manager")),
            ("role:auditor", "r", ("auditor",)),
            ("role:manager", "r", ("manager",)),
            ("subject:alice", "s", ()),
        ]
        assert with_ssn == who(engine, field="ssn")
        assert others == who(engine, field="name")
        assert others == who(engine)


def rows(review: AccessReview, subject: str) -> list[tuple[str, str]]:
    """(rule, via) of every row for *subject*."""
    return [(row["rule"], row["via"]) for row in review.rows if row["subject"] == subject]


class TestReview:
    """review lists every rule applying to each subject, with the path granting it."""

    def test_inherited_roles(self) -> None:
        review = shared_engine().review({"bob": ["admin"]})
        expected = [
            ("agents-read", "admin -> manager -> agent"),
            ("managers-read", "admin -> manager"),
            ("hide-ssn", "admin -> manager -> agent"),
            ("admins-delete", "admin"),
            ("anyone-reads-invoices", "*"),
        ]
        assert expected == rows(review, "bob")
        assert () == review.violations

    def test_shortest_path_over_assigned_roles(self) -> None:
        review = shared_engine().review({"bob": ["admin", "agent"]})
        assert ("agents-read", "agent") == rows(review, "bob")[0]

    def test_subject_grant_and_anyone(self) -> None:
        review = shared_engine().review({"alice": ["auditor"], "zed": [], "ghost": ["intern"]})
        assert [
            ("auditors-read-eu", "auditor"),
            ("alice-export", "subject:alice"),
            ("anyone-reads-invoices", "*"),
        ] == rows(review, "alice")
        assert [("anyone-reads-invoices", "*")] == rows(review, "zed")
        assert [("anyone-reads-invoices", "*")] == rows(review, "ghost")

    def test_subjects_sorted(self) -> None:
        review = shared_engine().review({"zed": ["agent"], "bob": ["agent"], "alice": []})
        order = list(dict.fromkeys(row["subject"] for row in review.rows))
        assert ["alice", "bob", "zed"] == order

    def test_row(self) -> None:
        review = shared_engine().review({"dora": ["auditor", "manager"]})
        expected = [
            {
                "subject": "dora",
                "roles": "auditor, manager",
                "effect": "allow",
                "actions": "read",
                "resources": "customer",
                "fields": "email, name",
                "masks": "email=email",
                "condition": "",
                "mfa_max_age": "",
                "purposes": "",
                "tenants": "",
                "rule": "agents-read",
                "via": "manager -> agent",
            },
            {
                "subject": "dora",
                "roles": "auditor, manager",
                "effect": "allow",
                "actions": "read",
                "resources": "customer",
                "fields": "*",
                "masks": "",
                "condition": "",
                "mfa_max_age": "",
                "purposes": "",
                "tenants": "",
                "rule": "managers-read",
                "via": "manager",
            },
            {
                "subject": "dora",
                "roles": "auditor, manager",
                "effect": "deny",
                "actions": "read",
                "resources": "customer",
                "fields": "ssn",
                "masks": "",
                "condition": "",
                "mfa_max_age": "",
                "purposes": "",
                "tenants": "",
                "rule": "hide-ssn",
                "via": "manager -> agent",
            },
            {
                "subject": "dora",
                "roles": "auditor, manager",
                "effect": "allow",
                "actions": "read",
                "resources": "customer",
                "fields": "*",
                "masks": "",
                "condition": 'resource.region == "eu"',
                "mfa_max_age": "",
                "purposes": "audit",
                "tenants": "acme",
                "rule": "auditors-read-eu",
                "via": "auditor",
            },
            {
                "subject": "dora",
                "roles": "auditor, manager",
                "effect": "allow",
                "actions": "read",
                "resources": "invoice",
                "fields": "number",
                "masks": "",
                "condition": "",
                "mfa_max_age": "",
                "purposes": "",
                "tenants": "",
                "rule": "anyone-reads-invoices",
                "via": "*",
            },
        ]
        assert expected == [dict(row) for row in review.rows]
        assert tuple(expected[0]) == AccessReview.COLUMNS

    def test_mfa_and_wildcard_resources(self) -> None:
        review = shared_engine().review({"bob": ["admin"], "erin": ["clerk"]})
        delete = next(row for row in review.rows if row["rule"] == "admins-delete")
        never = next(row for row in review.rows if row["rule"] == "clerks-never-delete")
        assert ("15m", "*", "clerk") == (
            delete["mfa_max_age"],
            never["resources"],
            never["via"],
        )

    def test_subjects_like_dict(self) -> None:
        assignments = {"bob": ["admin"], "alice": ["auditor"], "erin": ["senior-clerk"]}
        subjects = [
            Subject(sid, roles=roles, tenant="acme", attributes={"x": 1})
            for sid, roles in assignments.items()
        ]
        assert shared_engine().review(assignments) == shared_engine().review(subjects)

    def test_subject_objects(self) -> None:
        review = shared_engine().review(iter([Subject("erin", roles=["senior-clerk"])]))
        assert [("clerks-never-delete", "senior-clerk -> clerk")] == [
            pair for pair in rows(review, "erin") if pair[0] != "anyone-reads-invoices"
        ]

    def test_separation_of_duties(self) -> None:
        review = shared_engine().review(
            {"carol": ["auditor", "clerk"], "bob": ["admin"], "erin": ["senior-clerk", "auditor"]}
        )
        expected = (
            ("carol", "denied: separation of duties, the subject holds both 'auditor' and 'clerk'"),
            ("erin", "denied: separation of duties, the subject holds both 'auditor' and 'clerk'"),
        )
        assert expected == review.violations
        assert ["auditors-read-eu", "anyone-reads-invoices", "clerks-never-delete"] == [
            rule_id for rule_id, _ in rows(review, "carol")
        ]

    def test_empty(self) -> None:
        review = shared_engine().review({})
        assert AccessReview((), ()) == review
        assert [list(AccessReview.COLUMNS)] == list(csv.reader(io.StringIO(review.to_csv())))


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]


class TestReviewCsv:
    """to_csv round-trips through the csv module and defuses spreadsheet formulas."""

    def test_round_trip(self) -> None:
        review = shared_engine().review(
            {"bob": ["admin"], "alice": ["auditor"], "o'neil, jr.": ["agent"], 'say "hi"': []}
        )
        text = review.to_csv()
        assert list(AccessReview.COLUMNS) == next(csv.reader(io.StringIO(text)))
        assert [dict(row) for row in review.rows] == parse_csv(text)

    def test_line_breaks_in_values(self) -> None:
        review = shared_engine().review({"a\nb": ["agent"], "c\r\nd": [], "e\rf": []})
        assert [dict(row) for row in review.rows] == parse_csv(review.to_csv())

    @pytest.mark.parametrize("subject", FORMULAS)
    def test_formula_subject(self, subject: str) -> None:
        review = shared_engine().review({subject: ["agent"]})
        parsed = parse_csv(review.to_csv())
        expected = [{**row, "subject": "'" + subject} for row in review.rows]
        assert expected == parsed
        assert ["'" + subject] == list({row["subject"] for row in parsed})

    def test_formula_raw_text(self) -> None:
        text = shared_engine().review({"=cmd|' /C calc'!A0": []}).to_csv()
        assert text.splitlines()[1].startswith("\"'=cmd|' /C calc'!A0\",")

    @pytest.mark.parametrize("role", ["=HYPERLINK(1)", "@evil", "+x", "-x"])
    def test_formula_role_and_condition(self, role: str) -> None:
        document = {
            "version": 1,
            "roles": {role: {}},
            "rules": [rule("r", roles=[role], when="-1 < context.level")],
        }
        review = PolicyEngine(Policy.from_dict(document)).review({"u": [role]})
        (parsed,) = parse_csv(review.to_csv())
        cells = (parsed["roles"], parsed["via"], parsed["condition"])
        assert ("'" + role, "'" + role, "'-1 < context.level") == cells

    def test_safe_cells_untouched(self) -> None:
        review = shared_engine().review({"bob": ["admin"], "x=1": ["agent"], "a-b": []})
        assert [dict(row) for row in review.rows] == parse_csv(review.to_csv())


UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
LINE_BREAK = re.compile(r"\r\n|\r|\n")  # CommonMark's line endings


class TestReviewMarkdown:
    """to_markdown renders one table line per row, escaping what would break the table."""

    def test_table(self) -> None:
        review = shared_engine().review({"bob": ["admin"]})
        lines = review.to_markdown().splitlines()
        assert "| " + " | ".join(AccessReview.COLUMNS) + " |" == lines[0]
        assert "|" + "---|" * len(AccessReview.COLUMNS) == lines[1]
        assert (
            "| bob | admin | allow | read | customer | email, name | email=email |  |  |  |  "
            "| agents-read | admin -> manager -> agent |"
        ) == lines[2]
        assert 2 + len(review.rows) == len(lines)

    def test_pipes_escaped(self) -> None:
        review = shared_engine().review({"a|b": ["agent"], "||": []})
        markdown = review.to_markdown()
        lines = LINE_BREAK.split(markdown.rstrip("\n"))
        assert 2 + len(review.rows) == len(lines)
        assert {len(AccessReview.COLUMNS) + 1} == {
            len(UNESCAPED_PIPE.findall(line)) for line in lines
        }
        assert lines[2].startswith("| a\\|b | agent |")

    @pytest.mark.parametrize("subject", ["a\nb", "a\rb", "a\r\nb", "a\r| x | y"])
    def test_line_breaks_escaped(self, subject: str) -> None:
        review = shared_engine().review({subject: []})
        lines = LINE_BREAK.split(review.to_markdown().rstrip("\n"))
        assert 3 == len(lines)
        assert {len(AccessReview.COLUMNS) + 1} == {
            len(UNESCAPED_PIPE.findall(line)) for line in lines
        }

    def test_violations(self) -> None:
        markdown = shared_engine().review({"c|d": ["auditor", "clerk"]}).to_markdown()
        last = markdown.rstrip("\n").split("\n")[-1]
        expected = (
            "**c\\|d**: denied: separation of duties, the subject holds both 'auditor' and 'clerk'"
        )
        assert expected == last


def explain_one(
    table: dict[str, Any],
    subject: Subject,
    action: str = "read",
    resource: Resource | None = None,
    **kwargs: Any,
) -> Step:
    """The one step of a one-rule policy, after checking the decision is evaluate's."""
    one = engine_of(table)
    resource = Resource("customer") if resource is None else resource
    explanation = one.explain(subject, action, resource, now=NOW, **kwargs)
    assert one.evaluate(subject, action, resource, now=NOW, **kwargs) == explanation.decision
    (step,) = explanation.steps
    return step


AGENT = Subject("bob", roles=["agent"], tenant="acme")


class TestExplainSteps:
    """Each rule's step says whether it matched, and the first reason it did not."""

    @pytest.mark.parametrize(
        ("table", "subject", "action", "resource", "kwargs", "matched", "why"),
        [
            (
                rule("r", roles=["manager"]),
                AGENT,
                "read",
                None,
                {},
                False,
                "not for this subject (needs manager)",
            ),
            (
                rule("r", subjects=["carol", "alice"]),
                AGENT,
                "read",
                None,
                {},
                False,
                "not for this subject (needs alice, carol)",
            ),
            (
                rule("r", actions=["read", "export"]),
                AGENT,
                "write",
                None,
                {},
                False,
                "action 'write' is not in [export, read]",
            ),
            (
                rule("r"),
                AGENT,
                "read",
                Resource("invoice"),
                {},
                False,
                "resource type 'invoice' is not in [customer]",
            ),
            (
                rule("r"),
                AGENT,
                "read",
                Resource("customer", tenant="globex"),
                {},
                False,
                "the resource belongs to another tenant",
            ),
            (
                rule("r", tenants=["globex"]),
                AGENT,
                "read",
                None,
                {},
                False,
                "tenant 'acme' is not in [globex]",
            ),
            (
                rule("r", purposes=["support", "audit"]),
                AGENT,
                "read",
                None,
                {"purpose": "billing"},
                False,
                "purpose 'billing' is not in [audit, support]",
            ),
            (
                rule("r", purposes=["support"]),
                AGENT,
                "read",
                None,
                {},
                False,
                "purpose None is not in [support]",
            ),
            (
                rule("r", when="context.level > 2"),
                AGENT,
                "read",
                None,
                {"context": {"level": 1}},
                False,
                "condition is false: context.level > 2",
            ),
            (
                rule("r", when="context.level > 2"),
                AGENT,
                "read",
                None,
                {},
                False,
                "condition failed closed: context has no key 'level'",
            ),
            (
                rule("d", "deny", when="context.level > 2"),
                AGENT,
                "read",
                None,
                {"context": {"level": "high"}},
                True,
                "condition failed closed (deny applies): cannot compare string > number",
            ),
            (
                rule("d", "deny", when="context.level > 2"),
                AGENT,
                "read",
                None,
                {"context": {"level": 1}},
                False,
                "condition is false: context.level > 2",
            ),
            (
                rule("r", mfa_max_age="15m"),
                AGENT,
                "read",
                None,
                {},
                False,
                "needs MFA within 15m (step-up)",
            ),
            (
                rule("r", mfa_max_age="15m"),
                Subject("bob", roles=["agent"], mfa_at=NOW - timedelta(hours=1)),
                "read",
                None,
                {},
                False,
                "needs MFA within 15m (step-up)",
            ),
            (
                rule("r", mfa_max_age="15m"),
                Subject("bob", roles=["agent"], mfa_at=NOW - timedelta(minutes=5)),
                "read",
                None,
                {},
                True,
                "matched: allows every field",
            ),
            (
                rule("r", roles=["agent"]),
                Subject("bob", roles=["admin"]),
                "read",
                None,
                {},
                True,
                "matched: allows every field",
            ),
            (
                rule("r", roles=["*"], fields=["name", "email"]),
                Subject("nobody"),
                "read",
                None,
                {"fields": ["ssn"]},
                True,
                "matched: allows fields [email, name]",
            ),
            (
                rule("r", subjects=["bob"], tenants=["acme"], when="subject.id == resource.owner"),
                AGENT,
                "read",
                Resource("customer", tenant="acme", attributes={"owner": "bob"}),
                {"purpose": "support"},
                True,
                "matched: allows every field",
            ),
            (rule("d", "deny"), AGENT, "read", None, {}, True, "matched: denies every field"),
            (
                rule("d", "deny", fields=["ssn"]),
                AGENT,
                "read",
                None,
                {},
                True,
                "matched: denies fields [ssn]",
            ),
        ],
        ids=[
            "other-role",
            "other-subject",
            "action",
            "resource-type",
            "other-tenant",
            "rule-tenants",
            "purpose",
            "no-purpose",
            "condition-false",
            "allow-condition-error",
            "deny-condition-error",
            "deny-condition-false",
            "mfa-missing",
            "mfa-stale",
            "mfa-fresh",
            "inherited-role",
            "anyone-with-fields",
            "everything-met",
            "deny",
            "deny-fields",
        ],
    )
    def test_step(
        self,
        table: dict[str, Any],
        subject: Subject,
        action: str,
        resource: Resource | None,
        kwargs: dict[str, Any],
        matched: bool,
        why: str,
    ) -> None:
        step = explain_one(table, subject, action, resource, **kwargs)
        assert Step(table["id"], table["effect"], matched, why) == step

    def test_first_reason_wins(self) -> None:
        table = rule("r", roles=["manager"], actions=["write"], tenants=["globex"])
        step = explain_one(table, AGENT, "read", Resource("invoice", tenant="globex"))
        assert "not for this subject (needs manager)" == step.why

    def test_every_rule_in_policy_order(self) -> None:
        policy = Policy.from_toml(POLICY)
        explanation = shared_engine().explain(
            Subject("bob", roles=["admin"]), "read", Resource("customer"), now=NOW
        )
        assert [r.id for r in policy.rules] == [s.rule_id for s in explanation.steps]
        assert [r.effect for r in policy.rules] == [s.effect for s in explanation.steps]
        assert ["agents-read", "managers-read", "hide-ssn"] == [
            s.rule_id for s in explanation.steps if s.matched
        ]

    def test_clock_when_no_now(self) -> None:
        subject = Subject("bob", roles=["admin"], mfa_at=NOW - timedelta(minutes=5))
        explanation = shared_engine().explain(subject, "delete", Resource("customer"))
        assert Outcome.ALLOW == explanation.decision.outcome
        assert [("admins-delete", "matched: allows every field")] == [
            (s.rule_id, s.why) for s in explanation.steps if s.matched
        ]


REQUESTS = [
    AccessRequest(Subject("bob", roles=["agent"]), "read", Resource("customer")),
    AccessRequest(Subject("bob", roles=["agent"]), "read", Resource("customer"), fields=["ssn"]),
    AccessRequest(Subject("bob", roles=["admin"]), "delete", Resource("customer")),
    AccessRequest(
        Subject("bob", roles=["admin"], mfa_at=NOW - timedelta(minutes=1)),
        "delete",
        Resource("customer"),
    ),
    AccessRequest(
        Subject("dora", roles=["auditor"], tenant="acme"),
        "read",
        Resource("customer", tenant="acme", attributes={"region": "eu"}),
        purpose="audit",
    ),
    AccessRequest(
        Subject("dora", roles=["auditor"], tenant="acme"),
        "read",
        Resource("customer", tenant="acme"),
        purpose="audit",
    ),
    AccessRequest(
        Subject("dora", roles=["auditor"], tenant="acme"),
        "read",
        Resource("customer", tenant="globex"),
    ),
    AccessRequest(Subject("carol", roles=["auditor", "clerk"]), "read", Resource("invoice")),
    AccessRequest(Subject("alice"), "export", Resource("customer")),
    AccessRequest(Subject("erin", roles=["senior-clerk"]), "delete", Resource("invoice")),
    AccessRequest(Subject("zed"), "read", Resource("invoice"), fields=["number", "total"]),
]


class TestExplanation:
    """The explanation's decision is evaluate's, and str() shows every rule."""

    @pytest.mark.parametrize("request_", REQUESTS)
    def test_decision_is_evaluate(self, request_: AccessRequest) -> None:
        subject, action, resource = request_.subject, request_.action, request_.resource
        kwargs: dict[str, Any] = {
            "fields": request_.fields,
            "purpose": request_.purpose,
            "context": request_.context,
            "now": NOW,
        }
        explanation = shared_engine().explain(subject, action, resource, **kwargs)
        assert shared_engine().evaluate(subject, action, resource, **kwargs) == explanation.decision

    def test_outcomes_covered(self) -> None:
        # the requests above reach every outcome
        assert set(Outcome) == {d.outcome for d in shared_engine().evaluate_many(REQUESTS)}

    def test_str(self) -> None:
        explanation = shared_engine().explain(
            Subject("bob", roles=["agent"]), "read", Resource("customer"), now=NOW
        )
        expected = """\
allow: allowed by rule 'agents-read'
  + agents-read (allow): matched: allows fields [email, name]
  - managers-read (allow): not for this subject (needs manager)
  + hide-ssn (deny): matched: denies fields [ssn]
  - auditors-read-eu (allow): not for this subject (needs auditor)
  - admins-delete (allow): not for this subject (needs admin)
  - alice-export (allow): not for this subject (needs alice)
  - anyone-reads-invoices (allow): resource type 'customer' is not in [invoice]
  - clerks-never-delete (deny): not for this subject (needs clerk)"""
        assert expected == str(explanation)

    def test_str_empty_policy(self) -> None:
        explanation = engine_of().explain(Subject("bob"), "read", Resource("customer"), now=NOW)
        assert "deny: denied: no rule allows 'read' on 'customer'" == str(explanation)
        assert Explanation(explanation.decision, ()) == explanation


def full_denies(policy: Policy, explanation: Explanation) -> set[str]:
    fields = {r.id: r.fields for r in policy.rules}
    return {
        s.rule_id
        for s in explanation.steps
        if s.matched and s.effect == "deny" and fields[s.rule_id] is None
    }


class TestExplainProperties:
    """On generated policies and requests, explain's steps agree with evaluate."""

    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def test_consistent_with_evaluate(self, data: st.DataObject) -> None:
        document = data.draw(policy_documents(), label="document")
        policy = Policy.from_dict(document)
        engine = PolicyEngine(policy)
        request = data.draw(access_requests(document_roles(document)), label="request")
        (decision,) = engine.evaluate_many([request])
        explanation = engine.explain(
            request.subject,
            request.action,
            request.resource,
            fields=request.fields,
            purpose=request.purpose,
            context=request.context,
            now=request.now,
        )
        steps = explanation.steps
        allows = {s.rule_id for s in steps if s.matched and s.effect == "allow"}
        every_field = {r.id for r in policy.rules if r.fields is None} & allows
        denies = full_denies(policy, explanation)
        step_ups = {s.rule_id for s in steps if s.why.startswith("needs MFA")}
        subject, resource = request.subject, request.resource

        assert decision == explanation.decision
        assert [r.id for r in policy.rules] == [s.rule_id for s in steps]
        if decision.outcome is Outcome.ALLOW:
            assert set(decision.rule_ids) <= allows
            assert decision.rule_ids
            assert not denies
        if decision.outcome is Outcome.STEP_UP:
            assert set(decision.rule_ids) == step_ups
            assert not denies
        if denies:
            assert (Outcome.DENY, denies) == (decision.outcome, set(decision.rule_ids))
        if not allows and not step_ups:
            assert Outcome.DENY == decision.outcome
        if request.fields is None and every_field and not denies:
            assert Outcome.ALLOW == decision.outcome
        if resource.tenant is not None and resource.tenant != subject.tenant:
            assert [] == [s for s in steps if s.matched]

    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_same_policy_no_diff(self, data: st.DataObject) -> None:
        document = data.draw(policy_documents(), label="document")
        requests = data.draw(
            st.lists(access_requests(document_roles(document)), max_size=10), label="requests"
        )
        first = PolicyEngine(Policy.from_dict(document))
        assert [] == first.diff(PolicyEngine(Policy.from_dict(document)), requests)
        assert [] == first.diff(first, requests)


class TestEmptyFieldList:
    """A request naming no fields is explained and diffed, not raised on."""

    def test_explain_and_diff(self) -> None:
        # evaluate used to raise "ValueError: min() arg is an empty sequence" here: fields=[]
        # with every granting rule listing fields.
        one = engine_of(rule("r", roles=["*"], fields=["name"]))
        request = AccessRequest(Subject("u"), "read", Resource("customer"), fields=[], now=NOW)
        explanation = one.explain(Subject("u"), "read", Resource("customer"), fields=[], now=NOW)
        assert [Step("r", "allow", True, "matched: allows fields [name]")] == list(
            explanation.steps
        )
        assert [] == one.diff(one, [request])


def grid() -> list[AccessRequest]:
    """Every (subject, action, resource type) of a small universe."""
    subjects = [
        Subject("bob", roles=["agent"]),
        Subject("carol", roles=["manager"]),
        Subject("dan", roles=["admin"]),
        Subject("erin", roles=["clerk"]),
        Subject("alice"),
    ]
    return [
        AccessRequest(subject, action, Resource(kind), now=NOW)
        for subject in subjects
        for action in ("read", "delete", "export")
        for kind in ("customer", "invoice")
    ]


#: The subjects of `grid` that agents-read applies to: bob, and by inheritance carol and dan.
READERS = [("bob", "read", "customer"), ("carol", "read", "customer"), ("dan", "read", "customer")]


def changed(text: str, old: str, new: str) -> PolicyEngine:
    assert old in text
    return PolicyEngine(Policy.from_toml(text.replace(old, new, 1)), clock=lambda: NOW)


def summary(changes: list[DecisionChange]) -> list[tuple[str, str, str]]:
    return [(c.request.subject.id, c.request.action, c.request.resource.type) for c in changes]


class TestDiff:
    """diff finds exactly the requests whose outcome, fields or masks change."""

    def test_identical_engines(self) -> None:
        assert [] == shared_engine().diff(shared_engine(), grid())
        current = shared_engine()
        assert [] == current.diff(current, grid())

    def test_fields_change(self) -> None:
        after = changed(
            POLICY, 'fields = ["name", "email"]\nmasks = { email = "email" }', 'fields = ["name"]'
        )
        changes = shared_engine().diff(after, grid())
        # Managers and admins inherit agents-read: its mask applies to them too, over the
        # clear grant of managers-read (masks override as denies do).
        assert READERS == summary(changes)
        change = changes[0]
        expected_before = Decision(
            Outcome.ALLOW,
            "allowed by rule 'agents-read'",
            rule_ids=("agents-read",),
            fields=frozenset({"name", "email"}),
            hidden=frozenset({"ssn"}),
            masks={"email": "email"},
        )
        assert expected_before == change.before
        assert (frozenset({"name"}), {}) == (change.after.fields, dict(change.after.masks))
        assert grid()[0] == change.request

    def test_masks_change(self) -> None:
        after = changed(POLICY, 'masks = { email = "email" }', 'masks = { email = "redact" }')
        changes = shared_engine().diff(after, grid())
        assert READERS == summary(changes)
        for change in changes:
            assert change.before.fields == change.after.fields
            assert ({"email": "email"}, {"email": "redact"}) == (
                dict(change.before.masks),
                dict(change.after.masks),
            )

    def test_outcome_change(self) -> None:
        after = changed(POLICY, 'roles = ["clerk"]', 'roles = ["clerk", "admin"]')
        changes = shared_engine().diff(after, grid())
        assert [("dan", "delete", "customer")] == summary(changes)
        assert [(Outcome.STEP_UP, Outcome.DENY)] == [
            (c.before.outcome, c.after.outcome) for c in changes
        ]

    def test_other_reason_is_no_change(self) -> None:
        # dan may not delete invoices before (no rule) nor after (the deny): same outcome
        after = changed(POLICY, 'roles = ["clerk"]', 'roles = ["clerk", "admin"]')
        request = AccessRequest(Subject("dan", roles=["admin"]), "delete", Resource("invoice"))
        (before_decision,) = shared_engine().evaluate_many([request])
        (after_decision,) = after.evaluate_many([request])
        assert before_decision.reason != after_decision.reason
        assert [] == shared_engine().diff(after, [request])

    def test_hidden_change(self) -> None:
        after = changed(POLICY, 'fields = ["ssn"]', 'fields = ["ssn", "phone"]')
        expected = [("bob", "read", "customer"), ("carol", "read", "customer")]
        expected.append(("dan", "read", "customer"))
        assert expected == summary(shared_engine().diff(after, grid()))

    def test_rule_renamed_is_no_change(self) -> None:
        after = changed(POLICY, 'id = "managers-read"', 'id = "managers-read-all"')
        request = AccessRequest(Subject("carol", roles=["manager"]), "read", Resource("customer"))
        (before_decision,) = shared_engine().evaluate_many([request])
        (after_decision,) = after.evaluate_many([request])
        assert before_decision.rule_ids != after_decision.rule_ids
        assert [] == shared_engine().diff(after, grid())

    def test_request_order_kept(self) -> None:
        after = changed(POLICY, 'subjects = ["alice"]', 'roles = ["*"]')
        requests = list(reversed(grid()))
        changes = shared_engine().diff(after, requests)
        expected = [r for r in requests if r.action == "export" and r.resource.type == "customer"]
        expected = [r for r in expected if r.subject.id != "alice"]
        assert expected == [c.request for c in changes]
        assert {(Outcome.DENY, Outcome.ALLOW)} == {
            (c.before.outcome, c.after.outcome) for c in changes
        }
