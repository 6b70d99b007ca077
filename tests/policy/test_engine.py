"""PolicyEngine semantics: deny by default, deny wins, fields and masks, tenants, purposes,
fail-closed conditions, step-up MFA, separation of duties, require / guard / apply."""

from __future__ import annotations

import inspect
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import attrs
import pytest

from securecustomer.exceptions import (
    AccessDenied,
    AuthorizationError,
    PolicyError,
    StepUpRequired,
)
from securecustomer.policy import (
    AccessRequest,
    Decision,
    Outcome,
    Policy,
    PolicyEngine,
    Resource,
    Subject,
    apply,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AGENT = Subject("user-1", roles=["agent"])
CUSTOMER = Resource("customer", id=42)
RECORD = {"name": "Ada Lovelace", "email": "ada@example.com", "ssn": "078-05-1120"}


def rule(rule_id: str, effect: str = "allow", **keys: Any) -> dict[str, Any]:
    """A rule for agents reading customers unless *keys* say otherwise."""
    base: dict[str, Any] = {
        "id": rule_id,
        "effect": effect,
        "roles": ["agent"],
        "actions": ["read"],
        "resources": ["customer"],
    }
    base.update(keys)
    return base


def deny(rule_id: str, **keys: Any) -> dict[str, Any]:
    return rule(rule_id, "deny", **keys)


def make_policy(
    *rules: dict[str, Any],
    roles: dict[str, Any] | None = None,
    exclusive: list[list[str]] | None = None,
) -> Policy:
    document: dict[str, Any] = {
        "version": 1,
        "roles": {"agent": {}} if roles is None else roles,
        "rules": list(rules),
    }
    if exclusive is not None:
        document["constraints"] = {"exclusive": exclusive}
    return Policy.from_dict(document)


def engine_for(
    *rules: dict[str, Any],
    roles: dict[str, Any] | None = None,
    exclusive: list[list[str]] | None = None,
    **options: Any,
) -> PolicyEngine:
    return PolicyEngine(make_policy(*rules, roles=roles, exclusive=exclusive), **options)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TestDefaults:
    """Nothing is allowed unless a rule says so; wildcards mean any."""

    def test_no_rules(self) -> None:
        decision = engine_for().evaluate(AGENT, "read", CUSTOMER)
        assert Outcome.DENY == decision.outcome
        assert "denied: no rule allows 'read' on 'customer'" == decision.reason
        assert () == decision.rule_ids
        assert not decision.allowed

    @pytest.mark.parametrize(
        ("subject", "action", "resource"),
        [
            (AGENT, "write", CUSTOMER),
            (AGENT, "read", Resource("invoice")),
            (Subject("user-2", roles=["clerk"]), "read", CUSTOMER),
            (Subject("user-2"), "read", CUSTOMER),
        ],
    )
    def test_other_requests_are_denied(
        self, subject: Subject, action: str, resource: Resource
    ) -> None:
        engine = engine_for(rule("agents-read"))
        assert Outcome.ALLOW == engine.evaluate(AGENT, "read", CUSTOMER).outcome
        assert Outcome.DENY == engine.evaluate(subject, action, resource).outcome

    def test_allowed(self) -> None:
        decision = engine_for(rule("agents-read")).evaluate(AGENT, "read", CUSTOMER)
        assert Outcome.ALLOW == decision.outcome
        assert decision.allowed
        assert "allowed by rule 'agents-read'" == decision.reason
        assert ("agents-read",) == decision.rule_ids
        assert None is decision.fields
        assert frozenset() == decision.hidden

    def test_anyone(self) -> None:
        engine = engine_for(rule("public", roles=["*"], resources=["catalog"]))
        for subject in (Subject("nobody"), AGENT, Subject("x", roles=["clerk"])):
            assert engine.evaluate(subject, "read", Resource("catalog")).allowed
        assert not engine.evaluate(AGENT, "read", CUSTOMER).allowed

    def test_any_action_and_resource(self) -> None:
        engine = engine_for(rule("all", actions=["*"], resources=["*"]))
        for action, kind in itertools.product(["read", "delete"], ["customer", "invoice"]):
            assert engine.evaluate(AGENT, action, Resource(kind)).allowed

    def test_several_actions(self) -> None:
        engine = engine_for(rule("rw", actions=["read", "write"]))
        assert engine.evaluate(AGENT, "write", CUSTOMER).allowed
        assert not engine.evaluate(AGENT, "delete", CUSTOMER).allowed

    def test_repr(self) -> None:
        assert "<PolicyEngine rules=1 roles=1>" == repr(engine_for(rule("r")))


class TestDenyOverrides:
    """A matching deny without fields wins over every allow, wherever it is."""

    @pytest.mark.parametrize("deny_first", [True, False])
    def test_deny_wins(self, deny_first: bool) -> None:
        rules = [deny("no-read"), rule("agents-read")]
        engine = engine_for(*(rules if deny_first else rules[::-1]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert Outcome.DENY == decision.outcome
        assert ("no-read",) == decision.rule_ids
        assert "denied by rule 'no-read'" == decision.reason

    def test_all_denies_listed(self) -> None:
        engine = engine_for(rule("a"), deny("z-deny"), deny("b-deny", roles=["*"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert ("b-deny", "z-deny") == decision.rule_ids
        assert "denied by rule 'b-deny'" == decision.reason

    def test_deny_of_another_action(self) -> None:
        engine = engine_for(rule("agents-read"), deny("no-delete", actions=["delete"]))
        assert engine.evaluate(AGENT, "read", CUSTOMER).allowed
        assert not engine.evaluate(AGENT, "delete", CUSTOMER).allowed

    def test_deny_even_with_fields_requested(self) -> None:
        engine = engine_for(rule("agents-read"), deny("no-read"))
        decision = engine.evaluate(AGENT, "read", CUSTOMER, fields=["name"])
        assert (Outcome.DENY, ("no-read",)) == (decision.outcome, decision.rule_ids)


class TestFields:
    """Field-level allows and denies: what is visible and what a request may name."""

    def test_deny_hides_fields(self) -> None:
        engine = engine_for(rule("all"), deny("no-ssn", fields=["ssn"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert Outcome.ALLOW == decision.outcome
        assert None is decision.fields
        assert frozenset({"ssn"}) == decision.hidden
        assert (True, True, False) == tuple(map(decision.visible, ["name", "other", "ssn"]))

    def test_allowed_fields(self) -> None:
        engine = engine_for(rule("contact", fields=["name", "email"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert frozenset({"name", "email"}) == decision.fields
        assert (True, True, False) == tuple(map(decision.visible, ["name", "email", "ssn"]))

    def test_fields_of_several_allows_add_up(self) -> None:
        engine = engine_for(rule("a", fields=["name"]), rule("b", fields=["email"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert frozenset({"name", "email"}) == decision.fields
        assert ("a", "b") == decision.rule_ids

    def test_requested_fields_all_visible(self) -> None:
        engine = engine_for(rule("a", fields=["name"]), rule("b", fields=["email", "phone"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER, fields=["email"])
        assert Outcome.ALLOW == decision.outcome
        assert frozenset({"email"}) == decision.fields
        assert ("b",) == decision.rule_ids
        assert "allowed by rule 'b'" == decision.reason

    def test_requested_fields_with_every_field_allowed(self) -> None:
        engine = engine_for(rule("all"), deny("no-ssn", fields=["ssn"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER, fields=("name", "email"))
        assert frozenset({"name", "email"}) == decision.fields
        assert frozenset() == decision.hidden

    def test_requested_field_not_granted(self) -> None:
        engine = engine_for(rule("contact", fields=["name", "email"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER, fields=["name", "ssn", "dob"])
        assert Outcome.DENY == decision.outcome
        assert "denied: fields not allowed: dob, ssn" == decision.reason
        assert frozenset({"name"}) == decision.fields
        assert not decision.visible("name")

    def test_requested_field_hidden(self) -> None:
        engine = engine_for(rule("all"), deny("no-ssn", fields=["ssn", "dob"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER, fields=["name", "ssn"])
        assert Outcome.DENY == decision.outcome
        assert "denied: fields not allowed: ssn" == decision.reason
        assert frozenset({"name"}) == decision.fields
        assert frozenset({"ssn"}) == decision.hidden

    def test_nothing_requested_is_visible(self) -> None:
        decision = engine_for().evaluate(AGENT, "read", CUSTOMER, fields=["name"])
        assert "denied: no rule allows 'read' on 'customer'" == decision.reason
        assert frozenset() == decision.fields

    def test_no_field_requested(self) -> None:
        engine = engine_for(rule("contact", fields=["name"]), rule("emails", fields=["email"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER, fields=[])
        assert (Outcome.ALLOW, frozenset(), ("contact", "emails")) == (
            decision.outcome,
            decision.fields,
            decision.rule_ids,
        )
        assert {} == apply(decision, RECORD)
        assert Outcome.DENY == engine_for().evaluate(AGENT, "read", CUSTOMER, fields=[]).outcome

    def test_every_granted_field_hidden(self) -> None:
        engine = engine_for(rule("ssn-only", fields=["ssn"]), deny("no-ssn", fields=["ssn"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert Outcome.DENY == decision.outcome
        assert frozenset({"ssn"}) == decision.hidden

    def test_field_deny_for_other_roles_does_not_hide(self) -> None:
        engine = engine_for(
            rule("all"),
            deny("clerks-no-ssn", roles=["clerk"], fields=["ssn"]),
            roles={"agent": {}, "clerk": {}},
        )
        assert frozenset() == engine.evaluate(AGENT, "read", CUSTOMER).hidden

    def test_fields_as_a_string_is_refused(self) -> None:
        with pytest.raises(TypeError, match="not one string"):
            engine_for(rule("all")).evaluate(AGENT, "read", CUSTOMER, fields="name")


class TestMasks:
    """Masks override as denies do: the strictest mask of the granting rules applies, also
    over a rule granting the field in clear, unless a granting rule lists it in ``unmask``."""

    def test_masked(self) -> None:
        engine = engine_for(rule("contact", fields=["name", "email"], masks={"email": "email"}))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert {"email": "email"} == dict(decision.masks)
        assert frozenset() == decision.unmasked

    def test_unmasked_grant_does_not_unmask(self) -> None:
        engine = engine_for(
            rule("masked", fields=["name", "email"], masks={"email": "email"}),
            rule("plain", fields=["email"]),
        )
        assert {"email": "email"} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)

    def test_unmasked_grant_of_every_field_does_not_unmask(self) -> None:
        engine = engine_for(rule("masked", masks={"ssn": "last4"}), rule("plain"))
        assert {"ssn": "last4"} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)

    def test_unmasked_grant_from_another_role_does_not_unmask(self) -> None:
        """The issue's case: an auditor who is also an agent sees the agents' mask."""
        engine = engine_for(
            rule("agents", masks={"ssn": "last4"}),
            rule("auditors", roles=["auditor"]),
            roles={"agent": {}, "auditor": {}},
        )
        both = Subject("user-2", roles=["agent", "auditor"])
        assert {"ssn": "last4"} == dict(engine.evaluate(both, "read", CUSTOMER).masks)
        auditor = Subject("user-3", roles=["auditor"])
        assert {} == dict(engine.evaluate(auditor, "read", CUSTOMER).masks)

    def test_rule_granting_other_fields_does_not_unmask(self) -> None:
        engine = engine_for(
            rule("masked", masks={"ssn": "last4"}),
            rule("names", fields=["name"]),
        )
        assert {"ssn": "last4"} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)

    @pytest.mark.parametrize(("general", "vip"), [("a-general", "b-vip"), ("z-general", "b-vip")])
    def test_stricter_mask_wins_whatever_the_ids(self, general: str, vip: str) -> None:
        """VIP customers: SSN redacted, over the general last-four rule, for any rule ids."""
        engine = engine_for(
            rule(general, fields=["name", "ssn"], masks={"ssn": "last4"}),
            rule(vip, fields=["ssn"], masks={"ssn": "redact"}, when="resource.vip"),
        )
        vip_row = Resource("customer", id=1, attributes={"vip": True})
        plain_row = Resource("customer", id=2, attributes={"vip": False})
        assert {"ssn": "redact"} == dict(engine.evaluate(AGENT, "read", vip_row).masks)
        assert {"ssn": "last4"} == dict(engine.evaluate(AGENT, "read", plain_row).masks)
        shown = engine.apply(engine.evaluate(AGENT, "read", vip_row), RECORD)
        assert "[REDACTED]" == shown["ssn"]

    @pytest.mark.parametrize("reverse", [False, True])
    def test_choice_is_deterministic(self, reverse: bool) -> None:
        rules = [
            rule("a-rule", fields=["email"], masks={"email": "email"}),
            rule("b-rule", fields=["email"], masks={"email": "redact"}),
        ]
        engine = engine_for(*(rules[::-1] if reverse else rules))
        assert {"email": "redact"} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)

    @pytest.mark.parametrize(
        ("stricter", "looser"),
        list(itertools.combinations(["redact", "initial", "phone", "card", "last4", "email"], 2)),
    )
    def test_order_of_strictness(self, stricter: str, looser: str) -> None:
        """The documented order (docs/policies.md, Masks), whichever rule id sorts first."""
        for first, second in ((stricter, looser), (looser, stricter)):
            engine = engine_for(
                rule("a", fields=["ssn"], masks={"ssn": first}),
                rule("b", fields=["ssn"], masks={"ssn": second}),
            )
            assert {"ssn": stricter} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)

    def test_host_masks_rank_between_redact_and_the_partial_masks(self) -> None:
        options: dict[str, Any] = {"masks": {"year": str, "hash": str}}
        for other, expected in (("redact", "redact"), ("initial", "hash"), ("year", "hash")):
            engine = engine_for(
                rule("a", fields=["ssn"], masks={"ssn": other}),
                rule("b", fields=["ssn"], masks={"ssn": "hash"}),
                **options,
            )
            assert {"ssn": expected} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)

    def test_unmask_lifts_every_mask(self) -> None:
        engine = engine_for(
            rule("masked", masks={"ssn": "last4", "email": "email"}),
            rule("vip", fields=["ssn"], masks={"ssn": "redact"}),
            rule("compliance", fields=["ssn"], unmask=["ssn"], purposes=["audit"]),
        )
        plain = engine.evaluate(AGENT, "read", CUSTOMER)
        assert ({"email": "email", "ssn": "redact"}, frozenset()) == (
            dict(plain.masks),
            plain.unmasked,
        )
        audit = engine.evaluate(AGENT, "read", CUSTOMER, purpose="audit")
        assert ({"email": "email"}, frozenset({"ssn"})) == (dict(audit.masks), audit.unmasked)
        assert "078-05-1120" == engine.apply(audit, RECORD)["ssn"]

    def test_unmask_without_other_masks_lifts_nothing(self) -> None:
        engine = engine_for(rule("compliance", fields=["ssn"], unmask=["ssn"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert ({}, frozenset()) == (dict(decision.masks), decision.unmasked)

    def test_unmask_never_shows_a_hidden_field(self) -> None:
        engine = engine_for(
            rule("compliance", unmask=["ssn"]),
            deny("no-ssn", fields=["ssn"]),
            rule("masked", masks={"ssn": "last4"}),
        )
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert (False, {}, frozenset()) == (
            decision.visible("ssn"),
            dict(decision.masks),
            decision.unmasked,
        )

    def test_unmask_of_a_rule_waiting_on_mfa_does_not_apply(self) -> None:
        engine = engine_for(
            rule("masked", masks={"ssn": "last4"}),
            rule("compliance", fields=["ssn"], unmask=["ssn"], mfa_max_age="5m"),
        )
        stale = engine.evaluate(AGENT, "read", CUSTOMER, now=NOW)
        assert (Outcome.ALLOW, {"ssn": "last4"}) == (stale.outcome, dict(stale.masks))
        fresh = attrs.evolve(AGENT, mfa_at=NOW)
        decision = engine.evaluate(fresh, "read", CUSTOMER, now=NOW)
        assert ({}, frozenset({"ssn"})) == (dict(decision.masks), decision.unmasked)

    def test_only_visible_fields_are_masked(self) -> None:
        engine = engine_for(
            rule("masked", masks={"email": "email", "ssn": "last4"}),
            deny("no-ssn", fields=["ssn"]),
        )
        assert {"email": "email"} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)
        decision = engine.evaluate(AGENT, "read", CUSTOMER, fields=["name"])
        assert {} == dict(decision.masks)

    def test_masks_of_a_rule_not_matching_do_not_apply(self) -> None:
        engine = engine_for(
            rule("plain"),
            rule("masked-for-marketing", masks={"email": "email"}, purposes=["marketing"]),
        )
        assert {} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)
        marketing = engine.evaluate(AGENT, "read", CUSTOMER, purpose="marketing")
        assert {"email": "email"} == dict(marketing.masks)
        engine = engine_for(
            rule("masked", masks={"email": "email"}),
            rule("plain-for-support", purposes=["support"]),
        )
        assert {"email": "email"} == dict(engine.evaluate(AGENT, "read", CUSTOMER).masks)
        support = engine.evaluate(AGENT, "read", CUSTOMER, purpose="support")
        assert {"email": "email"} == dict(support.masks)

    def test_the_fast_paths_agree(self) -> None:
        """evaluate and evaluate_many, cached or not, give the strictest mask."""
        engine = engine_for(
            rule("a-general", fields=["ssn"], masks={"ssn": "last4"}),
            rule("b-vip", fields=["ssn"], masks={"ssn": "redact"}, when="resource.vip"),
            rule("c-plain", fields=["ssn"], when="context.level >= 1"),
        )
        row = Resource("customer", id=1, attributes={"vip": True})
        requests = [AccessRequest(AGENT, "read", row, context={"level": 2})] * 3
        decisions = [*engine.evaluate_many(requests), engine.evaluate(AGENT, "read", row)]
        assert [{"ssn": "redact"}] * 4 == [dict(d.masks) for d in decisions]


class TestApply:
    """apply() copies a record with hidden fields removed and masks applied."""

    def test_hidden_removed_and_masked(self) -> None:
        engine = engine_for(rule("all", masks={"email": "email"}), deny("no-ssn", fields=["ssn"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        expected = {"name": "Ada Lovelace", "email": "a***@example.com"}
        assert expected == apply(decision, RECORD)
        assert expected == engine.apply(decision, RECORD)

    def test_only_listed_fields(self) -> None:
        engine = engine_for(rule("names", fields=["name", "nickname"]))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert {"name": "Ada Lovelace"} == apply(decision, RECORD)

    def test_requested_fields(self) -> None:
        decision = engine_for(rule("all")).evaluate(AGENT, "read", CUSTOMER, fields=["email"])
        assert {"email": "ada@example.com"} == apply(decision, RECORD)

    def test_copies(self) -> None:
        record = dict(RECORD)
        engine = engine_for(rule("all", masks={"email": "email"}), deny("x", fields=["ssn"]))
        shown = apply(engine.evaluate(AGENT, "read", CUSTOMER), record)
        assert RECORD == record
        shown["name"] = "changed"
        assert "Ada Lovelace" == record["name"]
        unchanged = apply(engine_for(rule("all")).evaluate(AGENT, "read", CUSTOMER), record)
        assert record == unchanged
        assert record is not unchanged

    @pytest.mark.parametrize(
        "engine",
        [
            engine_for(),
            engine_for(rule("mfa", mfa_max_age="5m")),
        ],
    )
    def test_not_allowed(self, engine: PolicyEngine) -> None:
        decision = engine.evaluate(AGENT, "read", CUSTOMER, now=NOW)
        with pytest.raises(AccessDenied, match="cannot show a record") as info:
            apply(decision, RECORD)
        assert decision is info.value.decision
        with pytest.raises(AccessDenied):
            engine.apply(decision, RECORD)

    def test_a_hand_made_decision(self) -> None:
        decision = Decision(
            Outcome.ALLOW, "test", fields=frozenset({"ssn", "name"}), masks={"ssn": "last4"}
        )
        assert {"name": "Ada Lovelace", "ssn": "*******1120"} == apply(decision, RECORD)


class TestCustomMasks:
    """Hosts add masks by name; a name nobody knows is refused early."""

    def test_engine_masks(self) -> None:
        engine = engine_for(
            rule("all", masks={"name": "upper"}), masks={"upper": lambda v: str(v).upper()}
        )
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert "ADA LOVELACE" == engine.apply(decision, RECORD)["name"]
        with pytest.raises(PolicyError, match="unknown mask 'upper' for field 'name'"):
            apply(decision, RECORD)
        assert {"name": "ADA LOVELACE"} == apply(
            decision, {"name": "Ada Lovelace"}, masks={"upper": str.upper}
        )

    def test_engine_masks_may_replace_built_ins(self) -> None:
        engine = engine_for(rule("all", masks={"email": "email"}), masks={"email": lambda v: "x"})
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert "x" == engine.apply(decision, RECORD)["email"]

    def test_unknown_mask(self) -> None:
        document = {
            "version": 1,
            "rules": [rule("r1", fields=["name", "ssn"], masks={"ssn": "sha256"})],
        }
        policy = Policy.from_dict(document, source="policy.toml")
        with pytest.raises(PolicyError) as info:
            PolicyEngine(policy)
        error = info.value
        assert ("policy.toml", "r1", "masks") == (error.source, error.rule, error.field)
        assert "unknown mask 'sha256' for field 'ssn'" in str(error)
        assert "redact" in str(error)
        assert isinstance(PolicyEngine(policy, masks={"sha256": str}), PolicyEngine)


class TestTenants:
    """A resource of another tenant is denied; rules may name the tenants they cover."""

    @pytest.mark.parametrize(
        ("subject_tenant", "resource_tenant", "allowed"),
        [
            ("acme", "acme", True),
            ("acme", "globex", False),
            (None, "acme", False),
            ("acme", None, True),
            (None, None, True),
        ],
    )
    def test_tenant_must_match(
        self, subject_tenant: str | None, resource_tenant: str | None, allowed: bool
    ) -> None:
        engine = engine_for(rule("all"))
        subject = Subject("u", roles=["agent"], tenant=subject_tenant)
        decision = engine.evaluate(subject, "read", Resource("customer", tenant=resource_tenant))
        assert allowed is decision.allowed
        if not allowed:
            assert "another tenant" in decision.reason

    @pytest.mark.parametrize(
        ("subject_tenant", "resource_tenant", "allowed"),
        [
            ("acme", "acme", True),
            ("acme", None, True),
            ("initech", "initech", True),
            ("globex", "globex", False),
            ("globex", None, False),
            (None, None, False),
        ],
    )
    def test_rule_tenants(
        self, subject_tenant: str | None, resource_tenant: str | None, allowed: bool
    ) -> None:
        engine = engine_for(rule("some-tenants", tenants=["acme", "initech"]))
        subject = Subject("u", roles=["agent"], tenant=subject_tenant)
        decision = engine.evaluate(subject, "read", Resource("customer", tenant=resource_tenant))
        assert allowed is decision.allowed

    def test_tenant_deny(self) -> None:
        engine = engine_for(rule("all"), deny("not-globex", tenants=["globex"]))
        globex = Subject("u", roles=["agent"], tenant="globex")
        acme = Subject("u", roles=["agent"], tenant="acme")
        assert not engine.evaluate(globex, "read", CUSTOMER).allowed
        assert engine.evaluate(acme, "read", CUSTOMER).allowed

    def test_tenant_in_conditions(self) -> None:
        engine = engine_for(rule("own", when="resource.tenant == subject.tenant"))
        subject = Subject("u", roles=["agent"], tenant="acme")
        assert engine.evaluate(subject, "read", Resource("customer", tenant="acme")).allowed


class TestPurposes:
    """A rule with purposes applies only to requests stating one of them."""

    @pytest.mark.parametrize(
        ("purpose", "allowed"),
        [("support", True), ("billing", True), ("marketing", False), (None, False)],
    )
    def test_allow(self, purpose: str | None, allowed: bool) -> None:
        engine = engine_for(rule("care", purposes=["support", "billing"]))
        assert allowed is engine.evaluate(AGENT, "read", CUSTOMER, purpose=purpose).allowed

    @pytest.mark.parametrize(
        ("purpose", "allowed"), [("marketing", False), ("support", True), (None, True)]
    )
    def test_deny(self, purpose: str | None, allowed: bool) -> None:
        engine = engine_for(rule("all"), deny("no-marketing", purposes=["marketing"]))
        assert allowed is engine.evaluate(AGENT, "read", CUSTOMER, purpose=purpose).allowed


class TestConditions:
    """Conditions see subject, resource and context; one that cannot be evaluated fails
    closed, and the decision says so without the values involved."""

    def test_condition(self) -> None:
        engine = engine_for(rule("same-region", when="resource.region == subject.region"))
        eu = Subject("u", roles=["agent"], attributes={"region": "eu"})
        assert engine.evaluate(
            eu, "read", Resource("customer", attributes={"region": "eu"})
        ).allowed
        us = Resource("customer", attributes={"region": "us"})
        assert Outcome.DENY == engine.evaluate(eu, "read", us).outcome

    def test_several_conditions(self) -> None:
        engine = engine_for(
            rule("phone", fields=["name"], when="context.channel == 'phone'"),
            rule("office", fields=["email"], when="context.network == 'office'"),
        )
        both = {"channel": "phone", "network": "office"}
        decision = engine.evaluate(AGENT, "read", CUSTOMER, context=both)
        assert frozenset({"name", "email"}) == decision.fields
        decision = engine.evaluate(AGENT, "read", CUSTOMER, context={"channel": "phone"})
        assert frozenset({"name"}) == decision.fields
        assert (("office", "context has no key 'network'"),) == decision.errors

    def test_context(self) -> None:
        engine = engine_for(rule("office", when="context.network == 'office'"))
        office = engine.evaluate(AGENT, "read", CUSTOMER, context={"network": "office"})
        home = engine.evaluate(AGENT, "read", CUSTOMER, context={"network": "home"})
        assert (True, False) == (office.allowed, home.allowed)

    def test_effective_roles_in_conditions(self) -> None:
        engine = engine_for(
            rule("seniors", roles=["*"], when="'senior' in subject.roles"),
            roles={"senior": {}, "lead": {"inherits": ["senior"]}},
        )
        assert engine.evaluate(Subject("u", roles=["lead"]), "read", CUSTOMER).allowed
        assert not engine.evaluate(Subject("u", roles=["other"]), "read", CUSTOMER).allowed

    def test_erroring_allow_does_not_allow(self) -> None:
        engine = engine_for(rule("vip", when="resource.tier > 2"))
        resource = Resource("customer", attributes={"tier": "platinum-secret"})
        decision = engine.evaluate(AGENT, "read", resource)
        assert Outcome.DENY == decision.outcome
        assert (("vip", "cannot compare string > number"),) == decision.errors
        assert decision.reason.endswith("(1 rule(s) failed closed)")
        assert "platinum-secret" not in repr(decision)

    def test_missing_attribute_fails_closed(self) -> None:
        engine = engine_for(rule("vip", when="resource.tier > 2"))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert Outcome.DENY == decision.outcome
        assert (("vip", "resource has no attribute 'tier'"),) == decision.errors

    def test_erroring_deny_denies(self) -> None:
        engine = engine_for(rule("all"), deny("blocked", when="resource.blocked"))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert (Outcome.DENY, ("blocked",)) == (decision.outcome, decision.rule_ids)
        assert (("blocked", "resource has no attribute 'blocked'"),) == decision.errors
        ok = engine.evaluate(AGENT, "read", Resource("customer", attributes={"blocked": False}))
        assert (Outcome.ALLOW, ()) == (ok.outcome, ok.errors)

    def test_erroring_field_deny_hides(self) -> None:
        engine = engine_for(rule("all"), deny("ssn", fields=["ssn"], when="context.x == 1"))
        decision = engine.evaluate(AGENT, "read", CUSTOMER)
        assert Outcome.ALLOW == decision.outcome
        assert frozenset({"ssn"}) == decision.hidden
        assert ("ssn",) == tuple(rule_id for rule_id, _ in decision.errors)

    def test_errors_kept_when_another_rule_allows(self) -> None:
        engine = engine_for(rule("plain"), rule("broken", when="resource.secret > 1"))
        resource = Resource("customer", attributes={"secret": "hunter2"})
        decision = engine.evaluate(AGENT, "read", resource)
        assert (Outcome.ALLOW, ("plain",)) == (decision.outcome, decision.rule_ids)
        assert ("broken",) == tuple(rule_id for rule_id, _ in decision.errors)
        assert "hunter2" not in repr(decision)

    def test_non_boolean_condition_fails_closed(self) -> None:
        engine = engine_for(rule("odd", when="resource.region"))
        decision = engine.evaluate(AGENT, "read", Resource("customer", attributes={"region": "x"}))
        assert Outcome.DENY == decision.outcome
        assert (("odd", "the condition is string, not a boolean"),) == decision.errors

    def test_naive_datetime_comparison_fails_closed(self) -> None:
        engine = engine_for(rule("recent", when="resource.seen > context.since"))
        resource = Resource("customer", attributes={"seen": datetime(2024, 1, 1)})
        decision = engine.evaluate(AGENT, "read", resource, context={"since": NOW})
        assert Outcome.DENY == decision.outcome
        assert ("recent",) == tuple(rule_id for rule_id, _ in decision.errors)


class TestStepUp:
    """mfa_max_age: allowed with a fresh MFA, otherwise step-up (or deny if it would not help)."""

    @pytest.fixture
    def engine(self) -> PolicyEngine:
        return engine_for(rule("export", actions=["export"], mfa_max_age="15m"))

    def subject(self, mfa_at: datetime | None) -> Subject:
        return Subject("u", roles=["agent"], mfa_at=mfa_at)

    def test_no_mfa(self, engine: PolicyEngine) -> None:
        decision = engine.evaluate(self.subject(None), "export", CUSTOMER, now=NOW)
        assert Outcome.STEP_UP == decision.outcome
        assert timedelta(minutes=15) == decision.step_up_max_age
        assert ("export",) == decision.rule_ids
        assert "step-up required: MFA within 15m (rule 'export')" == decision.reason
        assert not decision.allowed
        assert not decision.visible("name")

    @pytest.mark.parametrize(
        ("age", "outcome"),
        [
            (timedelta(minutes=5), Outcome.ALLOW),
            (timedelta(minutes=15), Outcome.ALLOW),
            (timedelta(minutes=15, seconds=1), Outcome.STEP_UP),
            (timedelta(days=1), Outcome.STEP_UP),
            (timedelta(seconds=-30), Outcome.ALLOW),
            (timedelta(minutes=-1), Outcome.ALLOW),
            (timedelta(minutes=-2), Outcome.STEP_UP),
        ],
    )
    def test_freshness(self, engine: PolicyEngine, age: timedelta, outcome: Outcome) -> None:
        decision = engine.evaluate(self.subject(NOW - age), "export", CUSTOMER, now=NOW)
        assert outcome == decision.outcome

    def test_other_time_zones(self, engine: PolicyEngine) -> None:
        mfa_at = (NOW - timedelta(minutes=5)).astimezone(ZoneInfo("Asia/Kolkata"))
        assert engine.evaluate(self.subject(mfa_at), "export", CUSTOMER, now=NOW).allowed

    def test_clock_used_without_now(self) -> None:
        then = datetime(2001, 1, 1, tzinfo=UTC)
        engine = engine_for(
            rule("export", actions=["export"], mfa_max_age="15m"), clock=lambda: then
        )
        fresh_then = self.subject(then - timedelta(minutes=1))
        assert engine.evaluate(fresh_then, "export", CUSTOMER).allowed
        assert not engine.evaluate(fresh_then, "export", CUSTOMER, now=NOW).allowed

    def test_default_clock_is_now(self, engine: PolicyEngine) -> None:
        just_now = self.subject(datetime.now(UTC) - timedelta(seconds=5))
        assert engine.evaluate(just_now, "export", CUSTOMER).allowed
        long_ago = self.subject(datetime.now(UTC) - timedelta(hours=1))
        assert Outcome.STEP_UP == engine.evaluate(long_ago, "export", CUSTOMER).outcome

    def test_shortest_max_age_asked(self) -> None:
        engine = engine_for(
            rule("a", mfa_max_age="1h"), rule("b", mfa_max_age="90s"), rule("c", mfa_max_age=600)
        )
        decision = engine.evaluate(self.subject(None), "read", CUSTOMER, now=NOW)
        assert timedelta(seconds=90) == decision.step_up_max_age
        assert ("a", "b", "c") == decision.rule_ids
        assert "step-up required: MFA within 90s (rule 'a')" == decision.reason

    def test_step_up_for_fields_only_it_grants(self) -> None:
        engine = engine_for(rule("names", fields=["name"]), rule("all", mfa_max_age="5m"))
        stale = self.subject(NOW - timedelta(hours=1))
        plain = engine.evaluate(stale, "read", CUSTOMER, now=NOW)
        assert (Outcome.ALLOW, frozenset({"name"})) == (plain.outcome, plain.fields)
        ssn = engine.evaluate(stale, "read", CUSTOMER, fields=["name", "ssn"], now=NOW)
        assert Outcome.STEP_UP == ssn.outcome
        fresh = self.subject(NOW)
        everything = engine.evaluate(fresh, "read", CUSTOMER, fields=["name", "ssn"], now=NOW)
        assert (Outcome.ALLOW, ("all", "names")) == (everything.outcome, everything.rule_ids)

    def test_no_step_up_when_it_would_not_help(self) -> None:
        engine = engine_for(rule("names", fields=["name"], mfa_max_age="5m"))
        decision = engine.evaluate(self.subject(None), "read", CUSTOMER, fields=["ssn"], now=NOW)
        assert Outcome.DENY == decision.outcome
        engine = engine_for(rule("all", mfa_max_age="5m"), deny("no-ssn", fields=["ssn"]))
        decision = engine.evaluate(self.subject(None), "read", CUSTOMER, fields=["ssn"], now=NOW)
        assert Outcome.DENY == decision.outcome

    def test_deny_beats_step_up(self) -> None:
        engine = engine_for(rule("mfa", mfa_max_age="5m"), deny("no"))
        decision = engine.evaluate(self.subject(None), "read", CUSTOMER, now=NOW)
        assert (Outcome.DENY, ("no",)) == (decision.outcome, decision.rule_ids)

    def test_condition_checked_before_mfa(self) -> None:
        engine = engine_for(rule("mfa", mfa_max_age="5m", when="context.ok"))
        decision = engine.evaluate(
            self.subject(None), "read", CUSTOMER, context={"ok": False}, now=NOW
        )
        assert Outcome.DENY == decision.outcome


class TestSeparationOfDuties:
    """A subject holding two roles of an exclusive group is denied everything."""

    ROLES: ClassVar[dict[str, Any]] = {
        "approver": {},
        "requester": {},
        "agent": {},
        "finance-lead": {"inherits": ["approver"]},
        "clerk": {"inherits": ["requester"]},
    }

    @pytest.fixture
    def engine(self) -> PolicyEngine:
        return engine_for(
            rule("anyone", roles=["*"]),
            roles=self.ROLES,
            exclusive=[["approver", "requester"]],
        )

    @pytest.mark.parametrize(
        "roles", [["approver"], ["requester"], ["finance-lead", "agent"], ["clerk"]]
    )
    def test_one_side(self, engine: PolicyEngine, roles: list[str]) -> None:
        assert engine.evaluate(Subject("u", roles=roles), "read", CUSTOMER).allowed

    @pytest.mark.parametrize(
        "roles",
        [["approver", "requester"], ["finance-lead", "clerk"], ["approver", "clerk", "agent"]],
    )
    def test_both_sides(self, engine: PolicyEngine, roles: list[str]) -> None:
        decision = engine.evaluate(Subject("u", roles=roles), "read", CUSTOMER)
        assert Outcome.DENY == decision.outcome
        assert (
            "denied: separation of duties, the subject holds both 'approver' and 'requester'"
            == decision.reason
        )
        with pytest.raises(AccessDenied, match="separation of duties"):
            engine.require(Subject("u", roles=roles), "read", CUSTOMER)

    def test_subject_rules_do_not_bypass(self) -> None:
        engine = engine_for(
            rule("u-only", subjects=["u"], roles=["nobody"]),
            roles={**self.ROLES, "nobody": {}},
            exclusive=[["approver", "requester"]],
        )
        assert engine.evaluate(Subject("u"), "read", CUSTOMER).allowed
        both = Subject("u", roles=["approver", "requester"])
        assert not engine.evaluate(both, "read", CUSTOMER).allowed


class TestRoles:
    """Rules for a role apply to every role inheriting it."""

    def test_inherited(self) -> None:
        engine = engine_for(
            rule("agents"),
            roles={
                "agent": {},
                "senior": {"inherits": ["agent"]},
                "lead": {"inherits": ["senior"]},
            },
        )
        for role in ("agent", "senior", "lead"):
            assert engine.evaluate(Subject("u", roles=[role]), "read", CUSTOMER).allowed

    def test_not_upwards(self) -> None:
        engine = engine_for(
            rule("seniors", roles=["senior"]),
            roles={"agent": {}, "senior": {"inherits": ["agent"]}},
        )
        assert not engine.evaluate(AGENT, "read", CUSTOMER).allowed

    def test_deny_on_an_inherited_role(self) -> None:
        engine = engine_for(
            rule("leads", roles=["lead"]),
            deny("no-agents"),
            roles={"agent": {}, "lead": {"inherits": ["agent"]}},
        )
        assert not engine.evaluate(Subject("u", roles=["lead"]), "read", CUSTOMER).allowed


class TestSubjectRules:
    """Rules naming subject ids apply to those subjects, alongside their roles' rules."""

    def subject_rule(self, rule_id: str, effect: str = "allow", **keys: Any) -> dict[str, Any]:
        made = rule(rule_id, effect, subjects=["user-9"], **keys)
        del made["roles"]
        return made

    def test_by_id(self) -> None:
        engine = engine_for(self.subject_rule("nine"))
        assert engine.evaluate(Subject("user-9"), "read", CUSTOMER).allowed
        assert not engine.evaluate(Subject("user-8"), "read", CUSTOMER).allowed
        assert not engine.evaluate(AGENT, "read", CUSTOMER).allowed

    def test_with_role_rules(self) -> None:
        engine = engine_for(
            rule("agents", fields=["name"]),
            self.subject_rule("nine", fields=["email"]),
            deny("no-ssn", fields=["ssn"]),
        )
        nine = Subject("user-9", roles=["agent"])
        decision = engine.evaluate(nine, "read", CUSTOMER)
        assert frozenset({"name", "email"}) == decision.fields
        assert ("agents", "nine") == decision.rule_ids
        assert frozenset({"name"}) == engine.evaluate(AGENT, "read", CUSTOMER).fields
        assert frozenset({"email"}) == engine.evaluate(Subject("user-9"), "read", CUSTOMER).fields

    def test_subject_deny_overrides_role_allow(self) -> None:
        engine = engine_for(rule("agents"), self.subject_rule("not-nine", "deny"))
        assert not engine.evaluate(Subject("user-9", roles=["agent"]), "read", CUSTOMER).allowed
        assert engine.evaluate(Subject("user-8", roles=["agent"]), "read", CUSTOMER).allowed

    def test_subject_rule_for_other_actions(self) -> None:
        engine = engine_for(rule("agents"), self.subject_rule("nine-export", actions=["export"]))
        nine = Subject("user-9", roles=["agent"])
        assert engine.evaluate(nine, "read", CUSTOMER).allowed
        assert engine.evaluate(nine, "export", CUSTOMER).allowed
        assert not engine.evaluate(AGENT, "export", CUSTOMER).allowed


class TestDecision:
    """Decision is a value that refuses to be a bool."""

    def test_not_a_bool(self) -> None:
        decision = engine_for(rule("all")).evaluate(AGENT, "read", CUSTOMER)
        with pytest.raises(TypeError, match=r"test decision\.allowed"):
            bool(decision)
        with pytest.raises(TypeError):
            _ = decision or None

    def test_equal_decisions(self) -> None:
        engine = engine_for(rule("all"))
        assert engine.evaluate(AGENT, "read", CUSTOMER) == Decision(
            Outcome.ALLOW, "allowed by rule 'all'", rule_ids=("all",)
        )

    def test_visible_needs_allow(self) -> None:
        assert not Decision(Outcome.DENY, "no").visible("name")
        assert Decision(Outcome.ALLOW, "yes").visible("name")
        assert not Decision(Outcome.ALLOW, "yes", fields=frozenset({"a"})).visible("name")
        assert not Decision(Outcome.ALLOW, "yes", hidden=frozenset({"name"})).visible("name")


class TestRequire:
    """require() returns the allowing decision or raises what the caller can act on."""

    def test_allowed(self) -> None:
        engine = engine_for(rule("all"))
        assert engine.evaluate(AGENT, "read", CUSTOMER) == engine.require(AGENT, "read", CUSTOMER)

    def test_denied(self) -> None:
        engine = engine_for(rule("all", fields=["name"]))
        with pytest.raises(AccessDenied) as info:
            engine.require(AGENT, "read", CUSTOMER, fields=["ssn"])
        assert isinstance(info.value, AuthorizationError)
        assert isinstance(info.value, PermissionError)
        decision = info.value.decision
        assert isinstance(decision, Decision)
        assert Outcome.DENY == decision.outcome
        assert "'user-1' may not 'read' 'customer': denied: fields not allowed: ssn" == str(
            info.value
        )

    def test_step_up(self) -> None:
        engine = engine_for(rule("mfa", mfa_max_age="10m"))
        with pytest.raises(StepUpRequired) as info:
            engine.require(AGENT, "read", CUSTOMER, now=NOW)
        assert timedelta(minutes=10) == info.value.max_age
        assert isinstance(info.value.decision, Decision)
        assert Outcome.STEP_UP == info.value.decision.outcome
        assert "without a fresh MFA" in str(info.value)
        fresh = Subject("user-1", roles=["agent"], mfa_at=NOW)
        assert engine.require(fresh, "read", CUSTOMER, now=NOW).allowed

    def test_passes_every_argument(self) -> None:
        engine = engine_for(rule("all", purposes=["support"], when="context.ok"))
        decision = engine.require(
            AGENT, "read", CUSTOMER, fields=["name"], purpose="support", context={"ok": True}
        )
        assert frozenset({"name"}) == decision.fields
        with pytest.raises(AccessDenied):
            engine.require(AGENT, "read", CUSTOMER, purpose="support", context={"ok": False})


NORMAL = Resource("customer", id=1, attributes={"vip": False})
VIP = Resource("customer", id=2, attributes={"vip": True})


def customer_of(customer_id: int, **_: object) -> Resource:
    return Resource("customer", id=customer_id, attributes={"vip": customer_id > 100})


class TestGuard:
    """guard() runs a sync function only when its request is allowed."""

    @pytest.fixture
    def engine(self) -> PolicyEngine:
        return engine_for(rule("normal", when="not resource.vip"), deny("no-ssn", fields=["ssn"]))

    def test_resource_object(self, engine: PolicyEngine) -> None:
        calls: list[str] = []

        @engine.guard("read", VIP)
        def show_vip(subject: Subject) -> str:
            calls.append(subject.id)
            return "shown"

        @engine.guard("read", NORMAL)
        def show(subject: Subject) -> str:
            calls.append(subject.id)
            return "shown"

        with pytest.raises(AccessDenied) as info:
            show_vip(AGENT)
        assert isinstance(info.value.decision, Decision)
        assert [] == calls
        assert "shown" == show(AGENT)
        assert "shown" == show(subject=AGENT)
        assert ["user-1", "user-1"] == calls

    def test_context(self) -> None:
        """A context mapping or a callable over the call's arguments reaches conditions."""
        engine = engine_for(rule("business-hours", when="context.hour < 18"))

        @engine.guard("read", CUSTOMER, context=lambda hour, **_: {"hour": hour})
        def show(subject: Subject, hour: int) -> str:
            return "shown"

        @engine.guard("read", CUSTOMER, context={"hour": 20})
        def late(subject: Subject) -> str:
            return "shown"

        @engine.guard("read", CUSTOMER)
        def no_context(subject: Subject) -> str:
            return "shown"

        assert "shown" == show(AGENT, 9)
        with pytest.raises(AccessDenied):
            show(AGENT, 19)
        with pytest.raises(AccessDenied):
            late(AGENT)
        with pytest.raises(AccessDenied) as info:
            no_context(AGENT)  # the condition cannot be evaluated: fails closed
        assert (("business-hours", "context has no key 'hour'"),) == info.value.decision.errors

    def test_resource_parameter(self, engine: PolicyEngine) -> None:
        @engine.guard("read", "row")
        def show(subject: Subject, row: Resource) -> object:
            return row.id

        assert 7 == show(AGENT, Resource("customer", id=7, attributes={"vip": False}))
        with pytest.raises(AccessDenied):
            show(AGENT, row=Resource("customer", id=8, attributes={"vip": True}))

    def test_resource_callable(self, engine: PolicyEngine) -> None:
        @engine.guard("read", resource=customer_of)
        def show(subject: Subject, customer_id: int, verbose: bool = False) -> int:
            return customer_id

        assert 5 == show(AGENT, 5)
        assert 6 == show(subject=AGENT, customer_id=6, verbose=True)
        with pytest.raises(AccessDenied):
            show(AGENT, 500)

    def test_defaults_are_applied(self, engine: PolicyEngine) -> None:
        @engine.guard("read", resource=customer_of)
        def show(subject: Subject, customer_id: int = 500) -> int:
            return customer_id

        with pytest.raises(AccessDenied):
            show(AGENT)
        assert 1 == show(AGENT, 1)

    def test_subject_parameter_and_callable(self, engine: PolicyEngine) -> None:
        @engine.guard("read", NORMAL, subject="user")
        def by_name(user: Subject) -> str:
            return user.id

        def from_session(session: dict[str, Subject]) -> Subject:
            return session["user"]

        @engine.guard("read", NORMAL, subject=from_session)
        def by_callable(session: dict[str, Subject]) -> str:
            return session["user"].id

        assert "user-1" == by_name(AGENT)
        assert "user-1" == by_callable({"user": AGENT})
        with pytest.raises(AccessDenied):
            by_callable({"user": Subject("x", roles=["clerk"])})

    def test_fields_and_purpose(self) -> None:
        engine = engine_for(rule("care", purposes=["support"], fields=["name"]))

        @engine.guard("read", NORMAL, fields=["name"], purpose="support")
        def names(subject: Subject) -> str:
            return "ok"

        @engine.guard("read", NORMAL, fields=["name", "ssn"], purpose="support")
        def with_ssn(subject: Subject) -> str:
            return "ok"

        @engine.guard("read", NORMAL, fields=["name"])
        def no_purpose(subject: Subject) -> str:
            return "ok"

        assert "ok" == names(AGENT)
        with pytest.raises(AccessDenied, match="fields not allowed: ssn"):
            with_ssn(AGENT)
        with pytest.raises(AccessDenied):
            no_purpose(AGENT)

    def test_step_up(self) -> None:
        engine = engine_for(rule("mfa", mfa_max_age="5m"))

        @engine.guard("read", NORMAL)
        def show(subject: Subject) -> str:
            return "ok"

        with pytest.raises(StepUpRequired):
            show(AGENT)
        assert "ok" == show(Subject("u", roles=["agent"], mfa_at=datetime.now(UTC)))

    @pytest.mark.parametrize(
        ("guard", "fragment"),
        [
            ({"resource": "row"}, "no parameter named 'row' for the resource"),
            ({"resource": CUSTOMER, "subject": "user"}, "no parameter named 'user' for the sub"),
        ],
    )
    def test_missing_parameter(
        self, engine: PolicyEngine, guard: dict[str, Any], fragment: str
    ) -> None:
        @engine.guard("read", **guard)
        def show(subject: Subject) -> str:
            return "ok"

        with pytest.raises(TypeError, match=fragment) as info:
            show(AGENT)
        assert "show" in str(info.value)

    def test_wraps(self, engine: PolicyEngine) -> None:
        @engine.guard("read", NORMAL)
        def show(subject: Subject) -> str:
            """Show a customer."""
            return "ok"

        assert ("show", "Show a customer.") == (show.__name__, show.__doc__)

    def test_wrong_arguments(self, engine: PolicyEngine) -> None:
        @engine.guard("read", NORMAL)
        def show(subject: Subject) -> str:
            return "ok"

        with pytest.raises(TypeError):
            show(AGENT, 1)  # type: ignore[call-arg]


class TestAsyncGuard:
    """guard() on coroutine functions checks before awaiting."""

    @pytest.fixture
    def engine(self) -> PolicyEngine:
        return engine_for(rule("normal", when="not resource.vip"))

    @pytest.mark.anyio
    async def test_allowed_and_denied(self, engine: PolicyEngine) -> None:
        calls: list[int] = []

        @engine.guard("read", resource=customer_of)
        async def show(subject: Subject, customer_id: int) -> int:
            calls.append(customer_id)
            return customer_id

        assert 5 == await show(AGENT, 5)
        with pytest.raises(AccessDenied):
            await show(AGENT, 500)
        assert [5] == calls

    @pytest.mark.anyio
    async def test_resource_parameter_and_object(self, engine: PolicyEngine) -> None:
        @engine.guard("read", "row")
        async def by_parameter(subject: Subject, row: Resource) -> object:
            return row.id

        @engine.guard("read", Resource("customer", id=3, attributes={"vip": True}))
        async def by_object(subject: Subject) -> str:
            return "ok"

        assert 1 == await by_parameter(AGENT, Resource("customer", id=1, attributes={"vip": False}))
        with pytest.raises(AccessDenied):
            await by_object(AGENT)

    @pytest.mark.anyio
    async def test_step_up(self) -> None:
        engine = engine_for(rule("mfa", mfa_max_age="5m"))

        @engine.guard("read", NORMAL)
        async def show(subject: Subject) -> str:
            return "ok"

        with pytest.raises(StepUpRequired):
            await show(AGENT)

    @pytest.mark.anyio
    async def test_missing_parameter(self, engine: PolicyEngine) -> None:
        @engine.guard("read", "row")
        async def show(subject: Subject) -> str:
            return "ok"

        with pytest.raises(TypeError, match="no parameter named 'row'"):
            await show(AGENT)

    def test_stays_a_coroutine_function(self, engine: PolicyEngine) -> None:
        @engine.guard("read", NORMAL)
        async def show(subject: Subject) -> str:
            return "ok"

        assert inspect.iscoroutinefunction(show)


def _requests() -> list[AccessRequest]:
    subjects = [
        AGENT,
        Subject("user-9", roles=["agent"], tenant="acme", mfa_at=NOW - timedelta(minutes=1)),
        Subject("user-2", roles=["lead"], attributes={"region": "eu"}, tenant="acme"),
        Subject("user-3", roles=["approver", "requester"]),
        Subject("user-4"),
    ]
    resources = [
        CUSTOMER,
        Resource("customer", id=1, attributes={"region": "eu"}, tenant="acme"),
        Resource("customer", id=2, tenant="globex"),
        Resource("invoice", id=3),
    ]
    out = []
    for subject, resource, action, fields, purpose in itertools.product(
        subjects,
        resources,
        ["read", "export"],
        [None, ("name",), ("name", "ssn"), ("email",)],
        [None, "support"],
    ):
        out.append(
            AccessRequest(
                subject,
                action,
                resource,
                fields=fields,
                purpose=purpose,
                context={"ok": True},
                now=NOW,
            )
        )
    return out


RICH_RULES = [
    rule("agents", fields=["name", "email"], masks={"email": "email"}),
    rule("leads", roles=["lead"], when="resource.region == subject.region"),
    rule("support", roles=["*"], resources=["invoice"], purposes=["support"]),
    rule("export", actions=["export"], mfa_max_age="5m"),
    rule("nine", subjects=["user-9"], roles=["nobody"], fields=["ssn"]),
    deny("no-ssn", roles=["lead"], fields=["ssn"]),
    deny("globex", roles=["*"], actions=["*"], resources=["*"], tenants=["globex"]),
]
RICH_ROLES: dict[str, Any] = {
    "agent": {},
    "lead": {"inherits": ["agent"]},
    "nobody": {},
    "approver": {},
    "requester": {},
}


class TestEvaluateMany:
    """evaluate_many answers exactly as evaluate does, request by request."""

    def test_same_answers(self) -> None:
        engine = engine_for(*RICH_RULES, roles=RICH_ROLES, exclusive=[["approver", "requester"]])
        requests = _requests()
        expected = [
            engine.evaluate(
                r.subject,
                r.action,
                r.resource,
                fields=r.fields,
                purpose=r.purpose,
                context=r.context,
                now=r.now,
            )
            for r in requests
        ]
        assert expected == engine.evaluate_many(requests)
        assert {Outcome.ALLOW, Outcome.DENY, Outcome.STEP_UP} == {d.outcome for d in expected}

    def test_empty(self) -> None:
        assert [] == engine_for(rule("all")).evaluate_many([])


class TestStaticCache:
    """Decisions served from the per-role cache equal those decided rule by rule."""

    SIMPLE: ClassVar[list[dict[str, Any]]] = [
        rule("agents", fields=["name", "email"], masks={"email": "email"}),
        rule("agents-all", roles=["lead"]),
        rule("anyone-invoices", roles=["*"], resources=["invoice"]),
        rule("admin-write", roles=["admin"], actions=["read", "write"], resources=["*"]),
        deny("no-ssn", roles=["lead"], fields=["ssn"]),
        deny("no-write-invoices", roles=["*"], actions=["write"], resources=["invoice"]),
    ]
    ROLES: ClassVar[dict[str, Any]] = {
        "agent": {},
        "lead": {"inherits": ["agent"]},
        "admin": {"inherits": ["lead"]},
        "clerk": {},
    }
    # Never matches, but makes every plan non-static: each request is decided afresh.
    INERT = rule("zz-inert", roles=["*"], actions=["*"], resources=["*"], when="false")

    def grid(self) -> list[tuple[Subject, str, Resource]]:
        subjects = [
            Subject(f"u{i}", roles=roles)
            for i, roles in enumerate(
                [[], ["agent"], ["lead"], ["admin"], ["clerk"], ["clerk", "agent"]]
            )
        ]
        actions = ["read", "write", "delete"]
        resources = [Resource("customer"), Resource("invoice"), Resource("order")]
        return list(itertools.product(subjects, actions, resources))

    @pytest.mark.parametrize("fields", [None, ("name",), ("name", "ssn"), ("name", "email")])
    def test_same_as_uncached(self, fields: tuple[str, ...] | None) -> None:
        cached = engine_for(*self.SIMPLE, roles=self.ROLES)
        uncached = engine_for(*self.SIMPLE, self.INERT, roles=self.ROLES)
        for subject, action, resource in self.grid():
            first = cached.evaluate(subject, action, resource, fields=fields)
            again = cached.evaluate(subject, action, resource, fields=fields)
            fresh = uncached.evaluate(subject, action, resource, fields=fields)
            assert first == again == fresh, (subject, action, resource)

    def test_fields_given_or_not(self) -> None:
        engine = engine_for(*self.SIMPLE, roles=self.ROLES)
        for subject, action, resource in self.grid():
            without = engine.evaluate(subject, action, resource)
            if without.allowed and without.fields is not None:
                named = engine.evaluate(subject, action, resource, fields=without.fields)
                assert (Outcome.ALLOW, without.fields, without.masks, without.rule_ids) == (
                    named.outcome,
                    named.fields,
                    named.masks,
                    named.rule_ids,
                )
            elif not without.allowed:
                named = engine.evaluate(subject, action, resource, fields=["name"])
                assert Outcome.DENY == named.outcome

    def test_cached_per_role_set(self) -> None:
        engine = engine_for(*self.SIMPLE, roles=self.ROLES)
        lead = Subject("a", roles=["lead"])
        agent = Subject("b", roles=["agent"])
        assert None is engine.evaluate(lead, "read", CUSTOMER).fields
        assert frozenset({"name", "email"}) == engine.evaluate(agent, "read", CUSTOMER).fields
        assert None is engine.evaluate(lead, "read", CUSTOMER).fields

    def test_cache_is_not_shared_with_subject_rules(self) -> None:
        engine = engine_for(
            rule("agents", fields=["name"]),
            rule("nine", subjects=["user-9"], roles=["nobody"], fields=["ssn"]),
            roles={"agent": {}, "nobody": {}},
        )
        assert frozenset({"name"}) == engine.evaluate(AGENT, "read", CUSTOMER).fields
        nine = Subject("user-9", roles=["agent"])
        assert frozenset({"name", "ssn"}) == engine.evaluate(nine, "read", CUSTOMER).fields
        assert frozenset({"name"}) == engine.evaluate(AGENT, "read", CUSTOMER).fields


class TestModel:
    """Subject, Resource and AccessRequest refuse values that would be misread."""

    def test_roles_as_one_string(self) -> None:
        with pytest.raises(TypeError, match="not one string"):
            Subject("u", roles="admin")

    def test_roles_become_a_frozenset(self) -> None:
        assert frozenset({"a", "b"}) == Subject("u", roles=["a", "b", "a"]).roles
        assert frozenset() == Subject("u").roles

    def test_naive_mfa_at(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            Subject("u", mfa_at=datetime(2024, 1, 1))

    def test_attributes_are_read_only_copies(self) -> None:
        attributes = {"region": "eu"}
        subject = Subject("u", attributes=attributes)
        attributes["region"] = "us"
        assert "eu" == subject.attributes["region"]
        with pytest.raises(TypeError):
            subject.attributes["region"] = "us"  # type: ignore[index]

    def test_access_request_fields(self) -> None:
        request = AccessRequest(AGENT, "read", CUSTOMER, fields=["name", "name"])
        assert frozenset({"name"}) == request.fields
        assert None is AccessRequest(AGENT, "read", CUSTOMER).fields
        with pytest.raises(TypeError, match="not one string"):
            AccessRequest(AGENT, "read", CUSTOMER, fields="name")

    def test_subject_is_frozen(self) -> None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            AGENT.roles = frozenset({"admin"})  # type: ignore[misc]


class TestFromFile:
    """A whole round: a TOML file, an engine, require and apply."""

    def test_round(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_text(
            """
version = 1
[roles.agent]
[[rules]]
id = "agents-read"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
fields = ["name", "email"]
masks = { email = "email" }
""",
            encoding="utf-8",
        )
        engine = PolicyEngine(Policy.from_file(path))
        decision = engine.require(AGENT, "read", CUSTOMER)
        shown = engine.apply(decision, RECORD)
        assert {"name": "Ada Lovelace", "email": "a***@example.com"} == shown


class TestFastPath:
    """Plans whose rules are limited only by conditions take a direct path; it gives the
    answers of the general one (checked against explain(), which evaluates independently)."""

    VALUES: ClassVar[list[Any]] = ["eu", "EU", 1, 1.0, True, None, ["eu"]]

    @pytest.fixture
    def engine(self) -> PolicyEngine:
        return engine_for(
            rule("same-region", when="resource.region == subject.region"),
            rule("literal", actions=["write"], when="resource.region != 'eu'"),
            deny("flagged", when="context.flag == true"),
            rule("ordered", actions=["export"], when="resource.level > 2"),
        )

    @pytest.mark.parametrize("action", ["read", "write", "export"])
    @pytest.mark.parametrize("context", [{}, {"flag": True}, {"flag": 1}, {"flag": False}])
    def test_grid(self, engine: PolicyEngine, action: str, context: dict[str, Any]) -> None:
        for mine in [*self.VALUES, "missing"]:
            for theirs in [*self.VALUES, "missing"]:
                subject = Subject(
                    "user-1",
                    roles=["agent"],
                    attributes={} if mine == "missing" else {"region": mine},
                )
                attributes = (
                    {"level": 3} if theirs == "missing" else {"region": theirs, "level": theirs}
                )
                resource = Resource("customer", id=1, attributes=attributes)
                for _ in range(2):  # the second time, from the plan's decision cache
                    decision = engine.evaluate(subject, action, resource, context=context)
                    steps = engine.explain(subject, action, resource, context=context).steps
                    denied = any(s.matched and s.effect == "deny" for s in steps)
                    allowed = any(s.matched and s.effect == "allow" for s in steps)
                    expected = Outcome.ALLOW if allowed and not denied else Outcome.DENY
                    assert expected == decision.outcome, (mine, theirs, action, context)
                    assert len(decision.errors) == sum("failed closed" in s.why for s in steps)


class TestCaches:
    """The engine's caches are bounded and never change an answer."""

    def test_evaluate_many_on_warm_plans(self) -> None:
        engine = engine_for(
            rule("same-region", when="resource.region == subject.region"),
            deny("flagged", when="context.flag == true"),
        )
        subjects = [
            Subject(f"u{i}", roles=["agent"], attributes={"region": r})
            for i, r in enumerate(["eu", "us"])
        ] + [Subject("u-none", roles=["agent"])]
        requests = [
            AccessRequest(
                s, "read", Resource("customer", id=n, attributes={"region": r}), context=c
            )
            for s in subjects
            for n, r in enumerate(["eu", "us"])
            for c in ({}, {"flag": True}, {"flag": False})
        ]
        expected = [
            engine.evaluate(r.subject, r.action, r.resource, context=r.context) for r in requests
        ]
        assert expected == engine.evaluate_many(requests)  # plans now warm: the inline path
        assert expected == engine.evaluate_many(requests)
        assert {Outcome.ALLOW, Outcome.DENY} == {d.outcome for d in expected}
        assert any(d.errors for d in expected)

    def test_many_role_sets(self) -> None:
        engine = engine_for(rule("agents"), roles={"agent": {}})
        first = engine.evaluate(AGENT, "read", CUSTOMER)
        for n in range(4200):  # more role sets than the cache keeps
            engine.evaluate(Subject("x", roles=["agent", f"extra-{n}"]), "read", CUSTOMER)
        assert first == engine.evaluate(AGENT, "read", CUSTOMER)
        assert (
            Outcome.DENY
            == engine.evaluate(Subject("x", roles=["nobody"]), "read", CUSTOMER).outcome
        )

    def test_many_decisions_per_plan(self) -> None:
        rules = [rule(f"r{i}", when=f"context.c{i} == true", fields=[f"f{i}"]) for i in range(9)]
        engine = engine_for(*rules)
        combos = list(itertools.product([True, False], repeat=9))  # 512 sets of matched rules
        for _ in range(2):
            for combo in combos:
                context = {f"c{i}": on for i, on in enumerate(combo)}
                decision = engine.evaluate(AGENT, "read", CUSTOMER, context=context)
                shown = {f"f{i}" for i, on in enumerate(combo) if on}
                assert (shown or None) == (decision.fields if decision.allowed else None)

    def test_naive_now_is_refused(self) -> None:
        engine = engine_for(rule("mfa", mfa_max_age="5m"))
        subject = Subject("u", roles=["agent"], mfa_at=NOW)
        with pytest.raises(TypeError, match="timezone-aware"):
            engine.evaluate(subject, "read", CUSTOMER, now=NOW.replace(tzinfo=None))
