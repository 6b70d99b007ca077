"""Typed usage of securecustomer.privacy, checked by ``mypy --strict`` (nox -s typing)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session

from securecustomer.audit import AuditTrail
from securecustomer.exceptions import LegalHoldError
from securecustomer.keys import Keyring
from securecustomer.policy import PolicyEngine, Resource, Subject
from securecustomer.privacy import (
    NO_LEGAL_HOLDS,
    BreachScope,
    Classification,
    ConsentLedger,
    DataInventory,
    ErasureReceipt,
    KeyCompromiseResponse,
    LegalHold,
    LegalHolds,
    RetentionReport,
    RetentionRule,
    RiskFinding,
    RiskReport,
    Sensitivity,
    SubjectExport,
    apply_retention,
    assess,
    breach_scope,
    classification_of,
    classify,
    erase_subject,
    export_subject,
    respond_to_key_compromise,
)

LEDGER_KEY = secrets.token_bytes(32)


def use(
    metadata: MetaData,
    engine: Engine,
    session: Session,
    keyring: Keyring,
    trail: AuditTrail,
    policy: PolicyEngine,
    order_model: type[Any],
) -> None:
    info: dict[str, Any] = classify("contact", purposes=["service"], retention="P2Y")
    found: Classification | None = classification_of(info)
    if found is not None:
        restricted: bool = found.sensitivity >= Sensitivity.RESTRICTED
        assert isinstance(restricted, bool)

    inventory = DataInventory.from_metadata(metadata, bind=engine, keyring=keyring)
    markdown: str = inventory.to_markdown()
    findings: tuple[RiskFinding, ...] = inventory.findings
    report: RiskReport = assess(inventory, policy=policy, keyring=keyring, trail=trail)
    counts: int = report.counts["high"]

    exported: SubjectExport = export_subject(session, 42, trail=trail)
    text: str = exported.to_json()
    holds = LegalHolds(engine, key=LEDGER_KEY)
    hold: LegalHold = holds.place(42, matter="case 1")
    try:
        receipt: ErasureReceipt = erase_subject(session, 42, trail=trail, holds=holds)
        destroyed: tuple[int, ...] = receipt.keys_destroyed
    except LegalHoldError as exc:
        held: str = exc.subject

    ledger = ConsentLedger(engine, key=LEDGER_KEY, trail=trail)
    ledger.opt_out(42, source="Global Privacy Control")
    allowed: bool = ledger.permits(42, "sale")
    decision = ledger.evaluate(
        policy,
        Subject("u1", roles=["agent"]),
        "read",
        Resource("customer", id=42),
        data_subject=42,
        purpose="marketing",
    )

    rule = RetentionRule(order_model, age_column="created_at", max_age=dt.timedelta(days=30))
    retention: RetentionReport = apply_retention(session, [rule], dry_run=True, holds=holds)
    unheld: RetentionReport = apply_retention(session, [rule], holds=NO_LEGAL_HOLDS)
    migrated: int = holds.migrate() + ledger.migrate() + holds.verify() + ledger.verify()

    scope: BreachScope = breach_scope(trail, actor="svc-export", candidates=[42])
    deadline: dt.datetime = scope.notify_by
    response: KeyCompromiseResponse = respond_to_key_compromise(
        keyring, 0x2A, bind=engine, models=[order_model], trail=trail, dry_run=True
    )
    print(markdown, findings, counts, text, hold, destroyed, held, allowed, decision)
    print(unheld, migrated)
    print(retention, deadline, response)
