"""What a key store keeps: wrapped root keys and wrapped data keys, with their states."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import attrs

from securecustomer.crypto import KeyState
from securecustomer.exceptions import KeyStateError, KeyStoreError

__all__ = [
    "DataKeyRecord",
    "KeyProvider",
    "KeyStore",
    "RootKeyRecord",
    "WrappedKey",
    "check_update",
    "scope_destroyed",
]


@attrs.frozen
class WrappedKey:
    """Key material encrypted by a provider's master key.

    *provider* names the kind of provider (``"local"``, ``"vault"``, ``"aws-kms"``) and
    *key_ref* the master key (and version) that wrapped it; neither is secret.
    """

    provider: str
    key_ref: str
    ciphertext: bytes = attrs.field(repr=False)


@attrs.frozen
class RootKeyRecord:
    """One version of the keyring's root key, wrapped by one or more master keys."""

    version: int
    state: KeyState
    created_at: dt.datetime
    wrapped: tuple[WrappedKey, ...] = attrs.field(repr=False)


@attrs.frozen
class DataKeyRecord:
    """One version of a scope's data key, wrapped locally by a root key version.

    *wrapped* is ``nonce || ciphertext || tag`` (AES-256-GCM under the root key) and is
    empty once the key is destroyed.
    """

    key_id: int
    scope: str
    version: int
    state: KeyState
    created_at: dt.datetime
    root_version: int
    wrapped: bytes = attrs.field(repr=False)


class KeyProvider(Protocol):
    """Wraps and unwraps key material under a master key it never reveals.

    Providers see only root keys, never data keys or row data. *context* is bound to
    the wrapped key (as associated data or an encryption context) and must be given
    again to unwrap it.

    A provider may also offer these methods, which the keyring uses when present:

    - ``generate_key(*, context) -> tuple[bytes, WrappedKey]``: new key material and its
      wrapped form in one call (Vault Transit ``datakey``, KMS ``GenerateDataKey``);
    - ``rewrap(wrapped, *, context) -> WrappedKey``: the same material under the
      provider's current master-key version, without revealing it (Transit ``rewrap``,
      KMS ``ReEncrypt``);
    - ``unwrap_many(items: list[tuple[WrappedKey, dict[str, str]]]) -> list[bytes]``:
      several keys in as few calls as the service allows (Transit batch decrypt).

    Errors are `KeyProviderError` subclasses: `KeyProviderUnavailable` (transient:
    retried by the provider, then raised), `KeyProviderAccessDenied`, `KeyUnwrapError`.
    """

    @property
    def name(self) -> str:
        """Kind of provider, as stored in `WrappedKey.provider`."""
        ...

    def wrap(self, material: bytes, *, context: dict[str, str]) -> WrappedKey:
        """Encrypt *material* under the current master key."""
        ...

    def unwrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> bytes:
        """Decrypt *wrapped*; raise `KeyUnwrapError` if it does not authenticate."""
        ...


class KeyStore(Protocol):
    """Durable storage for wrapped keys. Implementations must make each call atomic.

    A store may also offer these methods, which the keyring uses when present (every
    store of this library has them):

    - ``data_keys_many(scopes) -> dict[str, list[DataKeyRecord]]``: many scopes in one read;
    - ``destroy_scope(scope) -> list[DataKeyRecord]``: destroy every key of *scope* and
      leave a tombstone, in one atomic step; from then on `add_data_key` raises
      `KeyDestroyedError` for the scope (decided by `scope_destroyed`);
    - ``recreate_scope(record) -> DataKeyRecord | None``: lift the tombstone and add
      *record* in one atomic step; `KeyStateError` if the scope is not destroyed.

    Without ``destroy_scope``, `Keyring.destroy` is not atomic: a rotation racing it may
    survive it (docs/keys.md, "Writing your own key store").
    """

    def roots(self) -> list[RootKeyRecord]:
        """Every root key version, oldest first."""
        ...

    def add_root(self, record: RootKeyRecord) -> RootKeyRecord:
        """Insert *record* unless its version exists; return the stored record."""
        ...

    def update_root(self, record: RootKeyRecord) -> None:
        """Replace the root key record of the same version (see `check_update`)."""
        ...

    def data_keys(self, scope: str) -> list[DataKeyRecord]:
        """Every version of *scope*'s data key, oldest first."""
        ...

    def data_key(self, key_id: int) -> DataKeyRecord | None:
        """The data key with *key_id*, or None."""
        ...

    def all_data_keys(self) -> list[DataKeyRecord]:
        """Every data key of every scope."""
        ...

    def add_data_key(self, record: DataKeyRecord) -> DataKeyRecord | None:
        """Insert *record* unless its (scope, version) exists; return the stored record.

        Return None when *record.key_id* already belongs to another key, so that the
        caller can draw another id. Concurrent callers must all get the same record.
        """
        ...

    def update_data_keys(self, records: list[DataKeyRecord]) -> None:
        """Replace the records with the same key ids, all or none (see `check_update`)."""
        ...


def check_update(old: RootKeyRecord | DataKeyRecord, new: RootKeyRecord | DataKeyRecord) -> None:
    """Refuse updates that would break the lifecycle rules; every store calls this.

    Identity fields never change, a destroyed key never comes back, and a destroyed
    key keeps no wrapped material.
    """
    if isinstance(old, DataKeyRecord) and isinstance(new, DataKeyRecord):
        same = (old.key_id, old.scope, old.version) == (new.key_id, new.scope, new.version)
        key_id: int | None = old.key_id
        scope: str | None = old.scope
    elif isinstance(old, RootKeyRecord) and isinstance(new, RootKeyRecord):
        same = old.version == new.version
        key_id = scope = None
    else:
        raise KeyStoreError("cannot update a record with a record of another kind")
    if not same:
        raise KeyStateError("an update cannot change a key's identity", key_id=key_id, scope=scope)
    if old.state is KeyState.DESTROYED and new.state is not KeyState.DESTROYED:
        raise KeyStateError("a destroyed key can never be revived", key_id=key_id, scope=scope)
    if new.state is KeyState.DESTROYED and new.wrapped:
        raise KeyStateError(
            "a destroyed key must not keep wrapped material", key_id=key_id, scope=scope
        )


def scope_destroyed(mark: KeyState | None, records: list[DataKeyRecord]) -> bool:
    """Whether a scope with tombstone *mark* and keys *records* is destroyed; every store
    that keeps tombstones calls this.

    Without a mark (a store written by an older version, or a scope never destroyed as a
    whole) a scope is destroyed when it has keys and all of them are destroyed.
    """
    if mark is not None:
        return mark is KeyState.DESTROYED
    return bool(records) and all(r.state is KeyState.DESTROYED for r in records)
