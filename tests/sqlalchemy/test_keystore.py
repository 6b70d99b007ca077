"""SqlKeyStore on SQLite, PostgreSQL and MariaDB: rules, keyring use, several processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from keystore_workers import ROUNDS, assert_shredded, race_processes, rotate_until_destroyed
from records import NOW, record

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.exceptions import (
    ConfigurationError,
    KeyDestroyedError,
    KeyNotFoundError,
    KeyStateError,
    KeyStoreError,
)
from securecustomer.keys import KeyState, RootKeyRecord, WrappedKey
from securecustomer.sqlalchemy import SqlKeyStore

CTX = Context("customers", "email")

# Scopes that MariaDB's default collations call equal (case, accents, PAD SPACE, and
# Unicode normal forms): each must get its own key on every database.
LOOKALIKE_SCOPES = [
    ("subject:ab", "subject:AB"),
    ("subject:e", "subject:\u00e9"),
    ("subject:x", "subject:x "),
    ("subject:\u00e9", "subject:e\u0301"),
]


def old_key_table(metadata: sa.MetaData, name: str = "securecustomer_keys") -> sa.Table:
    """The key table as securecustomer 0.x created it (a plain VARCHAR scope)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("key_id", sa.BigInteger, nullable=True, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("root_version", sa.Integer, nullable=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("wrappers", sa.Text, nullable=True),
        sa.UniqueConstraint("kind", "scope", "version", name=f"uq_{name}_kind_scope_version"),
    )


@pytest.fixture
def store(engine: sa.Engine) -> SqlKeyStore:
    store = SqlKeyStore(engine)
    store.create()
    return store


class TestRules:
    """The same lifecycle rules as the other stores, enforced in SQL transactions."""

    def test_insert_if_absent(self, store: SqlKeyStore) -> None:
        assert record(1) == store.add_data_key(record(1))
        assert record(1) == store.add_data_key(record(2))  # same (scope, version)
        assert store.add_data_key(record(1, scope="t")) is None  # id taken
        assert [record(1)] == store.data_keys("s")
        assert record(1) == store.data_key(1)
        assert store.data_key(2) is None
        assert {"s": [record(1)]} == store.data_keys_many(["s", "nope"])

    def test_large_key_ids(self, store: SqlKeyStore) -> None:
        assert record(0xFFFFFFFF) == store.add_data_key(record(0xFFFFFFFF))
        assert record(0xFFFFFFFF) == store.data_key(0xFFFFFFFF)

    def test_lifecycle(self, store: SqlKeyStore) -> None:
        store.add_data_key(record(1))
        store.add_data_key(record(2, version=2))
        with pytest.raises(KeyNotFoundError):  # all or nothing
            store.update_data_keys([record(1, state=KeyState.DISABLED), record(3)])
        assert KeyState.ACTIVE == store.data_key(1).state  # type: ignore[union-attr]
        store.update_data_keys([record(1, state=KeyState.DESTROYED, wrapped=b"")])
        with pytest.raises(KeyStateError, match="never be revived"):
            store.update_data_keys([record(1)])
        assert b"" == store.data_key(1).wrapped  # type: ignore[union-attr]
        assert [1, 2] == [r.version for r in store.data_keys("s")]

    def test_roots(self, store: SqlKeyStore) -> None:
        root = RootKeyRecord(1, KeyState.ACTIVE, NOW, (WrappedKey("local", "ab", b"\x00c"),))
        assert root == store.add_root(root)
        assert root == store.add_root(RootKeyRecord(1, KeyState.ACTIVE, NOW, ()))
        assert [root] == store.roots()
        store.update_root(RootKeyRecord(1, KeyState.DESTROYED, NOW, ()))
        with pytest.raises(KeyStateError):
            store.update_root(root)
        with pytest.raises(KeyNotFoundError):
            store.update_root(RootKeyRecord(2, KeyState.ACTIVE, NOW, ()))

    def test_missing_table(self, engine: sa.Engine) -> None:
        with pytest.raises(KeyStoreError, match="securecustomer_keys"):
            SqlKeyStore(engine).roots()

    def test_own_metadata(self, engine: sa.Engine) -> None:
        metadata = sa.MetaData()
        store = SqlKeyStore(engine, metadata=metadata, table_name="app_keys")
        metadata.create_all(engine)
        assert "app_keys" in sa.inspect(engine).get_table_names()
        assert [] == store.roots()
        assert "app_keys" in repr(store)


class TestExactScopes:
    """Scopes compare byte for byte: no collation makes two scopes one."""

    @pytest.mark.parametrize(("first", "second"), LOOKALIKE_SCOPES)
    def test_lookalike_scopes(self, store: SqlKeyStore, first: str, second: str) -> None:
        assert record(1, scope=first) == store.add_data_key(record(1, scope=first))
        assert record(2, scope=second) == store.add_data_key(record(2, scope=second))
        assert [record(1, scope=first)] == store.data_keys(first)
        assert [record(2, scope=second)] == store.data_keys(second)
        assert {first: [record(1, scope=first)], second: [record(2, scope=second)]} == (
            store.data_keys_many([first, second])
        )
        assert second == store.data_key(2).scope  # type: ignore[union-attr]

    def test_keyring_gives_each_lookalike_its_key(self, store: SqlKeyStore) -> None:
        """Once was: 'could not draw an unused key id in 16 attempts' for the second scope."""
        provider = LocalKeyProvider.generate()
        keyring = Keyring(provider, store).load()
        scopes = sorted({scope for pair in LOOKALIKE_SCOPES for scope in pair})
        tokens = {scope: keyring.cipher(scope).encrypt(scope, context=CTX) for scope in scopes}
        assert len(scopes) == len({token[2:6] for token in tokens.values()})
        fresh = Keyring(provider, store).load()
        assert all(fresh.cipher(s).decrypt(t, context=CTX) == s for s, t in tokens.items())


class TestOldLayout:
    """A key table made by an older version is detected, and migrated when asked."""

    @pytest.fixture
    def old_store(self, engine: sa.Engine) -> SqlKeyStore:
        metadata = sa.MetaData()
        old_key_table(metadata)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO securecustomer_keys (kind, scope, version, key_id, state,"
                    " created_at, root_version, wrapped) VALUES ('data', 'subject:ab', 1, 1,"
                    " 'active', :created_at, 1, :wrapped)"
                ),
                {"created_at": NOW.replace(tzinfo=None), "wrapped": b"w" * 60},
            )
        return SqlKeyStore(engine)

    def test_detected(self, old_store: SqlKeyStore, engine: sa.Engine) -> None:
        if engine.dialect.name in ("sqlite", "postgresql"):  # byte-exact already
            assert [record(1, scope="subject:ab")] == old_store.data_keys("subject:ab")
            return
        for use in (old_store.roots, lambda: old_store.data_keys("subject:ab"), old_store.create):
            with pytest.raises(ConfigurationError, match=r"securecustomer_keys.*migrate\(\)"):
                use()

    def test_migrate_without_a_table(self, engine: sa.Engine) -> None:
        store = SqlKeyStore(engine)
        assert () == store.migrate()
        store.create()
        assert [] == store.roots()

    def test_migrate(self, old_store: SqlKeyStore, engine: sa.Engine) -> None:
        done = old_store.migrate()
        assert (engine.dialect.name in ("mysql", "mariadb")) == bool(done)
        assert () == old_store.migrate()  # once is enough
        assert [record(1, scope="subject:ab")] == old_store.data_keys("subject:ab")
        for n, (first, second) in enumerate(LOOKALIKE_SCOPES):
            old_store.add_data_key(record(10 + n, scope=first))
            assert record(20 + n, scope=second) == old_store.add_data_key(
                record(20 + n, scope=second)
            )
            assert [second] == [r.scope for r in old_store.data_keys(second)]


class TestWithKeyring:
    """A keyring over the SQL store: create, rotate, shred, across keyring instances."""

    def test_keyring(self, store: SqlKeyStore) -> None:
        provider = LocalKeyProvider.generate()
        keyring = Keyring(provider, store).load()
        cipher = keyring.cipher("subject:1")
        token = cipher.encrypt("v", context=CTX)
        keyring.rotate("subject:1")
        keyring.rotate_root()
        other = Keyring(provider, store).load()
        assert "v" == other.cipher("subject:1").decrypt(token, context=CTX)
        other.destroy("subject:1")
        fresh = Keyring(provider, store).load()
        with pytest.raises(KeyDestroyedError):
            fresh.cipher("subject:1").decrypt(token, context=CTX)

    def test_prefetch_many_scopes(self, store: SqlKeyStore) -> None:
        provider = LocalKeyProvider.generate()
        writer = Keyring(provider, store).load()
        tokens = {n: writer.cipher(f"subject:{n}").encrypt(n, context=CTX) for n in range(1200)}
        reader = Keyring(provider, store).load()
        reader.prefetch(f"subject:{n}" for n in range(1200))
        assert 1200 == sum(1 for s in reader._cache if s.startswith("subject:"))
        assert all(
            reader.cipher(f"subject:{n}").decrypt(t, context=CTX) == n for n, t in tokens.items()
        )


class TestProcesses:
    """Several processes creating the same scopes at once all get one key per scope."""

    def test_concurrent_creation(self, db_url: str, engine: sa.Engine, tmp_path: Path) -> None:
        SqlKeyStore(engine).create()
        LocalKeyProvider.create_key_file(tmp_path / "master.key")
        script = textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from securecustomer import Context, Keyring, LocalKeyProvider
            from securecustomer.sqlalchemy import SqlKeyStore
            store = SqlKeyStore(sa.create_engine({db_url!r}))
            keyring = Keyring(LocalKeyProvider.from_file({str(tmp_path / "master.key")!r}),
                              store).load()
            ids = [keyring.cipher(f"subject:{{n}}").encrypt("x", context=Context("t", "c"))[2:6]
                   for n in range(20)]
            print(",".join(i.hex() for i in ids))
            """
        )
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
            )
            for _ in range(4)
        ]
        results = [w.communicate(timeout=120) for w in workers]
        assert [0, 0, 0, 0] == [w.returncode for w in workers], [r[1][-2000:] for r in results]
        assert 1 == len({out.strip() for out, _ in results})
        store = SqlKeyStore(engine)
        assert 20 == len(store.all_data_keys())
        assert 1 == len(store.roots())


class TestShredding:
    """destroy() is atomic on every database: a racing rotation never survives it, and a
    destroyed scope takes no new key until Keyring.recreate()."""

    def test_store_rules(self, store: SqlKeyStore) -> None:
        store.add_data_key(record(1))
        store.add_data_key(record(2, version=2))
        assert [(1, "destroyed", b""), (2, "destroyed", b"")] == [
            (r.key_id, r.state.value, r.wrapped) for r in store.destroy_scope("s")
        ]
        with pytest.raises(KeyDestroyedError):
            store.add_data_key(record(3, version=3))
        assert [] == store.destroy_scope("unknown")
        assert record(3, version=3) == store.recreate_scope(record(3, version=3))
        with pytest.raises(KeyStateError, match="not destroyed"):
            store.recreate_scope(record(4, version=4))
        assert [1, 2, 3] == [r.key_id for r in store.data_keys("s")]
        assert [1, 2, 3] == sorted(r.key_id for r in store.all_data_keys())

    def test_destroyed_by_an_older_version(self, store: SqlKeyStore) -> None:
        """Every key destroyed and no tombstone (how older versions left a scope)."""
        store.add_data_key(record(1))
        store.update_data_keys([record(1, state=KeyState.DESTROYED, wrapped=b"")])
        with pytest.raises(KeyDestroyedError):
            store.add_data_key(record(2, version=2))

    def test_threads(self, store: SqlKeyStore) -> None:
        provider = LocalKeyProvider.generate()
        Keyring(provider, store).load()
        for n in range(ROUNDS // 2):
            scope = f"subject:{n}"
            rotator, destroyer = (Keyring(provider, store).load() for _ in range(2))
            tokens = [rotator.cipher(scope).encrypt("v", context=CTX)]
            worker = threading.Thread(target=rotate_until_destroyed, args=(rotator, scope, tokens))
            worker.start()
            while len(tokens) < 3 and worker.is_alive():
                time.sleep(0.001)
            destroyer.destroy(scope)
            worker.join(timeout=60)
            assert not worker.is_alive()
            assert_shredded(destroyer, scope, tokens)

    def test_processes(self, db_url: str, store: SqlKeyStore, tmp_path: Path) -> None:
        LocalKeyProvider.create_key_file(tmp_path / "master.key")
        keyring = Keyring(LocalKeyProvider.from_file(tmp_path / "master.key"), store).load()
        race_processes(keyring, str(tmp_path / "master.key"), "sql", db_url)
