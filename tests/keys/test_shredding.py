"""Crypto-shredding is atomic: a rotation racing `destroy()` never survives it, and a
destroyed scope stays destroyed until `Keyring.recreate()` is called for it."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from keystore_workers import CTX, ROUNDS, assert_shredded, race_processes, rotate_until_destroyed
from records import record

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.exceptions import KeyDestroyedError, KeyStateError
from securecustomer.keys import FileKeyStore, KeyState, KeyStore, MemoryKeyStore

DATA = Path(__file__).parent / "data"


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> KeyStore:
    return MemoryKeyStore() if request.param == "memory" else FileKeyStore(tmp_path / "keys.json")


class TestStoreRules:
    """Every store destroys a scope in one step and then refuses new keys for it."""

    def test_destroy_scope(self, store: KeyStore) -> None:
        store.add_data_key(record(1))
        store.add_data_key(record(2, version=2))
        destroyed = store.destroy_scope("s")  # type: ignore[attr-defined]
        assert [(1, KeyState.DESTROYED, b""), (2, KeyState.DESTROYED, b"")] == [
            (r.key_id, r.state, r.wrapped) for r in destroyed
        ]
        with pytest.raises(KeyDestroyedError) as info:
            store.add_data_key(record(3, version=3))
        assert "s" == info.value.scope
        assert [1, 2] == [r.key_id for r in store.data_keys("s")]
        assert [] == store.destroy_scope("unknown")  # type: ignore[attr-defined]

    def test_recreate_scope(self, store: KeyStore) -> None:
        store.add_data_key(record(1))
        with pytest.raises(KeyStateError, match="not destroyed"):
            store.recreate_scope(record(2, version=2))  # type: ignore[attr-defined]
        store.destroy_scope("s")  # type: ignore[attr-defined]
        assert record(2, version=2) == store.recreate_scope(record(2, version=2))  # type: ignore[attr-defined]
        assert record(3, version=3) == store.add_data_key(record(3, version=3))
        store.destroy_scope("s")  # type: ignore[attr-defined]
        with pytest.raises(KeyDestroyedError):
            store.add_data_key(record(4, version=4))

    def test_all_keys_destroyed_one_by_one(self, store: KeyStore) -> None:
        """A scope whose every key was destroyed (as older versions did it) is destroyed."""
        store.add_data_key(record(1))
        store.update_data_keys([record(1, state=KeyState.DESTROYED, wrapped=b"")])
        with pytest.raises(KeyDestroyedError):
            store.add_data_key(record(2, version=2))


class TestKeyring:
    """rotate() refuses a destroyed scope; recreate() is the explicit way back."""

    def test_rotate_after_destroy(self, store: KeyStore) -> None:
        keyring = Keyring(LocalKeyProvider.generate(), store).load()
        token = keyring.cipher("subject:1").encrypt("v", context=CTX)
        keyring.destroy("subject:1")
        with pytest.raises(KeyDestroyedError):
            keyring.rotate("subject:1")
        assert_shredded(keyring, "subject:1", [token])
        with pytest.raises(KeyStateError, match=r"destroyed: only Keyring.recreate\(\)"):
            keyring.cipher("subject:1").encrypt("new", context=CTX)

    def test_recreate(self, store: KeyStore) -> None:
        keyring = Keyring(LocalKeyProvider.generate(), store).load()
        old = keyring.cipher("subject:1").encrypt("v", context=CTX)
        with pytest.raises(KeyStateError, match="not destroyed"):
            keyring.recreate("subject:1")
        keyring.destroy("subject:1")
        status = keyring.recreate("subject:1")
        assert (2, KeyState.ACTIVE) == (status.version, status.state)
        new = keyring.cipher("subject:1").encrypt("w", context=CTX)
        assert "w" == keyring.cipher("subject:1").decrypt(new, context=CTX)
        with pytest.raises(KeyDestroyedError):
            keyring.cipher("subject:1").decrypt(old, context=CTX)
        assert 3 == keyring.rotate("subject:1").version


class TestRaces:
    """A rotation running while the scope is destroyed never outlives the destruction."""

    def test_threads(self, store: KeyStore) -> None:
        provider = LocalKeyProvider.generate()
        Keyring(provider, store).load()
        for n in range(ROUNDS):
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

    def test_processes(self, tmp_path: Path) -> None:
        key_file = tmp_path / "master.key"
        LocalKeyProvider.create_key_file(key_file)
        path = tmp_path / "keys.json"
        keyring = Keyring(LocalKeyProvider.from_file(key_file), FileKeyStore(path)).load()
        race_processes(keyring, str(key_file), "file", str(path))


class TestOldStores:
    """A key-store file written before tombstones existed (tests/keys/data/README.md)."""

    def test_opens_and_keeps_its_meaning(self, tmp_path: Path) -> None:
        for name in ("keystore_d6c9683.json", "keystore_d6c9683.master.key"):
            shutil.copy(DATA / name, tmp_path / name)
        (tmp_path / "keystore_d6c9683.master.key").chmod(0o600)  # git keeps no file modes
        tokens = json.loads((DATA / "keystore_d6c9683.tokens.json").read_text())
        path = tmp_path / "keystore_d6c9683.json"
        provider = LocalKeyProvider.from_file(tmp_path / "keystore_d6c9683.master.key")
        keyring = Keyring(provider, FileKeyStore(path)).load()

        for scope in ("customers.email", "subject:1"):
            for n, token in enumerate(tokens[scope], start=1):
                value = keyring.cipher(scope).decrypt(base64.b64decode(token), context=CTX)
                assert f"{scope} v{n}" == value
        with pytest.raises(KeyDestroyedError):
            keyring.cipher("subject:2").decrypt(
                base64.b64decode(tokens["subject:2"][0]), context=CTX
            )
        with pytest.raises(KeyDestroyedError):
            keyring.rotate("subject:2")  # destroyed then, destroyed now

        keyring.rotate("subject:1")
        keyring.destroy("subject:1")
        document = json.loads(path.read_text())
        assert ("securecustomer.keystore", 1) == (document["format"], document["version"])
        assert 3 == keyring.rotate("customers.email").version
