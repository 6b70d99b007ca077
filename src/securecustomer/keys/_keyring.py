"""Keyring: the key hierarchy (master key -> root keys -> data keys), caches and lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, NoReturn

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securecustomer.crypto import DataKey, FieldCipher, KeySet, KeyState
from securecustomer.crypto._keys import KEY_SIZE, derive
from securecustomer.exceptions import (
    ConfigurationError,
    ContextError,
    DecryptionError,
    KeyManagementError,
    KeyNotFoundError,
    KeyStateError,
    KeyStoreError,
    KeyUnwrapError,
)
from securecustomer.keys._records import (
    DataKeyRecord,
    KeyProvider,
    KeyStore,
    RootKeyRecord,
)
from securecustomer.keys._roots import RootWrapping

__all__ = ["KeyStatus", "Keyring"]

_LABEL_ROOT = b"securecustomer/v1/root-wrap"
_NONCE = 12
_SCOPE = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
_USABLE = (KeyState.ACTIVE, KeyState.DECRYPT_ONLY)
_REWRAP_BATCH = 500


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _dek_aad(record: DataKeyRecord, root_version: int) -> bytes:
    scope = record.scope.encode("utf-8")
    return (
        b"securecustomer/v1/data-key"
        + len(scope).to_bytes(4, "big")
        + scope
        + record.version.to_bytes(4, "big")
        + record.key_id.to_bytes(4, "big")
        + root_version.to_bytes(4, "big")
    )


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


class Keyring:
    """The key hierarchy of one application: root keys and per-scope data keys.

    Root keys are wrapped by the *provider*'s master key and unwrapped once, at
    `load`; data keys are wrapped by the root key (locally, no network) and created on
    first use of a scope. Unwrapped data keys are cached for at most *cache_ttl*
    seconds and *cache_size* scopes, so a key destroyed by another process stops
    working here within *cache_ttl*. Unwrapped root keys are re-read after
    *root_cache_ttl* seconds, and the store is asked for the current root version
    before any data key is wrapped, so a root rotated by another process is used at once.

    Root keys are also wrapped by every *recovery* provider (an offline key file, a
    second KMS): when the primary provider fails or has lost its key, `load` unwraps
    them with a recovery provider instead, so losing one provider is not losing the data.

    Example:
        ```python
        keyring = Keyring(LocalKeyProvider.from_file("master.key"), FileKeyStore("keys.json"))
        keyring.load()
        cipher = keyring.cipher("customers.email")
        ```
    """

    def __init__(
        self,
        provider: KeyProvider,
        store: KeyStore,
        *,
        recovery: Sequence[KeyProvider] = (),
        cache_ttl: float = 60.0,
        cache_size: int = 10_000,
        root_cache_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utcnow,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        for name, ttl in (("cache_ttl", cache_ttl), ("root_cache_ttl", root_cache_ttl)):
            if not (isinstance(ttl, (int, float)) and 0 < ttl < math.inf):
                raise ConfigurationError(f"{name} must be a positive, finite number of seconds")
        if type(cache_size) is not int or cache_size < 1:
            raise ConfigurationError("cache_size must be a positive integer")
        self.provider = provider
        self.recovery = tuple(recovery)
        self.store = store
        self._wrapping = RootWrapping(provider, self.recovery)
        self._ttl = float(cache_ttl)
        self._root_ttl = float(root_cache_ttl)
        self._roots_expire = -math.inf
        self._size = cache_size
        self._clock = clock
        self._now = now
        self._random = random
        self._lock = threading.RLock()
        self._roots: dict[int, AESGCM] = {}
        self._primary_root: int | None = None
        self._cache: OrderedDict[str, KeySet] = OrderedDict()
        self._ciphers: OrderedDict[tuple[str, bool], FieldCipher] = OrderedDict()

    def __repr__(self) -> str:
        state = "loaded" if self._primary_root is not None else "not loaded"
        return f"<Keyring {state} provider={self.provider!r} store={self.store!r}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Keyring objects hold keys and cannot be pickled")

    # -- loading --------------------------------------------------------------------------

    def load(self) -> Keyring:
        """Unwrap the root keys (one provider call each); create the first one if none.

        Returns the keyring so that ``keyring = Keyring(...).load()`` reads well.
        """
        records = self.store.roots()
        known: dict[int, bytes] = {}
        if not records:
            record, material = self._create_root(1)
            records = [record]
            if material is not None:
                known[1] = material  # no second provider call to unwrap what we just made
        self._install_roots(records, known)
        return self

    async def aload(self) -> Keyring:
        """`load` without blocking the event loop."""
        return await asyncio.to_thread(self.load)

    def _install_roots(
        self,
        records: list[RootKeyRecord],
        known: dict[int, bytes] | None = None,
        *,
        keep_loaded: bool = False,
    ) -> None:
        """Unwrap and install *records*' root keys (material in *known* is not unwrapped).

        With *keep_loaded*, versions this process holds already are kept as they are
        (no provider call for them) unless the store says they were destroyed.
        """
        live = {r.version for r in records if r.state is not KeyState.DESTROYED}
        kept = {v: k for v, k in self._roots.items() if v in live} if keep_loaded else {}
        materials = self._wrapping.unwrap_all([r for r in records if r.version not in kept], known)
        roots = {v: AESGCM(derive(m, _LABEL_ROOT, 32)) for v, m in materials.items()}
        roots.update(kept)
        active = [r.version for r in records if r.state is KeyState.ACTIVE]
        if not active:
            raise KeyStateError("the key store has no active root key: rotate_root() creates one")
        with self._lock:
            self._roots = roots
            self._primary_root = max(active)
            self._roots_expire = self._clock() + self._root_ttl

    def _create_root(self, version: int) -> tuple[RootKeyRecord, bytes | None]:
        """Create root key *version*; the material too, unless another process won the race."""
        material, wrapped = self._wrapping.create(version, self._random, KEY_SIZE)
        record = RootKeyRecord(
            version=version, state=KeyState.ACTIVE, created_at=self._now(), wrapped=wrapped
        )
        stored = self.store.add_root(record)
        return stored, (material if stored.wrapped == record.wrapped else None)

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

    def _root(self, version: int) -> AESGCM:
        root = self._roots.get(version)
        if root is None or self._roots_expire <= self._clock():  # rotated, or cache too old
            self._install_roots(self.store.roots())
            root = self._roots.get(version)
            if root is None:
                raise KeyStoreError(f"root key version {version} is missing or destroyed")
        return root

    def _primary(self) -> int:
        if self._primary_root is None:
            raise KeyManagementError("the keyring is not loaded: call load() or aload() first")
        return self._primary_root

    def _writable_root(self) -> int:
        """The root version to wrap new data keys under, as the store says now.

        Another process may have rotated (and then destroyed) the root this process
        loaded; wrapping under it would make the new key unreadable everywhere else.
        """
        loaded = self._primary()
        records = self.store.roots()
        current = max((r.version for r in records if r.state is KeyState.ACTIVE), default=None)
        if current != loaded or loaded not in self._roots:
            self._install_roots(records)
        return self._primary()

    # -- data keys ------------------------------------------------------------------------

    def cipher(
        self, scope: str, *, deterministic: bool = False, create: bool = True
    ) -> FieldCipher:
        """A `FieldCipher` for *scope*, creating the scope's first data key if needed.

        ``deterministic=True`` encrypts with AES-256-SIV: equal values give equal tokens.
        ``create=False`` (for readers) creates no key now; the first encryption still does.
        """
        cache_key = (scope, deterministic)
        with self._lock:
            cipher = self._ciphers.get(cache_key)
            if cipher is not None:
                self._ciphers.move_to_end(cache_key)
        if cipher is not None:
            if create and not cipher._keys.by_id:  # cached by a reader, before any key
                cipher._keys = self.keyset(scope, create=True)
            return cipher
        cipher = FieldCipher(
            self,
            _check_scope(scope),
            deterministic=deterministic,
            clock=self._clock,
            create=create,
        )
        with self._lock:
            self._ciphers[cache_key] = cipher
            while len(self._ciphers) > self._size:
                self._ciphers.popitem(last=False)
        return cipher

    def prefetch(self, scopes: Iterable[str]) -> None:
        """Load the data keys of many scopes with as few key-store reads as possible.

        For bulk reads of rows that belong to many subjects: one call per batch instead
        of one store read per subject. No provider call is made (data keys are wrapped
        locally by the root key), and no key is created for a scope that has none.
        """
        self._primary()
        now = self._clock()
        with self._lock:
            wanted = {s for s in scopes if (c := self._cache.get(s)) is None or c.expires_at <= now}
        if not wanted:
            return
        many = getattr(self.store, "data_keys_many", None)
        if many is not None:
            found: dict[str, list[DataKeyRecord]] = many(sorted(wanted))
        else:
            found = {s: records for s in sorted(wanted) if (records := self.store.data_keys(s))}
        for scope, records in found.items():
            if records:
                with self._lock:
                    old = self._cache.get(scope)
                self._install(scope, records, old)

    async def acipher(
        self, scope: str, *, deterministic: bool = False, create: bool = True
    ) -> FieldCipher:
        """`cipher` without blocking the event loop."""
        return await asyncio.to_thread(
            self.cipher, scope, deterministic=deterministic, create=create
        )

    def keyset(self, scope: str, *, refresh: bool = False, create: bool = True) -> KeySet:
        """The scope's keys for a cipher (part of the `KeySource` protocol).

        With *create*, a scope without any key gets its first one; without, an empty set.
        """
        self._primary()
        with self._lock:
            cached = self._cache.get(scope)
            if (
                cached is not None
                and not refresh
                and cached.expires_at > self._clock()
                and (cached.by_id or not create)  # an empty set is re-read to create
            ):
                self._cache.move_to_end(scope)
                return cached
        records = self.store.data_keys(scope)
        if not records and create:
            records = [self._create_data_key(scope, 1)]
        return self._install(scope, records, cached)

    def _install(self, scope: str, records: list[DataKeyRecord], old: KeySet | None) -> KeySet:
        previous = old.by_id if old is not None else {}
        keys: dict[int, DataKey] = {}
        for record in records:
            prev = previous.get(record.key_id)
            if prev is not None and prev.state is record.state:
                keys[record.key_id] = prev
                continue
            material = self._unwrap_data_key(record) if record.state in _USABLE else None
            key = DataKey(
                key_id=record.key_id,
                scope=scope,
                version=record.version,
                state=record.state,
                material=material,
            )
            if prev is not None:
                key.encryptions, key.decryptions = prev.encryptions, prev.decryptions
            keys[record.key_id] = key
        active = [k for k in keys.values() if k.state is KeyState.ACTIVE]
        primary = max(active, key=lambda k: k.version) if active else None
        keyset = KeySet(scope, primary, keys, self._clock() + self._ttl)
        with self._lock:
            self._cache[scope] = keyset
            self._cache.move_to_end(scope)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        if old is not None:
            old.expires_at = -math.inf
        return keyset

    def _invalidate(self, scope: str) -> None:
        with self._lock:
            cached = self._cache.get(scope)
        if cached is not None:  # kept in the cache so that usage counts carry over
            cached.expires_at = -math.inf

    def missing_key(self, key_id: int, scope: str) -> Exception:
        """The error for a token whose key id is not one of *scope*'s keys."""
        record = self.store.data_key(key_id)
        if record is None:
            return KeyNotFoundError(
                f"no data key with id {key_id:#010x} in the key store (wrong key store?)",
                key_id=key_id,
            )
        return DecryptionError()  # a key of another scope: the token is misplaced

    def _wrap_data_key(self, record: DataKeyRecord, material: bytes, root_version: int) -> bytes:
        nonce = self._random(_NONCE)
        sealed = self._root(root_version).encrypt(nonce, material, _dek_aad(record, root_version))
        return nonce + sealed

    def _unwrap_data_key(self, record: DataKeyRecord) -> bytes:
        data = record.wrapped
        try:
            return self._root(record.root_version).decrypt(
                data[:_NONCE], data[_NONCE:], _dek_aad(record, record.root_version)
            )
        except (InvalidTag, ValueError):
            raise KeyUnwrapError(
                f"data key {record.key_id:#010x} of scope {record.scope!r} did not authenticate "
                f"under root key version {record.root_version}: the key store was altered"
            ) from None

    def _create_data_key(self, scope: str, version: int) -> DataKeyRecord:
        root_version = self._writable_root()
        material = self._random(KEY_SIZE)
        for _ in range(16):
            draft = DataKeyRecord(
                key_id=int.from_bytes(self._random(4), "big"),
                scope=scope,
                version=version,
                state=KeyState.ACTIVE,
                created_at=self._now(),
                root_version=root_version,
                wrapped=b"",
            )
            record = attrs.evolve(draft, wrapped=self._wrap_data_key(draft, material, root_version))
            stored = self.store.add_data_key(record)
            if stored is not None:
                return stored
        raise KeyStoreError("could not draw an unused key id in 16 attempts")

    # -- lifecycle ------------------------------------------------------------------------

    def rotate(self, scope: str) -> KeyStatus:
        """Create a new data key version for new writes; older ones become decrypt-only.

        Existing values stay readable; re-encrypt them with the new key to retire the old.
        """
        scope = _check_scope(scope)
        self._primary()
        records = self.store.data_keys(scope)
        version = max((r.version for r in records), default=0) + 1
        created = self._create_data_key(scope, version)
        demoted = [
            attrs.evolve(r, state=KeyState.DECRYPT_ONLY)
            for r in records
            if r.state is KeyState.ACTIVE and r.version < created.version
        ]
        if demoted:
            self.store.update_data_keys(demoted)
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
        """
        scope = _check_scope(scope)
        records = self.store.data_keys(scope)
        if not records:
            raise KeyNotFoundError(f"scope {scope!r} has no keys", scope=scope)
        self.store.update_data_keys(
            [_destroyed(r) for r in records if r.state is not KeyState.DESTROYED]
        )
        self._invalidate(scope)
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
