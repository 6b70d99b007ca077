"""Tokens bound to the schema of their table: tenants in schemas, on real databases.

Each backend gets two tenant schemas: PostgreSQL schemas, MariaDB databases, SQLite
attached databases. A tenant's table is named by ``__table_args__ = {"schema": ...}`` or,
as schema-per-tenant applications usually do, by a ``schema_translate_map`` execution
option on the engine.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import sqlalchemy as sa
from dbservers import async_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.crypto import Context
from securecustomer.exceptions import DecryptionError
from securecustomer.keys import MemoryKeyStore
from securecustomer.sqlalchemy import (
    BlindIndex,
    EncryptedString,
    SqlKeyStore,
    default_keyring,
    encrypt_rows,
    reencrypt,
    search,
)

DATA = Path(__file__).parent / "data"


@attrs.frozen
class Tenants:
    """An engine on a database with two tenant schemas."""

    engine: sa.Engine
    a: str
    b: str
    #: Where SQLite keeps the attached databases.
    directory: Path

    def under(self, schema: str) -> sa.Engine:
        """The engine with tables without a schema translated to *schema*."""
        return self.engine.execution_options(schema_translate_map={None: schema})


@pytest.fixture
def tenants(db_url: str, tmp_path: Path) -> Iterator[Tenants]:
    from dbservers import reset_database

    backend = sa.make_url(db_url).get_backend_name()
    suffix = secrets.token_hex(3)
    a, b = f"tenant_a_{suffix}", f"tenant_b_{suffix}"
    engine = sa.create_engine(db_url)
    if backend == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def attach(dbapi_connection: Any, record: Any) -> None:
            for name in (a, b):
                dbapi_connection.execute(f"ATTACH DATABASE '{tmp_path / name}.db' AS {name}")

    else:
        create = "CREATE SCHEMA" if backend == "postgresql" else "CREATE DATABASE"
        with engine.begin() as conn:
            for name in (a, b):
                conn.exec_driver_sql(f"{create} {name}")
    try:
        yield Tenants(engine, a, b, tmp_path)
    finally:
        engine.dispose()
        if backend != "sqlite":
            drop = "DROP SCHEMA {} CASCADE" if backend == "postgresql" else "DROP DATABASE {}"
            cleanup = sa.create_engine(db_url, poolclass=sa.NullPool)
            with cleanup.begin() as conn:
                for name in (a, b):
                    conn.exec_driver_sql(drop.format(name))
            cleanup.dispose()
        reset_database(db_url)


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    keyring = Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load()
    default_keyring.bind(keyring)
    yield keyring
    default_keyring.unbind()


def customer_model(schema: str | None, binding: str = "plain") -> Any:
    """A fresh Customer model in *schema*; *binding*: plain, row (row-bound) or subject."""

    class Base(DeclarativeBase):
        pass

    class Customer(Base):
        __tablename__ = "customers"
        __table_args__: ClassVar[dict[str, Any]] = {"schema": schema}
        id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
        subject: Mapped[int]
        ssn: Mapped[str] = mapped_column(EncryptedString())
        ssn_index: Mapped[bytes | None] = mapped_column(BlindIndex("ssn", size=16))

    if binding == "row":
        encrypt_rows(Customer, row="id")
    elif binding == "subject":
        encrypt_rows(Customer, subject="subject")
    return Customer


def raw(schema: str | None) -> sa.TableClause:
    """The customers table of *schema* seen without decryption."""
    return sa.table(
        "customers",
        sa.column("id", sa.Uuid()),
        sa.column("ssn", sa.LargeBinary()),
        sa.column("ssn_index", sa.LargeBinary()),
        sa.column("subject", sa.Integer()),
        schema=schema,
    )


def raw_row(engine: sa.Engine, schema: str, row_id: uuid.UUID) -> Any:
    table = raw(schema)
    with engine.connect() as conn:
        return conn.execute(sa.select(table).where(table.c.id == row_id)).one()


def copy_token(engine: sa.Engine, source: str, target: str, row_id: uuid.UUID) -> None:
    """Copy the raw ssn token of row *row_id* from *source*'s table to *target*'s row."""
    token = raw_row(engine, source, row_id).ssn
    table = raw(target)
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == row_id).values(ssn=token))


@attrs.frozen
class Setup:
    """Two tenants' Customer models and the engines that reach them."""

    models: dict[str, Any]
    engines: dict[str, sa.Engine]


def explicit_setup(tenants: Tenants, binding: str) -> Setup:
    models = {s: customer_model(s, binding) for s in (tenants.a, tenants.b)}
    for model in models.values():
        model.metadata.create_all(tenants.engine)
    return Setup(models, dict.fromkeys(models, tenants.engine))


def translated_setup(tenants: Tenants, binding: str) -> Setup:
    model = customer_model(None, binding)
    engines = {s: tenants.under(s) for s in (tenants.a, tenants.b)}
    for engine in engines.values():
        model.metadata.create_all(engine)
    return Setup(dict.fromkeys(engines, model), engines)


SETUPS: dict[str, Callable[[Tenants, str], Setup]] = {
    "table_args": explicit_setup,
    "translate_map": translated_setup,
}


@pytest.mark.usefixtures("keyring")
@pytest.mark.parametrize("how", sorted(SETUPS))
@pytest.mark.parametrize("binding", ["plain", "row", "subject"])
class TestCopiedToAnotherTenant:
    """A token copied from one tenant's table to the same row of another's fails."""

    def test_copy_fails_to_decrypt(self, tenants: Tenants, how: str, binding: str) -> None:
        setup = SETUPS[how](tenants, binding)
        row_id = uuid.uuid4()
        for schema, value in ((tenants.a, "111-11-1111"), (tenants.b, "222-22-2222")):
            with Session(setup.engines[schema]) as session:
                session.add(setup.models[schema](id=row_id, subject=7, ssn=value))
                session.commit()
        for schema, value in ((tenants.a, "111-11-1111"), (tenants.b, "222-22-2222")):
            with Session(setup.engines[schema]) as session:
                assert value == session.get(setup.models[schema], row_id).ssn

        copy_token(tenants.engine, tenants.a, tenants.b, row_id)

        with Session(setup.engines[tenants.b]) as session, pytest.raises(DecryptionError):
            session.get(setup.models[tenants.b], row_id)
        with Session(setup.engines[tenants.a]) as session:  # the source still reads
            assert "111-11-1111" == session.get(setup.models[tenants.a], row_id).ssn

    def test_equal_values_get_other_indexes(self, tenants: Tenants, how: str, binding: str) -> None:
        setup = SETUPS[how](tenants, binding)
        ids = {}
        for schema in (tenants.a, tenants.b):
            with Session(setup.engines[schema]) as session:
                customer = setup.models[schema](subject=7, ssn="123-45-6789")
                session.add(customer)
                session.commit()
                ids[schema] = customer.id
        indexes = {s: raw_row(tenants.engine, s, ids[s]).ssn_index for s in ids}
        assert indexes[tenants.a] != indexes[tenants.b]
        for schema in (tenants.a, tenants.b):
            with Session(setup.engines[schema]) as session:
                model = setup.models[schema]
                found = search(session, model.ssn, "123-45-6789")
                assert [ids[schema]] == [c.id for c in found]


@pytest.mark.usefixtures("keyring")
class TestBothWaysAgree:
    """A table named in its schema and one put there by a map are the same table."""

    @pytest.mark.parametrize("binding", ["plain", "row", "subject"])
    def test_written_under_a_map_read_by_name(self, tenants: Tenants, binding: str) -> None:
        translated = translated_setup(tenants, binding)
        named = customer_model(tenants.a, binding)
        with Session(translated.engines[tenants.a]) as session:
            customer = translated.models[tenants.a](subject=7, ssn="123-45-6789")
            session.add(customer)
            session.commit()
            row_id = customer.id
        with Session(tenants.engine) as session:
            assert "123-45-6789" == session.get(named, row_id).ssn
            assert [row_id] == [c.id for c in search(session, named.ssn, "123-45-6789")]

    def test_core_statements_under_a_map(self, tenants: Tenants) -> None:
        model = customer_model(None)
        table = model.__table__
        engine = tenants.under(tenants.b)
        model.metadata.create_all(engine)
        row_id = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(sa.insert(table).values(id=row_id, subject=1, ssn="555"))
        with engine.connect() as conn:
            assert "555" == conn.execute(sa.select(table.c.ssn)).scalar_one()
        named = customer_model(tenants.b)
        with tenants.engine.connect() as conn:
            assert "555" == conn.execute(sa.select(named.__table__.c.ssn)).scalar_one()

    def test_a_result_keeps_its_map_while_another_statement_runs(self, tenants: Tenants) -> None:
        model = customer_model(None)
        table = model.__table__
        for schema, value in ((tenants.a, "aaa"), (tenants.b, "bbb")):
            engine = tenants.under(schema)
            model.metadata.create_all(engine)
            with engine.begin() as conn:
                conn.execute(sa.insert(table), [{"subject": i, "ssn": value} for i in range(3)])
        with tenants.under(tenants.a).connect() as conn_a:
            result = conn_a.execute(sa.select(table.c.ssn))
            assert "aaa" == result.first()[0]
            with tenants.under(tenants.b).connect() as conn_b:
                assert {"bbb"} == set(conn_b.execute(sa.select(table.c.ssn)).scalars())
                rest = conn_a.execute(sa.select(table.c.ssn))
                with tenants.under(tenants.b).connect() as conn_c:
                    conn_c.execute(sa.select(table.c.ssn)).first()
                    assert ["aaa"] * 3 == list(rest.scalars())


class TestTablesWithoutSchema:
    """Tokens of a table without a schema, written by the code before schemas, still read."""

    def test_rows_written_before_schemas_decrypt(self, engine: sa.Engine) -> None:
        """Key-store rows and tokens written at commit edef0a8 (stored in data/) still read."""
        legacy = json.loads((DATA / "legacy_edef0a8.json").read_text())

        class Base(DeclarativeBase):
            pass

        class Customer(Base):
            __tablename__ = "customers"
            id: Mapped[int] = mapped_column(primary_key=True)
            ssn: Mapped[str] = mapped_column(EncryptedString())

        store = SqlKeyStore(engine)
        store.create()
        with engine.begin() as conn:
            conn.execute(sa.insert(store.table), [_row(r) for r in legacy[store.table.name]])
        keyring = Keyring(LocalKeyProvider([bytes(range(32))]), store).load()
        Customer.__table__.c.ssn.type.keyring = keyring
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            raw = sa.table("customers", sa.column("id"), sa.column("ssn", sa.LargeBinary))
            conn.execute(sa.insert(raw), [_row(r) for r in legacy["customers"]])
        with Session(engine) as session:
            assert "123-45-6789" == session.get(Customer, 1).ssn
            assert "078-05-1120" == session.get(Customer, 2).ssn


def _row(stored: dict[str, Any]) -> dict[str, Any]:
    """A row of the legacy fixture as values to insert (bytes, datetimes)."""
    row: dict[str, Any] = {}
    for name, value in stored.items():
        if isinstance(value, str) and value.startswith("b64:"):
            value = base64.b64decode(value[4:])
        elif name == "created_at":
            value = dt.datetime.fromisoformat(value)
        row[name] = value
    return row


class TestKeysOfTheFlush:
    """A flush under a map creates the keys of the tenant's scopes, and only those."""

    @pytest.mark.parametrize("binding", ["plain", "row"])
    def test_scopes_created(self, tenants: Tenants, keyring: Keyring, binding: str) -> None:
        setup = translated_setup(tenants, binding)
        with Session(setup.engines[tenants.a]) as session:
            session.add(setup.models[tenants.a](subject=7, ssn="123-45-6789"))
            session.commit()
        assert {f"{tenants.a}.customers.ssn"} == {
            k.scope for k in keyring.status() if k.scope is not None
        }


def write_legacy(keyring: Keyring, engine: sa.Engine, schema: str, values: list[str]) -> list[Any]:
    """Rows of *schema*'s customers as the code before schemas wrote them: tokens bound to
    ``customers.ssn`` without the schema, under the scope ``customers.ssn``."""
    cipher = keyring.cipher("customers.ssn")
    context = Context("customers", "ssn")
    table = raw(schema)
    rows = [
        {"id": uuid.uuid4(), "ssn": cipher.encrypt(v, context=context), "ssn_index": None}
        for v in values
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(table), [{**r, "subject": 7} for r in rows])
    return [r["id"] for r in rows]


@pytest.mark.parametrize("how", sorted(SETUPS))
class TestMigration:
    """`reencrypt(..., migrate_schema=True)` binds the tokens of a table in use to its schema."""

    def test_migrate(self, tenants: Tenants, keyring: Keyring, how: str) -> None:
        setup = SETUPS[how](tenants, "plain")
        model, engine = setup.models[tenants.a], setup.engines[tenants.a]
        ids = write_legacy(keyring, tenants.engine, tenants.a, ["111", "222", "111"])
        with Session(engine) as session, pytest.raises(DecryptionError):
            session.get(model, ids[0])

        report = reencrypt(engine, model, migrate_schema=True, batch_size=2)

        assert report.ok
        assert 3 == report.values_reencrypted
        with Session(engine) as session:
            assert ["111", "222", "111"] == [session.get(model, i).ssn for i in ids]
            assert {ids[0], ids[2]} == {c.id for c in search(session, model.ssn, "111")}
        again = reencrypt(engine, model, migrate_schema=True)
        assert (True, 0, 3) == (again.ok, again.values_reencrypted, again.values_current)


@pytest.mark.usefixtures("keyring")
class TestAsync:
    """The map reaches parameters and results through the asyncio drivers too."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("binding", ["plain", "row"])
    async def test_translated_tenants(self, tenants: Tenants, db_url: str, binding: str) -> None:
        setup = translated_setup(tenants, binding)
        model = setup.models[tenants.a]
        engine = create_async_engine(async_url(db_url))
        if sa.make_url(db_url).get_backend_name() == "sqlite":

            @sa.event.listens_for(engine.sync_engine, "connect")
            def attach(dbapi_connection: Any, record: Any) -> None:
                cursor = dbapi_connection.cursor()
                for name in (tenants.a, tenants.b):
                    cursor.execute(f"ATTACH DATABASE '{tenants.directory / name}.db' AS {name}")
                cursor.close()

        try:
            row_id = uuid.uuid4()
            for schema in (tenants.a, tenants.b):
                bind = engine.execution_options(schema_translate_map={None: schema})
                async with AsyncSession(bind) as session:
                    session.add(model(id=row_id, subject=7, ssn=f"ssn of {schema}"))
                    await session.commit()
            copy_token(tenants.engine, tenants.a, tenants.b, row_id)
            for schema in (tenants.a, tenants.b):
                bind = engine.execution_options(schema_translate_map={None: schema})
                async with AsyncSession(bind) as session:
                    if schema == tenants.a:
                        assert f"ssn of {schema}" == (await session.get(model, row_id)).ssn
                    else:
                        with pytest.raises(DecryptionError):
                            await session.get(model, row_id)
        finally:
            await engine.dispose()
