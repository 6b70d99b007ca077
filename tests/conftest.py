"""Shared fixtures: keyrings over memory and file stores, and a clock tests can move."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clock import FakeClock

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.keys import FileKeyStore, MemoryKeyStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider() -> LocalKeyProvider:
    return LocalKeyProvider.generate()


@pytest.fixture
def keyring(provider: LocalKeyProvider, clock: FakeClock) -> Keyring:
    return Keyring(provider, MemoryKeyStore(), clock=clock).load()


@pytest.fixture
def file_keyring_factory(tmp_path: Path, clock: FakeClock) -> Callable[..., Keyring]:
    """Build keyrings that share one key file and one FileKeyStore, like two processes."""
    key_file = tmp_path / "master.key"
    LocalKeyProvider.create_key_file(key_file)

    def make(**kwargs: object) -> Keyring:
        provider = LocalKeyProvider.from_file(key_file)
        store = FileKeyStore(tmp_path / "keys.json")
        return Keyring(provider, store, clock=clock, **kwargs).load()  # type: ignore[arg-type]

    return make
