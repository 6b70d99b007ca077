"""Alembic autogenerate renders encrypted columns into migrations that run as written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from records import record

from securecustomer.sqlalchemy import SqlKeyStore, default_keyring
from securecustomer.testing import memory_keyring

MODELS = """
import sqlalchemy as sa
from securecustomer.sqlalchemy import EncryptedJSON, EncryptedString

metadata = sa.MetaData()
customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", EncryptedString(deterministic=True)),
    sa.Column("prefs", EncryptedJSON(storage="text")),
)
"""

ENV = """
from alembic import context
from securecustomer.sqlalchemy import render_item
import sc_models

config = context.config
connectable = config.attributes["connection"]
context.configure(
    connection=connectable, target_metadata=sc_models.metadata, render_item=render_item
)
with context.begin_transaction():
    context.run_migrations()
"""


class TestAutogenerate:
    """A migration generated from encrypted columns imports and creates them."""

    def test_revision_and_upgrade(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: sa.Engine
    ) -> None:
        (tmp_path / "sc_models.py").write_text(MODELS)
        monkeypatch.syspath_prepend(str(tmp_path))
        config = Config(str(tmp_path / "alembic.ini"))
        config.set_main_option("script_location", str(tmp_path / "migrations"))
        command.init(config, str(tmp_path / "migrations"))
        (tmp_path / "migrations" / "env.py").write_text(textwrap.dedent(ENV))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.revision(config, message="customers", autogenerate=True)
        (script,) = (tmp_path / "migrations" / "versions").glob("*.py")
        text = script.read_text()
        assert "import securecustomer.sqlalchemy" in text
        assert "securecustomer.sqlalchemy.EncryptedString(deterministic=True)" in text
        assert "securecustomer.sqlalchemy.EncryptedJSON(storage='text')" in text
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        import sc_models

        keyring = memory_keyring()
        default_keyring.bind(keyring)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(sc_models.customers), [{"id": 1, "email": "a@b.c", "prefs": {"x": 1}}]
                )
                row = conn.execute(sa.select(sc_models.customers)).one()
        finally:
            default_keyring.unbind()
        assert (1, "a@b.c", {"x": 1}) == tuple(row)

    def test_key_table(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: sa.Engine
    ) -> None:
        """The key store's table, with its exact scope column, migrates as written."""
        (tmp_path / "sc_key_models.py").write_text(KEY_MODELS)
        monkeypatch.syspath_prepend(str(tmp_path))
        config = Config(str(tmp_path / "alembic.ini"))
        config.set_main_option("script_location", str(tmp_path / "migrations"))
        command.init(config, str(tmp_path / "migrations"))
        env = textwrap.dedent(ENV).replace("sc_models", "sc_key_models")
        (tmp_path / "migrations" / "env.py").write_text(env)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.revision(config, message="keys", autogenerate=True)
            command.upgrade(config, "head")
            command.revision(config, message="again", autogenerate=True)
        scripts = sorted((tmp_path / "migrations" / "versions").glob("*.py"), key=_revision_order)
        assert "sa.VARBINARY(length=1020), 'mysql', 'mariadb')" in scripts[0].read_text()
        assert "op." not in scripts[1].read_text()  # nothing left to change
        store = SqlKeyStore(engine)
        store.add_data_key(record(1, scope="subject:ab"))
        assert record(2, scope="subject:AB") == store.add_data_key(record(2, scope="subject:AB"))
        assert () == store.migrate()


KEY_MODELS = """
import sqlalchemy as sa
from securecustomer.sqlalchemy import SqlKeyStore

metadata = sa.MetaData()
SqlKeyStore(sa.create_engine("sqlite://"), metadata=metadata)
"""


def _revision_order(script: Path) -> bool:
    return "down_revision: Union[str, Sequence[str], None] = None" not in script.read_text()
