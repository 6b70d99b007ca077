"""Keyring: hierarchy, creation, rotation, states, shredding, caches, status, async twins."""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import threading
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from clock import FakeClock

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.exceptions import (
    ConfigurationError,
    ContextError,
    DecryptionError,
    KeyDestroyedError,
    KeyDisabledError,
    KeyManagementError,
    KeyNotFoundError,
    KeyStateError,
    KeyUnwrapError,
    UnknownKeyError,
)
from securecustomer.keys import FileKeyStore, KeyState, MemoryKeyStore

CTX = Context("customers", "email", row=1)


class TestLoad:
    """load() unwraps root keys once, creates the first, and fails clearly."""

    def test_first_load_creates_one_root(self, provider: LocalKeyProvider) -> None:
        store = MemoryKeyStore()
        Keyring(provider, store).load()
        Keyring(provider, store).load()
        assert [1] == [r.version for r in store.roots()]

    def test_not_loaded(self, provider: LocalKeyProvider) -> None:
        with pytest.raises(KeyManagementError, match=r"call load\(\) or aload\(\) first"):
            Keyring(provider, MemoryKeyStore()).cipher("s")

    def test_wrong_master_key(self) -> None:
        store = MemoryKeyStore()
        Keyring(LocalKeyProvider.generate(), store).load()
        with pytest.raises(KeyUnwrapError, match="wrong master key"):
            Keyring(LocalKeyProvider.generate(), store).load()

    def test_provider_calls_only_at_load(self, provider: LocalKeyProvider) -> None:
        """Per-value work never reaches the provider: it only sees root keys."""
        calls: list[str] = []

        class Counting:
            name = "local"

            def wrap(self, material: bytes, *, context: dict[str, str]):  # type: ignore[no-untyped-def]
                calls.append("wrap")
                return provider.wrap(material, context=context)

            def unwrap(self, wrapped, *, context: dict[str, str]) -> bytes:  # type: ignore[no-untyped-def]
                calls.append("unwrap")
                return provider.unwrap(wrapped, context=context)

        store = MemoryKeyStore()
        Keyring(Counting(), store).load()
        keyring = Keyring(Counting(), store).load()
        calls.clear()
        for scope in ("a", "b", "subject:1", "subject:2"):
            cipher = keyring.cipher(scope)
            cipher.decrypt_many(cipher.encrypt_many(["x"] * 100, context=CTX), context=CTX)
        keyring.rotate("a")
        assert [] == calls

    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"cache_ttl": 0}, "cache_ttl"),
            ({"cache_ttl": float("inf")}, "cache_ttl"),
            ({"cache_size": 0}, "cache_size"),
            ({"cache_size": 1.5}, "cache_size"),
        ],
    )
    def test_bad_settings(
        self, provider: LocalKeyProvider, kwargs: dict[str, float], fragment: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=fragment):
            Keyring(provider, MemoryKeyStore(), **kwargs)  # type: ignore[arg-type]

    def test_async_twins(self, provider: LocalKeyProvider) -> None:
        async def main() -> list[str]:
            keyring = await Keyring(provider, MemoryKeyStore()).aload()
            cipher = await keyring.acipher("s")
            token = cipher.encrypt("v", context=CTX)
            await keyring.arotate("s")
            await keyring.arotate_root()
            value = cipher.decrypt(token, context=CTX)
            await keyring.adestroy("s")
            states = [row.state.value for row in await keyring.astatus() if row.kind == "data"]
            return [str(value), *states]

        assert ["v", "destroyed", "destroyed"] == asyncio.run(main())


class TestScopes:
    """Data keys are created on first use, once, and scope names are checked."""

    @pytest.mark.parametrize("scope", ["", "a\x00b", "x" * 256, 7])
    def test_bad_scope(self, keyring: Keyring, scope: object) -> None:
        with pytest.raises(ContextError, match="key scope"):
            keyring.cipher(scope)  # type: ignore[arg-type]

    def test_created_once(self, keyring: Keyring) -> None:
        keyring.cipher("s")
        keyring.cipher("s")
        assert 1 == len(keyring.store.data_keys("s"))

    def test_concurrent_creation_in_threads_yields_one_key(
        self, provider: LocalKeyProvider
    ) -> None:
        store = MemoryKeyStore()
        keyrings = [Keyring(provider, store).load() for _ in range(8)]
        barrier = threading.Barrier(8)
        ids: list[bytes] = []

        def work(keyring: Keyring) -> None:
            barrier.wait()
            ids.append(keyring.cipher("subject:9").encrypt("x", context=CTX)[2:6])

        threads = [threading.Thread(target=work, args=(k,)) for k in keyrings]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 1 == len(set(ids))
        assert 1 == len(store.data_keys("subject:9"))

    def test_key_id_collision_draws_again(self, provider: LocalKeyProvider) -> None:
        draws = iter([b"\x00\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"])

        def random(size: int) -> bytes:
            return next(draws) if size == 4 else bytes(size)

        keyring = Keyring(provider, MemoryKeyStore(), random=random).load()
        keyring.cipher("a")
        keyring.cipher("b")
        assert {1, 2} == {r.key_id for r in keyring.store.all_data_keys()}


class TestRotation:
    """rotate(): new key for new writes, old tokens still readable."""

    def test_rotate(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("s")
        old = cipher.encrypt("old", context=CTX)
        status = keyring.rotate("s")
        new = cipher.encrypt("new", context=CTX)
        assert status.key_id == int.from_bytes(new[2:6], "big")
        assert 2 == status.version
        assert ("old", "new") == (
            cipher.decrypt(old, context=CTX),
            cipher.decrypt(new, context=CTX),
        )
        states = {r.version: r.state for r in keyring.store.data_keys("s")}
        assert {1: KeyState.DECRYPT_ONLY, 2: KeyState.ACTIVE} == states

    def test_rotation_seen_by_other_process_after_ttl(
        self, file_keyring_factory: Callable[..., Keyring], clock: FakeClock
    ) -> None:
        first, second = file_keyring_factory(), file_keyring_factory()
        reader = second.cipher("s")
        first.rotate("s")
        newest = first.cipher("s").encrypt("n", context=CTX)
        stale = reader.encrypt("x", context=CTX)  # cached: still the old primary
        clock.advance(61)
        fresh = reader.encrypt("y", context=CTX)
        assert stale[2:6] != fresh[2:6] == newest[2:6]

    def test_unknown_key_id_rereads_the_store(
        self, file_keyring_factory: Callable[..., Keyring]
    ) -> None:
        first, second = file_keyring_factory(), file_keyring_factory()
        reader = second.cipher("s")
        first.rotate("s")
        newest = first.cipher("s").encrypt("n", context=CTX)
        assert "n" == reader.decrypt(newest, context=CTX)
        assert newest[2:6] == reader.encrypt("x", context=CTX)[2:6]

    def test_rotate_root_rewraps_without_touching_data(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("s")
        token = cipher.encrypt("v", context=CTX)
        before = {r.key_id: r.wrapped for r in keyring.store.all_data_keys()}
        assert 2 == keyring.rotate_root()
        after = keyring.store.all_data_keys()
        assert all(r.root_version == 2 and r.wrapped != before[r.key_id] for r in after)
        roots = {r.version: r.state for r in keyring.store.roots()}
        assert {1: KeyState.DECRYPT_ONLY, 2: KeyState.ACTIVE} == roots
        fresh = Keyring(keyring.provider, keyring.store).load()
        assert "v" == fresh.cipher("s").decrypt(token, context=CTX)

    def test_destroy_root(self, keyring: Keyring) -> None:
        keyring.cipher("s")
        with pytest.raises(KeyStateError, match="primary root key"):
            keyring.destroy_root(1)
        keyring.rotate_root()
        keyring.destroy_root(1)
        assert KeyState.DESTROYED == keyring.store.roots()[0].state
        assert () == keyring.store.roots()[0].wrapped
        with pytest.raises(KeyNotFoundError):
            keyring.destroy_root(9)

    def test_destroy_root_refused_while_in_use(self, keyring: Keyring) -> None:
        keyring.cipher("s")
        keyring._create_root(2)  # as if rotate_root() stopped before rewrapping
        fresh = Keyring(keyring.provider, keyring.store).load()
        with pytest.raises(KeyStateError, match="still wraps 1 data keys"):
            fresh.destroy_root(1)


class TestStates:
    """disabled and destroyed keys refuse to decrypt, each with its own error."""

    def test_disable_and_enable(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("s")
        token = cipher.encrypt("v", context=CTX)
        key_id = int.from_bytes(token[2:6], "big")
        keyring.set_state(key_id, KeyState.DISABLED)
        with pytest.raises(KeyDisabledError) as info:
            cipher.decrypt(token, context=CTX)
        assert (key_id, "s") == (info.value.key_id, info.value.scope)
        with pytest.raises(KeyStateError, match="no active key"):
            cipher.encrypt("w", context=CTX)
        keyring.set_state(key_id, KeyState.ACTIVE)
        assert "v" == cipher.decrypt(token, context=CTX)

    def test_decrypt_only(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("s")
        token = cipher.encrypt("v", context=CTX)
        keyring.set_state(int.from_bytes(token[2:6], "big"), KeyState.DECRYPT_ONLY)
        assert "v" == cipher.decrypt(token, context=CTX)
        with pytest.raises(KeyStateError, match="rotate it"):
            cipher.encrypt("w", context=CTX)

    def test_destroy_scope(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("subject:42")
        tokens = [cipher.encrypt("v1", context=CTX)]
        keyring.rotate("subject:42")
        tokens.append(cipher.encrypt("v2", context=CTX))
        destroyed = keyring.destroy("subject:42")
        assert 2 == len(destroyed)
        for token in tokens:
            with pytest.raises(KeyDestroyedError) as info:
                cipher.decrypt(token, context=CTX)
            assert "subject:42" == info.value.scope
        assert all(r.wrapped == b"" for r in keyring.store.data_keys("subject:42"))
        assert keyring.destroy("subject:42") == destroyed  # idempotent

    def test_destroyed_never_comes_back(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("s")
        token = cipher.encrypt("v", context=CTX)
        key_id = int.from_bytes(token[2:6], "big")
        keyring.destroy_key(key_id)
        for state in (KeyState.ACTIVE, KeyState.DECRYPT_ONLY, KeyState.DISABLED):
            with pytest.raises(KeyStateError, match="never be revived"):
                keyring.set_state(key_id, state)
        with pytest.raises(KeyStateError, match=r"destroyed: only Keyring.recreate\(\)"):
            cipher.encrypt("v", context=CTX)
        with pytest.raises(KeyDestroyedError):  # every key destroyed: the scope is
            keyring.rotate("s")
        keyring.recreate("s")  # a new key, explicitly asked for
        assert "w" == cipher.decrypt(cipher.encrypt("w", context=CTX), context=CTX)
        with pytest.raises(KeyDestroyedError):
            cipher.decrypt(token, context=CTX)

    def test_set_state_cannot_destroy(self, keyring: Keyring) -> None:
        keyring.cipher("s")
        key_id = keyring.store.data_keys("s")[0].key_id
        with pytest.raises(KeyStateError, match="destroy"):
            keyring.set_state(key_id, KeyState.DESTROYED)

    def test_unknown_ids_and_scopes(self, keyring: Keyring) -> None:
        with pytest.raises(KeyNotFoundError):
            keyring.set_state(123, KeyState.ACTIVE)
        with pytest.raises(KeyNotFoundError):
            keyring.destroy_key(123)
        with pytest.raises(KeyNotFoundError, match="no keys"):
            keyring.destroy("never-used")

    def test_destruction_seen_by_other_process_within_ttl(
        self, file_keyring_factory: Callable[..., Keyring], clock: FakeClock
    ) -> None:
        """Another process's cached key stops working once the cache age has passed."""
        writer, other = file_keyring_factory(cache_ttl=30), file_keyring_factory(cache_ttl=30)
        token = writer.cipher("subject:1").encrypt("v", context=CTX)
        reader = other.cipher("subject:1")
        assert "v" == reader.decrypt(token, context=CTX)
        writer.destroy("subject:1")
        clock.advance(29)
        assert "v" == reader.decrypt(token, context=CTX)  # documented window
        clock.advance(2)
        with pytest.raises(KeyDestroyedError):
            reader.decrypt(token, context=CTX)


class TestCache:
    """The data-key cache is bounded in size and age."""

    def test_size_bound(self, provider: LocalKeyProvider) -> None:
        keyring = Keyring(provider, MemoryKeyStore(), cache_size=3).load()
        for index in range(10):
            keyring.cipher(f"subject:{index}")
        assert 3 == len(keyring._cache)
        assert ["subject:7", "subject:8", "subject:9"] == list(keyring._cache)

    def test_evicted_cipher_keeps_working(self, provider: LocalKeyProvider) -> None:
        keyring = Keyring(provider, MemoryKeyStore(), cache_size=1).load()
        first = keyring.cipher("a")
        token = first.encrypt("v", context=CTX)
        keyring.cipher("b")
        assert "v" == first.decrypt(token, context=CTX)


class TestCorruptStore:
    """An altered key store gives typed errors naming what is wrong."""

    def test_altered_wrapped_data_key(self, keyring: Keyring) -> None:
        keyring.cipher("s")
        record = keyring.store.data_keys("s")[0]
        fresh = Keyring(keyring.provider, keyring.store).load()
        swapped = attrs.evolve(
            record, wrapped=record.wrapped[:-1] + bytes([record.wrapped[-1] ^ 1])
        )
        keyring.store._records.data[record.key_id] = swapped  # type: ignore[attr-defined]
        with pytest.raises(KeyUnwrapError, match="key store was altered"):
            fresh.cipher("s")

    def test_wrapped_key_moved_to_another_scope(self, keyring: Keyring) -> None:
        keyring.cipher("a")
        keyring.cipher("b")
        a, b = keyring.store.data_keys("a")[0], keyring.store.data_keys("b")[0]
        keyring.store._records.data[b.key_id] = attrs.evolve(b, wrapped=a.wrapped)  # type: ignore[attr-defined]
        fresh = Keyring(keyring.provider, keyring.store).load()
        with pytest.raises(KeyUnwrapError):
            fresh.cipher("b")

    def test_corrupt_file(self, tmp_path: Path, provider: LocalKeyProvider) -> None:
        (tmp_path / "keys.json").write_text('{"format": "securecustomer.keystore", "version": 1}')
        with pytest.raises(Exception, match="corrupt key store") as info:
            Keyring(provider, FileKeyStore(tmp_path / "keys.json")).load()
        assert "keys.json" in str(info.value)


class TestStatus:
    """status() reports every key with usage counts and no secret."""

    def test_report(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("s")
        tokens = cipher.encrypt_many(["a", "b", "c"], context=CTX)
        cipher.decrypt(tokens[0], context=CTX)
        keyring.rotate("s")
        report = keyring.status()
        assert ["root", "data", "data"] == [r.kind for r in report]
        first = report[1]
        assert (3, 1, KeyState.DECRYPT_ONLY) == (first.encryptions, first.decryptions, first.state)
        assert all(isinstance(r.created_at, dt.datetime) for r in report)

    def test_no_secret_anywhere(self, keyring: Keyring) -> None:
        keyring.cipher("s")
        record = keyring.store.data_keys("s")[0]
        text = repr(keyring.status()) + repr(keyring) + repr(keyring.store.roots()) + repr(record)
        assert record.wrapped.hex() not in text
        assert "wrapped=" not in text
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(keyring)

    def test_decryption_error_is_opaque_for_other_scope(self, keyring: Keyring) -> None:
        token = keyring.cipher("a").encrypt("v", context=CTX)
        with pytest.raises(DecryptionError) as info:
            keyring.cipher("b").decrypt(token, context=CTX)
        assert type(info.value) is DecryptionError


class TestRootRotationAcrossProcesses:
    """A process that loaded an older root never wraps new data keys under it."""

    def test_stale_process_uses_the_current_root(
        self, file_keyring_factory: Callable[..., Keyring]
    ) -> None:
        stale, admin = file_keyring_factory(), file_keyring_factory()
        admin.cipher("existing")
        admin.rotate_root()
        admin.destroy_root(1)
        token = stale.cipher("new-scope").encrypt("v", context=CTX)
        assert {2} == {r.root_version for r in admin.store.all_data_keys()}
        fresh = file_keyring_factory()
        assert "v" == fresh.cipher("new-scope").decrypt(token, context=CTX)

    def test_root_cache_expires(
        self, file_keyring_factory: Callable[..., Keyring], clock: FakeClock
    ) -> None:
        reader, admin = file_keyring_factory(root_cache_ttl=100), file_keyring_factory()
        admin.rotate_root()
        admin.destroy_root(1)
        assert 1 in reader._roots
        clock.advance(101)
        reader.cipher("s")
        assert [2] == sorted(reader._roots)

    def test_bad_root_ttl(self, provider: LocalKeyProvider) -> None:
        with pytest.raises(ConfigurationError, match="root_cache_ttl"):
            Keyring(provider, MemoryKeyStore(), root_cache_ttl=-1)

    def test_async_admin_twins(self, provider: LocalKeyProvider) -> None:
        async def main() -> list[KeyState]:
            keyring = await Keyring(provider, MemoryKeyStore()).aload()
            keyring.cipher("a")
            keyring.cipher("b")
            key_a = keyring.store.data_keys("a")[0].key_id
            key_b = keyring.store.data_keys("b")[0].key_id
            await keyring.aset_state(key_a, KeyState.DISABLED)
            await keyring.adestroy_key(key_b)
            keyring._create_root(2)
            assert 1 == await keyring.arewrap_data_keys()
            await keyring.adestroy_root(1)
            return [r.state for r in keyring.store.roots()] + [
                keyring.store.data_keys("a")[0].state
            ]

        assert [KeyState.DESTROYED, KeyState.ACTIVE, KeyState.DISABLED] == asyncio.run(main())


class TestFileStoreErrors:
    """I/O failures of the file store surface as KeyStoreError naming the file."""

    def test_missing_directory(self, provider: LocalKeyProvider, tmp_path: Path) -> None:
        from securecustomer.exceptions import KeyStoreError

        store = FileKeyStore(tmp_path / "missing" / "keys.json")
        with pytest.raises(KeyStoreError, match=r"missing/keys\.json: cannot write"):
            Keyring(provider, store).load()


class TestReadersCreateNoKeys:
    """cipher(create=False) reads without creating; a later writer still creates."""

    def test_reader_then_writer(self, keyring: Keyring) -> None:
        reader = keyring.cipher("subject:5", create=False)
        assert [] == keyring.store.data_keys("subject:5")
        with pytest.raises(UnknownKeyError):
            reader.decrypt(b"\x01\x11\x00\x00\x00\x09" + bytes(40), context=CTX)
        assert [] == keyring.store.data_keys("subject:5")
        writer = keyring.cipher("subject:5")
        assert writer is reader
        assert 1 == len(keyring.store.data_keys("subject:5"))
        assert "v" == reader.decrypt(writer.encrypt("v", context=CTX), context=CTX)

    def test_first_encryption_creates(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("subject:6", create=False)
        token = cipher.encrypt("v", context=CTX)
        assert 1 == len(keyring.store.data_keys("subject:6"))
        assert "v" == cipher.decrypt(token, context=CTX)


class TestDestroyedTokensCostNoStoreRead:
    """A token of a destroyed key is refused from the cache: destroyed is final."""

    def test_no_store_read(self, keyring: Keyring) -> None:
        cipher = keyring.cipher("subject:77")
        tokens = [cipher.encrypt(f"v{i}", context=CTX) for i in range(20)]
        keyring.destroy("subject:77")
        with pytest.raises(KeyDestroyedError):
            cipher.decrypt(tokens[0], context=CTX)  # the first one re-reads the store
        reads = 0
        original = keyring.store.data_keys

        def counting(scope: str) -> object:
            nonlocal reads
            reads += 1
            return original(scope)

        keyring.store.data_keys = counting  # type: ignore[method-assign]
        for token in tokens[1:]:
            with pytest.raises(KeyDestroyedError):
                cipher.decrypt(token, context=CTX)
        assert 0 == reads
