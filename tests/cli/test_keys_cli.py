"""`securecustomer keys status | rotate | reencrypt`, as an operator runs them."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.cli import main
from securecustomer.crypto import KeyState
from securecustomer.exceptions import ConfigurationError
from securecustomer.keys import FileKeyStore, KeyStore
from securecustomer.sqlalchemy import SqlKeyStore, default_keyring

MODELS = textwrap.dedent(
    """
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    from securecustomer.sqlalchemy import EncryptedString, KeyringSlot

    contacts_keys = KeyringSlot("contacts")

    class Base(DeclarativeBase):
        pass

    class Customer(Base):
        __tablename__ = "customers"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        email: Mapped[str] = mapped_column(EncryptedString())

    class Contact(Base):
        __tablename__ = "contacts"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        phone: Mapped[str] = mapped_column(EncryptedString(keyring=contacts_keys))
    """
)
ROWS = 20


@attrs.frozen
class Shop:
    """A database with customers, a master key file and a key store, as files in a directory."""

    directory: Path
    url: str
    key_file: Path
    store_args: list[str]
    make_store: Callable[[], KeyStore]
    module: ModuleType

    def keyring(self) -> Keyring:
        """A fresh keyring on the shop's keys (nothing cached from earlier commands)."""
        return Keyring(LocalKeyProvider.from_file(self.key_file), self.make_store()).load()

    def key_args(self) -> list[str]:
        """For status and rotate: the key file, and the key store file or database."""
        return ["--key-file", str(self.key_file), *(self.store_args or ["--url", self.url])]

    def reencrypt_args(self, *extra: str) -> list[str]:
        """For reencrypt: the key store is in --url unless a key store file is given."""
        model = f"{self.module.__name__}:Customer"
        keys = ["--key-file", str(self.key_file), *self.store_args]
        return ["keys", "reencrypt", "--url", self.url, "--model", model, *keys, *extra]

    def key_ids(self, table: str = "customers", column: str = "email") -> set[int]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                found = conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars().all()  # noqa: S608
        finally:
            engine.dispose()
        return {int.from_bytes(bytes(token)[2:6], "big") for token in found}

    def emails(self) -> list[str]:
        engine = sa.create_engine(self.url)
        default_keyring.bind(self.keyring())
        try:
            with Session(engine) as session:
                customer = self.module.Customer
                return [c.email for c in session.scalars(sa.select(customer).order_by(customer.id))]
        finally:
            default_keyring.unbind()
            engine.dispose()


def primary_id(keyring: Keyring, scope: str) -> int:
    primary = keyring.keyset(scope).primary
    assert primary is not None
    return primary.key_id


@pytest.fixture(params=["sql", "file"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    name = f"keys_cli_models_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(MODELS)
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(url)
    key_file = tmp_path / "master.key"
    LocalKeyProvider.create_key_file(key_file)
    make_store: Callable[[], KeyStore]
    if request.param == "sql":
        SqlKeyStore(engine).create()
        store_args: list[str] = []
        make_store = lambda: SqlKeyStore(engine)  # noqa: E731
    else:
        store_args = ["--key-store-file", str(tmp_path / "keys.json")]
        make_store = lambda: FileKeyStore(tmp_path / "keys.json")  # noqa: E731
    shop = Shop(tmp_path, url, key_file, store_args, make_store, module)
    keyring = shop.keyring()
    for scope in ("customers.email", "contacts.phone"):
        # First keys made before the flush: on SQLite, a key created during a flush that
        # already wrote waits for that flush's own write lock (see the report).
        keyring.cipher(scope)
    default_keyring.bind(keyring)
    module.contacts_keys.bind(keyring)
    try:
        module.Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(module.Customer(id=i, email=f"c{i}@example.com") for i in range(ROWS))
            session.add_all(module.Contact(id=i, phone=f"+41 {i}") for i in range(3))
            session.commit()
    finally:
        default_keyring.unbind()
        module.contacts_keys.unbind()
    yield shop
    sys.modules.pop(name, None)
    engine.dispose()


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err


class TestStatus:
    """`keys status` lists every key with its state, and no secret."""

    def test_lists_keys(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, err = run(["keys", "status", *shop.key_args()], capsys)

        assert (0, "") == (status, err)
        lines = out.splitlines()
        assert ["KIND", "SCOPE", "VERSION", "KEY", "ID", "STATE", "ROOT", "CREATED"] == lines[
            0
        ].split()
        assert lines[1].startswith("root  -")
        email_id = primary_id(shop.keyring(), "customers.email")
        assert f"customers.email  1        {email_id:#010x}  active" in out
        assert "contacts.phone" in out

    def test_shows_no_secret(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        _, out, _ = run(["keys", "status", *shop.key_args()], capsys)

        master = shop.key_file.read_text().split('"key": "')[1].split('"')[0]
        assert master not in out
        for record in shop.make_store().all_data_keys():
            assert record.wrapped.hex() not in out
            assert record.wrapped[:12].hex() not in out


class TestRotate:
    """`keys rotate SCOPE` makes a new active version; older ones become decrypt-only."""

    def test_rotate(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        old = primary_id(shop.keyring(), "customers.email")

        status, out, _ = run(["keys", "rotate", "customers.email", *shop.key_args()], capsys)

        new = primary_id(shop.keyring(), "customers.email")
        assert 0 == status
        assert old != new
        assert f"rotated customers.email: key {new:#010x} (version 2)" in out
        states = {s.key_id: s.state for s in shop.keyring().status() if s.kind == "data"}
        assert (KeyState.DECRYPT_ONLY, KeyState.ACTIVE) == (states[old], states[new])


class TestReencrypt:
    """`keys reencrypt` moves a model's values to the current keys and reports what it did."""

    def test_after_rotation(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        run(["keys", "rotate", "customers.email", *shop.key_args()], capsys)

        status, out, err = run(shop.reencrypt_args("--batch-size", "7"), capsys)

        assert (0, "") == (status, err)
        assert f"re-encrypted: {ROWS} values in {ROWS} rows" in out
        assert {primary_id(shop.keyring(), "customers.email")} == shop.key_ids()
        assert [f"c{i}@example.com" for i in range(ROWS)] == shop.emails()
        again = run(shop.reencrypt_args(), capsys)
        assert 0 == again[0]
        assert "re-encrypted: 0 values in 0 rows" in again[1]
        assert f"already current: {ROWS} values" in again[1]

    def test_dry_run(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        before = shop.key_ids()
        run(["keys", "rotate", "customers.email", *shop.key_args()], capsys)

        status, out, _ = run(shop.reencrypt_args("--dry-run"), capsys)

        assert 0 == status
        assert f"would re-encrypt: {ROWS} values in {ROWS} rows" in out
        assert "(dry run)" in out
        assert before == shop.key_ids()

    def test_binds_the_models_slots_and_restores_them(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(["keys", "rotate", "contacts.phone", *shop.key_args()], capsys)
        args = shop.reencrypt_args()
        args[args.index("--model") + 1] = f"{shop.module.__name__}:Contact"

        status, out, _ = run(args, capsys)

        assert 0 == status
        assert "re-encrypted: 3 values in 3 rows" in out
        assert {primary_id(shop.keyring(), "contacts.phone")} == shop.key_ids("contacts", "phone")
        with pytest.raises(ConfigurationError):
            default_keyring.get()
        with pytest.raises(ConfigurationError):
            shop.module.contacts_keys.get()

    def test_keeps_a_slot_bound_before(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        mine = shop.keyring()
        default_keyring.bind(mine)
        try:
            assert 0 == main(shop.reencrypt_args())
            assert mine is default_keyring.get()
        finally:
            default_keyring.unbind()

    def test_master_key_from_the_environment(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        master = shop.key_file.read_text().split('"key": "')[1].split('"')[0]
        monkeypatch.setenv("SHOP_MASTER_KEY", master)
        args = shop.reencrypt_args()
        args[args.index("--key-file") : args.index("--key-file") + 2] = [
            "--key-env",
            "SHOP_MASTER_KEY",
        ]

        status, out, _ = run(args, capsys)

        assert 0 == status
        assert master not in out

    def test_interrupted(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def interrupted(*args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr("securecustomer.sqlalchemy._reencrypt.reencrypt", interrupted)

        status, _, err = run(shop.reencrypt_args(), capsys)

        assert 130 == status
        assert "interrupted: committed batches are kept" in err

    def test_errors_exit_1(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        old = primary_id(shop.keyring(), "customers.email")
        run(["keys", "rotate", "customers.email", *shop.key_args()], capsys)
        shop.keyring().set_state(old, KeyState.DISABLED)

        status, out, _ = run(shop.reencrypt_args(), capsys)

        assert 1 == status
        assert f"errors: {ROWS} values" in out
        assert f"error: email at primary key (0,): key {old:#010x}" in out
        assert f"... and {ROWS - 10} more errors" in out

    def test_progress_bar_on_a_terminal(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        class Terminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        run(["keys", "rotate", "customers.email", *shop.key_args()], capsys)
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)

        assert 0 == main(shop.reencrypt_args("--batch-size", "8"))
        assert 0 == main(shop.reencrypt_args("--no-progress"))

        assert (
            f"\r[{' ' * 30}] 0/20 rows\r[{'#' * 12}{' ' * 18}] 8/20 rows"
            f"\r[{'#' * 24}{' ' * 6}] 16/20 rows\r[{'#' * 30}] 20/20 rows\n"
        ) == terminal.getvalue()


class TestErrors:
    """Mistakes print one line, ``securecustomer <command>: error: ...``, exit 2, and
    never a traceback."""

    @pytest.mark.parametrize(
        ("model", "message"),
        [
            ("no_colon", "expected MODULE:CLASS"),
            ("no_such_module_xyz:Customer", "cannot import no_such_module_xyz"),
            ("{module}:Nope", "has no Nope"),
            ("{module}:Base", "is neither a mapped class nor a Table"),
        ],
    )
    def test_bad_model(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], model: str, message: str
    ) -> None:
        args = shop.reencrypt_args()
        args[args.index("--model") + 1] = model.format(module=shop.module.__name__)

        status, out, err = run(args, capsys)

        assert (2, "") == (status, out)
        assert err.startswith("securecustomer keys reencrypt: error: ")
        assert message in err
        assert 1 == len(err.splitlines())

    def test_model_module_that_raises(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        (shop.directory / "broken_models_abc.py").write_text("raise RuntimeError('boom')\n")
        args = shop.reencrypt_args("--app-dir", str(shop.directory))
        args[args.index("--model") + 1] = "broken_models_abc:Customer"

        status, _, err = run(args, capsys)

        assert 2 == status
        assert err.startswith(
            "securecustomer keys reencrypt: error: --model 'broken_models_abc:Customer': "
        )
        assert err.endswith(": cannot import broken_models_abc: RuntimeError: boom\n")

    def test_key_store_without_keys(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        empty = ["--key-file", str(shop.key_file), "--key-store-file", str(shop.directory / "x")]

        status, _, err = run(["keys", "status", *empty], capsys)

        assert 2 == status
        assert "holds no root key" in err
        assert not (shop.directory / "x").exists()

    def test_database_error(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        """A database without the model's table (or without the SQL key store)."""
        args = shop.reencrypt_args()
        args[args.index("--url") + 1] = f"sqlite:///{shop.directory / 'other.db'}"

        status, _, err = run(args, capsys)

        assert 2 == status
        if shop.store_args:  # a key store file: the model's table is what is missing
            assert "database: OperationalError: no such table: customers\n" == err.split(": ", 2)[2]
        else:
            assert "key store table 'securecustomer_keys': OperationalError: no such table" in err

    def test_missing_key_table(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        status, _, err = run(
            [
                "keys",
                "status",
                "--key-file",
                str(shop.key_file),
                "--url",
                shop.url,
                "--key-table",
                "x",
            ],
            capsys,
        )

        assert 2 == status
        prefix = "securecustomer keys status: error: "
        assert f"{prefix}key store table 'x': OperationalError: no such table" in err

    def test_no_action(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, _ = run(["keys"], capsys)

        assert 2 == status
        assert "reencrypt" in out

    @pytest.mark.parametrize("size", ["0", "-3", "many"])
    def test_bad_batch_size(self, capsys: pytest.CaptureFixture[str], size: str) -> None:
        args = ["keys", "reencrypt", "--url", "sqlite://", "--model", "m:C", "--key-file", "k"]
        with pytest.raises(SystemExit) as info:
            main([*args, "--batch-size", size])
        assert 2 == info.value.code
        assert f"{size!r} is not a positive integer" in capsys.readouterr().err

    def test_missing_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            main(["keys", "status"])
        assert 2 == info.value.code
        assert "--key-file" in capsys.readouterr().err


class TestAsModule:
    """``python -m securecustomer keys ...`` in a separate process, models on PYTHONPATH."""

    def test_rotate_and_reencrypt(self, shop: Shop) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shop.directory), *sys.path]))

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "securecustomer", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )

        rotated = cli("keys", "rotate", "customers.email", *shop.key_args())
        result = cli(*shop.reencrypt_args())

        assert (0, 0) == (rotated.returncode, result.returncode), result.stderr
        assert "" == result.stderr  # not a terminal: no progress bar
        assert f"re-encrypted: {ROWS} values in {ROWS} rows" in result.stdout
        assert {primary_id(shop.keyring(), "customers.email")} == shop.key_ids()
