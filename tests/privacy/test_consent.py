"""Consent and opt-out records per purpose, checked with the policy engine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from models import LEDGER_KEY, T0, actions, engine_for, memory_trail

from securecustomer.exceptions import AccessDenied, ConfigurationError, StepUpRequired
from securecustomer.policy import Outcome, Policy, PolicyEngine, Resource, Subject
from securecustomer.privacy import OPT_OUT_PURPOSES, ConsentLedger, ConsentRecord, consent_table

POLICY: dict[str, Any] = {
    "version": 1,
    "roles": {"marketer": {}, "broker": {}},
    "rules": [
        {
            "id": "marketing",
            "effect": "allow",
            "roles": ["marketer"],
            "actions": ["read"],
            "resources": ["customer"],
            "purposes": ["marketing"],
        },
        {
            "id": "sale",
            "effect": "allow",
            "roles": ["broker"],
            "actions": ["share"],
            "resources": ["customer"],
            "purposes": ["sale"],
            "mfa_max_age": "15m",
        },
    ],
}
MARKETER = Subject("user-1", roles=["marketer"])
BROKER = Subject("user-2", roles=["broker"], mfa_at=T0)
CUSTOMER = Resource("customer", id=42)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


@pytest.fixture
def ledger(engine: sa.Engine) -> ConsentLedger:
    ledger = ConsentLedger(engine, key=LEDGER_KEY, clock=lambda: T0)
    ledger.create()
    return ledger


@pytest.fixture
def policy() -> PolicyEngine:
    return PolicyEngine(Policy.from_dict(POLICY))


class TestLedger:
    """The latest record of a purpose decides; opt-out purposes start allowed."""

    def test_defaults(self, ledger: ConsentLedger) -> None:
        assert ("sale", "sharing") == OPT_OUT_PURPOSES
        assert ledger.permits(42, "sale")
        assert not ledger.permits(42, "marketing")
        assert frozenset({"sale", "sharing"}) == ledger.purposes(42, ["sale", "sharing", "ads"])

    def test_grant_withdraw_latest_wins(self, ledger: ConsentLedger) -> None:
        granted = ledger.grant(42, "marketing", source="signup form v3")
        assert ConsentRecord("42", "marketing", True, T0, "signup form v3") == granted
        assert ledger.permits("42", "marketing")
        ledger.withdraw(42, "marketing")
        assert not ledger.permits(42, "marketing")
        ledger.grant(42, "marketing")
        assert ledger.permits(42, "marketing")
        assert [True, False, True] == [r.granted for r in ledger.history(42)]

    def test_subject_ids_match_exactly(self, ledger: ConsentLedger) -> None:
        """A case-insensitive collation (MariaDB's default) never mixes two subjects."""
        ledger.grant("ALICE", "marketing")
        with pytest.raises(ConfigurationError, match="white space"):
            ledger.opt_out("alice ")  # refused, not stored under a second spelling
        ledger.grant("alice", "ads")
        assert ["ads"] == [r.purpose for r in ledger.history("alice")]
        assert not ledger.permits("alice", "marketing")
        assert ledger.permits("alice", "sale")
        assert 1 == ledger.forget("alice")
        assert ["marketing"] == [r.purpose for r in ledger.history("ALICE")]

    def test_purpose_names_ignore_case_and_spaces(self, ledger: ConsentLedger) -> None:
        ledger.grant(42, "marketing")
        withdrawn = ledger.withdraw(42, " Marketing ", source="email footer")
        assert "marketing" == withdrawn.purpose
        assert not ledger.permits(42, "marketing")
        assert not ledger.permits(42, "MARKETING")
        ledger.withdraw(43, "Sale")
        assert not ledger.permits(43, "sale")
        assert frozenset({"sharing"}) == ledger.purposes(43, ["sale", "SALE", "sharing"])

    def test_opt_out_purposes_normalized(self, engine: sa.Engine) -> None:
        ledger = ConsentLedger(engine, key=LEDGER_KEY, opt_out_purposes=["Sale"], clock=lambda: T0)
        ledger.create()
        assert ("sale",) == ledger.opt_out_purposes
        assert ledger.permits(42, "sale")
        ledger.opt_out(42)
        assert not ledger.permits(42, "SALE")

    def test_opt_out_and_state(self, ledger: ConsentLedger) -> None:
        records = ledger.opt_out(42, source="Global Privacy Control")
        assert ("sale", "sharing") == tuple(r.purpose for r in records)
        assert not ledger.permits(42, "sale")
        ledger.grant(7, "sale")
        ledger.grant(7, "marketing")
        state = ledger.state(range(1200))
        assert {
            "42": {"sale": False, "sharing": False},
            "7": {"sale": True, "marketing": True},
        } == state

    def test_forget(self, ledger: ConsentLedger) -> None:
        ledger.opt_out(42)
        ledger.grant(7, "marketing")
        assert 2 == ledger.forget(42)
        assert () == ledger.history(42)
        assert 1 == len(ledger.history(7))
        assert ledger.permits(42, "sale")  # back to the default

    def test_history_dicts(self, ledger: ConsentLedger) -> None:
        ledger.grant(42, "marketing")
        assert [
            {
                "subject_id": "42",
                "purpose": "marketing",
                "granted": True,
                "recorded_at": T0.isoformat(),
                "source": None,
            }
        ] == [r.to_dict() for r in ledger.history(42)]
        assert "'42'" not in repr(ledger.history(42)[0])

    def test_audited(self, engine: sa.Engine) -> None:
        trail = memory_trail()
        ledger = ConsentLedger(engine, key=LEDGER_KEY, table="audited_consents", trail=trail)
        ledger.create()
        ledger.grant(4242, "marketing", source="form")
        ledger.opt_out(4242)
        assert ["consent.grant", "consent.withdraw", "consent.withdraw"] == actions(trail)
        events = [r.event for r in trail.sink.records()]
        assert {trail.pseudonym(4242)} == {e["subject"] for e in events}
        assert ["marketing", "sale", "sharing"] == [e["extra"]["purpose"] for e in events]
        assert "4242" not in str(events)
        assert trail.verify().ok

    @pytest.mark.parametrize("purpose", ["", 3, "x" * 101])
    def test_bad_purpose(self, ledger: ConsentLedger, purpose: Any) -> None:
        with pytest.raises(ConfigurationError, match="purpose"):
            ledger.grant(42, purpose)
        assert () == ledger.history(42)

    def test_naive_clock(self, engine: sa.Engine) -> None:
        ledger = ConsentLedger(
            engine, key=LEDGER_KEY, table="naive", clock=lambda: dt.datetime(2026, 1, 1)
        )
        ledger.create()
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            ledger.grant(1, "marketing")

    def test_table_for_metadata(self) -> None:
        table = consent_table(sa.MetaData())
        assert "securecustomer_consents" == table.name


class TestEvaluate:
    """The engine's decision, denied when the data subject's choices forbid the purpose."""

    def test_opt_in_purpose(self, ledger: ConsentLedger, policy: PolicyEngine) -> None:
        def decide() -> Any:
            return ledger.evaluate(
                policy, MARKETER, "read", CUSTOMER, data_subject=42, purpose="marketing"
            )

        denied = decide()
        assert Outcome.DENY == denied.outcome
        assert "the data subject has not consented to marketing" == denied.reason
        ledger.grant(42, "marketing")
        assert decide().allowed
        ledger.withdraw(42, "marketing")
        assert "the data subject withdrew consent to marketing" == decide().reason

    def test_opt_out_purpose(self, ledger: ConsentLedger, policy: PolicyEngine) -> None:
        now = T0 + dt.timedelta(minutes=1)

        def decide() -> Any:
            return ledger.evaluate(
                policy, BROKER, "share", CUSTOMER, data_subject=42, purpose="sale", now=now
            )

        assert decide().allowed
        ledger.opt_out(42, source="Global Privacy Control")
        denied = decide()
        assert (Outcome.DENY, "the data subject opted out of sale") == (
            denied.outcome,
            denied.reason,
        )
        with pytest.raises(AccessDenied) as caught:
            ledger.require(
                policy, BROKER, "share", CUSTOMER, data_subject=42, purpose="sale", now=now
            )
        assert denied == caught.value.decision

    def test_withdrawal_in_other_case_denies(
        self, ledger: ConsentLedger, policy: PolicyEngine
    ) -> None:
        ledger.grant(42, "marketing")
        ledger.withdraw(42, "Marketing")
        denied = ledger.evaluate(
            policy, MARKETER, "read", CUSTOMER, data_subject=42, purpose="marketing"
        )
        assert Outcome.DENY == denied.outcome
        ledger.opt_out(43)
        for purpose in ("Sale", "sale"):
            decision = ledger.evaluate(
                policy, BROKER, "share", CUSTOMER, data_subject=43, purpose=purpose, now=T0
            )
            assert Outcome.DENY == decision.outcome

    def test_engine_decides_first(self, ledger: ConsentLedger, policy: PolicyEngine) -> None:
        ledger.grant(42, "marketing")
        denied = ledger.evaluate(
            policy, BROKER, "read", CUSTOMER, data_subject=42, purpose="marketing"
        )
        assert Outcome.DENY == denied.outcome
        assert "data subject" not in denied.reason
        late = T0 + dt.timedelta(hours=1)
        with pytest.raises(StepUpRequired):
            ledger.require(
                policy, BROKER, "share", CUSTOMER, data_subject=42, purpose="sale", now=late
            )
        allowed = ledger.require(
            policy, MARKETER, "read", CUSTOMER, data_subject=42, purpose="marketing"
        )
        assert allowed.allowed
