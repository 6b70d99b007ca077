"""An erasure locks the subject's rows: a write racing it cannot land in an erased row,
on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from models import Models, engine_for, keyring_bound, make_models, memory_trail, populate
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from securecustomer import Keyring
from securecustomer.privacy import NO_LEGAL_HOLDS, erase_subject, register_subject

ALICE = 7001


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    yield from keyring_bound()


def impatient(engine: sa.Engine) -> sa.Engine:
    """A second engine on the same database whose writes give up on a lock soon (rather
    than wait for the erasure that runs in this very thread)."""
    name = engine.dialect.name
    if name == "sqlite":
        args: dict[str, Any] = {"timeout": 0.2}
    elif name == "postgresql":
        args = {"options": "-c lock_timeout=300"}
    else:
        args = {"init_command": "SET SESSION innodb_lock_wait_timeout = 1"}
    return sa.create_engine(engine.url, poolclass=NullPool, connect_args=args)


class TestRacingWrite:
    """A write of the subject's row while erase_subject runs waits until it commits."""

    @pytest.mark.parametrize("with_orders", [True, False], ids=["orders-first", "alone"])
    def test_write_during_anonymization(
        self, engine: sa.Engine, keyring: Keyring, with_orders: bool
    ) -> None:
        """With the orders erased first, the customer is the second table the erasure
        changes; alone, it is the first (SQLite then holds no write lock yet)."""
        models: Models = make_models()
        other = impatient(engine)
        outcome: list[str] = []

        def racing_write() -> None:
            """The application writes the customer's e-mail from another connection, after
            the erasure read the row (its e-mail was NULL) and before it wrote it."""
            if outcome:
                return
            try:
                with Session(other) as session:
                    customer = session.get(models.customer, ALICE)
                    assert customer is not None
                    customer.email = "racing@example.com"
                    session.commit()
                outcome.append("written")
            except sa.exc.OperationalError:
                outcome.append("blocked")

        def name(value: Any) -> str:
            racing_write()
            return "erased"

        register_subject(models.customer, subject="id", erase="anonymize", anonymize={"name": name})
        register_subject(models.order, subject="customer_id", erase="shred")
        models.create(engine)
        with Session(engine) as session:
            populate(models, session, ALICE)
            customer = session.get(models.customer, ALICE)
            assert customer is not None
            customer.email = None
            session.commit()

        try:
            with Session(engine) as session:
                chosen = [models.customer, models.order] if with_orders else [models.customer]
                receipt = erase_subject(
                    session, ALICE, trail=memory_trail(), models=chosen, holds=NO_LEGAL_HOLDS
                )
        finally:
            other.dispose()

        assert ["blocked"] == outcome
        assert {"Customer": 1} == dict(receipt.anonymized)
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT email, name FROM customers")).one()
        assert row.email is None  # no value of the racing write in the erased row
        with Session(engine) as session:
            customer = session.get(models.customer, ALICE)
            assert customer is not None
            assert (None, "erased") == (customer.email, customer.name)
