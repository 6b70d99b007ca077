"""Shoppers (column-scoped, deleted on erasure) and their parcels (subject-scoped,
shredded on erasure), with classified columns and two that the inventory flags."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from securecustomer.privacy import classify, register_subject
from securecustomer.sqlalchemy import BlindIndex, EncryptedString, encrypt_rows, normalize_email

T0 = dt.datetime(2026, 1, 1)


class Base(DeclarativeBase):
    pass


class Shopper(Base):
    __tablename__ = "shoppers"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str] = mapped_column(
        EncryptedString(), info=classify("contact", purposes=["service"], retention="P2Y")
    )
    email_index: Mapped[bytes | None] = mapped_column(
        BlindIndex("email", size=16, normalizer=normalize_email), nullable=True
    )
    # Restricted data stored in the clear: a high finding.
    passport: Mapped[str | None] = mapped_column(
        sa.String(20), nullable=True, info=classify("government_id", retention="P1Y")
    )
    # Unclassified, with a telling name: the inventory suspects personal data.
    phone: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(), default=T0)


class Parcel(Base):
    __tablename__ = "parcels"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    shopper_id: Mapped[int] = mapped_column(sa.ForeignKey("shoppers.id"), index=True)
    address: Mapped[str] = mapped_column(
        EncryptedString(), info=classify("location", purposes=["delivery"], retention="P1Y")
    )
    sent_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(), default=T0)


encrypt_rows(Parcel, row="id", subject="shopper_id")
register_subject(Shopper, subject="id", erase="delete", name="cli-app-shoppers")
register_subject(Parcel, subject="shopper_id", erase="shred", name="cli-app-parcels")
