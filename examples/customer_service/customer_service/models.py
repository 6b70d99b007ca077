"""The application's tables: what is encrypted, how it is found, who it is about."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from securecustomer.privacy import classify, register_subject
from securecustomer.sqlalchemy import (
    BlindIndex,
    EncryptedString,
    EncryptedText,
    encrypt_rows,
    normalize_email,
    plan_blind_index,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Customer(Base):
    __tablename__ = "customers"

    # A random id: never reused, so an erased customer's key scope stays erased.
    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, info=classify("identifier", sensitivity="internal")
    )
    name: Mapped[str] = mapped_column(
        EncryptedString(), info=classify("identifier", purposes=["support"])
    )
    email: Mapped[str] = mapped_column(
        EncryptedString(), info=classify("contact", purposes=["support"])
    )
    # A keyed hash of the normalised e-mail: equality search without decrypting every row.
    email_index: Mapped[bytes | None] = mapped_column(
        BlindIndex("email", normalizer=normalize_email, size=plan_blind_index(1_000_000)),
        index=True,
    )
    phone: Mapped[str | None] = mapped_column(
        EncryptedString(), info=classify("contact", purposes=["support"])
    )
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[uuid.UUID] = mapped_column(index=True)
    text: Mapped[str] = mapped_column(
        EncryptedText(), info=classify("other", purposes=["support"], retention="P2Y")
    )
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)


# Each note is bound to its row and encrypted under its customer's own key scope,
# "subject:<customer_id>": destroying that scope erases every note of the customer,
# in every backup of the database too.
encrypt_rows(Note, row="id", subject="customer_id", on_destroyed="erased")

# What export_subject and erase_subject do with each table: customers are deleted, notes
# kept but unreadable (their key scope destroyed). The names label the export's sections.
register_subject(Customer, subject="id", erase="delete", name="customers")
register_subject(Note, subject="customer_id", erase="shred", name="notes")

#: Every model holding data about a customer, for the export and erasure calls.
SUBJECT_MODELS = (Customer, Note)
