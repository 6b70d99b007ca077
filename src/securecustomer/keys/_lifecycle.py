"""Key lifecycle administration of the `Keyring`: rotation, states, shredding and reports."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
from abc import abstractmethod
from collections import OrderedDict
from typing import Literal

import attrs
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securecustomer.crypto import DataKey, KeySet, KeyState
from securecustomer.exceptions import (
    ContextError,
    KeyDestroyedError,
    KeyNotFoundError,
    KeyStateError,
)
from securecustomer.keys._records import DataKeyRecord, KeyStore, RootKeyRecord
from securecustomer.keys._roots import RootWrapping

__all__ = ["KeyLifecycle", "KeyStatus"]

_SCOPE = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
_REWRAP_BATCH = 500


@attrs.frozen
class KeyStatus:
    """One key in a `Keyring.status` report. Holds no secret.

    *encryptions* and *decryptions* count uses by this process while the scope stayed in
    the keyring's cache (they restart from zero after the scope is evicted).
    """

    kind: Literal["root", "data"]
    version: int
    state: KeyState
    created_at: dt.datetime
    key_id: int | None = None
    scope: str | None = None
    root_version: int | None = None
    encryptions: int = 0
    decryptions: int = 0


class KeyLifecycle:
    """The administration half of `Keyring`, as a mixin: it creates no key material itself.

    What it needs from the keyring (the store, the root-key cache, loading and data-key
    wrapping) is declared here, attributes by annotation and methods as abstract ones;
    `Keyring` provides them all.
    """

    store: KeyStore
    _wrapping: RootWrapping
    _lock: threading.RLock
    _roots: dict[int, AESGCM]
    _primary_root: int | None
    _cache: OrderedDict[str, KeySet]

    @abstractmethod
    def _primary(self) -> int: ...

    @abstractmethod
    def _writable_root(self) -> int: ...

    @abstractmethod
    def _create_root(self, version: int) -> tuple[RootKeyRecord, bytes | None]: ...

    @abstractmethod
    def _install_roots(
        self,
        records: list[RootKeyRecord],
        known: dict[int, bytes] | None = None,
        *,
        keep_loaded: bool = False,
    ) -> None: ...

    @abstractmethod
    def _create_data_key(
        self, scope: str, version: int, *, recreate: bool = False
    ) -> DataKeyRecord: ...

    @abstractmethod
    def _wrap_data_key(
        self, record: DataKeyRecord, material: bytes, root_version: int
    ) -> bytes: ...

    @abstractmethod
    def _unwrap_data_key(self, record: DataKeyRecord) -> bytes: ...

    @abstractmethod
    def _invalidate(self, scope: str) -> None: ...

    def rewrap_roots(self) -> int:
        """Move every root key to the providers' current master keys; returns how many.

        Master-key rotation, second step (the first happens in the provider: a new
        Transit key version, a new KMS key, a new key in the key file). No data and no
        data key changes. Wrappings by providers this keyring no longer has are dropped,
        and missing recovery wrappings are added.
        """
        self._primary()
        records = [r for r in self.store.roots() if r.state is not KeyState.DESTROYED]
        materials = self._wrapping.unwrap_all(records)
        for record in records:
            fresh = self._wrapping.rewrap(record, materials[record.version])
            self.store.update_root(attrs.evolve(record, wrapped=fresh))
        return len(records)

    async def arewrap_roots(self) -> int:
        """`rewrap_roots` without blocking the event loop."""
        return await asyncio.to_thread(self.rewrap_roots)

    # -- lifecycle ------------------------------------------------------------------------

    def rotate(self, scope: str) -> KeyStatus:
        """Create a new data key version for new writes; older ones become decrypt-only.

        Existing values stay readable; re-encrypt them with the new key to retire the old.
        A destroyed scope stays destroyed: this raises `KeyDestroyedError` for it (see
        `recreate`), also when the destruction races this call.
        """
        return self._new_version(_check_scope(scope), recreate=False)

    def recreate(self, scope: str) -> KeyStatus:
        """Give a destroyed scope a new active data key: the one way back from `destroy`.

        The destroyed versions stay destroyed (their values stay unreadable); the new key
        takes the next version. Raises `KeyStateError` if the scope is not destroyed.
        """
        return self._new_version(_check_scope(scope), recreate=True)

    def _new_version(self, scope: str, *, recreate: bool) -> KeyStatus:
        self._primary()
        records = self.store.data_keys(scope)
        atomic = hasattr(self.store, "destroy_scope")
        if not atomic:  # a store without tombstones: checked here, not atomically
            destroyed = bool(records) and all(r.state is KeyState.DESTROYED for r in records)
            if destroyed and not recreate:
                raise KeyDestroyedError(key_id=records[-1].key_id, scope=scope)
            if recreate and not destroyed:
                raise KeyStateError(
                    f"scope {scope!r} is not destroyed: rotate() makes a new key", scope=scope
                )
        version = max((r.version for r in records), default=0) + 1
        created = self._create_data_key(scope, version, recreate=recreate and atomic)
        demoted = [
            attrs.evolve(r, state=KeyState.DECRYPT_ONLY)
            for r in self.store.data_keys(scope)
            if r.state is KeyState.ACTIVE and r.version < created.version
        ]
        try:
            if demoted:
                self.store.update_data_keys(demoted)
        except KeyStateError:  # destroyed since: the new key is destroyed too
            if any(r.state is KeyState.DESTROYED for r in self.store.data_keys(scope)):
                raise KeyDestroyedError(key_id=created.key_id, scope=scope) from None
            raise
        finally:
            self._invalidate(scope)
        return _data_status(created, None)

    def set_state(self, key_id: int, state: KeyState) -> None:
        """Move one data key to *state*; `destroy` is the way to destroy keys."""
        if state is KeyState.DESTROYED:
            raise KeyStateError("use destroy(scope) or destroy_key(key_id) to destroy keys")
        record = self._data_key(key_id)
        self.store.update_data_keys([attrs.evolve(record, state=state)])
        self._invalidate(record.scope)

    def destroy_key(self, key_id: int) -> None:
        """Destroy one data key version: its values can never be decrypted again."""
        record = self._data_key(key_id)
        self.store.update_data_keys([_destroyed(record)])
        self._invalidate(record.scope)

    def destroy(self, scope: str) -> list[int]:
        """Crypto-shred *scope*: destroy every version of its data key.

        Every value encrypted under the scope, in any copy or backup of the data, then
        raises `KeyDestroyedError`. Backups of the key store itself still hold the
        wrapped keys until they expire. Returns the ids of the destroyed keys.

        The store destroys the keys and marks the scope destroyed in one atomic step, so
        a `rotate` racing this call never leaves a live key behind; the scope takes no
        new key until `recreate` is called for it.
        """
        scope = _check_scope(scope)
        destroy_scope = getattr(self.store, "destroy_scope", None)
        if destroy_scope is not None:
            records: list[DataKeyRecord] = destroy_scope(scope)
        else:  # a store without tombstones: best effort (see docs/keys.md)
            records = self.store.data_keys(scope)
            self.store.update_data_keys(
                [_destroyed(r) for r in records if r.state is not KeyState.DESTROYED]
            )
        self._invalidate(scope)
        if not records:
            raise KeyNotFoundError(f"scope {scope!r} has no keys", scope=scope)
        return [r.key_id for r in records]

    def _data_key(self, key_id: int) -> DataKeyRecord:
        record = self.store.data_key(key_id)
        if record is None:
            raise KeyNotFoundError(f"no data key with id {key_id:#010x}", key_id=key_id)
        return record

    def rotate_root(self) -> int:
        """Create a new root key version and rewrap every data key under it (locally).

        Data is not touched. The previous root versions become decrypt-only and, once
        nothing refers to them, can be removed with `destroy_root`. Returns the new version.
        """
        self._primary()
        version = max((r.version for r in self.store.roots()), default=0) + 1
        _, material = self._create_root(version)
        known = {version: material} if material is not None else None
        self._install_roots(self.store.roots(), known, keep_loaded=True)  # no provider call
        self.rewrap_data_keys()
        for record in self.store.roots():
            if record.version != self._primary_root and record.state is KeyState.ACTIVE:
                self.store.update_root(attrs.evolve(record, state=KeyState.DECRYPT_ONLY))
        return version

    def rewrap_data_keys(self) -> int:
        """Rewrap every data key not yet under the primary root key; returns how many."""
        target = self._writable_root()
        pending = [
            r
            for r in self.store.all_data_keys()
            if r.state is not KeyState.DESTROYED and r.root_version != target
        ]
        for start in range(0, len(pending), _REWRAP_BATCH):
            batch = pending[start : start + _REWRAP_BATCH]
            self.store.update_data_keys(
                [
                    attrs.evolve(
                        r,
                        root_version=target,
                        wrapped=self._wrap_data_key(r, self._unwrap_data_key(r), target),
                    )
                    for r in batch
                ]
            )
        return len(pending)

    def destroy_root(self, version: int) -> None:
        """Destroy a root key version that no data key refers to any more."""
        if version == self._primary():
            raise KeyStateError("the primary root key cannot be destroyed: rotate_root() first")
        record = next((r for r in self.store.roots() if r.version == version), None)
        if record is None:
            raise KeyNotFoundError(f"no root key version {version}")
        users = [
            r
            for r in self.store.all_data_keys()
            if r.root_version == version and r.state is not KeyState.DESTROYED
        ]
        if users:
            raise KeyStateError(
                f"root key version {version} still wraps {len(users)} data keys: "
                "run rewrap_data_keys() first"
            )
        self.store.update_root(attrs.evolve(record, state=KeyState.DESTROYED, wrapped=()))
        with self._lock:
            self._roots.pop(version, None)

    # -- reporting ------------------------------------------------------------------------

    def status(self) -> list[KeyStatus]:
        """Every root and data key with its state and this process's usage counts."""
        with self._lock:
            loaded = {k.key_id: k for ks in self._cache.values() for k in ks.by_id.values()}
        report = [
            KeyStatus(kind="root", version=r.version, state=r.state, created_at=r.created_at)
            for r in self.store.roots()
        ]
        records = sorted(self.store.all_data_keys(), key=lambda r: (r.scope, r.version))
        report.extend(_data_status(r, loaded.get(r.key_id)) for r in records)
        return report

    async def arotate(self, scope: str) -> KeyStatus:
        """`rotate` without blocking the event loop."""
        return await asyncio.to_thread(self.rotate, scope)

    async def arecreate(self, scope: str) -> KeyStatus:
        """`recreate` without blocking the event loop."""
        return await asyncio.to_thread(self.recreate, scope)

    async def adestroy(self, scope: str) -> list[int]:
        """`destroy` without blocking the event loop."""
        return await asyncio.to_thread(self.destroy, scope)

    async def arotate_root(self) -> int:
        """`rotate_root` without blocking the event loop."""
        return await asyncio.to_thread(self.rotate_root)

    async def astatus(self) -> list[KeyStatus]:
        """`status` without blocking the event loop."""
        return await asyncio.to_thread(self.status)

    async def aset_state(self, key_id: int, state: KeyState) -> None:
        """`set_state` without blocking the event loop."""
        await asyncio.to_thread(self.set_state, key_id, state)

    async def adestroy_key(self, key_id: int) -> None:
        """`destroy_key` without blocking the event loop."""
        await asyncio.to_thread(self.destroy_key, key_id)

    async def arewrap_data_keys(self) -> int:
        """`rewrap_data_keys` without blocking the event loop."""
        return await asyncio.to_thread(self.rewrap_data_keys)

    async def adestroy_root(self, version: int) -> None:
        """`destroy_root` without blocking the event loop."""
        await asyncio.to_thread(self.destroy_root, version)


def _destroyed(record: DataKeyRecord) -> DataKeyRecord:
    return attrs.evolve(record, state=KeyState.DESTROYED, wrapped=b"")


def _data_status(record: DataKeyRecord, key: DataKey | None) -> KeyStatus:
    return KeyStatus(
        kind="data",
        key_id=record.key_id,
        scope=record.scope,
        version=record.version,
        state=record.state,
        created_at=record.created_at,
        root_version=record.root_version,
        encryptions=key.encryptions if key is not None else 0,
        decryptions=key.decryptions if key is not None else 0,
    )


def _check_scope(scope: str) -> str:
    if type(scope) is not str or not _SCOPE.fullmatch(scope):
        raise ContextError(
            "a key scope must be a str of 1 to 255 characters without control characters"
        )
    return scope
