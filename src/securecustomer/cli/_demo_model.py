"""The demo's world: two tables, their classification, a policy, and seven customers.

Imported only by ``securecustomer demo``: the models are mapped once per process and use
their own keyring slot, so the demo never touches `default_keyring`.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from securecustomer.privacy import classify, register_subject, registered_subject_models
from securecustomer.sqlalchemy import (
    BlindIndex,
    EncryptedString,
    EncryptedText,
    KeyringSlot,
    encrypt_rows,
    normalize_email,
)

__all__ = [
    "CUSTOMERS",
    "DEMO_KEYS",
    "NOTES",
    "POLICY",
    "Base",
    "Customer",
    "Note",
    "ensure_registered",
]

#: The keyring slot of the demo's encrypted columns, bound for the length of one run.
DEMO_KEYS: Final = KeyringSlot("demo")


class Base(DeclarativeBase):
    pass


class Customer(Base):
    """A customer: e-mail (searchable through a blind index), phone and name encrypted."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(
        EncryptedString(keyring=DEMO_KEYS), info=classify("identifier")
    )
    email: Mapped[str] = mapped_column(
        EncryptedString(keyring=DEMO_KEYS), info=classify("contact", purposes=["service"])
    )
    email_index: Mapped[bytes] = mapped_column(
        BlindIndex("email", normalizer=normalize_email, size=16), index=True
    )
    phone: Mapped[str] = mapped_column(
        EncryptedString(keyring=DEMO_KEYS), info=classify("contact", purposes=["service"])
    )
    age: Mapped[int] = mapped_column(Integer, info=classify("demographic"))
    postcode: Mapped[str] = mapped_column(String(10), info=classify("location"))


class Note(Base):
    """A support note, encrypted under its customer's own key (scope ``subject:<id>``)."""

    __tablename__ = "customer_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = mapped_column(Integer, index=True, info=classify("identifier"))
    body: Mapped[str] = mapped_column(
        EncryptedText(keyring=DEMO_KEYS), info=classify("other", sensitivity="restricted")
    )


# Each note is bound to its row (a token copied to another row does not decrypt) and to its
# customer's key scope; a note whose customer was erased loads as ERASED.
encrypt_rows(Note, row="id", subject="customer_id", on_destroyed="erased")


def ensure_registered() -> None:
    """Register the two models with the subject-rights registry (once per process)."""
    known = {entry.model for entry in registered_subject_models()}
    if Customer not in known:
        register_subject(Customer, subject="id", erase="delete", name="customers")
    if Note not in known:
        register_subject(Note, subject="customer_id", erase="shred", name="customer_notes")


# id, name, e-mail, phone, age, postcode
CUSTOMERS: Final = (
    (1, "Ada Lovelace", "ada@example.com", "+44 20 7946 0018", 36, "SW1A 1AA"),
    (2, "Alan Turing", "alan.turing@example.org", "+44 20 7946 0104", 41, "SW1P 3JA"),
    (3, "Grace Hopper", "grace@example.net", "+1 202 555 0143", 85, "NW1 6XE"),
    (4, "Katherine Johnson", "kj@example.com", "+1 757 555 0178", 33, "SW1E 5ND"),
    (5, "Edsger Dijkstra", "ewd@example.nl", "+31 20 555 0199", 47, "SW1H 0BT"),
    (6, "Barbara Liskov", "liskov@example.edu", "+1 617 555 0112", 52, "EC1A 1BB"),
    (7, "Radia Perlman", "radia@example.com", "+1 408 555 0166", 58, "EC1V 9HX"),
)

# note id, customer id, body
NOTES: Final = (
    (1, 1, "Prefers e-mail. Asked about invoice 1042 on the phone."),
    (2, 3, "Allergic to penicillin: tell the on-site technician."),
    (3, 3, "Wants her account closed and her data erased."),
    (4, 6, "VIP: escalate every ticket to the second line."),
)

#: Who may read what: support sees masked contact details and no notes, admins see all,
#: the nightly CRM sync reads names and e-mail addresses, marketing reads nothing.
POLICY: Final = """
version = 1

[roles.support]
[roles.admin]
[roles.integration]
[roles.marketing]

[[rules]]
id = "support-reads-contact-masked"
effect = "allow"
roles = ["support"]
actions = ["read"]
resources = ["customer"]
fields = ["id", "name", "email", "phone"]
masks = { email = "email", phone = "phone" }

[[rules]]
id = "admins-read-everything"
effect = "allow"
roles = ["admin"]
actions = ["read"]
resources = ["customer"]

[[rules]]
id = "crm-sync-reads-names"
effect = "allow"
roles = ["integration"]
actions = ["read"]
resources = ["customer"]
fields = ["id", "name", "email"]
"""
