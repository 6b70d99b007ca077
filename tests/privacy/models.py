"""Models, keyrings, trails and engines shared by the privacy workflow tests.

Every call of `make_models` declares fresh classes on a fresh declarative base, so each
test registers its own models (``register_subject`` and ``encrypt_rows`` keep global
registries) and passes them to the workflows with ``models=``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import attrs
import sqlalchemy as sa
from dbservers import reset_database
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.audit import AuditTrail, MemoryAuditSink
from securecustomer.keys import MemoryKeyStore
from securecustomer.sqlalchemy import (
    BlindIndex,
    EncryptedNumeric,
    EncryptedString,
    default_keyring,
    encrypt_rows,
    normalize_email,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
#: The key of the consent ledgers and legal holds of the tests.
LEDGER_KEY = secrets.token_bytes(32)


def engine_for(db_url: str) -> Iterator[sa.Engine]:
    """A sync engine on *db_url*; afterwards disposed and every table dropped."""
    engine = sa.create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()
        reset_database(db_url)


def keyring_bound() -> Iterator[Keyring]:
    """A memory keyring bound to `default_keyring` for the test, unbound after."""
    keyring = Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load()
    default_keyring.bind(keyring)
    try:
        yield keyring
    finally:
        default_keyring.unbind()


def memory_trail() -> AuditTrail:
    return AuditTrail(MemoryAuditSink(), key=secrets.token_bytes(32))


def actions(trail: AuditTrail) -> list[str]:
    return [record.event["action"] for record in trail.sink.records()]


@attrs.frozen
class Models:
    """A fresh schema: customers (column-scoped, blind index on email) and their orders
    (row-bound and subject-scoped, a blind index on the tracking code)."""

    base: type[DeclarativeBase]
    customer: type[Any]
    order: type[Any]

    def create(self, engine: sa.Engine) -> None:
        self.base.metadata.create_all(engine)


def make_models(on_destroyed: str = "raise") -> Models:
    class Base(DeclarativeBase):
        pass

    class Customer(Base):
        __tablename__ = "customers"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        email: Mapped[str | None] = mapped_column(EncryptedString(), nullable=True)
        email_index: Mapped[bytes | None] = mapped_column(
            BlindIndex("email", size=16, normalizer=normalize_email), nullable=True
        )
        name: Mapped[str | None] = mapped_column(EncryptedString(), nullable=True)
        country: Mapped[str | None] = mapped_column(sa.String(2), nullable=True)
        created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(), default=T0)
        anonymized: Mapped[bool] = mapped_column(default=False)

    class Order(Base):
        __tablename__ = "orders"
        id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
        customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id"), index=True)
        address: Mapped[str] = mapped_column(EncryptedString())
        tracking: Mapped[str | None] = mapped_column(EncryptedString(), nullable=True)
        tracking_index: Mapped[bytes | None] = mapped_column(
            BlindIndex("tracking", size=16), nullable=True
        )
        total: Mapped[Decimal | None] = mapped_column(EncryptedNumeric(), nullable=True)
        placed_on: Mapped[dt.date] = mapped_column(default=dt.date(2026, 1, 2))

    encrypt_rows(Order, row="id", subject="customer_id", on_destroyed=on_destroyed)  # type: ignore[arg-type]
    return Models(Base, Customer, Order)


def populate(models: Models, session: sa.orm.Session, *ids: int) -> None:
    """Customers *ids*, each with two orders."""
    for i in ids:
        session.add(
            models.customer(id=i, email=f"c{i}@example.com", name=f"Customer {i}", country="DE")
        )
    session.flush()
    for i in ids:
        for n in range(2):
            session.add(
                models.order(
                    customer_id=i,
                    address=f"{n} Main St {i}",
                    tracking=f"TRK-{i}-{n}",
                    total=Decimal(f"{i}.{n}5"),
                )
            )
    session.commit()
