"""The risk report: policy access to restricted columns, grant usage, keyring checks."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.audit import AuditEvent, AuditTrail, MemoryAuditSink
from securecustomer.exceptions import ConfigurationError
from securecustomer.keys import KeyProvider, MemoryKeyStore
from securecustomer.policy import Policy, PolicyEngine
from securecustomer.privacy import DataInventory, RiskFinding, RiskReport, assess, classify
from securecustomer.sqlalchemy import EncryptedString

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)

METADATA = sa.MetaData()
sa.Table(
    "as_accounts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ssn", EncryptedString(), info=classify("government_id", retention="P1Y")),
    sa.Column("card", EncryptedString(), info=classify("financial", retention="P1Y")),
    sa.Column("email", EncryptedString(), info=classify("contact", retention="P1Y")),
)
ROLES = {"agent": {}, "manager": {"inherits": ["agent"]}, "auditor": {}}


def rule(rule_id: str, roles: list[str], **keys: Any) -> dict[str, Any]:
    """An allow rule for reading accounts."""
    table = {"id": rule_id, "effect": "allow", "roles": roles, "actions": ["read"]}
    return table | {"resources": ["account"]} | keys


def engine_of(*rules: dict[str, Any]) -> PolicyEngine:
    return PolicyEngine(Policy.from_dict({"version": 1, "roles": ROLES, "rules": list(rules)}))


POLICY = engine_of(
    rule("agents-read", ["agent"], fields=["email", "ssn"], masks={"ssn": "last4"}),
    rule("managers-read", ["manager"]),
    rule("auditors-read", ["auditor"], when="context.level > 2"),
)
TYPES = {"as_accounts": "account"}


def inventory() -> DataInventory:
    return DataInventory.from_metadata(METADATA, now=NOW)


def read(roles: list[str] | None = None, days_ago: int = 1, **keys: Any) -> AuditEvent:
    """A read of an account *days_ago* days before NOW by an actor with *roles*."""
    attributes = {} if roles is None else {"roles": roles}
    event = {"action": "read", "actor": "u1", "resource_type": "account"} | keys
    return AuditEvent(
        **event, actor_attributes=attributes, timestamp=NOW - dt.timedelta(days=days_ago)
    )


def found(report: RiskReport, code: str) -> dict[str, tuple[str, str]]:
    return {f.where: (f.severity, f.message) for f in report.findings if f.code == code}


class TestRestrictedAccess:
    """Each rule granting a restricted column is a finding, graded by how open it is."""

    def test_grades(self) -> None:
        expected = {
            "rule managers-read": (
                "medium",
                "role:manager can read restricted as_accounts.card, as_accounts.ssn "
                "unconditionally and unmasked",
            ),
            "rule agents-read": (
                "low",
                "role:agent, role:manager can read restricted as_accounts.ssn only under "
                "conditions or masked",
            ),
            "rule auditors-read": (
                "low",
                "role:auditor can read restricted as_accounts.card, as_accounts.ssn only "
                "under conditions or masked",
            ),
        }
        report = assess(inventory(), policy=POLICY, resource_types=TYPES, now=NOW)
        assert expected == found(report, "restricted-field-access")

    def test_anyone_unconditionally_is_high(self) -> None:
        policy = engine_of(rule("open", ["*"], fields=["card"]))
        report = assess(inventory(), policy=policy, resource_types=TYPES, now=NOW)
        severity, message = found(report, "restricted-field-access")["rule open"]
        assert "high" == severity
        assert message.startswith("role:*, role:agent, role:auditor, role:manager can read")

    def test_no_grant_of_restricted_columns(self) -> None:
        policy = engine_of(rule("email-only", ["agent"], fields=["email"]))
        report = assess(inventory(), policy=policy, resource_types=TYPES, now=NOW)
        assert {} == found(report, "restricted-field-access")

    def test_resource_type_defaults_to_table_name(self) -> None:
        assert () == assess(inventory(), policy=POLICY, now=NOW).findings
        policy = engine_of(rule("r", ["agent"], resources=["as_accounts"]))
        assert ["rule r"] == list(
            found(assess(inventory(), policy=policy, now=NOW), "restricted-field-access")
        )


class TestGrantUsage:
    """With a trail, grants of restricted columns never or not recently used are findings."""

    def test_unused_and_stale(self) -> None:
        trail = [read(["manager"], days_ago=10), read(["agent"], days_ago=200, actor="u2")]
        report = assess(inventory(), policy=POLICY, trail=trail, resource_types=TYPES, now=NOW)
        assert {
            "role:agent on account": (
                "low",
                "role:agent can read restricted as_accounts.ssn (rule agents-read), but its "
                "last read of 'account' was 200 days ago: remove the grant if it is not needed",
            )
        } == found(report, "stale-grant")
        unused = found(report, "unused-grant")
        assert ["role:auditor on account"] == list(unused)
        assert unused["role:auditor on account"][1].endswith(
            "but no successful read of 'account' by it is in the trail: remove the grant if "
            "it is not needed"
        )

    def test_every_grant_used(self) -> None:
        trail = [read(["manager", "agent"]), read(["auditor"])]
        report = assess(inventory(), policy=POLICY, trail=trail, resource_types=TYPES, now=NOW)
        assert ({}, {}) == (found(report, "stale-grant"), found(report, "unused-grant"))

    @pytest.mark.parametrize(
        "event",
        [
            {"action": "update"},
            {"outcome": "denied"},
            {"resource_type": "invoice"},
        ],
    )
    def test_events_that_do_not_count(self, event: dict[str, Any]) -> None:
        trail = [read(["manager", "agent"]), read(["auditor"], **event)]
        report = assess(inventory(), policy=POLICY, trail=trail, resource_types=TYPES, now=NOW)
        assert ["role:auditor on account"] == list(found(report, "unused-grant"))

    def test_stale_after(self) -> None:
        trail = [read(["manager", "agent", "auditor"], days_ago=20)]
        fresh = assess(inventory(), policy=POLICY, trail=trail, resource_types=TYPES, now=NOW)
        stale = assess(
            inventory(),
            policy=POLICY,
            trail=trail,
            resource_types=TYPES,
            now=NOW,
            stale_after=dt.timedelta(days=7),
        )
        assert {} == found(fresh, "stale-grant")
        assert 3 == len(found(stale, "stale-grant"))

    def test_roles_from_assignments_and_role_attribute(self) -> None:
        by_role = AuditEvent(
            action="read",
            actor="u9",
            resource_type="account",
            actor_attributes={"role": "auditor"},
            timestamp=NOW,
        )
        trail = [read(actor="boss"), by_role]
        report = assess(
            inventory(),
            policy=POLICY,
            trail=trail,
            resource_types=TYPES,
            assignments={"boss": ["manager", "agent"]},
            now=NOW,
        )
        assert {} == found(report, "unused-grant")

    def test_audit_trail_and_subject_grants(self) -> None:
        trail = AuditTrail(MemoryAuditSink(), key=bytes(32))
        trail.append(AuditEvent(action="read", actor="alice", resource_type="account"))
        subjects = {"id": "alice", "effect": "allow", "subjects": ["alice", "bob"]}
        policy = engine_of(subjects | {"actions": ["read"], "resources": ["account"]})
        report = assess(inventory(), policy=policy, trail=trail, resource_types=TYPES, now=NOW)
        assert ["subject:bob on account"] == list(found(report, "unused-grant"))
        records = list(trail.sink.records())
        again = assess(inventory(), policy=policy, trail=records, resource_types=TYPES, now=NOW)
        assert report == again


class TestKeyring:
    """Key ages as the inventory reports them, once, and a local master key."""

    @pytest.fixture
    def keyring(self) -> Keyring:
        keyring = Keyring(LocalKeyProvider.generate(), MemoryKeyStore(), now=lambda: NOW).load()
        keyring.cipher("as_accounts.ssn")
        return keyring

    def test_old_keys_reported_once(self, keyring: Keyring) -> None:
        later = NOW + dt.timedelta(days=400)
        inv = DataInventory.from_metadata(METADATA, keyring=keyring, now=later)
        report = assess(inv, keyring=keyring, now=later)
        codes = [f.code for f in report.findings]
        assert 1 == codes.count("root-rotation-overdue")
        assert 1 == codes.count("key-rotation-overdue")

    def test_young_keys(self, keyring: Keyring) -> None:
        report = assess(inventory(), keyring=keyring, now=NOW + dt.timedelta(days=5))
        assert ["local-master-key"] == [f.code for f in report.findings]

    def test_local_master_key(self, keyring: Keyring) -> None:
        expected = RiskFinding(
            "medium",
            "local-master-key",
            "keyring provider",
            "the master key is held by a LocalKeyProvider (a key file, environment variable "
            "or memory): prefer Vault Transit or a cloud KMS in production",
        )
        assert (expected,) == assess(inventory(), keyring=keyring, now=NOW).findings

    def test_other_provider(self) -> None:
        class Wrapped:
            """A provider that is not a LocalKeyProvider (it delegates to one)."""

            def __init__(self) -> None:
                self.inner = LocalKeyProvider.generate()
                self.name = "wrapped"

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

        provider: KeyProvider = Wrapped()
        keyring = Keyring(provider, MemoryKeyStore(), now=lambda: NOW).load()
        assert () == assess(inventory(), keyring=keyring, now=NOW).findings


class TestReport:
    """Ordering, counts, JSON and Markdown of the report; bad arguments."""

    def report(self) -> RiskReport:
        """A report of one inventory finding (the inventory has no restricted column)."""
        inv = DataInventory((), (RiskFinding("high", "x", "t.c", "m|n"),), NOW)
        return assess(inv, policy=POLICY, resource_types=TYPES, trail=[], now=NOW)

    def test_order_and_counts(self) -> None:
        report = self.report()
        assert {"high": 1, "medium": 0, "low": 0} == report.counts
        full = assess(inventory(), policy=POLICY, resource_types=TYPES, trail=[], now=NOW)
        severities = [f.severity for f in full.findings]
        assert ["medium", "low", "low", "low", "low", "low"] == severities
        assert {"high": 0, "medium": 1, "low": 5} == full.counts
        keys = [(f.code, f.where) for f in full.findings if f.severity == "low"]
        assert sorted(keys) == keys

    def test_json(self) -> None:
        data = json.loads(self.report().to_json())
        expected = {
            "counts": {"high": 1, "low": 0, "medium": 0},
            "findings": [{"code": "x", "message": "m|n", "severity": "high", "where": "t.c"}],
            "generated_at": "2026-06-01T00:00:00+00:00",
        }
        assert expected == data

    def test_markdown(self) -> None:
        expected = (
            "# Security risk report\n\n- Generated at: 2026-06-01T00:00:00+00:00\n"
            "- Findings: 1 high, 0 medium, 0 low\n\n## Findings\n\n"
            "| Severity | Code | Where | Message |\n|---|---|---|---|\n| high | x | t.c | m\\|n |\n"
        )
        assert expected == self.report().to_markdown()

    def test_empty(self) -> None:
        report = assess(DataInventory((), (), NOW), now=NOW)
        assert () == report.findings
        assert "No findings." in report.to_markdown()

    def test_bad_arguments(self) -> None:
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            assess(inventory(), now=dt.datetime(2026, 1, 1))
        with pytest.raises(ConfigurationError, match="positive"):
            assess(inventory(), now=NOW, stale_after=dt.timedelta(0))


class TestDamagedRecords:
    """A record that does not read as an event is skipped, not fatal to the report."""

    def test_unreadable_record_is_skipped(self) -> None:
        trail = AuditTrail(MemoryAuditSink(), key=bytes(32))
        trail.append(read(["agent"]))
        trail.append(read(["manager"]))
        good, bad = trail.sink.records()
        broken = attrs.evolve(bad, event={**bad.event, "timestamp": "not a time"})

        report = assess(
            inventory(), policy=POLICY, trail=[good, broken], resource_types=TYPES, now=NOW
        )

        assert "role:manager on account" in found(report, "unused-grant")

    def test_assignment_of_one_role_as_a_string(self) -> None:
        trail = [read(actor="boss"), read(["agent"]), read(["auditor"])]

        report = assess(
            inventory(),
            policy=POLICY,
            trail=trail,
            resource_types=TYPES,
            assignments={"boss": "manager"},
            now=NOW,
        )

        assert {} == found(report, "unused-grant")
