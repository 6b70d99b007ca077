"""Blind indexes on SQLite, PostgreSQL and MariaDB: computed at flush, searched, rotated."""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.schema import CreateTable

from securecustomer.crypto import KeyState
from securecustomer.exceptions import (
    ConfigurationError,
    SecureCustomerError,
    UnsupportedQueryError,
    UnsupportedValueError,
)
from securecustomer.keys import Keyring
from securecustomer.sqlalchemy import (
    ERASED,
    BlindIndex,
    EncryptedBytes,
    EncryptedDate,
    EncryptedDateTime,
    EncryptedInteger,
    EncryptedJSON,
    EncryptedNumeric,
    EncryptedString,
    EncryptedUUID,
    KeyringSlot,
    Sealed,
    asearch,
    blind_match,
    casefold,
    compose,
    confirm_matches,
    digits_only,
    encrypt_rows,
    nfkc,
    normalize_email,
    normalize_phone,
    reindex,
    search,
    strip,
)
from securecustomer.sqlalchemy._blind import _Bound
from securecustomer.sqlalchemy._orm import _PLAIN
from securecustomer.testing import memory_keyring

keys = KeyringSlot("blind-index-tests")


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "blind_customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[int] = mapped_column(default=1)
    email: Mapped[str | None] = mapped_column(EncryptedString(keyring=keys))
    email_index: Mapped[bytes | None] = mapped_column(
        BlindIndex("email", normalizer=normalize_email, size=8), index=True
    )
    phone: Mapped[str | None] = mapped_column(EncryptedString(keyring=keys))
    phone_index: Mapped[bytes | None] = mapped_column(
        BlindIndex("phone", normalizer=normalize_phone, size=4)
    )


class Crowded(Base):
    """One-byte tokens: 256 buckets, so a few hundred rows must collide."""

    __tablename__ = "blind_crowded"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(EncryptedString(keyring=keys))
    name_index: Mapped[bytes] = mapped_column(BlindIndex("name", size=1))


class Order(Base):
    """Row-bound and subject-scoped: the source holds a Sealed token during the flush."""

    __tablename__ = "blind_orders"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[int]
    email: Mapped[str] = mapped_column(EncryptedString(keyring=keys))
    email_index: Mapped[bytes | None] = mapped_column(
        BlindIndex("email", normalizer=casefold, size=16)
    )


encrypt_rows(Order, row="id", subject="customer_id", on_destroyed="erased")


class Ticket(Base):
    """Sources of other types, named by column name or by the class attribute itself."""

    __tablename__ = "blind_tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str | None] = mapped_column("ref_col", EncryptedString(keyring=keys))
    reference_index: Mapped[bytes | None] = mapped_column(BlindIndex("reference", size=8))
    reference_by_column: Mapped[bytes | None] = mapped_column(BlindIndex("ref_col", size=4))
    number: Mapped[int | None] = mapped_column(EncryptedInteger(keyring=keys))
    number_index: Mapped[bytes | None] = mapped_column(BlindIndex(number, size=8))


class Contact(Base):
    """Two indexes on one source: exact and case-insensitive."""

    __tablename__ = "blind_contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(EncryptedString(keyring=keys))
    name_exact: Mapped[bytes] = mapped_column(BlindIndex("name", size=16))
    name_folded: Mapped[bytes] = mapped_column(BlindIndex("name", normalizer=casefold, size=8))


def index_type(column: Any) -> BlindIndex:
    """The BlindIndex type of a mapped index attribute."""
    column_type = column.property.columns[0].type
    assert isinstance(column_type, BlindIndex)
    return column_type


def ids(rows: list[Any]) -> list[Any]:
    return sorted(row.id for row in rows)


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    keyring = memory_keyring()
    keys.bind(keyring)
    try:
        yield keyring
    finally:
        keys.unbind()


@pytest.fixture
def session(engine: sa.Engine, keyring: Keyring) -> Iterator[Session]:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session


class TestSearch:
    """search() finds the rows whose normalised value equals the normalised search value."""

    def test_finds_the_row(self, session: Session) -> None:
        session.add_all([Customer(id=1, email="ada@example.com"), Customer(id=2, email="b@x")])
        session.commit()

        assert [1] == ids(search(session, Customer.email, "ada@example.com"))

    def test_normaliser(self, session: Session) -> None:
        session.add_all([Customer(id=1, email="ada@example.com"), Customer(id=2, email="b@x")])
        session.commit()

        found = search(session, Customer.email, "Ada@Example.COM ")

        assert [(1, "ada@example.com")] == [(c.id, c.email) for c in found]

    def test_phone_numbers_match_on_their_digits(self, session: Session) -> None:
        session.add_all([Customer(id=1, phone="(44) 20-7946-0000"), Customer(id=2, phone="1")])
        session.commit()

        assert [1] == ids(search(session, Customer.phone, "+44 20 7946 0000"))

    def test_no_match(self, session: Session) -> None:
        session.add(Customer(id=1, email="ada@example.com"))
        session.commit()

        assert [] == search(session, Customer.email, "grace@example.com")

    def test_several_rows(self, session: Session) -> None:
        session.add_all(
            [Customer(id=i, email="ADA@example.com" if i % 2 else "x@y") for i in range(1, 7)]
        )
        session.commit()

        assert [1, 3, 5] == ids(search(session, Customer.email, "ada@example.com"))

    def test_extra_criteria(self, session: Session) -> None:
        session.add_all([Customer(id=i, tenant=i, email="ada@example.com") for i in (1, 2, 3)])
        session.commit()

        found = search(session, Customer.email, "ada@example.com", Customer.tenant >= 2)

        assert [2, 3] == ids(found)

    def test_by_the_index_attribute(self, session: Session) -> None:
        session.add(Customer(id=1, email="ada@example.com"))
        session.commit()

        assert [1] == ids(search(session, Customer.email_index, "ADA@example.com"))

    def test_through_an_alias(self, session: Session) -> None:
        session.add(Customer(id=1, email="ada@example.com"))
        session.commit()
        alias = aliased(Customer)

        assert [1] == ids(search(session, alias.email, "ada@example.com"))

    def test_other_value_types_and_column_names(self, session: Session) -> None:
        session.add_all(
            [Ticket(id=1, reference="R-1", number=42), Ticket(id=2, reference="r-1", number=7)]
        )
        session.commit()

        assert [1] == ids(search(session, Ticket.reference_index, "R-1"))
        assert [1] == ids(search(session, Ticket.reference_by_column, "R-1"))
        assert [2] == ids(search(session, Ticket.number, 7))

    def test_two_indexes_on_one_source(self, session: Session) -> None:
        session.add_all([Contact(id=1, name="Ada"), Contact(id=2, name="ada")])
        session.commit()

        assert [1] == ids(search(session, Contact.name_exact, "Ada"))
        assert [1, 2] == ids(search(session, Contact.name_folded, "ADA"))

    def test_the_source_is_ambiguous_when_it_has_two_indexes(self, session: Session) -> None:
        with pytest.raises(UnsupportedQueryError, match="several blind indexes"):
            search(session, Contact.name, "Ada")

    def test_an_attribute_without_index(self, session: Session) -> None:
        with pytest.raises(UnsupportedQueryError, match=r"Customer\.tenant has no blind index"):
            search(session, Customer.tenant, 1)

    def test_a_value_of_the_wrong_type(self, session: Session) -> None:
        with pytest.raises(UnsupportedValueError, match="holds str values, got int"):
            search(session, Customer.email, 42)

    def test_null(self, session: Session) -> None:
        with pytest.raises(UnsupportedValueError, match="cannot search for NULL"):
            search(session, Customer.email, None)

    def test_the_stored_index_is_the_token_of_the_normalised_value(self, session: Session) -> None:
        session.add(Customer(id=1, email=" Ada@Example.com"))
        session.commit()
        index = index_type(Customer.email_index)

        stored = session.scalar(select(Customer.email_index))

        assert index.token("ada@example.com") == stored
        assert 8 == len(stored or b"")


class TestFalsePositives:
    """Values that share a truncated token are dropped by decrypt-and-compare."""

    def test_colliding_rows_are_removed(self, session: Session) -> None:
        names = [f"name-{i}" for i in range(300)]  # 300 values in 256 buckets
        session.add_all([Crowded(id=i, name=name) for i, name in enumerate(names, 1)])
        session.commit()
        index = index_type(Crowded.name_index)
        buckets: dict[bytes, list[str]] = defaultdict(list)
        for name in names:
            buckets[index.token(name)].append(name)
        shared = next(bucket for bucket in buckets.values() if len(bucket) > 1)
        wanted = shared[0]

        candidates = session.scalars(select(Crowded).where(blind_match(Crowded.name, wanted)))
        candidates_names = sorted(c.name for c in candidates)
        found = search(session, Crowded.name, wanted)

        assert sorted(shared) == candidates_names
        assert [wanted] == [c.name for c in found]
        assert [wanted] == [c.name for c in confirm_matches(found, Crowded.name, wanted)]


class TestValues:
    """NULL, empty strings, updates, and index values set by hand."""

    def test_null_source_gives_null_index(self, session: Session) -> None:
        session.add(Customer(id=1, email=None))
        session.commit()

        assert (None, None) == session.execute(select(Customer.email, Customer.email_index)).one()

    def test_empty_string_is_indexed(self, session: Session) -> None:
        session.add_all([Customer(id=1, email=""), Customer(id=2, email="   ")])
        session.commit()

        assert None not in session.scalars(select(Customer.email_index)).all()
        assert [1, 2] == ids(search(session, Customer.email, ""))

    def test_values_that_normalise_to_nothing_match_each_other(self, session: Session) -> None:
        session.add_all([Customer(id=1, phone="n/a"), Customer(id=2, phone="12")])
        session.commit()

        assert [1] == ids(search(session, Customer.phone, "unknown"))

    def test_update_changes_the_index(self, session: Session) -> None:
        customer = Customer(id=1, email="ada@example.com")
        session.add(customer)
        session.commit()
        before = customer.email_index

        customer.email = "grace@example.com"
        session.commit()

        assert before != customer.email_index
        assert [] == search(session, Customer.email, "ada@example.com")
        assert [1] == ids(search(session, Customer.email, "Grace@example.com"))

    def test_update_to_null(self, session: Session) -> None:
        customer = Customer(id=1, email="ada@example.com")
        session.add(customer)
        session.commit()

        customer.email = None
        session.commit()

        assert None is session.scalar(select(Customer.email_index))

    def test_an_index_set_by_hand_is_recomputed(self, session: Session) -> None:
        customer = Customer(id=1, email="ada@example.com", email_index=b"\0" * 8)
        session.add(customer)
        session.commit()
        assert "ada@example.com" == customer.email  # loaded: the flush computes from it
        customer.email_index = b"\1" * 8
        session.commit()

        assert index_type(Customer.email_index).token("ada@example.com") == session.scalar(
            select(Customer.email_index)
        )

    def test_a_hand_set_index_needs_its_source_loaded(self, session: Session) -> None:
        session.add(Customer(id=1, email="ada@example.com"))
        session.commit()
        customer = session.get(Customer, 1)
        assert customer is not None
        session.expire(customer, ["email"])

        customer.email_index = b"\1" * 8
        with pytest.raises(ConfigurationError, match="email is not loaded"):
            session.flush()
        session.rollback()

    def test_an_unrelated_update_keeps_the_index(self, session: Session) -> None:
        customer = Customer(id=1, email="ada@example.com")
        session.add(customer)
        session.commit()
        session.expire(customer, ["email", "email_index"])

        customer.tenant = 2
        session.commit()

        assert [1] == ids(search(session, Customer.email, "ada@example.com"))

    def test_tokens_are_not_bound_as_plain_values(self, session: Session) -> None:
        with pytest.raises(UnsupportedValueError) as raised:
            session.execute(select(Customer).where(Customer.email_index == "ada@example.com"))

        assert "ada" not in str(raised.value)


class TestRotation:
    """During a key rotation, rows indexed under every usable key version are found."""

    def test_rows_before_and_after_rotation(self, session: Session, keyring: Keyring) -> None:
        session.add(Customer(id=1, email="ada@example.com"))
        session.commit()
        keyring.rotate("blind_customers.email")
        session.add(Customer(id=2, email="ADA@example.com"))
        session.commit()

        stored = session.scalars(select(Customer.email_index).order_by(Customer.id)).all()

        assert stored[0] != stored[1]
        assert [1, 2] == ids(search(session, Customer.email, "ada@example.com"))
        assert 2 == len(index_type(Customer.email_index).tokens("ada@example.com"))

    def test_reindex_then_retire_the_old_key(self, session: Session, keyring: Keyring) -> None:
        session.add(Customer(id=1, email="ada@example.com"))
        session.commit()
        keyring.rotate("blind_customers.email")
        old = [
            s.key_id
            for s in keyring.status()
            if s.key_id is not None and s.state is KeyState.DECRYPT_ONLY
        ]

        customer = session.get(Customer, 1)
        assert customer is not None
        flag_modified(customer, "email")  # re-encrypt under the new key
        reindex(customer)
        session.commit()
        for key_id in old:
            keyring.set_state(key_id, KeyState.DISABLED)
        session.expire_all()

        assert 1 == len(old)
        assert [1] == ids(search(session, Customer.email, "ada@example.com"))

    def test_a_disabled_key_stops_matching_its_rows(
        self, session: Session, keyring: Keyring
    ) -> None:
        session.add(Customer(id=1, email="ada@example.com"))
        session.commit()
        keyring.rotate("blind_customers.email")
        old = [
            s.key_id
            for s in keyring.status()
            if s.key_id is not None and s.state is KeyState.DECRYPT_ONLY
        ]
        keyring.set_state(old[0], KeyState.DISABLED)
        session.expire_all()

        assert [] == search(session, Customer.email, "ada@example.com")


class TestSubjectScoped:
    """Subject-scoped models are indexed under the column's own scope, so anyone can search."""

    def test_searchable_across_subjects(self, session: Session, keyring: Keyring) -> None:
        session.add_all(
            [
                Order(customer_id=1, email="Ada@example.com"),
                Order(customer_id=2, email="ada@EXAMPLE.com"),
                Order(customer_id=2, email="grace@example.com"),
            ]
        )
        session.commit()
        session.expire_all()

        found = search(session, Order.email, "ADA@example.com")

        assert [1, 2] == sorted(o.customer_id for o in found)
        assert {"Ada@example.com", "ada@EXAMPLE.com"} == {o.email for o in found}

    def test_the_index_does_not_depend_on_the_subject(self, session: Session) -> None:
        session.add_all(
            [Order(customer_id=1, email="ada@x.org"), Order(customer_id=2, email="Ada@X.org")]
        )
        session.commit()

        stored = session.scalars(select(Order.email_index)).all()

        assert [index_type(Order.email_index).token("ada@x.org")] * 2 == stored

    def test_update(self, session: Session) -> None:
        order = Order(customer_id=1, email="ada@x.org")
        session.add(order)
        session.commit()

        order.email = "grace@x.org"
        session.commit()
        session.expire_all()

        assert [] == search(session, Order.email, "ada@x.org")
        assert ["grace@x.org"] == [o.email for o in search(session, Order.email, "grace@x.org")]

    def test_erased_subjects_are_dropped_and_reindexed_to_null(
        self, session: Session, keyring: Keyring
    ) -> None:
        session.add_all(
            [Order(customer_id=1, email="ada@x.org"), Order(customer_id=2, email="ada@x.org")]
        )
        session.commit()
        keyring.destroy("subject:1")
        session.expire_all()

        found = search(session, Order.email, "ada@x.org")
        erased = session.scalars(select(Order).where(Order.customer_id == 1)).one()
        reindex(erased)
        session.commit()

        assert [2] == [o.customer_id for o in found]
        assert ERASED is erased.email
        assert None is erased.email_index

    def test_the_plaintext_is_read_when_the_source_was_sealed_first(self) -> None:
        # What _Bound does if encrypt_rows' before_insert ran before the index's.
        index = BlindIndex("email", normalizer=casefold, size=16)
        order = Order(customer_id=1, email="ignored")
        state = sa.inspect(order)
        state.dict["email"] = Sealed(b"\0" * 40)
        state.info[_PLAIN] = {"email": "Ada@x.org"}
        bound = _Bound("email_index", "email", index_type(Order.email_index))
        keys.bind(memory_keyring())
        try:
            assert bound.index.token("ada@x.org") == bound.value(state)
            del state.info[_PLAIN]
            with pytest.raises(ConfigurationError, match="holds a sealed token"):
                bound.value(state)
        finally:
            keys.unbind()
        assert "email" == index.source


class TestCore:
    """Core tables: the index column type resolves its source by column name."""

    def test_insert_and_match(self, engine: sa.Engine, keyring: Keyring) -> None:
        metadata = MetaData()
        table = Table(
            "blind_core",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("email", EncryptedString(keyring=keys)),
            Column("email_index", BlindIndex("email", normalizer=normalize_email, size=8)),
        )
        index = table.c.email_index.type
        assert isinstance(index, BlindIndex)
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(
                insert(table),
                [
                    {"id": 1, "email": "ada@x.org", "email_index": index.token("ada@x.org")},
                    {"id": 2, "email": "bob@x.org", "email_index": index.token("bob@x.org")},
                ],
            )
            rows = connection.execute(
                select(table).where(blind_match(table.c.email, "ADA@x.org"))
            ).all()

        assert [(1, "ada@x.org")] == [(r.id, r.email) for r in rows]
        assert index.matches(rows[0].email, " ADA@X.org")
        assert not index.matches(None, "ada@x.org")
        with pytest.raises(UnsupportedQueryError, match="search\\(\\) needs a mapped attribute"):
            search(Session(engine), table.c.email, "ada@x.org")

    def test_a_sealed_value_cannot_be_compared(self, keyring: Keyring) -> None:
        index = index_type(Order.email_index)

        with pytest.raises(UnsupportedQueryError, match="row-bound or subject-scoped"):
            index.matches(Sealed(b"\0" * 40), "ada@x.org")

    def test_the_index_column_itself(self, keyring: Keyring) -> None:
        column = Customer.__table__.c.email_index
        index = index_type(Customer.email_index)

        assert [] == blind_match(column, "Ada@x.org").right.value  # no key yet, no match
        token = index.token("ada@x.org")  # the first index written creates the key

        assert [token] == blind_match(column, "Ada@x.org").right.value
        with pytest.raises(UnsupportedQueryError, match="needs a mapped attribute"):
            confirm_matches([], column, "ada@x.org")

    def test_a_column_as_source(self, keyring: Keyring) -> None:
        table = Table("t", MetaData(), Column("v", EncryptedString(keyring=keys)))
        index = BlindIndex(table.c.v, size=8)

        assert [index.token("x")] == index.tokens("x")

    def test_a_column_without_index(self) -> None:
        with pytest.raises(UnsupportedQueryError, match="no blind indexes"):
            blind_match(Ticket.__table__.c.id, 1)

    def test_not_a_column(self) -> None:
        with pytest.raises(UnsupportedQueryError, match="got str"):
            blind_match("email", "ada@x.org")


class TestColumnType:
    """The index column type: storage, DDL, bound values and repr."""

    @pytest.mark.parametrize(
        ("dialect", "ddl"),
        [
            (sqlite.dialect(), "email_index BLOB"),
            (postgresql.dialect(), "email_index BYTEA"),  # type: ignore[no-untyped-call]
            (mysql.dialect(), "email_index VARBINARY(8)"),
        ],
    )
    def test_ddl(self, dialect: sa.Dialect, ddl: str) -> None:
        assert ddl in str(CreateTable(Customer.__table__).compile(dialect=dialect))  # type: ignore[arg-type]

    def test_repr_names_no_secret(self) -> None:
        assert "BlindIndex('email', normalizer=normalize_email, size=8)" == repr(
            index_type(Customer.email_index)
        )
        assert "BlindIndex(blind_crowded.name, size=1)" == repr(
            BlindIndex(Crowded.__table__.c.name, size=1)
        )

    def test_literals_are_refused(self) -> None:
        statement = select(Customer.id).where(Customer.email_index == b"\0" * 8)

        with pytest.raises(sa.exc.CompileError) as raised:
            statement.compile(compile_kwargs={"literal_binds": True})

        assert isinstance(raised.value.__cause__, UnsupportedQueryError)

    def test_a_type_shared_by_two_tables_is_copied(self) -> None:
        shared = BlindIndex("email", size=8)
        metadata = MetaData()
        one = Table("one", metadata, Column("email", EncryptedString()), Column("i", shared))
        two = Table("two", metadata, Column("email", EncryptedString()), Column("i", shared))

        assert one.c.i.type is not two.c.i.type
        assert (one.c.email, two.c.email) == (
            one.c.i.type._resolve(),  # type: ignore[attr-defined]
            two.c.i.type._resolve(),  # type: ignore[attr-defined]
        )

    @pytest.mark.parametrize(
        ("source", "value"),
        [
            (EncryptedBytes, b"\x00\x01"),
            (EncryptedInteger, -5),
            (EncryptedDate, dt.date(2024, 2, 29)),
            (EncryptedUUID, uuid.UUID(int=7)),
        ],
    )
    def test_indexable_types(self, keyring: Keyring, source: type, value: object) -> None:
        table = Table(
            "typed",
            MetaData(),
            Column("v", source(keyring=keys)),
            Column("i", BlindIndex("v", size=8)),
        )
        index = table.c.i.type
        assert isinstance(index, BlindIndex)

        assert [index.token(value)] == index.tokens(value)
        assert index.matches(value, value)


class TestConfiguration:
    """Misconfigured indexes fail with a ConfigurationError that says what is wrong."""

    @pytest.mark.parametrize("size", [0, 33, 8.0, "8", None, True])
    def test_size(self, size: object) -> None:
        with pytest.raises(ConfigurationError, match="size must be an int from 1 to 32"):
            BlindIndex("email", size=size)  # type: ignore[arg-type]

    @pytest.mark.parametrize("source", ["", 42, None])
    def test_source(self, source: object) -> None:
        with pytest.raises(ConfigurationError, match="needs its source column"):
            BlindIndex(source, size=8)  # type: ignore[arg-type]

    def test_normalizer_must_be_callable(self) -> None:
        with pytest.raises(ConfigurationError, match="callable"):
            BlindIndex("email", size=8, normalizer="casefold")  # type: ignore[arg-type]

    def test_a_shadowed_normalizer(self) -> None:
        # class body: `email = mapped_column(...)` then `normalizer=email`
        with pytest.raises(ConfigurationError, match="shadows the normaliser's name"):
            BlindIndex("email", size=8, normalizer=mapped_column(String))  # type: ignore[arg-type]

    def test_a_mapped_column_as_source(self) -> None:
        source = mapped_column(EncryptedString())

        assert source.column is BlindIndex(source, size=8).source

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            (String(), "must be an encrypted column, not String"),
            (EncryptedNumeric(), "EncryptedNumeric values have no single encoding"),
            (EncryptedDateTime(), "EncryptedDateTime values have no single encoding"),
            (EncryptedJSON(), "EncryptedJSON values have no single encoding"),
        ],
    )
    def test_refused_sources(self, source: sa.types.TypeEngine[Any], message: str) -> None:
        table = Table(
            "refused", MetaData(), Column("v", source), Column("i", BlindIndex("v", size=8))
        )

        with pytest.raises(ConfigurationError, match=message):
            table.c.i.type.token("x")  # type: ignore[attr-defined]

    def test_normalizers_are_for_str_columns(self) -> None:
        table = Table(
            "numbers",
            MetaData(),
            Column("v", EncryptedInteger()),
            Column("i", BlindIndex("v", size=8, normalizer=strip)),
        )

        with pytest.raises(ConfigurationError, match="normalizers apply to str columns only"):
            table.c.i.type.token(1)  # type: ignore[attr-defined]

    def test_unknown_column(self) -> None:
        table = Table("t", MetaData(), Column("i", BlindIndex("nope", size=8)))

        with pytest.raises(ConfigurationError, match="t has no column 'nope'"):
            table.c.i.type.token("x")  # type: ignore[attr-defined]

    def test_a_plaintext_column_as_source(self) -> None:
        index = BlindIndex(Column("v", String), size=8)

        with pytest.raises(ConfigurationError, match=r"BlindIndex\(v, size=8\) must be an"):
            index.token("x")

    def test_not_attached(self) -> None:
        with pytest.raises(ConfigurationError, match="is not attached to a table"):
            BlindIndex("email", size=8).token("x")

    def test_a_normalizer_that_returns_no_str(self, keyring: Keyring) -> None:
        table = Table(
            "t",
            MetaData(),
            Column("v", EncryptedString(keyring=keys)),
            Column("i", BlindIndex("v", size=8, normalizer=len)),  # type: ignore[arg-type]
        )

        with pytest.raises(ConfigurationError, match=r"normalizer len of t\.i returned int"):
            table.c.i.type.token("secret")  # type: ignore[attr-defined]

    def test_an_unknown_attribute_on_a_model(self) -> None:
        class Other(DeclarativeBase):
            pass

        class Broken(Other):
            __tablename__ = "blind_broken"
            id: Mapped[int] = mapped_column(primary_key=True)
            email: Mapped[str] = mapped_column(EncryptedString())
            email_index: Mapped[bytes] = mapped_column(BlindIndex("emial", size=8))

        try:
            with pytest.raises(ConfigurationError, match=r"Broken\.email_index: .*'emial'"):
                sa.orm.configure_mappers()
        finally:
            Other.registry.dispose()

    def test_errors_are_secure_customer_errors(self) -> None:
        assert issubclass(ConfigurationError, SecureCustomerError)
        assert issubclass(UnsupportedValueError, TypeError)


class TestNormalizers:
    """Normalisers are plain callables from str to str."""

    @pytest.mark.parametrize(
        ("normalizer", "value", "expected"),
        [
            (casefold, "Straße", "strasse"),
            (nfkc, "\uff21\ufb01", "Afi"),
            (strip, " \t a b \u3000", "a b"),
            (digits_only, "+44 (0)20-\u0667\uff18", "4402078"),
            (digits_only, "n/a", ""),
            (normalize_email, " ADA@Example.COM\u3000", "ada@example.com"),
            (normalize_email, "\u212a@x.org", "k@x.org"),  # Kelvin sign
            (normalize_phone, "+1 (555) 010-0000", "15550100000"),
        ],
    )
    def test_values(self, normalizer: Any, value: str, expected: str) -> None:
        assert expected == normalizer(value)

    def test_compose_applies_left_to_right(self) -> None:
        name = compose(strip, nfkc, casefold)

        assert "ada" == name("  \uff21DA ")
        assert "compose(strip, nfkc, casefold)" == name.__name__
        assert "[abc]" == compose(lambda s: s + "]", lambda s: "[" + s)("abc")

    def test_compose_needs_callables(self) -> None:
        with pytest.raises(ConfigurationError, match="at least one"):
            compose()
        with pytest.raises(ConfigurationError, match="takes callables, got str"):
            compose(strip, "casefold")  # type: ignore[arg-type]


_ALPHABET = "aAsS \u00df\u1e9e\uff21\u212ak"


@pytest.fixture(scope="module")
def property_engine() -> Iterator[sa.Engine]:
    with tempfile.TemporaryDirectory() as directory:
        engine = sa.create_engine(f"sqlite:///{Path(directory) / 'property.db'}")
        Base.metadata.create_all(engine)
        try:
            yield engine
        finally:
            engine.dispose()


class TestProperty:
    """search(x) returns exactly the rows whose normalised value equals normalised x."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        stored=st.lists(st.text(alphabet=_ALPHABET, max_size=3), max_size=12),
        extra=st.text(alphabet=_ALPHABET, max_size=3),
    )
    def test_search_is_exact(
        self, property_engine: sa.Engine, stored: list[str], extra: str
    ) -> None:
        keys.bind(memory_keyring())
        try:
            with Session(property_engine) as session:
                session.execute(sa.delete(Crowded))
                session.execute(sa.delete(Customer))
                session.add_all([Customer(id=i, email=v) for i, v in enumerate(stored)])
                session.commit()
                for wanted in [*stored, extra]:
                    expected = [
                        i
                        for i, v in enumerate(stored)
                        if normalize_email(v) == normalize_email(wanted)
                    ]
                    assert expected == ids(search(session, Customer.email, wanted))
        finally:
            keys.unbind()


class TestAsync:
    """asearch() runs search() through an AsyncSession."""

    @pytest.mark.anyio
    async def test_asearch(self, async_engine: AsyncEngine, keyring: Keyring) -> None:
        async with async_engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with AsyncSession(async_engine) as session:
            session.add_all(
                [
                    Customer(id=1, email="ada@example.com"),
                    Customer(id=2, email="b@x"),
                    Order(customer_id=3, email="Ada@Example.com"),
                ]
            )
            await session.commit()

            customers = await asearch(session, Customer.email, "ADA@example.com")
            orders = await asearch(session, Order.email, "ada@example.com")

        assert [1] == ids(customers)
        assert ["Ada@Example.com"] == [o.email for o in orders]
