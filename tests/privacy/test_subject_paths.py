"""Personal data one or more foreign keys away from the subject (order items of a
customer), registered through a relationship path: exported and erased in every mode, on
SQLite, PostgreSQL and MariaDB (issue 15, item 11)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from models import engine_for, keyring_bound, memory_trail
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from securecustomer import Keyring
from securecustomer.audit import AuditTrail
from securecustomer.crypto import KeyState
from securecustomer.exceptions import ConfigurationError
from securecustomer.privacy import (
    DataInventory,
    classify,
    erase_subject,
    export_subject,
    register_subject,
)
from securecustomer.sqlalchemy import EncryptedString, encrypt_rows

ALICE, BOB = 41, 42


@attrs.frozen
class Shop:
    base: type[DeclarativeBase]
    customer: type[Any]
    order: type[Any]
    item: type[Any]


def make_shop(*, item_scoped: bool = False) -> Shop:
    """customer <- order <- order item; the item's note is encrypted (under a key per
    order when *item_scoped*)."""

    class Base(DeclarativeBase):
        pass

    class Customer(Base):
        __tablename__ = "path_customers"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        name: Mapped[str | None] = mapped_column(EncryptedString(), info=classify("identifier"))

    class Order(Base):
        __tablename__ = "path_orders"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        customer_id: Mapped[int] = mapped_column(sa.ForeignKey("path_customers.id"))
        customer: Mapped[Customer] = relationship()

    class OrderItem(Base):
        __tablename__ = "path_items"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        order_id: Mapped[int] = mapped_column(sa.ForeignKey("path_orders.id"))
        order: Mapped[Order] = relationship()
        product: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
        note: Mapped[str | None] = mapped_column(
            EncryptedString(), nullable=True, info=classify("other", sensitivity="confidential")
        )

    if item_scoped:
        encrypt_rows(OrderItem, subject="order_id", subject_prefix="order:")
    return Shop(Base, Customer, Order, OrderItem)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    yield from keyring_bound()


@pytest.fixture
def trail() -> AuditTrail:
    return memory_trail()


def fill(shop: Shop, engine: sa.Engine) -> None:
    """Alice has orders 1 and 2, Bob order 3; two items per order."""
    shop.base.metadata.create_all(engine)
    with Session(engine) as session:
        for customer in (ALICE, BOB):
            session.add(shop.customer(id=customer, name=f"name {customer}"))
        session.flush()
        for order, customer in ((1, ALICE), (2, ALICE), (3, BOB)):
            session.add(shop.order(id=order, customer_id=customer))
        session.flush()
        for order in (1, 2, 3):
            for n in range(2):
                item = 10 * order + n
                session.add(
                    shop.item(id=item, order_id=order, product=f"p{item}", note=f"note {item}")
                )
        session.commit()


def register(shop: Shop, erase: str, **kwargs: Any) -> None:
    register_subject(
        shop.customer,
        subject="id",
        erase="delete" if erase == "delete" else "anonymize",
        anonymize={} if erase == "delete" else {"name": None},
    )
    register_subject(
        shop.order, subject="customer_id", erase="delete" if erase == "delete" else "anonymize"
    )
    register_subject(shop.item, via="order.customer_id", erase=erase, **kwargs)  # type: ignore[arg-type]


def every(shop: Shop) -> list[type[Any]]:
    """The shop's models (other tests register models of the same names)."""
    return [shop.customer, shop.order, shop.item]


def items(shop: Shop, engine: sa.Engine) -> dict[int, tuple[str | None, str | None]]:
    with Session(engine) as session:
        rows = session.execute(sa.select(shop.item.id, shop.item.product, shop.item.note))
        return {row[0]: (row[1], row[2]) for row in rows}


class TestExport:
    """The rows found through the path are exported, and only the subject's."""

    def test_two_level_path(self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail) -> None:
        shop = make_shop()
        register(shop, "delete")
        fill(shop, engine)

        with Session(engine) as session:
            export = export_subject(session, ALICE, trail=trail, models=every(shop))

        rows = export.records["OrderItem"]
        assert [10, 11, 20, 21] == [row["id"] for row in rows]
        assert ["note 10", "note 11", "note 20", "note 21"] == [row["note"] for row in rows]
        (event,) = [r.event for r in trail.sink.records()]
        assert "OrderItem.note" in event["fields"]

    def test_attribute_path(self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail) -> None:
        shop = make_shop()
        register_subject(shop.item, via=[shop.item.order, shop.order.customer_id])
        fill(shop, engine)

        with Session(engine) as session:
            export = export_subject(session, BOB, trail=trail, models=[shop.item])

        assert [30, 31] == [row["id"] for row in export.records["OrderItem"]]

    def test_path_to_the_subject_table(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        shop = make_shop()
        register_subject(shop.item, via="order.customer.id")
        fill(shop, engine)

        with Session(engine) as session:
            export = export_subject(session, BOB, trail=trail, models=[shop.item])

        assert [30, 31] == [row["id"] for row in export.records["OrderItem"]]


class TestErase:
    """Each erasure mode reaches the rows found through the path, and no other row."""

    def test_delete(self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail) -> None:
        shop = make_shop()
        register(shop, "delete")
        fill(shop, engine)

        with Session(engine) as session:
            receipt = erase_subject(session, ALICE, trail=trail, models=every(shop))

        assert {"OrderItem": 4, "Order": 2, "Customer": 1} == dict(receipt.deleted)
        assert [30, 31] == sorted(items(shop, engine))

    def test_anonymize(self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail) -> None:
        shop = make_shop()
        register(shop, "anonymize", anonymize={"product": lambda _: "erased"})
        fill(shop, engine)

        with Session(engine) as session:
            receipt = erase_subject(session, ALICE, trail=trail, models=every(shop))

        assert 4 == receipt.anonymized["OrderItem"]
        found = items(shop, engine)
        assert all(found[i] == ("erased", None) for i in (10, 11, 20, 21))
        assert (("p30", "note 30"), ("p31", "note 31")) == (found[30], found[31])

    def test_shred_destroys_the_keys_the_rows_are_under(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        shop = make_shop(item_scoped=True)
        register(shop, "shred")
        fill(shop, engine)

        with Session(engine) as session:
            receipt = erase_subject(session, ALICE, trail=trail, models=[shop.item])

        assert {"OrderItem": 4} == dict(receipt.shredded)
        states = {s.scope: s.state for s in keyring.status() if s.scope}
        assert KeyState.DESTROYED is states["order:1"]
        assert KeyState.DESTROYED is states["order:2"]
        assert KeyState.ACTIVE is states["order:3"]
        with Session(engine) as session:
            export = export_subject(session, ALICE, trail=trail, models=[shop.item])
            assert {"OrderItem": ("note",)} == dict(export.erased)
            bob = export_subject(session, BOB, trail=trail, models=[shop.item])
        assert ["note 30", "note 31"] == [row["note"] for row in bob.records["OrderItem"]]

    def test_rerun_finds_nothing(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        shop = make_shop()
        register(shop, "delete")
        fill(shop, engine)
        with Session(engine) as session:
            erase_subject(session, ALICE, trail=trail, models=every(shop))

        with Session(engine) as session:
            assert erase_subject(session, ALICE, trail=trail, models=every(shop)).already_erased


class TestRegistration:
    """A path that does not lead to a plain subject column is refused, naming the step."""

    @pytest.mark.parametrize(
        ("via", "message"),
        [
            ("basket.customer_id", "OrderItem has no relationship 'basket'"),
            ("order", "end at a column"),
            ("order.customer", "must end at a column"),
            ("product.customer_id", "OrderItem has no relationship 'product'"),
            ("order.nothing", "Order has no column attribute 'nothing'"),
            ("order.customer.name", "must be a plain column"),
            ("", "end at a column"),
        ],
    )
    def test_refused(self, via: str, message: str) -> None:
        shop = make_shop()

        with pytest.raises(ConfigurationError, match=message):
            register_subject(shop.item, via=via)

    def test_subject_and_via_exclusive(self) -> None:
        shop = make_shop()

        with pytest.raises(ConfigurationError, match=r"either subject= .* or via="):
            register_subject(shop.item, subject="order_id", via="order.customer_id")
        with pytest.raises(ConfigurationError, match=r"either subject= .* or via="):
            register_subject(shop.item)

    def test_attribute_path_must_chain(self) -> None:
        shop = make_shop()

        with pytest.raises(ConfigurationError, match="does not start"):
            register_subject(shop.item, via=[shop.customer.id])

    def test_described(self) -> None:
        shop = make_shop()

        registered = register_subject(shop.item, via="order.customer_id")

        assert ("order",) == registered.via
        assert "customer_id" == registered.subject


class TestInventory:
    """Personal data in a table no registered model reaches is flagged."""

    def test_unreached_table(self) -> None:
        shop = make_shop()
        register_subject(shop.customer, subject="id")

        inventory = DataInventory.from_metadata(shop.base.metadata)

        found = {(f.code, f.where) for f in inventory.findings}
        assert ("unreached-personal-data", "path_items") in found
        assert ("unreached-personal-data", "path_customers") not in found
        assert ("unreached-personal-data", "path_orders") not in found  # nothing classified

    def test_reached_through_a_path(self) -> None:
        shop = make_shop()
        register_subject(shop.customer, subject="id")
        register_subject(shop.item, via="order.customer_id")

        inventory = DataInventory.from_metadata(shop.base.metadata)

        assert not any(f.code == "unreached-personal-data" for f in inventory.findings)
