"""Large values and column sizes, on SQLite, PostgreSQL and MariaDB in a non-strict sql_mode.

In a non-strict ``sql_mode`` MariaDB cuts a value that is too long for its column and
keeps the rest, with a warning the application never sees: a token cut so can never be
decrypted again. The types must declare columns that hold what they promise, and refuse a
token longer than its column before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Keyring
from securecustomer.exceptions import ConfigurationError, UnsupportedValueError
from securecustomer.sqlalchemy import (
    Encrypted,
    EncryptedBytes,
    EncryptedJSON,
    EncryptedString,
    EncryptedText,
    default_keyring,
    encrypt_rows,
)
from securecustomer.testing import memory_keyring

BIG = 100_000  # more than a 64 KiB BLOB or TEXT holds
SECRET = "plaintext-that-must-not-leak "


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    keyring = memory_keyring()
    default_keyring.bind(keyring)
    yield keyring
    default_keyring.unbind()


@pytest.fixture
def lenient(engine: sa.Engine) -> sa.Engine:
    """The engine; on MariaDB every connection runs with an empty (non-strict) sql_mode."""
    if engine.dialect.name == "mariadb":

        @sa.event.listens_for(engine, "connect")
        def non_strict(dbapi_connection: Any, record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET SESSION sql_mode=''")

    return engine


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        found: int = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    return found


class TestLargeValues:
    """100 kB text, JSON and bytes go in and come back whole."""

    @pytest.mark.parametrize("storage", ["binary", "text"])
    def test_round_trip(self, lenient: sa.Engine, keyring: Keyring, storage: Any) -> None:
        table = sa.Table(
            "documents",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("body", EncryptedText(storage=storage)),
            sa.Column("data", EncryptedJSON(storage=storage)),
            sa.Column("scan", EncryptedBytes(storage=storage)),
            sa.Column("control", sa.LargeBinary),  # a plain BLOB, to show the mode is lenient
        )
        table.metadata.create_all(lenient)
        row = {
            "id": 1,
            "body": "é" * (BIG // 2),
            "data": {"pages": ["x" * 1000] * (BIG // 1000)},
            "scan": bytes(range(256)) * (BIG // 256 + 1),
            "control": b"c" * BIG,
        }
        with lenient.begin() as conn:
            conn.execute(sa.insert(table), [row])
        with lenient.connect() as conn:
            back = dict(conn.execute(sa.select(table)).mappings().one())
        control = back.pop("control")
        expected = dict(row)
        del expected["control"]
        assert expected == back
        if lenient.dialect.name == "mariadb":
            assert 65_535 == len(control)  # silently cut: what the encrypted columns avoid
        else:
            assert BIG == len(control)


class TestColumnSize:
    """A token longer than its column is refused before anything is written."""

    def test_string_beyond_a_mariadb_blob(self, lenient: sa.Engine, keyring: Keyring) -> None:
        table = sa.Table(
            "customers",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", EncryptedString()),
        )
        table.metadata.create_all(lenient)
        value = SECRET * (70_000 // len(SECRET))
        if lenient.dialect.name != "mariadb":  # BYTEA and SQLite's BLOB hold it
            with lenient.begin() as conn:
                conn.execute(sa.insert(table), [{"id": 1, "name": value}])
            with lenient.connect() as conn:
                assert value == conn.execute(sa.select(table.c.name)).scalar_one()
            return
        with pytest.raises(UnsupportedValueError) as info, lenient.begin() as conn:
            conn.execute(sa.insert(table), [{"id": 1, "name": "short"}, {"id": 2, "name": value}])
        message = str(info.value)
        assert "customers.name" in message
        assert f"{len(value) + 34:,} bytes" in message
        assert "65,535 bytes" in message
        assert SECRET not in message
        assert 0 == count(lenient, table)

    @pytest.mark.parametrize("storage", ["binary", "text"])
    def test_declared_length(self, lenient: sa.Engine, keyring: Keyring, storage: Any) -> None:
        table = sa.Table(
            "customers",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", EncryptedString(length=100, storage=storage)),
        )
        table.metadata.create_all(lenient)
        fits = "x" * (100 - 34) if storage == "binary" else "x" * (75 - 34)  # base64: 4/3
        with lenient.begin() as conn:
            conn.execute(sa.insert(table), [{"id": 1, "name": fits}])
        over = fits + "y"
        with pytest.raises(UnsupportedValueError) as info, lenient.begin() as conn:
            conn.execute(sa.insert(table), [{"id": 2, "name": "ok"}, {"id": 3, "name": over}])
        message = str(info.value)
        assert "customers.name" in message
        assert ("101 bytes" if storage == "binary" else "104 bytes") in message
        assert "length=100" in message
        assert over not in message
        assert 1 == count(lenient, table)
        with pytest.raises(UnsupportedValueError), lenient.begin() as conn:
            conn.execute(sa.update(table).values(name=over))
        with lenient.connect() as conn:
            assert fits == conn.execute(sa.select(table.c.name)).scalar_one()

    def test_declared_length_row_bound(self, lenient: sa.Engine, keyring: Keyring) -> None:
        class Base(DeclarativeBase):
            pass

        class Order(Base):
            __tablename__ = "orders"
            id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
            customer_id: Mapped[int]
            address: Mapped[str] = mapped_column(EncryptedString(length=100))

        encrypt_rows(Order, row="id", subject="customer_id")
        Base.metadata.create_all(lenient)
        with Session(lenient) as session:
            session.add(Order(customer_id=1, address="x" * 66))
            session.commit()
            session.add_all(
                [Order(customer_id=2, address="ok"), Order(customer_id=2, address=SECRET * 4)]
            )
            with pytest.raises(UnsupportedValueError, match=r"orders\.address") as info:
                session.commit()
            assert SECRET not in str(info.value)
            session.rollback()
        assert 1 == count(lenient, Order.__table__)  # type: ignore[arg-type]

    def test_bad_length(self) -> None:
        for bad in (0, -1, True, "100", 1.5):
            with pytest.raises(ConfigurationError, match="length"):
                EncryptedString(length=bad)  # type: ignore[arg-type]

    def test_encrypt_column_skips_what_does_not_fit(
        self, lenient: sa.Engine, keyring: Keyring
    ) -> None:
        from securecustomer.sqlalchemy import encrypt_column

        table = sa.Table(
            "customers",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.Text),
            sa.Column("name_enc", EncryptedString(length=100)),
        )
        table.metadata.create_all(lenient)
        with lenient.begin() as conn:
            conn.execute(
                sa.insert(table), [{"id": 1, "name": "Ada"}, {"id": 2, "name": SECRET * 4}]
            )

        report = encrypt_column(lenient, table, "name", "name_enc")

        assert (1, 1, False) == (report.values_encrypted, report.errors, report.ok)
        failure, unverified = report.failures
        assert ((2,), (2,), "not encrypted yet") == (
            failure.primary_key,
            unverified.primary_key,
            unverified.reason,
        )
        assert "length=100" in failure.reason
        assert SECRET not in failure.reason
        with lenient.connect() as conn:
            stored = conn.execute(sa.select(table.c.id, table.c.name_enc).order_by(table.c.id))
            assert [(1, "Ada"), (2, None)] == [tuple(r) for r in stored]


class TestDeclaredTypes:
    """The column type each encrypted type declares, by dialect."""

    @pytest.mark.parametrize(
        ("column_type", "mariadb", "postgresql"),
        [
            (EncryptedString(), "BLOB", "BYTEA"),
            (EncryptedString(storage="text"), "TEXT", "VARCHAR"),
            (EncryptedString(length=300), "BLOB(300)", "BYTEA"),
            (EncryptedString(length=300, storage="text"), "TEXT(300)", "VARCHAR"),
            (EncryptedText(), "LONGBLOB", "BYTEA"),
            (EncryptedText(storage="text"), "LONGTEXT", "VARCHAR"),
            (EncryptedJSON(), "LONGBLOB", "BYTEA"),
            (EncryptedBytes(), "LONGBLOB", "BYTEA"),
            (Encrypted(dict), "LONGBLOB", "BYTEA"),
            (Encrypted(bytes), "LONGBLOB", "BYTEA"),
            (Encrypted(str), "BLOB", "BYTEA"),
            (EncryptedText(length=70_000), "BLOB(70000)", "BYTEA"),
        ],
    )
    def test_ddl(self, column_type: Encrypted, mariadb: str, postgresql: str) -> None:
        assert mariadb == column_type.compile(dialect=mysql.dialect(is_mariadb=True))
        assert mariadb == column_type.compile(dialect=mysql.dialect())
        assert postgresql == column_type.compile(dialect=pg.dialect())
