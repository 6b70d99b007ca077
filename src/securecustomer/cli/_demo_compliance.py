"""The demo's last four steps: the audit trail, a subject's rights, anonymization, a breach."""

from __future__ import annotations

import csv
import datetime as dt
import json
import secrets
import textwrap
from collections import Counter
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from securecustomer.anonymize import (
    Anonymizer,
    Pseudonymizer,
    age_band,
    k_anonymity,
    mask_email,
    truncate_postcode,
)
from securecustomer.audit import actor, audited
from securecustomer.cli._demo_model import CUSTOMERS, NOTES, Customer, Note, ensure_registered
from securecustomer.cli._demo_steps import CRM_SYNC, Demo, expect, fail, short
from securecustomer.crypto import Context
from securecustomer.exceptions import KeyDestroyedError
from securecustomer.privacy import (
    NO_LEGAL_HOLDS,
    NOTIFICATION_WINDOW,
    breach_scope,
    erase_subject,
    export_subject,
)
from securecustomer.sqlalchemy import ERASED, search

__all__ = ["step_anonymize", "step_audit", "step_breach", "step_subject_rights"]

ERASED_ID = 3  # Grace Hopper asks for her data, then for its erasure
DPO = "dpo-1"
QUASI = ("age", "postcode")


def _verify(demo: Demo, what: str) -> int:
    report = demo.audit().verify()
    if not report.ok:
        fail(f"the audit trail verifies {what} (record {report.first_bad}: {report.problem})")
    return report.checked


# -- 5. audit -----------------------------------------------------------------------------


def step_audit(demo: Demo) -> None:
    demo.step(
        5,
        "Every access is in a tamper-evident audit trail",
        "Each read of step 4 appended one event: who acted (the actor context), what, "
        "which fields, and the outcome. Customers appear only as keyed pseudonyms. Each record's "
        "keyed hash covers the record before it, and a signed checkpoint pins the head: "
        "deleting, editing or reordering events is detected.",
    )
    trail = demo.audit()
    records = list(trail.sink.records())
    counts = Counter((r.event["actor"], r.event["outcome"]) for r in records)
    for (who, outcome), n in sorted(counts.items()):
        print(f"  {who:<14} {outcome:<8} {n} event{'s' if n > 1 else ''}")
    first = records[0].event
    shown = {k: first[k] for k in ("actor", "action", "resource_type", "subject", "fields")}
    print("record 1 (no name, no e-mail, the customer as a pseudonym):")
    for line in textwrap.wrap(json.dumps(shown), 96, subsequent_indent="    "):
        print(f"  {line}")
    expect(counts[(CRM_SYNC.id, "success")] == len(CUSTOMERS), "every read was recorded")
    expect(counts[("mkt-2", "denied")] == 1, "the denied read was recorded as denied")
    trail_text = demo.path("audit.jsonl").read_bytes()
    expect(
        not any(c[2].encode() in trail_text or c[1].encode() in trail_text for c in CUSTOMERS),
        "no name or e-mail is in the trail",
    )
    demo.show("verify", f"ok, {_verify(demo, 'after the reads')} records checked")
    checkpoint = trail.checkpoint()
    checkpoint.verify(trail.public_key)  # raises if the signature is wrong
    demo.path("checkpoint.json").write_text(json.dumps(checkpoint.to_dict(), indent=2) + "\n")
    demo.show(
        "checkpoint",
        f"record {checkpoint.seq}, signed with Ed25519 (public key {trail.public_key[:16]}...)",
    )
    print(
        "check it yourself: securecustomer audit verify --jsonl "
        f"{demo.path('audit.jsonl')} --key-file {demo.path('audit.key')} "
        f"--checkpoint {demo.path('checkpoint.json')}"
    )


# -- 6. subject rights --------------------------------------------------------------------


def step_subject_rights(demo: Demo) -> None:
    demo.step(
        6,
        f"Customer {ERASED_ID} asks for her data, then for its erasure",
        "The export collects every row about her across the registered tables, decrypted. "
        "The erasure deletes her customer row and destroys her own key: her notes stay "
        "in their table (other records refer to them) but can never be decrypted again, "
        "in any copy or backup. Both are audited; the trail still verifies.",
    )
    ensure_registered()
    trail = demo.audit()
    keyring = demo.keys()
    name, email = CUSTOMERS[ERASED_ID - 1][1:3]
    with actor(DPO, request_id="dsar-2026-001"), Session(demo.db()) as session:
        export = export_subject(
            session, ERASED_ID, trail=trail, models=[Customer, Note], reason="access request"
        )
    print("her export (JSON, sent to her; the demo keeps no copy), one line per row:")
    for model, rows in export.to_dict()["records"].items():
        for row in rows:
            for line in textwrap.wrap(f"{model}: {json.dumps(row)}", 96, subsequent_indent="    "):
                print(f"  {line}")
    rows = export.records.get("customers", ())
    expect(len(rows) == 1 and rows[0].get("email") == email, "the export holds her e-mail")
    notes = [n["body"] for n in export.records.get("customer_notes", ())]
    expect(sorted(notes) == sorted(b for _, c, b in NOTES if c == ERASED_ID), "and her notes")

    token = _saved_note(demo)  # a copy of one of her notes, as a backup would hold it
    with actor(DPO, request_id="dsar-2026-002"), Session(demo.db()) as session:
        receipt = erase_subject(
            session,
            ERASED_ID,
            keyring=keyring,
            trail=trail,
            holds=NO_LEGAL_HOLDS,  # the demo's company keeps no legal holds: said, not assumed
            models=[Customer, Note],
            reason="erasure request",
        )
    print("erasure receipt (counts and key ids, no data):")
    print(f"  deleted {dict(receipt.deleted)}, shredded {dict(receipt.shredded)}")
    print(f"  keys destroyed {', '.join(f'{k:#010x}' for k in receipt.keys_destroyed)}")
    print(f"  subject {receipt.subject} (the trail's pseudonym), event {receipt.event_id}")
    expect(receipt.deleted.get("customers") == 1, "her customer row is deleted")
    expect(len(receipt.keys_destroyed) >= 1, "her key is destroyed")
    with Session(demo.db()) as session:
        expect(session.get(Customer, ERASED_ID) is None, "her row is gone")
        expect(search(session, Customer.email, email) == [], "her e-mail finds nothing")
        query = select(Note).where(Note.customer_id == ERASED_ID).order_by(Note.id)
        bodies = [note.body for note in session.scalars(query)]
    demo.show("her notes now", f"{bodies}  ({len(bodies)} rows kept, unreadable)")
    expect(bool(bodies) and all(b is ERASED for b in bodies), "her notes load as ERASED")
    try:
        cipher = keyring.cipher(f"subject:{ERASED_ID}", create=False)
        cipher.decrypt(token[1], context=Context("customer_notes", "body", row=token[0]))
    except KeyDestroyedError as exc:
        demo.show("a saved copy", f"{short(token[1])} -> {type(exc).__name__}")
    else:
        fail("a copy of her note made before the erasure no longer decrypts")
    with actor(DPO, request_id="dsar-2026-002"), Session(demo.db()) as session:
        again = erase_subject(
            session,
            ERASED_ID,
            keyring=keyring,
            trail=trail,
            holds=NO_LEGAL_HOLDS,
            models=[Customer, Note],
        )
    expect(again.already_erased, "erasing again finds nothing left")
    demo.show("erase again", "nothing left to erase (already_erased=True)")
    demo.show("verify", f"ok, {_verify(demo, 'after the erasure')} records checked")
    expect(name.encode() not in demo.path("audit.jsonl").read_bytes(), "her name is not logged")


def _saved_note(demo: Demo) -> tuple[int, bytes]:
    """The (note id, stored token) of the erased customer's first note."""
    query = text("SELECT id, body FROM customer_notes WHERE customer_id = :c ORDER BY id")
    with demo.db().connect() as conn:
        row = conn.execute(query, {"c": ERASED_ID}).first()
    if row is None:
        fail("her notes are stored")
    return int(row[0]), bytes(row[1])


# -- 7. anonymized export -----------------------------------------------------------------


def step_anonymize(demo: Demo) -> None:
    demo.step(
        7,
        "An anonymized export for analytics",
        "Customer ids become keyed pseudonyms (stable, so rows can be joined, but not "
        "reversible without the key), e-mails are masked, names and phones dropped, ages "
        "put in 10-year bands and postcodes cut to their district. k-anonymity: every "
        "combination of age band and district is shared by at least k customers.",
    )

    @audited("export", resource="customer", fields=["id", "email", *QUASI], trail=demo.trail)
    def load() -> list[dict[str, Any]]:
        with Session(demo.db()) as session:
            return [
                {"id": c.id, "name": c.name, "email": c.email, "phone": c.phone}
                | {"age": c.age, "postcode": c.postcode}
                for c in session.scalars(select(Customer).order_by(Customer.id))
            ]

    with actor("analyst-4", request_id="report-q4"):
        rows = load()
    plan = Anonymizer(
        {
            "id": Pseudonymizer(secrets.token_bytes(32), domain="customer", length=12),
            "email": mask_email,
            "age": age_band,
            "postcode": truncate_postcode,
        }
    )
    shared = list(plan.apply_many(rows))
    demo.show("pseudonym key", "32 random bytes for this export only (never printed or stored)")
    path = demo.path("customers-anonymized.csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=plan.output_fields(rows[0]))
        writer.writeheader()
        writer.writerows(shared)
    print(f"{len(shared)} customers -> {path}:")
    print(f"  {'id':<14} {'email':<22} {'age':<6} postcode")
    for row in shared:
        print(f"  {row['id']:<14} {row['email']:<22} {row['age']:<6} {row['postcode']}")
    before, after = k_anonymity(rows, QUASI), k_anonymity(shared, QUASI)
    demo.show("k-anonymity", f"{before} before (every customer unique), {after} after", 13)
    expect(after >= 2 and before == 1, "generalising age and postcode gives k >= 2")
    leaked = {str(v) for r in rows for k, v in r.items() if k in ("id", "name", "email", "phone")}
    expect(not any(str(v) in leaked for r in shared for v in r.values()), "no identifier is left")
    expect(ERASED_ID not in [r["id"] for r in rows], "the erased customer is not exported")


# -- 8. breach scope ----------------------------------------------------------------------


def step_breach(demo: Demo) -> None:
    demo.step(
        8,
        "A breach: what did a leaked credential touch?",
        "Suppose svc-crm-sync's token turns up in a public repository. The audit trail "
        "(verified first) says which customers and fields it read, and when; the GDPR "
        "gives 72 hours from discovery to notify the supervisory authority.",
    )
    discovered = dt.datetime.now(dt.UTC)
    ids = [c[0] for c in CUSTOMERS]
    scope = breach_scope(demo.audit(), actor=CRM_SYNC.id, candidates=ids, discovered_at=discovered)
    demo.show(
        "trail", "verified" if scope.trail_verified else f"NOT verified {scope.trail_problems}"
    )
    demo.show("events", f"{scope.events} reads by {', '.join(sorted(scope.actors))}")
    identified = sorted(int(i) for i in scope.identified.values())
    demo.show("subjects", f"{len(scope.subjects)} customers: ids {identified}")
    if ERASED_ID in identified:
        print(f"               (customer {ERASED_ID} was erased since, but was read before)")
    fields = ", ".join(f"{name} ({n})" for name, n in sorted(scope.fields.items()))
    demo.show("fields", fields)
    if scope.first_seen and scope.last_seen:
        seen = f"{scope.first_seen:%Y-%m-%d %H:%M:%S} to {scope.last_seen:%H:%M:%S} UTC"
        demo.show("activity", seen)
    demo.show("notify by", f"{scope.notify_by:%Y-%m-%d %H:%M} UTC (72 hours after discovery)")
    expect(scope.trail_verified is True, "the trail verified before the scope was read")
    expect(scope.events == len(ids) and identified == ids, "every read customer is found")
    expect("customer.email" in scope.fields, "the e-mail is among the fields touched")
    expect("customer.phone" not in scope.fields, "the phone was never read by the sync")
    expect(scope.notify_by - discovered == NOTIFICATION_WINDOW, "the deadline is 72 hours")
