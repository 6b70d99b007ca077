"""Re-encryption after key rotation, and encrypting a plaintext column in place.

The jobs run on SQLite, PostgreSQL and MariaDB (the `engine` fixture); the checks read the
raw tokens from the table, so they see what is really stored.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.crypto import KeyState
from securecustomer.exceptions import ConfigurationError
from securecustomer.keys import FileKeyStore
from securecustomer.sqlalchemy import (
    ERASED,
    BlindIndex,
    Encrypted,
    EncryptedString,
    EncryptedText,
    default_keyring,
    encrypt_rows,
    normalize_email,
    search,
)
from securecustomer.sqlalchemy._reencrypt import (
    CHECKPOINT_TABLE,
    ReencryptReport,
    encrypt_column,
    reencrypt,
    swap_columns,
)
from securecustomer.testing import memory_keyring


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "re_customers"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str] = mapped_column(EncryptedString())
    phone: Mapped[str | None] = mapped_column(EncryptedString(storage="text"), nullable=True)
    city: Mapped[str | None] = mapped_column(EncryptedString(deterministic=True), nullable=True)


class Order(Base):
    __tablename__ = "re_orders"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[int]
    address: Mapped[str] = mapped_column(EncryptedString())
    note: Mapped[str | None] = mapped_column(EncryptedText(), nullable=True)


class Ticket(Base):
    __tablename__ = "re_tickets"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    body: Mapped[str] = mapped_column(EncryptedText())


class Person(Base):
    __tablename__ = "re_people"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str | None] = mapped_column(sa.String(64))
    email_enc: Mapped[str | None] = mapped_column(EncryptedString(context=("re_people", "email")))
    email_index: Mapped[bytes | None] = mapped_column(BlindIndex("email_enc", size=16))


class Subscriber(Base):
    __tablename__ = "re_subscribers"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    customer_id: Mapped[int]
    email: Mapped[str] = mapped_column(EncryptedString())
    email_index: Mapped[bytes] = mapped_column(
        BlindIndex("email", normalizer=normalize_email, size=16)
    )


class Newsletter(Base):
    """Subject-scoped values, with a blind index keyed by the column's own scope."""

    __tablename__ = "re_newsletters"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    customer_id: Mapped[int]
    email: Mapped[str] = mapped_column(EncryptedString())
    email_index: Mapped[bytes] = mapped_column(BlindIndex("email", size=16))


class Member(Base):
    __tablename__ = "re_members"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[int]
    email: Mapped[str | None] = mapped_column(sa.String(64))
    email_enc: Mapped[str | None] = mapped_column(EncryptedString())


encrypt_rows(Order, row="id", subject="customer_id", on_destroyed="erased")
encrypt_rows(Ticket, row="id")
encrypt_rows(Member, row="id", subject="customer_id")
encrypt_rows(Newsletter, subject="customer_id")


class SwappedBase(DeclarativeBase):
    pass


class PersonAfterSwap(SwappedBase):
    """`Person` as the model reads after `swap_columns`."""

    __tablename__ = "re_people"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str | None] = mapped_column(EncryptedString())


def table_of(model: type[Any]) -> sa.Table:
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table


CUSTOMERS, ORDERS, TICKETS, PEOPLE, MEMBERS, NEWSLETTERS = map(
    table_of, (Customer, Order, Ticket, Person, Member, Newsletter)
)
LINES = sa.Table(
    "re_lines",
    sa.MetaData(),
    sa.Column("order_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("line", sa.String(16), primary_key=True),
    sa.Column("item", EncryptedString()),
)
CUSTOMER_SCOPES = ["re_customers.email", "re_customers.phone", "re_customers.city"]
ROWS = 25


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    keyring = memory_keyring()
    default_keyring.bind(keyring)
    yield keyring
    default_keyring.unbind()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield engine
    engine.dispose()


def add_customers(engine: sa.Engine, ids: range = range(1, ROWS + 1)) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(
            Customer(id=i, email=f"c{i}@example.com", phone=f"+41 {i}", city=f"city {i % 3}")
            for i in ids
        )
        session.commit()


def tokens(engine: sa.Engine, table: sa.Table, column: str) -> dict[Any, bytes]:
    """The raw tokens of *column*, by primary key (base64 decoded for text storage)."""
    column_type = table.c[column].type
    assert isinstance(column_type, Encrypted)
    raw = sa.Text() if column_type.storage == "text" else sa.LargeBinary()
    pk = table.primary_key.columns[0]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pk, sa.type_coerce(table.c[column], raw))).all()
    return {
        key: base64.b64decode(value) if isinstance(value, str) else bytes(value)
        for key, value in rows
        if value is not None
    }


def key_ids(found: dict[Any, bytes]) -> set[int]:
    return {int.from_bytes(token[2:6], "big") for token in found.values()}


def primary_id(keyring: Keyring, scope: str) -> int:
    primary = keyring.keyset(scope).primary
    assert primary is not None
    return primary.key_id


def customers(engine: sa.Engine) -> list[tuple[int, str, str | None, str | None]]:
    with Session(engine) as session:
        found = session.scalars(sa.select(Customer).order_by(Customer.id))
        return [(c.id, c.email, c.phone, c.city) for c in found]


def expected_customers(ids: range = range(1, ROWS + 1)) -> list[tuple[int, str, str, str]]:
    return [(i, f"c{i}@example.com", f"+41 {i}", f"city {i % 3}") for i in ids]


def rotate_customers(keyring: Keyring) -> None:
    for scope in CUSTOMER_SCOPES:
        keyring.rotate(scope)


def fail_on_update(engine: sa.Engine, table: str, number: int) -> Callable[[], None]:
    """Make the *number*-th UPDATE of *table* raise; returns a function that removes the hook."""
    seen = 0

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal seen
        if statement.lstrip().upper().startswith("UPDATE") and table in statement:
            seen += 1
            if seen == number:
                raise RuntimeError("killed")

    sa.event.listen(engine, "before_cursor_execute", hook)
    return lambda: sa.event.remove(engine, "before_cursor_execute", hook)


def checkpoint_of(engine: sa.Engine, job: str) -> str | None:
    progress = sa.Table(CHECKPOINT_TABLE, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        found: str | None = conn.scalar(sa.select(progress.c.position).where(progress.c.job == job))
        return found


class TestReencrypt:
    """After a rotation, every value moves to the new key and still reads the same."""

    def test_moves_every_value_to_the_new_key(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(engine)
        old = {c: key_ids(tokens(engine, CUSTOMERS, c)) for c in ("email", "phone")}
        rotate_customers(keyring)

        report = reencrypt(engine, Customer, batch_size=10)

        for scope in CUSTOMER_SCOPES:
            column = scope.split(".")[1]
            assert {primary_id(keyring, scope)} == key_ids(tokens(engine, CUSTOMERS, column))
        assert expected_customers() == customers(engine)
        assert ROWS == report.rows_scanned == report.rows_changed
        assert 3 * ROWS == report.values_reencrypted
        assert (0, 0, 0, True) == (
            report.values_current,
            report.conflicts,
            report.errors,
            report.ok,
        )
        assert {*old["email"], *old["phone"]} <= report.key_ids_before.keys()
        assert ROWS == report.key_ids_after[primary_id(keyring, "re_customers.email")]

    def test_second_run_changes_nothing(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(engine)
        rotate_customers(keyring)
        reencrypt(engine, Customer, batch_size=10)
        before = tokens(engine, CUSTOMERS, "email")

        report = reencrypt(engine, Customer, batch_size=10)

        assert (0, 0, 3 * ROWS) == (
            report.rows_changed,
            report.values_reencrypted,
            report.values_current,
        )
        assert before == tokens(engine, CUSTOMERS, "email")

    def test_dry_run_counts_and_writes_nothing(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(engine)
        rotate_customers(keyring)
        before = {c: tokens(engine, CUSTOMERS, c) for c in ("email", "phone", "city")}

        report = reencrypt(engine, Customer, batch_size=10, dry_run=True)

        assert (True, ROWS, 3 * ROWS) == (
            report.dry_run,
            report.rows_changed,
            report.values_reencrypted,
        )
        assert before == {c: tokens(engine, CUSTOMERS, c) for c in before}
        assert {primary_id(keyring, "re_customers.email")} <= report.key_ids_after.keys()
        assert CHECKPOINT_TABLE not in sa.inspect(engine).get_table_names()

    def test_progress_after_every_batch(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(engine)
        rotate_customers(keyring)
        calls: list[tuple[int, int]] = []

        reencrypt(engine, Customer, batch_size=10, progress=lambda *a: calls.append(a))

        assert [(0, 25), (10, 25), (20, 25), (25, 25)] == calls

    def test_on_a_session(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(engine)
        rotate_customers(keyring)

        with Session(engine) as session:
            report = reencrypt(session, Customer, batch_size=7)

        assert 3 * ROWS == report.values_reencrypted
        assert {primary_id(keyring, "re_customers.email")} == key_ids(
            tokens(engine, CUSTOMERS, "email")
        )
        assert expected_customers() == customers(engine)

    def test_sees_a_rotation_by_another_process(
        self, sqlite_engine: sa.Engine, keyring: Keyring
    ) -> None:
        """The key store's current key counts, even while this process's cache is older."""
        add_customers(sqlite_engine, range(1, 4))
        elsewhere = Keyring(keyring.provider, keyring.store).load()  # another process
        elsewhere.rotate("re_customers.email")

        report = reencrypt(sqlite_engine, Customer)

        assert 3 == report.values_reencrypted
        assert {primary_id(elsewhere, "re_customers.email")} == key_ids(
            tokens(sqlite_engine, CUSTOMERS, "email")
        )

    def test_on_a_table(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(engine)
        rotate_customers(keyring)

        report = reencrypt(engine, CUSTOMERS, checkpoint=None)

        assert 3 * ROWS == report.values_reencrypted
        assert expected_customers() == customers(engine)

    def test_switches_algorithm_to_the_columns_setting(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        """Randomized tokens in a deterministic column become deterministic (== works)."""
        add_customers(engine, range(1, 3))
        context = Context("re_customers", "city")
        randomized = keyring.cipher("re_customers.city").encrypt("Basel", context=context)
        with engine.begin() as conn:
            conn.execute(
                sa.update(CUSTOMERS)
                .where(CUSTOMERS.c.id == 1)
                .values(city=sa.type_coerce(randomized, sa.LargeBinary()))
            )

        report = reencrypt(engine, Customer)

        assert 1 == report.values_reencrypted
        with Session(engine) as session:
            assert [1] == session.scalars(
                sa.select(Customer.id).where(Customer.city == "Basel")
            ).all()


class TestKilled:
    """A job that dies in the middle of a batch loses nothing, and the next run finishes."""

    def test_failure_in_batch_keeps_committed_batches(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        add_customers(engine)
        old_email = primary_id(keyring, "re_customers.email")
        rotate_customers(keyring)
        new_email = primary_id(keyring, "re_customers.email")
        remove = fail_on_update(engine, "re_customers", 15)  # the 5th row of batch 2
        with pytest.raises(RuntimeError, match="killed"):
            reencrypt(engine, Customer, batch_size=10)
        remove()

        found = tokens(engine, CUSTOMERS, "email")
        assert {new_email} == key_ids({k: v for k, v in found.items() if k <= 10})
        assert {old_email} == key_ids({k: v for k, v in found.items() if k > 10})
        assert expected_customers() == customers(engine)
        assert "[10]" == checkpoint_of(engine, "re_customers")

        report = reencrypt(engine, Customer, batch_size=10)

        assert ((10,), 15, 3 * 15) == (
            report.resumed_from,
            report.rows_scanned,
            report.values_reencrypted,
        )
        assert {new_email} == key_ids(tokens(engine, CUSTOMERS, "email"))
        assert expected_customers() == customers(engine)
        assert None is checkpoint_of(engine, "re_customers")

    def test_restarts_from_the_top_after_another_rotation(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        add_customers(engine)
        rotate_customers(keyring)
        remove = fail_on_update(engine, "re_customers", 15)
        with pytest.raises(RuntimeError):
            reencrypt(engine, Customer, batch_size=10)
        remove()
        rotate_customers(keyring)

        report = reencrypt(engine, Customer, batch_size=10)

        assert (None, ROWS) == (report.resumed_from, report.rows_scanned)
        assert {primary_id(keyring, "re_customers.email")} == key_ids(
            tokens(engine, CUSTOMERS, "email")
        )
        assert expected_customers() == customers(engine)

    def test_composite_primary_key(self, engine: sa.Engine, keyring: Keyring) -> None:
        LINES.metadata.create_all(engine)
        rows = [
            {"order_no": number, "line": line, "item": f"{number}{line}"}
            for number in (1, 2, 3)
            for line in "abcde"
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(LINES), rows)
        keyring.rotate("re_lines.item")
        remove = fail_on_update(engine, "re_lines", 7)  # the 3rd row of batch 2
        with pytest.raises(RuntimeError):
            reencrypt(engine, LINES, batch_size=4)
        remove()
        calls: list[tuple[int, int]] = []

        report = reencrypt(engine, LINES, batch_size=4, progress=lambda *a: calls.append(a))

        assert ((1, "d"), 11, 11) == (
            report.resumed_from,
            report.rows_scanned,
            report.values_reencrypted,
        )
        assert [(4, 15), (8, 15), (12, 15), (15, 15)] == calls
        with engine.connect() as conn:
            found = conn.execute(sa.select(LINES).order_by(LINES.c.order_no, LINES.c.line))
            assert [tuple(r.values()) for r in rows] == [tuple(r) for r in found]
            raw = conn.execute(sa.select(sa.type_coerce(LINES.c.item, sa.LargeBinary()))).scalars()
            assert {primary_id(keyring, "re_lines.item")} == {
                int.from_bytes(bytes(t)[2:6], "big") for t in raw
            }

    def test_resumes_after_a_uuid_key(self, engine: sa.Engine, keyring: Keyring) -> None:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(Order(customer_id=i % 4, address=f"street {i}") for i in range(20))
            session.commit()
        for subject in range(4):
            keyring.rotate(f"subject:{subject}")
        remove = fail_on_update(engine, "re_orders", 8)
        with pytest.raises(RuntimeError):
            reencrypt(engine, Order, batch_size=6)
        remove()

        report = reencrypt(engine, Order, batch_size=6)

        assert report.resumed_from is not None
        assert isinstance(report.resumed_from[0], uuid.UUID)
        assert (14, 14) == (report.rows_scanned, report.values_reencrypted)
        current = {primary_id(keyring, f"subject:{i}") for i in range(4)}
        assert current == key_ids(tokens(engine, ORDERS, "address"))
        with Session(engine) as session:
            addresses = sorted(o.address for o in session.scalars(sa.select(Order)))
        assert sorted(f"street {i}" for i in range(20)) == addresses

    def test_sigkill_in_the_middle_of_a_batch(self, engine: sa.Engine, tmp_path: Path) -> None:
        """A real kill (SIGKILL, no Python cleanup) between two UPDATEs of one batch."""
        key_file = tmp_path / "master.key"
        LocalKeyProvider.create_key_file(key_file)
        keyring = Keyring(LocalKeyProvider.from_file(key_file), FileKeyStore(tmp_path / "k.json"))
        default_keyring.bind(keyring.load())
        try:
            add_customers(engine)
            rotate_customers(keyring)
            script = tmp_path / "job.py"
            script.write_text(KILLED_JOB)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
            url = engine.url.render_as_string(hide_password=False)
            result = subprocess.run(
                [sys.executable, str(script), url, str(tmp_path)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            assert -signal.SIGKILL == result.returncode, result.stderr
            new_email = primary_id(keyring, "re_customers.email")
            found = tokens(engine, CUSTOMERS, "email")
            assert {new_email} == key_ids({k: v for k, v in found.items() if k <= 10})
            assert new_email not in key_ids({k: v for k, v in found.items() if k > 10})
            assert expected_customers() == customers(engine)

            report = reencrypt(engine, Customer, batch_size=10)

            assert ((10,), 15) == (report.resumed_from, report.rows_scanned)
            assert {new_email} == key_ids(tokens(engine, CUSTOMERS, "email"))
            assert expected_customers() == customers(engine)
        finally:
            default_keyring.unbind()


KILLED_JOB = textwrap.dedent(
    """
    import os, signal, sys
    import sqlalchemy as sa
    from securecustomer import Keyring, LocalKeyProvider
    from securecustomer.keys import FileKeyStore
    from securecustomer.sqlalchemy import EncryptedString, default_keyring
    from securecustomer.sqlalchemy._reencrypt import reencrypt

    url, directory = sys.argv[1:]
    table = sa.Table(
        "re_customers", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", EncryptedString()),
        sa.Column("phone", EncryptedString(storage="text")),
        sa.Column("city", EncryptedString(deterministic=True)),
    )
    provider = LocalKeyProvider.from_file(os.path.join(directory, "master.key"))
    default_keyring.bind(Keyring(provider, FileKeyStore(os.path.join(directory, "k.json"))).load())
    engine = sa.create_engine(url)
    updates = 0

    @sa.event.listens_for(engine, "before_cursor_execute")
    def kill(conn, cursor, statement, *args):
        global updates
        if statement.lstrip().upper().startswith("UPDATE") and "re_customers" in statement:
            updates += 1
            if updates == 15:
                os.kill(os.getpid(), signal.SIGKILL)

    reencrypt(engine, table, batch_size=10)
    """
)


class TestConcurrentWriter:
    """A row another writer changes between the job's read and write keeps the newer value."""

    def test_newer_value_is_not_overwritten(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(engine)
        rotate_customers(keyring)
        fired = False

        def write_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            nonlocal fired
            if fired or not statement.lstrip().upper().startswith("UPDATE"):
                return
            fired = True
            with Session(engine) as session:  # another connection, committed at once
                customer = session.get(Customer, 3)
                assert customer is not None
                customer.email = "new@example.com"
                session.commit()

        sa.event.listen(engine, "before_cursor_execute", write_meanwhile)
        try:
            report = reencrypt(engine, Customer)
        finally:
            sa.event.remove(engine, "before_cursor_execute", write_meanwhile)

        assert (1, ROWS - 1) == (report.conflicts, report.rows_changed)
        expected = expected_customers()
        expected[2] = (3, "new@example.com", "+41 3", "city 0")
        assert expected == customers(engine)
        again = reencrypt(engine, Customer)  # the row's other columns move now
        assert (2, 0) == (again.values_reencrypted, again.conflicts)
        assert {primary_id(keyring, "re_customers.phone")} == key_ids(
            tokens(engine, CUSTOMERS, "phone")
        )


class TestRowAndSubjectBinding:
    """Row-bound and subject-scoped models re-encrypt with each row's own context and scope."""

    def test_subject_scopes(self, engine: sa.Engine, keyring: Keyring) -> None:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(
                Order(customer_id=i % 4, address=f"street {i}", note=f"note {i}" if i % 2 else None)
                for i in range(20)
            )
            session.commit()
        old_1 = primary_id(keyring, "subject:1")
        keyring.rotate("subject:1")
        keyring.rotate("subject:2")
        keyring.destroy("subject:3")

        report = reencrypt(engine, Order, batch_size=6)

        assert (15, 5, 10, 0) == (  # notes only on odd rows: customers 1 and 3
            report.values_reencrypted,
            report.values_current,
            report.values_destroyed,
            report.errors,
        )
        found = tokens(engine, ORDERS, "address")
        assert old_1 not in key_ids(found)
        with Session(engine) as session:
            orders = session.scalars(sa.select(Order)).all()
            by_customer = {(o.customer_id, o.address) for o in orders if o.address is not ERASED}
        assert {(i % 4, f"street {i}") for i in range(20) if i % 4 != 3} == by_customer
        assert {primary_id(keyring, "subject:1"), primary_id(keyring, "subject:2")} <= key_ids(
            found
        )

    def test_row_bound(self, engine: sa.Engine, keyring: Keyring) -> None:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(Ticket(body=f"body {i}") for i in range(12))
            session.commit()
        keyring.rotate("re_tickets.body")

        report = reencrypt(engine, Ticket, batch_size=5)

        assert 12 == report.values_reencrypted
        assert {primary_id(keyring, "re_tickets.body")} == key_ids(tokens(engine, TICKETS, "body"))
        with Session(engine) as session:
            bodies = sorted(t.body for t in session.scalars(sa.select(Ticket)))
        assert sorted(f"body {i}" for i in range(12)) == bodies


class TestBlindIndexes:
    """Blind indexes move with their values, so old key versions can be disabled."""

    def test_indexes_of_reencrypted_values(self, engine: sa.Engine, keyring: Keyring) -> None:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(
                Subscriber(id=i, customer_id=i, email=f"s{i}@example.com") for i in range(12)
            )
            session.commit()
        old = primary_id(keyring, "re_subscribers.email")
        keyring.rotate("re_subscribers.email")

        report = reencrypt(engine, Subscriber, batch_size=5)
        keyring.set_state(old, KeyState.DISABLED)

        assert (12, 12) == (report.values_reencrypted, report.indexes_updated)
        with Session(engine) as session:
            found = search(session, Subscriber.email, " S7@Example.com")
            assert [7] == [s.id for s in found]
        assert 0 == reencrypt(engine, Subscriber).indexes_updated

    def test_index_scope_rotated_under_subject_scoped_values(
        self, engine: sa.Engine, keyring: Keyring
    ) -> None:
        """The values' subject keys stay; the column key of the index rotates."""
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(
                Newsletter(id=i, customer_id=i % 3, email=f"n{i}@example.com") for i in range(9)
            )
            session.commit()
        old = primary_id(keyring, "re_newsletters.email")
        keyring.rotate("re_newsletters.email")
        before = tokens(engine, NEWSLETTERS, "email")

        dry = reencrypt(engine, Newsletter, dry_run=True)
        report = reencrypt(engine, Newsletter, batch_size=4)
        keyring.set_state(old, KeyState.DISABLED)

        assert (0, 9) == (dry.values_reencrypted, dry.indexes_updated)
        assert (0, 9, 9) == (
            report.values_reencrypted,
            report.indexes_updated,
            report.values_current,
        )
        assert before == tokens(engine, NEWSLETTERS, "email")
        with Session(engine) as session:
            assert [4] == [n.id for n in search(session, Newsletter.email, "n4@example.com")]
        assert 0 == reencrypt(engine, Newsletter).indexes_updated  # one usable key: no checks


class TestFailures:
    """Values that cannot move are counted and listed; the job goes on with the rest."""

    def test_disabled_key(self, sqlite_engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(sqlite_engine, range(1, 6))
        first = primary_id(keyring, "re_customers.email")
        rotate_customers(keyring)
        add_customers(sqlite_engine, range(6, 11))
        rotate_customers(keyring)
        keyring.set_state(first, KeyState.DISABLED)

        report = reencrypt(sqlite_engine, Customer)

        email_failures = [f for f in report.failures if f.column == "email"]
        assert [(i,) for i in range(1, 6)] == [f.primary_key for f in email_failures]
        assert {first} == {f.key_id for f in email_failures}
        assert "disabled" in email_failures[0].reason
        assert (5, False, 10) == (report.errors, report.ok, report.rows_changed)
        assert 25 == report.values_reencrypted  # rows 1-5: phone and city; rows 6-10: all

        keyring.set_state(first, KeyState.DECRYPT_ONLY)
        assert reencrypt(sqlite_engine, Customer).ok
        assert expected_customers(range(1, 11)) == customers(sqlite_engine)

    def test_corrupt_and_misplaced_tokens(self, sqlite_engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(sqlite_engine, range(1, 6))
        rotate_customers(keyring)
        table = CUSTOMERS
        city = tokens(sqlite_engine, table, "city")[4]
        with sqlite_engine.begin() as conn:
            for row, value in ((2, b"garbage"), (4, city)):
                conn.execute(
                    sa.update(table)
                    .where(table.c.id == row)
                    .values(email=sa.type_coerce(value, sa.LargeBinary()))
                )

        report = reencrypt(sqlite_engine, Customer)

        assert [(2,), (4,)] == [f.primary_key for f in report.failures]
        assert "not a securecustomer token" in report.failures[0].reason
        assert "could not be decrypted" in report.failures[1].reason
        assert (2, 13) == (report.errors, report.values_reencrypted)

    def test_scope_without_keys(self, sqlite_engine: sa.Engine, keyring: Keyring) -> None:
        """Tokens whose scope the key store does not know fail; no key is created."""
        add_customers(sqlite_engine, range(1, 3))
        other = memory_keyring()
        default_keyring.bind(other)

        report = reencrypt(sqlite_engine, Customer, dry_run=True)

        assert 6 == report.errors
        assert "has no key in the key store" in report.failures[0].reason
        assert [] == other.store.all_data_keys()

    def test_scope_without_an_active_key(self, sqlite_engine: sa.Engine, keyring: Keyring) -> None:
        add_customers(sqlite_engine, range(1, 3))
        keyring.rotate("re_customers.email")
        keyring.set_state(primary_id(keyring, "re_customers.email"), KeyState.DISABLED)

        report = reencrypt(sqlite_engine, Customer, dry_run=True)

        assert {"scope 're_customers.email' has no active key: rotate it to create one"} == {
            f.reason for f in report.failures
        }
        assert (2, 0) == (report.errors, report.values_reencrypted)

    def test_unreadable_checkpoint_starts_over(
        self, sqlite_engine: sa.Engine, keyring: Keyring
    ) -> None:
        add_customers(sqlite_engine, range(1, 4))
        rotate_customers(keyring)
        remove = fail_on_update(sqlite_engine, "re_customers", 2)
        with pytest.raises(RuntimeError):
            reencrypt(sqlite_engine, Customer, batch_size=1)
        remove()
        progress = sa.Table(CHECKPOINT_TABLE, sa.MetaData(), autoload_with=sqlite_engine)
        with sqlite_engine.begin() as conn:
            conn.execute(sa.update(progress).values(position='[{"float": 1.5}]'))

        report = reencrypt(sqlite_engine, Customer, batch_size=1)

        assert (None, 3) == (report.resumed_from, report.rows_scanned)

    def test_session_rolls_back_the_batch_in_flight(
        self, sqlite_engine: sa.Engine, keyring: Keyring
    ) -> None:
        add_customers(sqlite_engine, range(1, 6))
        rotate_customers(keyring)
        remove = fail_on_update(sqlite_engine, "re_customers", 3)
        with Session(sqlite_engine) as session, pytest.raises(RuntimeError):
            reencrypt(session, Customer, batch_size=2)
        remove()

        assert "[2]" == checkpoint_of(sqlite_engine, "re_customers")
        new = primary_id(keyring, "re_customers.email")
        assert [True, True, False, False, False] == [
            key_ids({k: v}) == {new} for k, v in tokens(sqlite_engine, CUSTOMERS, "email").items()
        ]
        assert expected_customers(range(1, 6)) == customers(sqlite_engine)

    def test_bad_arguments(self, sqlite_engine: sa.Engine, keyring: Keyring) -> None:
        table = sa.Table("re_plain", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
        no_pk = sa.Table("re_nopk", sa.MetaData(), sa.Column("secret", EncryptedString()))
        add_customers(sqlite_engine, range(1, 2))
        cases: list[tuple[Callable[[], object], str]] = [
            (lambda: reencrypt(sqlite_engine, table), "has no encrypted columns"),
            (lambda: reencrypt(sqlite_engine, no_pk), "has no primary key"),
            (lambda: reencrypt(sqlite_engine, Customer, batch_size=0), "batch_size"),
            (lambda: reencrypt(sqlite_engine, object), "neither a mapped class nor a Table"),
            (lambda: reencrypt(object(), Customer), "an Engine or a Session"),  # type: ignore[arg-type]
        ]
        for call, message in cases:
            with pytest.raises(ConfigurationError, match=message):
                call()
        with Session(sqlite_engine) as session:
            session.add(Customer(id=99, email="x@example.com"))
            with pytest.raises(ConfigurationError, match="unflushed changes"):
                reencrypt(session, Customer)


def add_people(engine: sa.Engine, count: int = ROWS) -> None:
    Base.metadata.create_all(engine)
    rows = [{"id": i, "email": f"p{i}@example.com" if i % 5 else None} for i in range(1, count + 1)]
    with engine.begin() as conn:
        conn.execute(sa.insert(PEOPLE), rows)


def people(engine: sa.Engine) -> list[tuple[int, str | None]]:
    with Session(engine) as session:
        return [(p.id, p.email) for p in session.scalars(sa.select(Person).order_by(Person.id))]


def expected_people(count: int = ROWS) -> list[tuple[int, str | None]]:
    return [(i, f"p{i}@example.com" if i % 5 else None) for i in range(1, count + 1)]


class TestEncryptColumn:
    """A plaintext column is encrypted in place: backfill, verify, swap."""

    def test_backfill_and_verify(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_people(engine)

        report = encrypt_column(engine, Person, "email", "email_enc", batch_size=7)

        assert (20, 20, 0, 0, ROWS, 0, True, True) == (
            report.rows_scanned,
            report.values_encrypted,
            report.conflicts,
            report.errors,
            report.rows_verified,
            report.mismatches,
            report.verified,
            report.ok,
        )
        with Session(engine) as session:
            pairs = session.execute(sa.select(Person.email, Person.email_enc)).all()
            assert [3] == [p.id for p in search(session, Person.email_enc, "p3@example.com")]
        assert all(plain == enc for plain, enc in pairs)
        assert b"example" not in b"".join(tokens(engine, PEOPLE, "email_enc").values())

    def test_idempotent_and_resumable(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_people(engine)
        remove = fail_on_update(engine, "re_people", 10)
        with pytest.raises(RuntimeError):
            encrypt_column(engine, Person, "email", "email_enc", batch_size=4)
        remove()
        assert 8 == len(tokens(engine, PEOPLE, "email_enc"))  # two batches

        report = encrypt_column(engine, Person, "email", "email_enc", batch_size=4)
        again = encrypt_column(engine, Person, "email", "email_enc", batch_size=4)

        assert (12, True) == (report.values_encrypted, report.ok)
        assert (0, 0, True) == (again.rows_scanned, again.values_encrypted, again.ok)

    def test_verify_finds_mismatches(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_people(engine)
        encrypt_column(engine, Person, "email", "email_enc", verify=False)
        table = PEOPLE
        with engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.id == 3).values(email="changed@x.org"))
            conn.execute(sa.update(table).where(table.c.id == 4).values(email=None))

        report = encrypt_column(engine, Person, "email", "email_enc")

        assert (0, 2, False, False) == (
            report.values_encrypted,
            report.mismatches,
            report.verified,
            report.ok,
        )
        assert [
            ((3,), "decrypts to another value than the plaintext"),
            ((4,), "encrypted value without plaintext"),
        ] == [(f.primary_key, f.reason) for f in report.failures]

    def test_plaintext_changed_meanwhile(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_people(engine, 4)
        fired = False

        def write_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            nonlocal fired
            if not fired and statement.lstrip().upper().startswith("UPDATE"):
                fired = True
                with engine.begin() as other:
                    table = PEOPLE
                    other.execute(sa.update(table).where(table.c.id == 2).values(email="n@x.org"))

        sa.event.listen(engine, "before_cursor_execute", write_meanwhile)
        try:
            report = encrypt_column(engine, Person, "email", "email_enc", verify=False)
        finally:
            sa.event.remove(engine, "before_cursor_execute", write_meanwhile)

        assert (1, 3) == (report.conflicts, report.values_encrypted)
        again = encrypt_column(engine, Person, "email", "email_enc")
        assert (1, True) == (again.values_encrypted, again.ok)
        with Session(engine) as session:
            assert "n@x.org" == session.get_one(Person, 2).email_enc

    def test_convert(self, sqlite_engine: sa.Engine, keyring: Keyring) -> None:
        add_people(sqlite_engine, 3)

        calls: list[tuple[int, int]] = []

        report = encrypt_column(
            sqlite_engine,
            Person,
            "email",
            "email_enc",
            convert=str.upper,
            batch_size=2,
            progress=lambda *a: calls.append(a),
        )

        assert report.ok
        assert [(0, 3), (2, 3), (3, 3)] == calls
        with Session(sqlite_engine) as session:
            assert "P1@EXAMPLE.COM" == session.get_one(Person, 1).email_enc

    def test_values_that_cannot_be_encrypted(
        self, sqlite_engine: sa.Engine, keyring: Keyring
    ) -> None:
        add_people(sqlite_engine, 3)

        report = encrypt_column(sqlite_engine, Person, "email", "email_enc", convert=len)

        assert (3, 0, 3, False) == (
            report.errors,
            report.values_encrypted,
            report.mismatches,
            report.ok,
        )
        assert "holds str values, got int" in report.failures[0].reason
        assert "not encrypted yet" == report.failures[-1].reason

    def test_subject_scoped(self, engine: sa.Engine, keyring: Keyring) -> None:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(Member(customer_id=i % 3, email=f"m{i}@example.com") for i in range(9))
            session.commit()

        report = encrypt_column(engine, Member, "email", "email_enc", batch_size=4)

        assert (9, True) == (report.values_encrypted, report.ok)
        with Session(engine) as session:
            members = session.scalars(sa.select(Member)).all()
            assert all(m.email == m.email_enc for m in members)
        assert {primary_id(keyring, f"subject:{i}") for i in range(3)} == key_ids(
            tokens(engine, MEMBERS, "email_enc")
        )

    def test_swap(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_people(engine)
        encrypt_column(engine, Person, "email", "email_enc")

        report = swap_columns(engine, Person, "email", "email_enc")

        assert (ROWS, True) == (report.rows_verified, report.verified)
        assert ["email", "email_index", "id"] == sorted(
            c["name"] for c in sa.inspect(engine).get_columns("re_people")
        )
        with Session(engine) as session:
            found = session.scalars(sa.select(PersonAfterSwap).order_by(PersonAfterSwap.id))
            assert expected_people() == [(p.id, p.email) for p in found]

    def test_swap_refuses(self, sqlite_engine: sa.Engine, keyring: Keyring) -> None:
        add_people(sqlite_engine)
        with pytest.raises(ConfigurationError, match="rows do not verify"):
            swap_columns(sqlite_engine, Person, "email", "email_enc")
        encrypt_column(sqlite_engine, Member, "email", "email_enc")  # no rows: nothing to do
        with pytest.raises(ConfigurationError, match="would not decrypt"):
            swap_columns(sqlite_engine, Member, "email", "email_enc")
        with pytest.raises(ConfigurationError, match="already encrypted"):
            encrypt_column(sqlite_engine, Person, "email_enc", "email_enc")
        with pytest.raises(ConfigurationError, match="not an encrypted column"):
            encrypt_column(sqlite_engine, Person, "email_enc", "email")
        with pytest.raises(ConfigurationError, match="has no column 'nope'"):
            encrypt_column(sqlite_engine, Person, "nope", "email_enc")
        assert {"id", "email", "email_enc", "email_index"} == {
            c["name"] for c in sa.inspect(sqlite_engine).get_columns("re_people")
        }


class TestReport:
    """Reports are frozen value objects without secrets."""

    def test_frozen(self) -> None:
        report = ReencryptReport(
            table="t",
            dry_run=False,
            resumed_from=None,
            rows_scanned=0,
            rows_changed=0,
            values_reencrypted=0,
            values_current=0,
            values_destroyed=0,
            indexes_updated=0,
            conflicts=0,
            errors=0,
            failures=(),
            key_ids_before={},
            key_ids_after={},
        )
        with pytest.raises(AttributeError):
            report.errors = 1  # type: ignore[misc]
        assert report.ok

    def test_no_plaintext_in_failures(self, sqlite_engine: sa.Engine, keyring: Keyring) -> None:
        add_people(sqlite_engine, 3)
        encrypt_column(sqlite_engine, Person, "email", "email_enc", verify=False)
        table = PEOPLE
        with sqlite_engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.id == 1).values(email="secret@x.org"))

        report = encrypt_column(sqlite_engine, Person, "email", "email_enc")

        assert "secret" not in repr(report)
        assert "p1@" not in repr(report)
