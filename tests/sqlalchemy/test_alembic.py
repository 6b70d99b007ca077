"""Alembic autogenerate writes encrypted columns and blind indexes into migrations that run.

The round trip runs the real `alembic` command in a subprocess, in a project that `alembic
init` made: autogenerate, upgrade, a second autogenerate that finds nothing to do, downgrade.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from records import record
from sqlalchemy.orm import Session

import securecustomer
from securecustomer.exceptions import ConfigurationError
from securecustomer.sqlalchemy import (
    BlindIndex,
    Encrypted,
    EncryptedString,
    SqlKeyStore,
    casefold,
    compose,
    default_keyring,
    render_item,
    search,
    strip,
)
from securecustomer.testing import memory_keyring

#: The env.py of the guide (docs/sqlalchemy.md, "Alembic migrations"), with its models module.
ENV = """
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

from securecustomer.sqlalchemy import render_item

from sc_models import Base  # your models: every table autogenerate should see

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        render_item=render_item,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

#: Importable custom normalizers, in a module of their own.
NORMALIZERS = '''
def squash_spaces(value: str) -> str:
    """Runs of whitespace become one space."""
    return " ".join(value.split())


class Normalizers:
    @staticmethod
    def upper(value: str) -> str:
        return value.upper()
'''

#: One model with every column type, every keyword option and every blind-index form.
MODELS = """
import datetime as dt
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from securecustomer.sqlalchemy import (
    BlindIndex, Encrypted, EncryptedBytes, EncryptedDate, EncryptedDateTime, EncryptedInteger,
    EncryptedJSON, EncryptedNumeric, EncryptedString, EncryptedText, EncryptedUUID,
    casefold, compose, default_keyring, digits_only, nfkc, normalize_email, strip,
)
from sc_normalizers import Normalizers, squash_spaces


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(EncryptedString(keyring=default_keyring))
    email: Mapped[str] = mapped_column(EncryptedString(scope="pii", deterministic=True))
    notes: Mapped[str] = mapped_column(EncryptedText(storage="text"))
    photo: Mapped[bytes] = mapped_column(EncryptedBytes(context=("people", "photo")))
    age: Mapped[int] = mapped_column(EncryptedInteger(deterministic=True, storage="text"))
    balance: Mapped[Decimal] = mapped_column(EncryptedNumeric(scope="money"))
    born: Mapped[dt.date] = mapped_column(EncryptedDate())
    seen: Mapped[dt.datetime] = mapped_column(EncryptedDateTime(storage="text"))
    prefs: Mapped[dict] = mapped_column(EncryptedJSON())
    token: Mapped[uuid.UUID] = mapped_column(EncryptedUUID(deterministic=True))
    phone: Mapped[str] = mapped_column("phone_enc", EncryptedString())
    g_str: Mapped[str] = mapped_column(Encrypted(str, scope="g"))
    g_bytes: Mapped[bytes] = mapped_column(Encrypted(bytes))
    g_int: Mapped[int] = mapped_column(Encrypted(int, deterministic=True))
    g_decimal: Mapped[Decimal] = mapped_column(Encrypted(Decimal))
    g_date: Mapped[dt.date] = mapped_column(Encrypted(dt.date, storage="text"))
    g_datetime: Mapped[dt.datetime] = mapped_column(Encrypted(dt.datetime))
    g_uuid: Mapped[uuid.UUID] = mapped_column(Encrypted(uuid.UUID, context=("c", "u")))
    g_dict: Mapped[dict] = mapped_column(Encrypted(dict))
    g_list: Mapped[list] = mapped_column(Encrypted(list, storage="text"))

    # no normalizer, source by attribute name
    name_index: Mapped[bytes] = mapped_column(BlindIndex("name", size=8), index=True)
    # a public normalizer, source as the class attribute
    email_index: Mapped[bytes] = mapped_column(
        BlindIndex(email, normalizer=normalize_email, size=16), index=True
    )
    # compose(), source by attribute name where the column has another name
    phone_index: Mapped[bytes] = mapped_column(
        BlindIndex("phone", normalizer=compose(strip, digits_only), size=8), index=True
    )
    # an importable custom function
    notes_index: Mapped[bytes] = mapped_column(
        BlindIndex(notes, normalizer=squash_spaces, size=4)
    )
    # compose() of public and custom normalizers, a static method
    g_str_index: Mapped[bytes] = mapped_column(
        BlindIndex("g_str", normalizer=compose(nfkc, squash_spaces, Normalizers.upper), size=8)
    )
    # non-str sources
    age_index: Mapped[bytes] = mapped_column(BlindIndex(age, size=4))
    born_index: Mapped[bytes] = mapped_column(BlindIndex("born", size=8))


iban = sa.Column("iban", EncryptedString())
accounts = sa.Table(
    "accounts",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    iban,
    # a Core Column as the source
    sa.Column("iban_index", BlindIndex(iban, normalizer=compose(strip, casefold), size=8)),
)
"""

ROW: dict[str, Any] = {
    "id": 1,
    "name": "Ada",
    "email": "Ada@Example.org",
    "notes": "several   words",
    "photo": b"\x00\xff",
    "age": 36,
    "balance": Decimal("12.50"),
    "born": dt.date(1990, 1, 2),
    "seen": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
    "prefs": {"a": [1]},
    "token": uuid.UUID(int=5),
    "phone": "+44 20 7946 0000",
    "g_str": "ﬁne  tuning",
    "g_bytes": b"x",
    "g_int": -1,
    "g_decimal": Decimal("-0.5"),
    "g_date": dt.date(2000, 2, 29),
    "g_datetime": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    "g_uuid": uuid.UUID(int=6),
    "g_dict": {"k": "v"},
    "g_list": [1, "2"],
}


class Project:
    """An Alembic project in a directory, driven by the `alembic` command."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.versions = root / "migrations" / "versions"
        src = Path(securecustomer.__file__).parents[1]  # this checkout's code, not another
        self.env = os.environ | {"PYTHONPATH": os.pathsep.join([str(root), str(src)])}
        self.alembic("init", "migrations")
        ini = (root / "alembic.ini").read_text()
        url_line = "sqlalchemy.url = " + url.replace("%", "%%")
        ini, found = re.subn(r"(?m)^sqlalchemy\.url = .*$", url_line.replace("\\", "\\\\"), ini)
        assert 1 == found
        (root / "alembic.ini").write_text(ini)
        (root / "migrations" / "env.py").write_text(ENV)

    def alembic(self, *args: str) -> str:
        """Run ``alembic *args``; return what it printed, or fail with it."""
        done = subprocess.run(
            [sys.executable, "-m", "alembic", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert 0 == done.returncode, done.stdout + done.stderr
        return done.stdout + done.stderr

    def revision(self, message: str) -> str:
        """Autogenerate a revision; return the text of its script."""
        before = set(self.versions.glob("*.py"))
        self.alembic("revision", "--autogenerate", "-m", message)
        (script,) = set(self.versions.glob("*.py")) - before
        return script.read_text()


def upgrade_body(script: str) -> str:
    """The commands of a migration's upgrade(), without the comments around them."""
    match = re.search(r"def upgrade\(\) -> None:\n(.*?)\n\n\ndef downgrade", script, re.S)
    assert match is not None, script
    lines = [line.strip() for line in match.group(1).splitlines()]
    return "\n".join(line for line in lines if line and not line.startswith(("#", '"""')))


@pytest.fixture
def models(tmp_path: Path) -> Iterator[Path]:
    """The models and normalizers modules in *tmp_path*, importable here too."""
    (tmp_path / "sc_models.py").write_text(MODELS)
    (tmp_path / "sc_normalizers.py").write_text(NORMALIZERS)
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("sc_models", "sc_normalizers"):
            sys.modules.pop(name, None)


class TestAutogenerate:
    """A model with every type and index form migrates up, stays in sync, and down."""

    def test_round_trip(self, models: Path, db_url: str, engine: sa.Engine) -> None:
        project = Project(models, db_url)

        script = project.revision("customers")
        assert "import securecustomer.sqlalchemy\n" in script
        assert "securecustomer.sqlalchemy._" not in script  # no private module path
        assert "<" not in script  # no <lambda>, no <function ...>
        assert "keyring" not in script  # runtime state, not schema
        for rendered in [
            "securecustomer.sqlalchemy.EncryptedString()",
            "securecustomer.sqlalchemy.EncryptedString(scope='pii', deterministic=True)",
            "securecustomer.sqlalchemy.EncryptedBytes(context=('people', 'photo'))",
            "securecustomer.sqlalchemy.EncryptedInteger(deterministic=True, storage='text')",
            "securecustomer.sqlalchemy.Encrypted(decimal.Decimal)",
            "securecustomer.sqlalchemy.Encrypted(datetime.date, storage='text')",
            "securecustomer.sqlalchemy.Encrypted(datetime.datetime)",
            "securecustomer.sqlalchemy.Encrypted(uuid.UUID, context=('c', 'u'))",
            "securecustomer.sqlalchemy.Encrypted(list, storage='text')",
            "securecustomer.sqlalchemy.BlindIndex('name', size=8)",
            "securecustomer.sqlalchemy.BlindIndex('email', "
            "normalizer=securecustomer.sqlalchemy.normalize_email, size=16)",
            "securecustomer.sqlalchemy.BlindIndex('phone_enc', "
            "normalizer=securecustomer.sqlalchemy.compose(securecustomer.sqlalchemy.strip, "
            "securecustomer.sqlalchemy.digits_only), size=8)",
            "normalizer=sc_normalizers.squash_spaces, size=4)",
            "sc_normalizers.Normalizers.upper",
            "securecustomer.sqlalchemy.BlindIndex('iban', ",
        ]:
            assert rendered in script
        for line in ["import datetime", "import decimal", "import uuid", "import sc_normalizers"]:
            assert f"\n{line}\n" in script

        project.alembic("upgrade", "head")
        assert {"customers", "accounts"} <= set(sa.inspect(engine).get_table_names())

        again = project.revision("nothing")
        assert "pass" == upgrade_body(again)
        project.alembic("upgrade", "head")

        round_trip(engine)

        project.alembic("downgrade", "base")
        assert not {"customers", "accounts"} & set(sa.inspect(engine).get_table_names())

    def test_unrenderable_normalizer(self, models: Path, sqlite_url: str) -> None:
        """The command fails, saying what to do, and writes no migration."""
        (models / "sc_models.py").write_text(
            MODELS.replace("normalizer=squash_spaces", "normalizer=lambda v: v.strip()")
        )
        project = Project(models, sqlite_url)
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "revision", "--autogenerate", "-m", "x"],
            cwd=models,
            env=project.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert 0 != done.returncode
        assert "ConfigurationError: blind index customers.notes_index: " in done.stderr
        assert "a lambda" in done.stderr
        assert "module-level function" in done.stderr
        assert [] == list(project.versions.glob("*.py"))

    def test_key_table(self, tmp_path: Path, db_url: str, engine: sa.Engine) -> None:
        """The key store's table, with its exact scope column, migrates as written."""
        (tmp_path / "sc_models.py").write_text(KEY_MODELS)
        project = Project(tmp_path, db_url)
        script = project.revision("keys")
        assert "sa.VARBINARY(length=1020), 'mysql', 'mariadb')" in script
        project.alembic("upgrade", "head")
        assert "pass" == upgrade_body(project.revision("again"))  # nothing left to change
        store = SqlKeyStore(engine)
        store.add_data_key(record(1, scope="subject:ab"))
        assert record(2, scope="subject:AB") == store.add_data_key(record(2, scope="subject:AB"))
        assert () == store.migrate()


KEY_MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

from securecustomer.sqlalchemy import SqlKeyStore


class Base(DeclarativeBase):
    pass


SqlKeyStore(sa.create_engine("sqlite://"), metadata=Base.metadata)
"""


def round_trip(engine: sa.Engine) -> None:
    """Rows written and searched through the models, on the migrated schema."""
    models = importlib.import_module("sc_models")
    default_keyring.bind(memory_keyring())
    try:
        with Session(engine) as session:
            session.add(models.Customer(**ROW))
            session.commit()
        with Session(engine) as session:
            (customer,) = session.scalars(sa.select(models.Customer)).all()
            assert ROW == {key: getattr(customer, key) for key in ROW}
            assert [customer] == search(session, models.Customer.phone, "44 (20) 7946-0000")
            assert [customer] == search(session, models.Customer.g_str, "FINE TUNING")
            assert [customer] == search(session, models.Customer.email, " ada@example.ORG")
    finally:
        default_keyring.unbind()


def render(*columns: sa.Column[Any]) -> str:
    """What autogenerate writes for a table of *columns*, with its imports."""
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), *columns)
    imports: set[str] = set()

    def hook(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
        rendered = render_item(type_, obj, autogen_context)
        imports.update(autogen_context.imports)
        return rendered

    code = render_python_code(
        ops.UpgradeOps([ops.CreateTableOp.from_table(table)]), render_item=hook
    )
    return "\n".join(sorted(imports)) + "\n" + code


def module_level(value: str) -> str:
    return value.lower()


class Secret(Encrypted[str]):
    """An application's own column type."""

    cache_ok = True
    python_types = (str,)


class Email(EncryptedString):
    """A plugin's own column type: a subclass of a public column type."""

    cache_ok = True


class TestRender:
    """What each type and normalizer renders as, and what is refused."""

    def test_imports_what_it_names(self) -> None:
        code = render(
            sa.Column("d", Encrypted(Decimal, scope="s")),
            sa.Column("v", sa.String(5)),
            sa.Column("i", BlindIndex("d2", size=8, normalizer=module_level)),
            sa.Column("d2", EncryptedString()),
        )
        assert "import securecustomer.sqlalchemy" in code
        assert "import decimal" in code
        assert f"import {__name__}" in code
        assert "securecustomer.sqlalchemy.Encrypted(decimal.Decimal, scope='s')" in code
        assert f"normalizer={__name__}.module_level, size=8)" in code
        assert "sa.String(length=5)" in code  # other types as Alembic renders them

    def test_own_subclass(self) -> None:
        """A subclass is written by its module path; one defined in a function is refused."""
        code = render(sa.Column("s", Secret(deterministic=True)))
        assert f"sa.Column('s', {__name__}.Secret(deterministic=True), nullable=True)" in code
        assert f"import {__name__}" in code
        code = render(sa.Column("e", Email(scope="pii")))
        assert f"sa.Column('e', {__name__}.Email(scope='pii'), nullable=True)" in code

        class Local(Encrypted):
            cache_ok = True
            python_types = (str,)

        refused = r"^t\.s: its type .*Local cannot .* define the class at the top level"
        with pytest.raises(ConfigurationError, match=refused):
            render(sa.Column("s", Local()))

    def test_nested_compose(self) -> None:
        inner = compose(strip, casefold)
        code = render(
            sa.Column("s", EncryptedString()),
            sa.Column("i", BlindIndex("s", size=8, normalizer=compose(inner, module_level))),
        )
        p = "securecustomer.sqlalchemy."
        expected = f"{p}compose({p}compose({p}strip, {p}casefold), {__name__}.module_level)"
        assert f"normalizer={expected}, size=8)" in code

    @staticmethod
    def _closure() -> Callable[[str], str]:
        suffix = "x"

        def add(value: str) -> str:
            return value + suffix

        return add

    class Upper:
        def __call__(self, value: str) -> str:
            return value.upper()

    @pytest.mark.parametrize(
        ("normalizer", "why"),
        [
            (lambda v: v, "a lambda"),
            (_closure(), "defined inside a function"),
            (Upper(), "has no importable name"),
            (functools.partial(re.sub, r"\s+", ""), "has no importable name"),
            (compose(strip, lambda v: v), "a lambda"),
            (str.casefold, "has no importable name"),
        ],
    )
    def test_refused(self, normalizer: Callable[[str], str], why: str) -> None:
        column: sa.Column[Any] = sa.Column("i", BlindIndex("s", size=8, normalizer=normalizer))
        with pytest.raises(ConfigurationError) as info:
            render(sa.Column("s", EncryptedString()), column)
        message = str(info.value)
        assert message.startswith("blind index t.i: its normalizer ")
        assert why in message
        assert "define it as a module-level function" in message
        assert "compose" in message

    def test_main_module_refused(self) -> None:
        def fake() -> None:
            pass

        fake.__module__, fake.__qualname__ = "__main__", "fake"
        index = BlindIndex("s", size=8, normalizer=fake)  # type: ignore[arg-type]
        column: sa.Column[Any] = sa.Column("i", index)
        with pytest.raises(ConfigurationError, match="__main__"):
            render(sa.Column("s", EncryptedString()), column)
