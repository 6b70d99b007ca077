"""Encrypted column types on real SQLite, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import datetime as dt
import enum
import pickle
import uuid
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Context, Keyring
from securecustomer.exceptions import (
    ConfigurationError,
    DecryptionError,
    KeyDestroyedError,
    UnsupportedQueryError,
    UnsupportedValueError,
)
from securecustomer.sqlalchemy import (
    Encrypted,
    EncryptedBytes,
    EncryptedDate,
    EncryptedDateTime,
    EncryptedInteger,
    EncryptedJSON,
    EncryptedNumeric,
    EncryptedString,
    EncryptedText,
    EncryptedUUID,
    KeyringSlot,
    default_keyring,
)
from securecustomer.testing import memory_keyring


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    keyring = memory_keyring()
    default_keyring.bind(keyring)
    yield keyring
    default_keyring.unbind()


def customers(metadata: sa.MetaData, *, storage: str = "binary") -> sa.Table:
    return sa.Table(
        "customers",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", EncryptedString(storage=storage)),  # type: ignore[arg-type]
        sa.Column("notes", EncryptedText(storage=storage)),  # type: ignore[arg-type]
        sa.Column("photo", EncryptedBytes()),
        sa.Column("age", EncryptedInteger()),
        sa.Column("balance", EncryptedNumeric()),
        sa.Column("born", EncryptedDate()),
        sa.Column("seen", EncryptedDateTime()),
        sa.Column("prefs", EncryptedJSON()),
        sa.Column("token", EncryptedUUID()),
        sa.Column("ssn", EncryptedString(deterministic=True)),
    )


ROW: dict[str, Any] = {
    "id": 1,
    "name": "Zoë O'Brien",
    "notes": "x" * 5000,
    "photo": bytes(range(256)),
    "age": -42,
    "balance": Decimal("1234.50"),
    "born": dt.date(1990, 2, 28),
    "seen": dt.datetime(2026, 3, 29, 1, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    "prefs": {"newsletter": False, "tags": ["a", "b"]},
    "token": uuid.UUID(int=7),
    "ssn": "123-45-6789",
}


class Level(enum.StrEnum):
    GOLD = "gold"


EMPTY: dict[str, Any] = {"id": 2} | dict.fromkeys(set(ROW) - {"id"})


class TestRoundTrip:
    """Every supported type goes in encrypted and comes back equal, on every backend."""

    @pytest.mark.parametrize("storage", ["binary", "text"])
    def test_core(self, engine: sa.Engine, keyring: Keyring, storage: str) -> None:
        table = customers(sa.MetaData(), storage=storage)
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [ROW, EMPTY])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.id)).mappings().all()
        assert ROW == dict(rows[0])
        assert EMPTY == dict(rows[1])

    def test_stored_bytes_are_tokens(self, engine: sa.Engine, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [ROW])
        with engine.connect() as conn:
            raw = conn.execute(sa.text("SELECT name, ssn FROM customers")).one()
        name = bytes(raw[0])
        assert (1, 0x11) == (name[0], name[1])
        assert "Zoë".encode() not in name
        assert 34 == len(name) - len(ROW["name"].encode())

    def test_orm_session(self, engine: sa.Engine, keyring: Keyring) -> None:
        class Base(DeclarativeBase):
            pass

        class Customer(Base):
            __tablename__ = "customers"
            id: Mapped[int] = mapped_column(primary_key=True)
            email: Mapped[str] = mapped_column(EncryptedString())
            born: Mapped[dt.date | None] = mapped_column(EncryptedDate())

        Base.metadata.create_all(engine)
        with Session(engine) as session:
            # ids from 1: MariaDB reads an explicit 0 as "next auto-increment value"
            session.add_all([Customer(id=i, email=f"u{i}@example.com") for i in range(1, 51)])
            session.commit()
        with Session(engine) as session:
            emails = [c.email for c in session.scalars(sa.select(Customer).order_by(Customer.id))]
            assert [f"u{i}@example.com" for i in range(1, 51)] == emails
            first = session.get(Customer, 1)
            assert first is not None
            first.email = "changed@example.com"
            session.commit()
        with Session(engine) as session:
            assert "changed@example.com" == session.get(Customer, 1).email  # type: ignore[union-attr]


class TestBinding:
    """Tokens are bound to their table and column; copies elsewhere fail."""

    def test_copied_to_another_column(self, engine: sa.Engine, keyring: Keyring) -> None:
        metadata = sa.MetaData()
        table = sa.Table(
            "people",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("home", EncryptedString()),
            sa.Column("work", EncryptedString(scope="people.home")),  # same key, other column
        )
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [{"id": 1, "home": "1 Home St", "work": "2 Work St"}])
            conn.execute(sa.text("UPDATE people SET work = home"))
        with engine.connect() as conn, pytest.raises(DecryptionError) as info:
            conn.execute(sa.select(table.c.work)).all()
        assert type(info.value) is DecryptionError

    def test_edited_in_the_database(self, engine: sa.Engine, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [ROW])
            raw = bytearray(conn.execute(sa.text("SELECT name FROM customers")).scalar_one())
            raw[-1] ^= 1
            conn.execute(sa.text("UPDATE customers SET name = :v"), {"v": bytes(raw)})
        with engine.connect() as conn, pytest.raises(DecryptionError) as info:
            conn.execute(sa.select(table.c.name)).all()
        assert type(info.value) is DecryptionError

    def test_shared_type_object_is_split(self, keyring: Keyring) -> None:
        shared = EncryptedString()
        table = sa.Table(
            "t",
            sa.MetaData(),
            sa.Column("a", shared),
            sa.Column("b", shared),
        )
        assert ("t", "a") == table.c.a.type.names  # type: ignore[attr-defined]
        assert ("t", "b") == table.c.b.type.names  # type: ignore[attr-defined]

    def test_pinned_context_survives_a_rename(self, engine: sa.Engine, keyring: Keyring) -> None:
        old = sa.Table(
            "t",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("mail", EncryptedString(context=("t", "mail"))),
        )
        old.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(old), [{"id": 1, "mail": "a@b.c"}])
        renamed = sa.Table(
            "t",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column(
                "email",
                EncryptedString(context=("t", "mail"), scope="t.mail"),
                key="email",
                quote=None,
            ),
        )
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE t RENAME COLUMN mail TO email"))
        with engine.connect() as conn:
            assert "a@b.c" == conn.execute(sa.select(renamed.c.email)).scalar_one()

    def test_unattached_type(self, keyring: Keyring) -> None:
        with pytest.raises(ConfigurationError, match="not attached to a table column"):
            EncryptedString().process_bind_param("x", sa.create_engine("sqlite://").dialect)


class TestBadInput:
    """Wrong Python types, NULLs and empty strings."""

    @pytest.mark.parametrize(
        ("column", "value"),
        [
            ("name", 5),
            ("age", True),
            ("age", "5"),
            ("balance", 1.5),
            ("seen", dt.date.today()),
            ("born", dt.datetime.now(dt.UTC)),
            ("prefs", "{}"),
            ("token", str(uuid.uuid4())),
        ],
    )
    def test_wrong_type(self, engine: sa.Engine, keyring: Keyring, column: str, value: Any) -> None:
        table = customers(sa.MetaData())
        table.metadata.create_all(engine)
        with pytest.raises(UnsupportedValueError) as info, engine.begin() as conn:
            conn.execute(sa.insert(table), [{"id": 1, column: value}])
        assert f"customers.{column}" in str(info.value)  # not wrapped in StatementError
        with engine.connect() as conn:
            assert 0 == conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

    @pytest.mark.parametrize(
        ("column", "value", "got"),
        [
            ("name", Level.GOLD, "Level, a subclass of str; convert it first"),
            ("age", True, "got bool, a subclass of int; convert it first"),
            ("born", dt.datetime.now(dt.UTC), "got datetime.datetime, a subclass of date;"),
        ],
    )
    def test_subclass_value(
        self, engine: sa.Engine, keyring: Keyring, column: str, value: Any, got: str
    ) -> None:
        """A value of a subclass of the column's type is refused with a hint to convert it."""
        table = customers(sa.MetaData())
        table.metadata.create_all(engine)
        with pytest.raises(UnsupportedValueError) as info, engine.begin() as conn:
            conn.execute(sa.insert(table), [{"id": 1, column: value}])
        assert f"customers.{column} holds " in str(info.value)
        assert got in str(info.value)
        assert "gold" not in str(info.value)  # names the type, never the value

    def test_naive_datetime(self, engine: sa.Engine, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        table.metadata.create_all(engine)
        with pytest.raises(UnsupportedValueError, match="naive datetime"), engine.begin() as conn:
            conn.execute(sa.insert(table), [{"id": 1, "seen": dt.datetime(2026, 1, 1)}])

    def test_null_and_empty(self, engine: sa.Engine, keyring: Keyring) -> None:
        """NULL stays NULL (not encrypted); an empty string is encrypted like any other."""
        table = customers(sa.MetaData())
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [{"id": 1, "name": "", "notes": None}])
            raw = conn.execute(sa.text("SELECT name, notes FROM customers")).one()
            assert 34 == len(bytes(raw[0]))
            assert raw[1] is None
            row = conn.execute(sa.select(table.c.name, table.c.notes)).one()
        assert ("", None) == tuple(row)

    def test_unbound_slot(self, engine: sa.Engine) -> None:
        slot = KeyringSlot("billing")
        table = sa.Table("t", sa.MetaData(), sa.Column("v", EncryptedString(keyring=slot)))
        table.metadata.create_all(engine)
        with (
            pytest.raises(ConfigurationError, match="slot 'billing' is not bound"),
            engine.begin() as conn,
        ):
            conn.execute(sa.insert(table), [{"v": "x"}])

    def test_bad_declarations(self) -> None:
        with pytest.raises(ConfigurationError, match="needs a value type"):
            Encrypted()
        with pytest.raises(ConfigurationError, match="does not support"):
            Encrypted(float)
        with pytest.raises(ConfigurationError, match="storage"):
            EncryptedString(storage="hex")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="context"):
            EncryptedString(context=("t",))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="needs a Keyring"):
            KeyringSlot().bind("not a keyring")  # type: ignore[arg-type]

    def test_destroyed_scope(self, engine: sa.Engine, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [ROW])
        keyring.destroy("customers.name")
        with engine.connect() as conn, pytest.raises(KeyDestroyedError):
            conn.execute(sa.select(table.c.name)).all()


class TestQueries:
    """Randomized columns refuse comparisons; deterministic ones allow == and IN."""

    def test_deterministic_filters(self, engine: sa.Engine, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [{"id": i, "ssn": f"ssn-{i}"} for i in range(1, 11)])
        with engine.connect() as conn:
            assert [3] == conn.execute(
                sa.select(table.c.id).where(table.c.ssn == "ssn-3")
            ).scalars().all()
            found = (
                conn.execute(
                    sa.select(table.c.id).where(table.c.ssn.in_(["ssn-1", "ssn-7", "nope"]))
                )
                .scalars()
                .all()
            )
            assert [1, 7] == sorted(found)
            assert 9 == len(
                conn.execute(sa.select(table.c.id).where(table.c.ssn != "ssn-10")).all()
            )

    @pytest.mark.parametrize(
        "build",
        [
            lambda c: c == "x",
            lambda c: c != "x",
            lambda c: c.in_(["x"]),
            lambda c: c.like("x%"),
            lambda c: c.ilike("x%"),
            lambda c: c > "x",
            lambda c: c.startswith("x"),
            lambda c: c.contains("x"),
            lambda c: c.asc(),
            lambda c: c.between("a", "b"),
            lambda c: "x" == c,
        ],
    )
    def test_randomized_refuses(self, keyring: Keyring, build: Any) -> None:
        table = customers(sa.MetaData())
        with pytest.raises(UnsupportedQueryError, match="blind index"):
            build(table.c.name)

    def test_deterministic_refuses_ordering_and_like(self, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        for build in (lambda c: c.like("1%"), lambda c: c > "1", lambda c: c.desc()):
            with pytest.raises(UnsupportedQueryError, match="only ==, != and IN"):
                build(table.c.ssn)

    def test_no_literal_rendering(self, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        statement = sa.select(table.c.id).where(table.c.ssn == "123")
        with pytest.raises(sa.exc.CompileError) as info:
            str(statement.compile(compile_kwargs={"literal_binds": True}))
        assert isinstance(info.value.__cause__, UnsupportedQueryError)
        assert "never rendered as SQL literals" in str(info.value.__cause__)

    def test_statement_cache_separates_keyrings(self, engine: sa.Engine) -> None:
        """Two tables whose columns use different keyrings never share compiled state."""
        first, second = memory_keyring(), memory_keyring()
        metadata = sa.MetaData()
        a = sa.Table(
            "a", metadata, sa.Column("v", EncryptedString(keyring=first, deterministic=True))
        )
        b = sa.Table(
            "b", metadata, sa.Column("v", EncryptedString(keyring=second, deterministic=True))
        )
        metadata.create_all(engine)
        with engine.begin() as conn:
            for _ in range(3):  # the second and third round hit the statement cache
                conn.execute(sa.insert(a), [{"v": "x"}])
                conn.execute(sa.insert(b), [{"v": "x"}])
            one = conn.execute(sa.text("SELECT v FROM a")).scalars().first()
            two = conn.execute(sa.text("SELECT v FROM b")).scalars().first()
            assert bytes(one)[2:6] != bytes(two)[2:6]
            assert 3 == len(conn.execute(sa.select(a.c.v).where(a.c.v == "x")).all())
            assert 3 == len(conn.execute(sa.select(b.c.v).where(b.c.v == "x")).all())
        assert a.c.v.type._static_cache_key != b.c.v.type._static_cache_key

    def test_cache_ok_on_every_class(self) -> None:
        for cls in (
            Encrypted,
            EncryptedString,
            EncryptedText,
            EncryptedBytes,
            EncryptedInteger,
            EncryptedNumeric,
            EncryptedDate,
            EncryptedDateTime,
            EncryptedJSON,
            EncryptedUUID,
        ):
            assert "cache_ok" in vars(cls)
            assert cls.cache_ok is True


class TestSecrets:
    """Types never pickle key material and reprs name no key."""

    def test_pickle_drops_cipher(self, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        column_type = table.c.name.type
        column_type.cipher()  # type: ignore[attr-defined]
        copy = pickle.loads(pickle.dumps(column_type))
        assert copy._cipher is None
        assert "EncryptedString()" == repr(column_type)
        assert "KeyringSlot 'default' bound" in repr(default_keyring)

    def test_context_helper(self, keyring: Keyring) -> None:
        table = customers(sa.MetaData())
        assert Context("customers", "name", row=3) == table.c.name.type.column_context(row=3)  # type: ignore[attr-defined]


#: Each public column type: (value types, LONGBLOB on MySQL/MariaDB, repr of an instance).
PUBLIC_TYPES: dict[type[Encrypted], tuple[tuple[type, ...], bool]] = {
    EncryptedString: ((str,), False),
    EncryptedText: ((str,), True),
    EncryptedBytes: ((bytes,), True),
    EncryptedInteger: ((int,), False),
    EncryptedNumeric: ((Decimal,), False),
    EncryptedDate: ((dt.date,), False),
    EncryptedDateTime: ((dt.datetime,), False),
    EncryptedJSON: ((dict, list), True),
    EncryptedUUID: ((uuid.UUID,), False),
}

#: The column of `customers` that holds each type's values in `ROW`.
COLUMN_OF = {
    EncryptedString: "name",
    EncryptedText: "notes",
    EncryptedBytes: "photo",
    EncryptedInteger: "age",
    EncryptedNumeric: "balance",
    EncryptedDate: "born",
    EncryptedDateTime: "seen",
    EncryptedJSON: "prefs",
    EncryptedUUID: "token",
}


def _subclass(parent: type[Encrypted]) -> type[Encrypted]:
    return type(f"Plugin{parent.__name__}", (parent,), {"cache_ok": True})


class TestPluginSubclasses:
    """The column types are classes a plugin subclasses; the subclasses behave the same."""

    @pytest.mark.parametrize("cls", list(PUBLIC_TYPES))
    def test_public_class(self, cls: type[Encrypted]) -> None:
        """Name, module, value types, size class, repr and pickling as before."""
        python_types, large = PUBLIC_TYPES[cls]
        assert ("securecustomer.sqlalchemy", cls.__name__) == (cls.__module__, cls.__qualname__)
        assert f"<class 'securecustomer.sqlalchemy.{cls.__name__}'>" == repr(cls)
        assert (python_types, large) == (cls.python_types, cls._large)
        assert issubclass(cls, Encrypted)
        column_type = cls(scope="s")
        assert f"{cls.__name__}(scope='s')" == repr(column_type)
        copy = pickle.loads(pickle.dumps(column_type))
        assert (cls, "s") == (type(copy), copy.scope)

    def test_subclasses_round_trip(self, engine: sa.Engine, keyring: Keyring) -> None:
        """A subclass of every column type stores, reads and sizes its column as its parent."""
        metadata = sa.MetaData()

        def table(name: str, wrap: Any) -> sa.Table:
            return sa.Table(
                name,
                metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                *(sa.Column(column, wrap(cls)()) for cls, column in COLUMN_OF.items()),
            )

        parents = table("parents", lambda cls: cls)
        children = table("children", _subclass)
        metadata.create_all(engine)

        def ddl(table: sa.Table) -> str:
            text = str(sa.schema.CreateTable(table).compile(dialect=engine.dialect))
            return text.replace(table.name, "T")

        assert ddl(parents) == ddl(children)
        columns = ["id", *COLUMN_OF.values()]
        row = {name: ROW[name] for name in columns}
        empty = {"id": 2} | dict.fromkeys(COLUMN_OF.values())
        with engine.begin() as conn:
            conn.execute(sa.insert(children), [row, empty])
            for _ in range(2):  # the second round hits the statement cache
                got = conn.execute(sa.select(children).order_by(children.c.id)).mappings().all()
        assert row == dict(got[0])
        assert empty == dict(got[1])

    def test_plugin_options(self, keyring: Keyring) -> None:
        """A subclass with its own options pickles, and shows its own name."""
        column_type = PluginEmail(scope="pii", lowercase=True)
        assert "PluginEmail(scope='pii')" == repr(column_type)
        copy = pickle.loads(pickle.dumps(column_type))
        assert (PluginEmail, True, (str,)) == (type(copy), copy.lowercase, copy.python_types)
        assert "cache_ok" in vars(PluginEmail)


class PluginEmail(EncryptedString):
    """A plugin's column type with an option of its own."""

    cache_ok = True

    def __init__(self, *, scope: str | None = None, lowercase: bool = False) -> None:
        super().__init__(scope=scope)
        self.lowercase = lowercase
