"""What the endpoints do: decide with the policy, read or write, leave an audit event.

Each operation is a plain function decorated with `audited`: its event names the actor of
the request (set by the `current_user` dependency), the customer as a keyed pseudonym, and
the outcome: ``success``, ``denied`` (the policy refused) or ``error``. Argument values,
such as the e-mail address searched for, are never recorded.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from securecustomer.audit import audited, default_trail
from securecustomer.keys import Keyring
from securecustomer.policy import Decision, PolicyEngine, Resource, Subject
from securecustomer.privacy import DataInventory, LegalHolds, erase_subject, export_subject
from securecustomer.sqlalchemy import search
from sqlalchemy.orm import Session

from customer_service.models import SUBJECT_MODELS, Base, Customer, Note

#: The purpose each code path declares; the policy's rules name them.
SUPPORT = "support"
SUBJECT_REQUEST = "subject-request"


class CustomerNotFound(LookupError):
    """No customer with that id (or it was erased)."""


# --8<-- [start:read]
def _record(session: Session, customer: Customer, decision: Decision) -> dict[str, Any]:
    """The customer as the decision shows it: hidden fields dropped, masks applied."""
    record: dict[str, Any] = {
        "id": str(customer.id),
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
    }
    if decision.visible("notes"):  # decrypt the notes only for those who may see them
        notes = session.scalars(
            sa.select(Note).where(Note.customer_id == customer.id).order_by(Note.created_at)
        )
        record["notes"] = [note.text for note in notes]
    return record


@audited("read", resource="customer", resource_id="customer_id", subject="customer_id")
def read_customer(
    session: Session, policy: PolicyEngine, user: Subject, customer_id: uuid.UUID
) -> dict[str, Any]:
    # Decide before reading: a denied request decrypts nothing.
    decision = policy.require(
        user, "read", Resource("customer", id=str(customer_id)), purpose=SUPPORT
    )
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return policy.apply(decision, _record(session, customer, decision))


@audited("search", resource="customer")
def find_by_email(
    session: Session, policy: PolicyEngine, user: Subject, email: str
) -> list[dict[str, Any]]:
    decision = policy.require(user, "read", Resource("customer"), purpose=SUPPORT)
    found = search(session, Customer.email, email)  # blind index, then decrypt-and-compare
    return [policy.apply(decision, _record(session, customer, decision)) for customer in found]


# --8<-- [end:read]


@audited("create", resource="customer", fields=["name", "email", "phone"])
def create_customer(
    session: Session,
    policy: PolicyEngine,
    user: Subject,
    *,
    name: str,
    email: str,
    phone: str | None,
) -> uuid.UUID:
    policy.require(user, "create", Resource("customer"))
    customer = Customer(name=name, email=email, phone=phone)
    session.add(customer)
    session.commit()
    return customer.id


@audited(
    "annotate",
    resource="customer",
    resource_id="customer_id",
    subject="customer_id",
    fields=["notes"],
)
def add_note(
    session: Session, policy: PolicyEngine, user: Subject, customer_id: uuid.UUID, text: str
) -> None:
    policy.require(user, "annotate", Resource("customer", id=str(customer_id)))
    if session.get(Customer, customer_id) is None:
        raise CustomerNotFound(customer_id)
    session.add(Note(customer_id=customer_id, text=text))
    session.commit()


# --8<-- [start:subject_requests]
@audited("export", resource="subject", resource_id="customer_id", subject="customer_id")
def export_customer(
    session: Session, policy: PolicyEngine, user: Subject, customer_id: uuid.UUID
) -> dict[str, Any]:
    policy.require(
        user, "export", Resource("subject", id=str(customer_id)), purpose=SUBJECT_REQUEST
    )
    # The customer's rows in every table, decrypted. The library adds its own
    # "subject.export" event with the exported field names and row counts.
    export = export_subject(
        session, customer_id, models=SUBJECT_MODELS, reason="subject access request"
    )
    return export.to_dict()


@audited("erase", resource="subject", resource_id="customer_id", subject="customer_id")
def erase_customer(
    session: Session,
    policy: PolicyEngine,
    user: Subject,
    customer_id: uuid.UUID,
    holds: LegalHolds,
) -> dict[str, Any]:
    policy.require(user, "erase", Resource("subject", id=str(customer_id)), purpose=SUBJECT_REQUEST)
    # Legal holds first (LegalHoldError: nothing erased); then customer rows deleted, notes'
    # key scope destroyed, a "subject.erase" receipt event.
    receipt = erase_subject(
        session, customer_id, holds=holds, models=SUBJECT_MODELS, reason="erasure request"
    )
    return receipt.to_dict()


# --8<-- [end:subject_requests]


@audited("verify", resource="audit")
def verify_audit(policy: PolicyEngine, user: Subject) -> dict[str, Any]:
    policy.require(user, "verify", Resource("audit"))
    report = default_trail.get().verify()
    return {
        "ok": report.ok,
        "checked": report.checked,
        "first_bad": report.first_bad,
        "problem": report.problem,
    }


@audited("read", resource="inventory")
def data_inventory(
    engine: sa.Engine, keyring: Keyring, policy: PolicyEngine, user: Subject
) -> dict[str, Any]:
    policy.require(user, "read", Resource("inventory"))
    inventory = DataInventory.from_metadata(Base.metadata, bind=engine, keyring=keyring)
    return inventory.to_dict()
