"""Several master keys per keyring: recovery providers, batch unwrapping, rewrap_roots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.exceptions import KeyProviderUnavailable, KeyUnwrapError
from securecustomer.keys import MemoryKeyStore, WrappedKey

CTX = Context("customers", "email")


class Down(LocalKeyProvider):
    """A local provider whose service is down: every unwrap fails as unavailable."""

    def unwrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> bytes:
        raise KeyProviderUnavailable("the key service does not answer")


class Batching(LocalKeyProvider):
    """A local provider with the optional batch method, counting calls."""

    calls = 0

    def unwrap_many(self, items: list[tuple[WrappedKey, dict[str, str]]]) -> list[bytes]:
        Batching.calls += 1
        return [self.unwrap(w, context=c) for w, c in items]


class TestRecovery:
    """Root keys are wrapped by the recovery providers too, and unwrap through them."""

    def test_every_root_has_every_wrapping(self) -> None:
        primary, offline = LocalKeyProvider.generate(), LocalKeyProvider.generate()
        keyring = Keyring(primary, MemoryKeyStore(), recovery=[offline]).load()
        keyring.rotate_root()
        for root in keyring.store.roots():
            refs = {w.key_ref for w in root.wrapped}
            assert {primary.key_refs[0], offline.key_refs[0]} == refs

    def test_primary_lost(self, caplog: pytest.LogCaptureFixture) -> None:
        primary, offline = LocalKeyProvider.generate(), LocalKeyProvider.generate()
        store = MemoryKeyStore()
        token = (
            Keyring(primary, store, recovery=[offline]).load().cipher("s").encrypt("v", context=CTX)
        )
        replacement = LocalKeyProvider.generate()  # the old master key is gone
        with caplog.at_level(logging.WARNING, logger="securecustomer.keys"):
            keyring = Keyring(replacement, store, recovery=[offline]).load()
        assert "v" == keyring.cipher("s").decrypt(token, context=CTX)
        assert "recovery provider" in caplog.text

    def test_primary_down(self) -> None:
        raw = os.urandom(32)
        primary, offline = LocalKeyProvider([raw]), LocalKeyProvider.generate()
        store = MemoryKeyStore()
        Keyring(primary, store, recovery=[offline]).load()
        down = Down([raw])  # the same master key, behind a service that is down
        keyring = Keyring(down, store, recovery=[offline]).load()
        assert "v" == keyring.cipher("s").decrypt(
            keyring.cipher("s").encrypt("v", context=CTX), context=CTX
        )
        with pytest.raises(KeyProviderUnavailable, match="does not answer"):
            Keyring(down, store).load()

    def test_no_provider_holds_it(self) -> None:
        store = MemoryKeyStore()
        Keyring(LocalKeyProvider.generate(), store).load()
        with pytest.raises(KeyUnwrapError):
            Keyring(LocalKeyProvider.generate(), store).load()


class TestBatch:
    """A provider with unwrap_many unwraps every root key version in one call."""

    def test_one_call_for_many_versions(self) -> None:
        raw = os.urandom(32)
        store = MemoryKeyStore()
        keyring = Keyring(LocalKeyProvider([raw]), store).load()
        for _ in range(9):
            keyring.rotate_root()
        batching = Batching([raw])
        Batching.calls = 0
        Keyring(batching, store).load()
        assert 1 == Batching.calls


class TestRewrapRoots:
    """rewrap_roots moves root keys to the current master keys without touching data."""

    def test_master_key_rotation_with_a_key_file(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        old = LocalKeyProvider.create_key_file(path)
        store = MemoryKeyStore()
        token = Keyring(old, store).load().cipher("s").encrypt("v", context=CTX)
        both = LocalKeyProvider.add_key_to_file(path)
        keyring = Keyring(both, store).load()
        assert 1 == keyring.rewrap_roots()
        assert [both.key_refs[-1]] == [w.key_ref for w in store.roots()[0].wrapped]
        newest = LocalKeyProvider.remove_key_from_file(path, old.key_refs[0])
        assert "v" == Keyring(newest, store).load().cipher("s").decrypt(token, context=CTX)

    def test_adds_a_recovery_wrapping(self) -> None:
        primary, offline = LocalKeyProvider.generate(), LocalKeyProvider.generate()
        store = MemoryKeyStore()
        Keyring(primary, store).load()
        keyring = Keyring(primary, store, recovery=[offline]).load()
        keyring.rewrap_roots()
        assert 2 == len(store.roots()[0].wrapped)
        Keyring(LocalKeyProvider.generate(), store, recovery=[offline]).load()

    def test_destroyed_roots_are_left_alone(self) -> None:
        keyring = Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load()
        keyring.rotate_root()
        keyring.destroy_root(1)
        assert 1 == keyring.rewrap_roots()


class TestProviderCalls:
    """rotate_root calls the provider once (to wrap the new root), whatever the history."""

    def test_rotate_root_does_not_unwrap_known_roots(self) -> None:
        calls: list[str] = []

        class Counting(LocalKeyProvider):
            def wrap(self, material: bytes, *, context: dict[str, str]) -> WrappedKey:
                calls.append("wrap")
                return super().wrap(material, context=context)

            def unwrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> bytes:
                calls.append("unwrap")
                return super().unwrap(wrapped, context=context)

        keyring = Keyring(Counting([os.urandom(32)]), MemoryKeyStore()).load()
        assert ["wrap"] == calls  # the first load unwraps nothing it just made
        for _ in range(5):
            calls.clear()
            keyring.rotate_root()
            assert ["wrap"] == calls
