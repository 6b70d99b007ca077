"""Keyring: the key hierarchy (master key -> root keys -> data keys), loading and caches.

The lifecycle methods (rotation, states, shredding, reports) come from `KeyLifecycle`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securecustomer.crypto import DataKey, FieldCipher, KeySet, KeyState
from securecustomer.crypto._keys import KEY_SIZE, derive
from securecustomer.exceptions import (
    ConfigurationError,
    DecryptionError,
    KeyManagementError,
    KeyStateError,
    KeyStoreError,
    KeyUnwrapError,
    UnknownKeyError,
    UnpicklableError,
)
from securecustomer.keys._lifecycle import KeyLifecycle, KeyStatus, _check_scope
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
_USABLE = (KeyState.ACTIVE, KeyState.DECRYPT_ONLY)


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


class Keyring(KeyLifecycle):
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
        raise UnpicklableError("Keyring objects hold keys and cannot be pickled")

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
            return UnknownKeyError(
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

    def _create_data_key(
        self, scope: str, version: int, *, recreate: bool = False
    ) -> DataKeyRecord:
        """Store a new data key; with *recreate*, through the store's `recreate_scope`."""
        add = self.store.recreate_scope if recreate else self.store.add_data_key  # type: ignore[attr-defined]
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
            stored = add(record)
            if stored is not None:
                return stored
        raise KeyStoreError("could not draw an unused key id in 16 attempts")
