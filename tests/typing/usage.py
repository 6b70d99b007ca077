"""Typed usage of the public API, checked by ``mypy --strict`` (nox -s typing)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from securecustomer import Context, FieldCipher, Keyring, LocalKeyProvider
from securecustomer.crypto import Value
from securecustomer.exceptions import DecryptionError, KeyDestroyedError
from securecustomer.keys import KeyProvider, KeyState, KeyStatus, KeyStore, MemoryKeyStore


def build(provider: KeyProvider, store: KeyStore) -> Keyring:
    return Keyring(provider, store, cache_ttl=30.0, cache_size=1000).load()


def use() -> None:
    keyring = build(LocalKeyProvider.generate(), MemoryKeyStore())
    cipher: FieldCipher = keyring.cipher("customers.email")
    ctx = Context("customers", "email", row=42)
    token: bytes = cipher.encrypt("ada@example.com", context=ctx)
    tokens: list[bytes] = cipher.encrypt_many([1, Decimal("2.5"), dt.date.today()], context=ctx)
    value: Value = cipher.decrypt(token, context=ctx)
    values: list[Value] = cipher.decrypt_many(tokens, context=ctx)
    index: bytes = cipher.blind_index("ada@example.com", context=ctx, size=16)
    status: KeyStatus = keyring.rotate("customers.email")
    states: list[KeyState] = [row.state for row in keyring.status()]
    try:
        keyring.destroy("subject:42")
    except DecryptionError as error:
        if isinstance(error, KeyDestroyedError):
            print(error.key_id, error.scope)
    again: KeyStatus = keyring.recreate("subject:42")
    print(value, values, index, status, states, again)


def plug_in(provider: KeyProvider) -> None:
    from securecustomer.testing import memory_keyring
    from securecustomer.typing import KeySource

    source: KeySource = memory_keyring()
    print(provider.name, source)


def providers() -> Keyring:
    from securecustomer.keys import ProviderRegistry, RetryPolicy

    registry = ProviderRegistry()
    primary: KeyProvider = registry.resolve("local-env://SECURECUSTOMER_MASTER_KEY")
    recovery: list[KeyProvider] = [LocalKeyProvider.generate()]
    policy = RetryPolicy(attempts=3, timeout=2.0)
    print(policy)
    keyring = Keyring(primary, MemoryKeyStore(), recovery=recovery).load()
    moved: int = keyring.rewrap_roots()
    print(moved)
    return keyring
