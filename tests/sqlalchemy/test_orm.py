"""Row binding and subject scoping through the ORM, on real databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.crypto import Context
from securecustomer.exceptions import (
    ConfigurationError,
    DecryptionError,
    KeyDestroyedError,
    KeyStateError,
    UnsupportedQueryError,
)
from securecustomer.keys import MemoryKeyStore
from securecustomer.sqlalchemy import (
    ERASED,
    EncryptedString,
    EncryptedText,
    Sealed,
    default_keyring,
    encrypt_rows,
)


class Counting(MemoryKeyStore):
    """A memory store that counts reads of data keys."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def data_keys(self, scope: str) -> Any:
        self.reads += 1
        return super().data_keys(scope)

    def data_keys_many(self, scopes: list[str]) -> Any:
        self.reads += 1
        return super().data_keys_many(scopes)


@pytest.fixture
def store() -> Counting:
    return Counting()


@pytest.fixture
def keyring(store: Counting) -> Iterator[Keyring]:
    keyring = Keyring(LocalKeyProvider.generate(), store).load()
    default_keyring.bind(keyring)
    yield keyring
    default_keyring.unbind()


def models(on_destroyed: str = "raise") -> tuple[Any, Any]:
    """A fresh declarative base with an Order model bound to its row and its customer."""

    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = "orders"
        id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
        customer_id: Mapped[int]
        address: Mapped[str] = mapped_column(EncryptedString())
        note: Mapped[str | None] = mapped_column(EncryptedText())

    encrypt_rows(Order, row="id", subject="customer_id", on_destroyed=on_destroyed)  # type: ignore[arg-type]
    return Base, Order


class TestRowBinding:
    """Values are bound to their row: copies to another row fail."""

    def test_round_trip_and_update(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([order(customer_id=i % 5, address=f"{i} Main St") for i in range(20)])
            session.commit()
            first = session.scalars(sa.select(order).limit(1)).one()
            assert first.address.endswith("Main St")  # plaintext after the flush, no token
            first.note = "ring twice"
            session.commit()
            first_id = first.id
        with Session(engine) as session:
            rows = session.scalars(sa.select(order)).all()
            assert 20 == len(rows)
            assert {f"{i} Main St" for i in range(20)} == {r.address for r in rows}
            assert "ring twice" == session.get(order, first_id).note

    def test_copied_to_another_row(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([order(customer_id=1, address="A"), order(customer_id=1, address="B")])
            session.commit()
        with engine.begin() as conn:
            first, second = conn.execute(sa.text("SELECT id, address FROM orders")).all()
            conn.execute(
                sa.text("UPDATE orders SET address = :a WHERE id = :i"),
                {"a": first.address, "i": second.id},
            )
        with Session(engine) as session, pytest.raises(DecryptionError):
            session.scalars(sa.select(order)).all()

    def test_core_reads_give_sealed_tokens(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(order(customer_id=1, address="A"))
            session.commit()
        with engine.connect() as conn:
            value = conn.execute(sa.select(order.__table__.c.address)).scalar_one()
        assert isinstance(value, Sealed)
        assert "Sealed" in repr(value)

    def test_core_writes_are_refused(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with pytest.raises(UnsupportedQueryError), engine.begin() as conn:
            conn.execute(
                sa.insert(order.__table__),
                [{"id": uuid.uuid4(), "customer_id": 1, "address": "x", "note": None}],
            )

    def test_needs_client_side_identity(self, engine: sa.Engine, keyring: Keyring) -> None:
        class Base(DeclarativeBase):
            pass

        class Ticket(Base):
            __tablename__ = "tickets"
            id: Mapped[int] = mapped_column(primary_key=True)
            body: Mapped[str] = mapped_column(EncryptedString())

        encrypt_rows(Ticket, row="id")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(Ticket(body="x"))
            with pytest.raises(ConfigurationError, match="client-side"):
                session.commit()
            session.rollback()
            session.add(Ticket(id=7, body="explicit ids work"))
            session.commit()
            assert "explicit ids work" == session.get(Ticket, 7).body  # type: ignore[union-attr]

    def test_bad_configuration(self) -> None:
        class Base(DeclarativeBase):
            pass

        class Plain(Base):
            __tablename__ = "plain"
            id: Mapped[int] = mapped_column(primary_key=True)
            secret: Mapped[str] = mapped_column(EncryptedString())

        with pytest.raises(ConfigurationError, match="needs row="):
            encrypt_rows(Plain)
        with pytest.raises(ConfigurationError, match="no column attribute 'owner'"):
            encrypt_rows(Plain, subject="owner")
        encrypt_rows(Plain, row="id")
        with pytest.raises(ConfigurationError, match="already called"):
            encrypt_rows(Plain, row="id")


class TestLateEncryptRows:
    """encrypt_rows() binds every write even after create_all and a first query."""

    def test_after_create_all(self, engine: sa.Engine, keyring: Keyring) -> None:
        class Base(DeclarativeBase):
            pass

        class Note(Base):
            __tablename__ = "notes"
            id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
            body: Mapped[str] = mapped_column(EncryptedText())

        Base.metadata.create_all(engine)
        encrypt_rows(Note, row="id")
        with pytest.raises(UnsupportedQueryError), engine.begin() as conn:
            conn.execute(sa.insert(Note.__table__), [{"id": uuid.uuid4(), "body": "Core"}])
        with Session(engine) as session:
            session.add(Note(body="ORM"))
            session.commit()
        with Session(engine) as session:
            assert ["ORM"] == [n.body for n in session.scalars(sa.select(Note))]

    def test_mixin_columns_are_bound_one_by_one(self, engine: sa.Engine, keyring: Keyring) -> None:
        class Base(DeclarativeBase):
            pass

        class HasSecret:
            id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
            secret: Mapped[str] = mapped_column(EncryptedString())

        class Bound(HasSecret, Base):
            __tablename__ = "bound"

        class Free(HasSecret, Base):
            __tablename__ = "free"

        Base.metadata.create_all(engine)
        with engine.connect() as conn:  # warm the dialect copies of both columns
            conn.execute(sa.select(Bound.__table__)).all()
            conn.execute(sa.select(Free.__table__)).all()
        encrypt_rows(Bound, row="id")
        with engine.begin() as conn:
            conn.execute(sa.insert(Free.__table__), [{"id": uuid.uuid4(), "secret": "Core"}])
            assert "Core" == conn.execute(sa.select(Free.__table__.c.secret)).scalar_one()
            with pytest.raises(UnsupportedQueryError):
                conn.execute(sa.insert(Bound.__table__), [{"id": uuid.uuid4(), "secret": "x"}])

    def test_after_create_all_and_queries(self, engine: sa.Engine, keyring: Keyring) -> None:
        class Base(DeclarativeBase):
            pass

        class Order(Base):
            __tablename__ = "orders"
            id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
            customer_id: Mapped[int]
            address: Mapped[str] = mapped_column(EncryptedString())

        table: sa.Table = Order.__table__  # type: ignore[assignment]
        Base.metadata.create_all(engine)

        def row(customer: int) -> dict[str, Any]:
            return {"id": uuid.uuid4(), "customer_id": customer, "address": "Core"}

        # Dialect copies of the type, bind and result processors and compiled
        # statements are all made and cached before encrypt_rows() is called.
        with engine.connect() as conn:
            conn.execute(sa.insert(table), [row(1)])
            conn.execute(sa.insert(table), [row(1), row(1)])
            assert "Core" == conn.execute(sa.select(table.c.address)).scalars().first()
            conn.rollback()
        with Session(engine) as session:
            session.add(Order(customer_id=1, address="ORM"))
            session.flush()
            assert ["ORM"] == [o.address for o in session.scalars(sa.select(Order))]
            session.rollback()

        encrypt_rows(Order, row="id", subject="customer_id")

        with pytest.raises(UnsupportedQueryError), engine.begin() as conn:
            conn.execute(sa.insert(table), [row(2)])
        with pytest.raises(UnsupportedQueryError), engine.begin() as conn:
            conn.execute(sa.insert(table), [row(2), row(2)])
        with pytest.raises(UnsupportedQueryError), Session(engine) as session:
            session.execute(sa.insert(Order), [row(2), row(2)])
        with Session(engine) as session:
            session.add_all([Order(customer_id=c, address=str(c)) for c in (2, 3)])
            session.commit()
        with engine.connect() as conn:
            assert 2 == conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            sealed = conn.execute(
                sa.select(table.c.address).where(table.c.customer_id == 2)
            ).scalar_one()
        assert isinstance(sealed, Sealed)
        column_cipher = keyring.cipher("orders.address")
        with pytest.raises(DecryptionError):  # written with the row and subject, not the column
            column_cipher.decrypt(sealed.token, context=Context("orders", "address"))
        with Session(engine) as session:
            assert ["2"] == [
                o.address for o in session.scalars(sa.select(Order).where(Order.customer_id == 2))
            ]
        keyring.destroy("subject:2")
        with Session(engine) as session:
            with pytest.raises(KeyDestroyedError):
                session.scalars(sa.select(Order).where(Order.customer_id == 2)).all()
            assert ["3"] == [
                o.address for o in session.scalars(sa.select(Order).where(Order.customer_id == 3))
            ]


class TestSubjects:
    """Subject scopes: one key per customer, erasure by key destruction, batched loads."""

    def test_destroy_erases_one_subject_everywhere(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        base, order = models(on_destroyed="erased")
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([order(customer_id=c, address=f"addr {c}") for c in (1, 2, 2, 3)])
            session.commit()
        keyring.destroy("subject:2")
        with Session(engine) as session:
            by_customer = {
                (o.customer_id, o.address is ERASED) for o in session.scalars(sa.select(order))
            }
        assert {(1, False), (2, True), (3, False)} == by_customer

    def test_destroyed_subject_raises_by_default(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(order(customer_id=9, address="gone"))
            session.commit()
        keyring.destroy("subject:9")
        with Session(engine) as session:
            with pytest.raises(KeyDestroyedError):
                session.scalars(sa.select(order)).all()
            session.add(order(customer_id=9, address="new row for an erased subject"))
            with pytest.raises(KeyStateError, match="was destroyed: only Keyring.recreate"):
                session.commit()

    def test_bulk_load_reads_keys_once(
        self, engine: sa.Engine, keyring: Keyring, store: Counting
    ) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([order(customer_id=c, address=f"a{c}") for c in range(300)])
            session.commit()
        cold = Keyring(keyring.provider, store).load()
        default_keyring.bind(cold)
        store.reads = 0
        with Session(engine) as session:
            rows = session.scalars(sa.select(order)).all()
        assert {f"a{c}" for c in range(300)} == {r.address for r in rows}
        assert 1 == store.reads

    def test_streamed_results_still_decrypt(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([order(customer_id=c, address=f"a{c}") for c in range(30)])
            session.commit()
        with Session(engine) as session:
            streamed = session.scalars(sa.select(order).execution_options(yield_per=7))
            assert {f"a{c}" for c in range(30)} == {r.address for r in streamed}

    def test_changing_the_subject_reencrypts(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            item = order(customer_id=1, address="moving", note="n")
            session.add(item)
            session.commit()
            item.customer_id = 2
            session.commit()
        keyring.destroy("subject:1")
        with Session(engine) as session:
            moved = session.scalars(sa.select(order)).one()
            assert ("moving", "n", 2) == (moved.address, moved.note, moved.customer_id)

    def test_missing_subject(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(order(customer_id=None, address="x"))
            with pytest.raises((ConfigurationError, sa.exc.IntegrityError)):
                session.commit()


class TestAsync:
    """AsyncSession works the same way (aiosqlite, asyncpg, aiomysql)."""

    @pytest.mark.anyio
    async def test_async_session(self, async_engine: AsyncEngine, keyring: Keyring) -> None:
        base, order = models()
        async with async_engine.begin() as conn:
            await conn.run_sync(base.metadata.create_all)
        async with AsyncSession(async_engine) as session:
            session.add_all([order(customer_id=c, address=f"a{c}") for c in range(10)])
            await session.commit()
        async with AsyncSession(async_engine) as session:
            rows = (await session.scalars(sa.select(order))).all()
        assert {f"a{c}" for c in range(10)} == {r.address for r in rows}
        async with async_engine.begin() as conn:
            await conn.run_sync(base.metadata.drop_all)


class TestFailedFlush:
    """A flush that fails after sealing leaves plaintexts, and a retry writes good tokens."""

    def test_retry_after_integrity_error(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        same = uuid.uuid4()
        with Session(engine) as session:
            session.add(order(id=same, customer_id=1, address="first"))
            session.commit()
            duplicate = order(id=same, customer_id=1, address="second")
            session.add(duplicate)
            with pytest.raises(sa.exc.IntegrityError):
                session.commit()
            session.rollback()
            assert "second" == duplicate.address
            duplicate.id = fresh = uuid.uuid4()
            session.add(duplicate)
            session.commit()
        with Session(engine) as session:
            assert "second" == session.get(order, fresh).address


class TestKeyCreation:
    """Keys are created before a flush writes, and never by a read."""

    def test_sqlite_key_store_in_the_same_file(self, tmp_path: Any) -> None:
        from securecustomer.sqlalchemy import SqlKeyStore

        class Base(DeclarativeBase):
            pass

        class Customer(Base):
            __tablename__ = "customers"
            id: Mapped[int] = mapped_column(primary_key=True)
            email: Mapped[str] = mapped_column(EncryptedString())

        class Contact(Base):
            __tablename__ = "contacts"
            id: Mapped[int] = mapped_column(primary_key=True)
            phone: Mapped[str] = mapped_column(EncryptedString())

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
        store = SqlKeyStore(engine)
        store.create()
        Base.metadata.create_all(engine)
        default_keyring.bind(Keyring(LocalKeyProvider.generate(), store).load())
        try:
            with Session(engine) as session:
                session.add_all([Customer(id=1, email="a@b.c"), Contact(id=1, phone="+41 1")])
                session.commit()
                assert "+41 1" == session.get(Contact, 1).phone  # type: ignore[union-attr]
        finally:
            default_keyring.unbind()
            engine.dispose()
        assert {"customers.email", "contacts.phone"} == {r.scope for r in store.all_data_keys()}

    def test_reading_creates_no_key(self, engine: sa.Engine, keyring: Keyring) -> None:
        base, order = models()
        base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(order(customer_id=7, address="street 1"))
            session.commit()
        other = Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load()
        default_keyring.bind(other)
        with Session(engine) as session, pytest.raises(DecryptionError):
            session.scalars(sa.select(order)).all()
        assert [] == other.store.all_data_keys()
