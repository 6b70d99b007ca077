"""`respond_to_key_compromise` on real keyrings and real SQLite / PostgreSQL tables.

The checks read the raw tokens from the tables, so they see which key id is really stored.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer.audit import AuditTrail, MemoryAuditSink
from securecustomer.exceptions import ConfigurationError, KeyNotFoundError, KeyStateError
from securecustomer.keys import FileKeyStore, Keyring, KeyState, LocalKeyProvider, MemoryKeyStore
from securecustomer.privacy import KeyCompromiseResponse, respond_to_key_compromise
from securecustomer.sqlalchemy import (
    BlindIndex,
    EncryptedString,
    KeyringSlot,
    encrypt_rows,
    search,
)
from securecustomer.sqlalchemy._reencrypt import CHECKPOINT_TABLE

SLOT = KeyringSlot("privacy-emergency")


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "em_customers"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str] = mapped_column(EncryptedString(keyring=SLOT))
    phone: Mapped[str | None] = mapped_column(
        EncryptedString(keyring=SLOT, storage="text"), nullable=True
    )
    note: Mapped[str | None] = mapped_column(EncryptedString(keyring=SLOT), nullable=True)


class Order(Base):
    __tablename__ = "em_orders"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    customer_id: Mapped[int]
    address: Mapped[str] = mapped_column(EncryptedString(keyring=SLOT))


class Plain(Base):
    __tablename__ = "em_plain"
    id: Mapped[int] = mapped_column(primary_key=True)


encrypt_rows(Order, subject="customer_id")


class Account(Base):
    """Subject-scoped values with a blind index: the column's own key is used by the
    index alone (`BlindIndex` never uses a subject scope)."""

    __tablename__ = "em_accounts"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    owner: Mapped[int]
    login: Mapped[str] = mapped_column(EncryptedString(keyring=SLOT))
    login_index: Mapped[bytes | None] = mapped_column(BlindIndex(login, size=16), nullable=True)


encrypt_rows(Account, subject="owner", subject_prefix="owner:")

#: The customers table as raw tokens, to write what a buggy or stale writer would.
RAW_CUSTOMERS = sa.Table(
    "em_customers",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.LargeBinary),
    sa.Column("note", sa.LargeBinary),
)

ROWS = 12
EMAIL = "em_customers.email"


@pytest.fixture(params=["memory", "file"])
def keyring(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Keyring]:
    store = MemoryKeyStore() if request.param == "memory" else FileKeyStore(tmp_path / "k.json")
    keyring = Keyring(LocalKeyProvider.generate(), store).load()
    SLOT.bind(keyring)
    yield keyring
    SLOT.unbind()


@contextmanager
def filled(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(
            Customer(id=i, email=f"c{i}@example.com", phone=f"+41 {i}") for i in range(ROWS)
        )
        session.add_all(Order(id=i, customer_id=i % 3, address=f"street {i}") for i in range(ROWS))
        session.commit()
    try:
        yield engine
    finally:
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {CHECKPOINT_TABLE}"))
        engine.dispose()


@pytest.fixture
def engine(keyring: Keyring, tmp_path: Path) -> Iterator[sa.Engine]:
    with filled(f"sqlite+pysqlite:///{tmp_path / 'emergency.db'}") as engine:
        yield engine


@pytest.fixture
def trail() -> AuditTrail:
    return AuditTrail(MemoryAuditSink(), key=secrets.token_bytes(32))


def stored(engine: sa.Engine, model: type[Any], column: str) -> dict[int, bytes]:
    """The raw tokens of *column* by primary key."""
    table = model.__table__
    text = column == "phone"
    raw = sa.type_coerce(table.c[column], sa.Text() if text else sa.LargeBinary())
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, raw)).all()
    return {
        pk: base64.b64decode(value) if text else bytes(value)
        for pk, value in rows
        if value is not None
    }


def key_ids(tokens: dict[int, bytes]) -> set[int]:
    return {int.from_bytes(token[2:6], "big") for token in tokens.values()}


def emails(engine: sa.Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(sa.select(Customer.email).order_by(Customer.id)))


def state(keyring: Keyring, key_id: int) -> KeyState:
    record = keyring.store.data_key(key_id)
    assert record is not None
    return record.state


class TestRespond:
    """The compromised key's values move to a new key, and the key ends up disabled."""

    def test_moves_values_and_disables_the_key(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))
        phones = stored(engine, Customer, "phone")

        response = respond_to_key_compromise(
            keyring, compromised, bind=engine, models=[Customer, Order], trail=trail
        )

        assert response.new_key is not None
        new_id = response.new_key.key_id
        assert new_id is not None
        assert {new_id} == key_ids(stored(engine, Customer, "email"))
        assert new_id != compromised
        assert KeyState.DISABLED == state(keyring, compromised)
        assert KeyState.ACTIVE == state(keyring, new_id)
        assert [f"c{i}@example.com" for i in range(ROWS)] == emails(engine)
        assert phones == stored(engine, Customer, "phone")  # another scope: untouched
        assert (0, True, False, ROWS) == (
            response.remaining,
            response.disabled,
            response.dry_run,
            response.moved,
        )
        assert {"em_customers": ROWS, "em_orders": 0} == response.found
        assert ["em_customers"] == [r.table for r in response.reports]

    def test_progress_receives_every_step(self, engine: sa.Engine, keyring: Keyring) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))
        lines: list[str] = []

        response = respond_to_key_compromise(
            keyring, compromised, bind=engine, models=[Customer], progress=lines.append
        )

        assert list(response.steps) == lines
        assert any("disabled" in line for line in lines)
        assert all(isinstance(line, str) and "\n" not in line for line in lines)

    def test_subject_scope_moves_only_that_subject(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        before = stored(engine, Order, "address")
        compromised = keyring.keyset("subject:1").primary
        assert compromised is not None

        response = respond_to_key_compromise(
            keyring, compromised.key_id, bind=engine, models=[Customer, Order], trail=trail
        )

        after = stored(engine, Order, "address")
        moved = {pk for pk in after if after[pk] != before[pk]}
        assert {pk for pk in range(ROWS) if pk % 3 == 1} == moved
        assert KeyState.DISABLED == state(keyring, compromised.key_id)
        with Session(engine) as session:
            orders = session.scalars(sa.select(Order).order_by(Order.id))
            addresses = [order.address for order in orders]
        assert [f"street {i}" for i in range(ROWS)] == addresses
        (record,) = list(trail.sink.records())
        assert trail.pseudonym("1") == record.event["subject"]
        assert "subject:1" not in str(record.event)
        assert response.scope == "subject:1"

    def test_to_dict_holds_ids_and_counts(self, engine: sa.Engine, keyring: Keyring) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))

        response = respond_to_key_compromise(keyring, compromised, bind=engine, models=[Customer])

        data = response.to_dict()
        assert response.new_key is not None
        assert (compromised, EMAIL, response.new_key.key_id) == (
            data["key_id"],
            data["scope"],
            data["new_key_id"],
        )
        assert {"em_customers": ROWS} == data["reencrypted"]
        assert {"em_customers": 0} == data["errors"]


class TestAudit:
    """One key.compromise event, with key ids and counts, never key material."""

    def test_event_names_the_keys_and_counts(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))

        response = respond_to_key_compromise(
            keyring, compromised, bind=engine, models=[Customer], trail=trail
        )

        (record,) = list(trail.sink.records())
        event = record.audit_event()
        assert response.new_key is not None
        assert ("key.compromise", "success", f"{compromised:#010x}") == (
            event.action,
            event.outcome,
            event.resource_id,
        )
        assert [compromised, response.new_key.key_id] == event.extra["key_ids"]
        assert (ROWS, 0, True, EMAIL) == (
            event.extra["reencrypted"],
            event.extra["remaining"],
            event.extra["disabled"],
            event.extra["scope"],
        )
        assert trail.verify().ok


class TestBlindIndexKey:
    """A compromised key that only blind indexes use: the indexes are recomputed first."""

    def test_indexes_move_before_the_key_is_disabled(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        with Session(engine) as session:
            session.add_all(Account(id=i, owner=i, login=f"u{i}") for i in range(3))
            session.commit()
        index_key = keyring.keyset("em_accounts.login").primary
        assert index_key is not None
        assert index_key.key_id is not None

        response = respond_to_key_compromise(
            keyring, index_key.key_id, bind=engine, models=[Account]
        )

        assert response.disabled
        assert ["em_accounts"] == [r.table for r in response.reports]
        with Session(engine) as session:
            assert [1] == [a.id for a in search(session, Account.login, "u1")]

    def test_dry_run_names_the_indexes(self, engine: sa.Engine, keyring: Keyring) -> None:
        with Session(engine) as session:
            session.add(Account(id=1, owner=1, login="u1"))
            session.commit()
        index_key = keyring.keyset("em_accounts.login").primary
        assert index_key is not None
        assert index_key.key_id is not None

        response = respond_to_key_compromise(
            keyring, index_key.key_id, bind=engine, models=[Account], dry_run=True
        )

        assert any("blind index" in step for step in response.steps)


class TestRegisteredSubjectPrefix:
    """A subject scope under a model's own prefix is named by its pseudonym only."""

    def test_audit_event_has_no_raw_subject_id(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        with Session(engine) as session:
            session.add(Account(id=7, owner=987654321, login="u7"))
            session.commit()
        (status,) = [s for s in keyring.status() if s.scope == "owner:987654321"]
        assert status.key_id is not None

        response = respond_to_key_compromise(
            keyring, status.key_id, bind=engine, models=[Account], trail=trail
        )

        assert response.disabled
        (record,) = trail.sink.records()
        assert trail.pseudonym(987654321) == record.event["subject"]
        assert "987654321" not in json.dumps(record.event)


class TestDryRun:
    """A dry run changes nothing and says what would move."""

    def test_changes_nothing(self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail) -> None:
        before = stored(engine, Customer, "email")
        (compromised,) = key_ids(before)
        keys_before = keyring.store.data_keys(EMAIL)

        response = respond_to_key_compromise(
            keyring, compromised, bind=engine, models=[Customer, Order], trail=trail, dry_run=True
        )

        assert before == stored(engine, Customer, "email")
        assert keys_before == keyring.store.data_keys(EMAIL)
        assert [] == list(trail.sink.records())
        assert (ROWS, False, True, (), None) == (
            response.remaining,
            response.disabled,
            response.dry_run,
            response.reports,
            response.new_key,
        )
        assert not sa.inspect(engine).has_table(CHECKPOINT_TABLE)

    def test_after_a_rotation_nothing_would_rotate(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))
        rotated = keyring.rotate(EMAIL)

        response = respond_to_key_compromise(
            keyring, compromised, bind=engine, models=[Customer], dry_run=True
        )

        assert response.new_key is not None
        assert rotated.key_id == response.new_key.key_id
        assert any(step.startswith("would not rotate") for step in response.steps)


class TestRerun:
    """Running the response again is safe, and catches values written after it."""

    def test_second_run_does_not_rotate_again(self, engine: sa.Engine, keyring: Keyring) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))
        first = respond_to_key_compromise(keyring, compromised, bind=engine, models=[Customer])

        second = respond_to_key_compromise(keyring, compromised, bind=engine, models=[Customer])

        assert first.new_key == second.new_key
        assert 2 == len(keyring.store.data_keys(EMAIL))
        assert (0, True, ()) == (second.remaining, second.disabled, second.reports)
        assert any(step.startswith("not rotated") for step in second.steps)

    def test_straggler_under_a_disabled_key_is_moved(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        old = stored(engine, Customer, "email")
        (compromised,) = key_ids(old)
        respond_to_key_compromise(keyring, compromised, bind=engine, models=[Customer])
        with engine.begin() as conn:  # a process with an old key cache wrote row 0 meanwhile
            raw = RAW_CUSTOMERS
            conn.execute(sa.update(raw).where(raw.c.id == 0).values(email=old[0]))

        response = respond_to_key_compromise(keyring, compromised, bind=engine, models=[Customer])

        assert ({"em_customers": 1}, 1, True) == (
            response.found,
            response.moved,
            response.disabled,
        )
        assert KeyState.DISABLED == state(keyring, compromised)
        assert [f"c{i}@example.com" for i in range(ROWS)] == emails(engine)

    def test_values_that_cannot_move_keep_the_key_decrypt_only(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        old = stored(engine, Customer, "email")
        (compromised,) = key_ids(old)
        with engine.begin() as conn:  # a token copied to another column never decrypts there
            raw = RAW_CUSTOMERS
            conn.execute(sa.update(raw).where(raw.c.id == 3).values(note=old[3]))

        response = respond_to_key_compromise(
            keyring, compromised, bind=engine, models=[Customer], trail=trail
        )

        assert (1, False) == (response.remaining, response.disabled)
        assert KeyState.DECRYPT_ONLY == state(keyring, compromised)
        assert 1 == response.reports[0].errors
        assert "error" == next(iter(trail.sink.records())).event["outcome"]
        assert "left decrypt-only" in response.steps[-2]

    def test_scope_without_an_active_version_is_rotated(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))
        keyring.set_state(compromised, KeyState.DECRYPT_ONLY)

        response = respond_to_key_compromise(keyring, compromised, bind=engine, models=[Customer])

        assert response.new_key is not None
        assert {response.new_key.key_id} == key_ids(stored(engine, Customer, "email"))
        assert (2, True) == (len(keyring.store.data_keys(EMAIL)), response.disabled)

    def test_unreadable_values_elsewhere_do_not_block(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))
        with engine.begin() as conn:  # not base64: no key id can be read from it
            conn.execute(sa.text("UPDATE em_customers SET phone = 'not base64!' WHERE id = 5"))

        response = respond_to_key_compromise(keyring, compromised, bind=engine, models=[Customer])

        assert (0, True, 1) == (response.remaining, response.disabled, response.reports[0].errors)


class TestErrors:
    """Unknown and destroyed keys, and models that hold nothing encrypted."""

    def test_unknown_key(self, engine: sa.Engine, keyring: Keyring) -> None:
        with pytest.raises(KeyNotFoundError) as info:
            respond_to_key_compromise(keyring, 0x0BADC0DE, bind=engine, models=[Customer])
        assert 0x0BADC0DE == info.value.key_id

    def test_destroyed_key(self, engine: sa.Engine, keyring: Keyring) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))
        keyring.destroy_key(compromised)

        with pytest.raises(KeyStateError):
            respond_to_key_compromise(keyring, compromised, bind=engine, models=[Customer])

    def test_model_without_encrypted_columns(self, engine: sa.Engine, keyring: Keyring) -> None:
        (compromised,) = key_ids(stored(engine, Customer, "email"))

        with pytest.raises(ConfigurationError, match="em_plain"):
            respond_to_key_compromise(keyring, compromised, bind=engine, models=[Plain])
        with pytest.raises(ConfigurationError, match="neither"):
            respond_to_key_compromise(keyring, compromised, bind=engine, models=[object()])


class TestPostgreSQL:
    """The same response on a PostgreSQL database."""

    def test_moves_values_and_disables_the_key(
        self, keyring: Keyring, postgresql_url: str, trail: AuditTrail
    ) -> None:
        with filled(postgresql_url) as engine:
            (compromised,) = key_ids(stored(engine, Customer, "email"))

            response = respond_to_key_compromise(
                keyring, compromised, bind=engine, models=[Customer, Order.__table__], trail=trail
            )

            assert response.new_key is not None
            assert {response.new_key.key_id} == key_ids(stored(engine, Customer, "email"))
            assert (0, True) == (response.remaining, response.disabled)
            assert [f"c{i}@example.com" for i in range(ROWS)] == emails(engine)
            assert isinstance(response, KeyCompromiseResponse)
