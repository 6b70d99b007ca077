"""Key stores kept in memory and in a JSON file; both share one set of rules.

A scope's tombstone (``marks``) is what makes shredding final: `destroy_scope` destroys
every key of the scope and marks it destroyed in one locked step, and `add_data_key`
refuses a destroyed scope in that same step, so no rotation racing the destruction can
add a live key after it. Only `recreate_scope` lifts the mark. A scope with keys that
are all destroyed and no mark (destroyed by an older version) counts as destroyed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs

from securecustomer.crypto import KeyState
from securecustomer.exceptions import (
    KeyDestroyedError,
    KeyNotFoundError,
    KeyStateError,
    KeyStoreError,
)
from securecustomer.keys._fs import atomic_write, leftovers, locked, scrub, temp_path
from securecustomer.keys._records import (
    DataKeyRecord,
    RootKeyRecord,
    WrappedKey,
    check_update,
    scope_destroyed,
)

__all__ = ["FileKeyStore", "MemoryKeyStore"]

_T = TypeVar("_T")
_FORMAT = "securecustomer.keystore"


@attrs.define
class _Records:
    """The content of a key store and the rules every mutation follows."""

    roots: dict[int, RootKeyRecord] = attrs.Factory(dict)
    data: dict[int, DataKeyRecord] = attrs.Factory(dict)
    marks: dict[str, KeyState] = attrs.Factory(dict)  # ACTIVE (recreated) or DESTROYED

    def scope(self, scope: str) -> list[DataKeyRecord]:
        return sorted((r for r in self.data.values() if r.scope == scope), key=lambda r: r.version)

    def add_root(self, record: RootKeyRecord) -> RootKeyRecord:
        return self.roots.setdefault(record.version, record)

    def update_root(self, record: RootKeyRecord) -> None:
        old = self.roots.get(record.version)
        if old is None:
            raise KeyNotFoundError(f"no root key version {record.version}")
        check_update(old, record)
        self.roots[record.version] = record

    def check_live(self, scope: str) -> None:
        """Raise `KeyDestroyedError` if *scope* was destroyed (and not re-created)."""
        records = self.scope(scope)
        if scope_destroyed(self.marks.get(scope), records):
            raise KeyDestroyedError(key_id=records[-1].key_id, scope=scope)

    def destroy_scope(self, scope: str) -> list[DataKeyRecord]:
        records = self.scope(scope)
        if not records:
            return []
        destroyed = [attrs.evolve(r, state=KeyState.DESTROYED, wrapped=b"") for r in records]
        self.update_data_keys([d for d, r in zip(destroyed, records, strict=True) if r != d])
        self.marks[scope] = KeyState.DESTROYED
        return destroyed

    def recreate_scope(self, record: DataKeyRecord) -> DataKeyRecord | None:
        if not scope_destroyed(self.marks.get(record.scope), self.scope(record.scope)):
            raise KeyStateError(
                f"scope {record.scope!r} is not destroyed: rotate() makes a new key",
                scope=record.scope,
            )
        stored = self._insert(record)
        if stored is not None:
            self.marks[record.scope] = KeyState.ACTIVE
        return stored

    def add_data_key(self, record: DataKeyRecord) -> DataKeyRecord | None:
        self.check_live(record.scope)
        return self._insert(record)

    def _insert(self, record: DataKeyRecord) -> DataKeyRecord | None:
        for existing in self.data.values():
            if existing.scope == record.scope and existing.version == record.version:
                return existing
        if record.key_id in self.data:
            return None
        self.data[record.key_id] = record
        return record

    def update_data_keys(self, records: list[DataKeyRecord]) -> None:
        for record in records:  # check all before changing any
            old = self.data.get(record.key_id)
            if old is None:
                raise KeyNotFoundError(f"no data key {record.key_id:#010x}", key_id=record.key_id)
            check_update(old, record)
        for record in records:
            self.data[record.key_id] = record


class _StoreBase:
    """Implements the KeyStore protocol over `_read` and `_write` hooks."""

    def _read(self, change: Callable[[_Records], _T], *, write: bool) -> _T:
        raise NotImplementedError

    def roots(self) -> list[RootKeyRecord]:
        return self._read(lambda s: [s.roots[v] for v in sorted(s.roots)], write=False)

    def add_root(self, record: RootKeyRecord) -> RootKeyRecord:
        return self._read(lambda s: s.add_root(record), write=True)

    def update_root(self, record: RootKeyRecord) -> None:
        self._read(lambda s: s.update_root(record), write=True)

    def data_keys(self, scope: str) -> list[DataKeyRecord]:
        return self._read(lambda s: s.scope(scope), write=False)

    def data_key(self, key_id: int) -> DataKeyRecord | None:
        return self._read(lambda s: s.data.get(key_id), write=False)

    def data_keys_many(self, scopes: list[str]) -> dict[str, list[DataKeyRecord]]:
        """The data keys of many scopes in one read."""
        wanted = set(scopes)

        def collect(records: _Records) -> dict[str, list[DataKeyRecord]]:
            found: dict[str, list[DataKeyRecord]] = {}
            for record in sorted(records.data.values(), key=lambda r: r.version):
                if record.scope in wanted:
                    found.setdefault(record.scope, []).append(record)
            return found

        return self._read(collect, write=False)

    def all_data_keys(self) -> list[DataKeyRecord]:
        return self._read(lambda s: list(s.data.values()), write=False)

    def add_data_key(self, record: DataKeyRecord) -> DataKeyRecord | None:
        return self._read(lambda s: s.add_data_key(record), write=True)

    def update_data_keys(self, records: list[DataKeyRecord]) -> None:
        self._read(lambda s: s.update_data_keys(records), write=True)

    def destroy_scope(self, scope: str) -> list[DataKeyRecord]:
        """Destroy every key of *scope* and mark it destroyed, in one step.

        From then on `add_data_key` raises `KeyDestroyedError` for the scope. Returns
        the scope's (destroyed) records, oldest first; none if it has no key.
        """
        return self._read(lambda s: s.destroy_scope(scope), write=True)

    def recreate_scope(self, record: DataKeyRecord) -> DataKeyRecord | None:
        """Lift the destroyed mark of *record*'s scope and add *record*, in one step.

        Raises `KeyStateError` if the scope is not destroyed. Returns like `add_data_key`.
        """
        return self._read(lambda s: s.recreate_scope(record), write=True)


class MemoryKeyStore(_StoreBase):
    """A key store in this process's memory: for tests and throw-away keyrings.

    Everything is lost when the process exits, including the keys your data needs.
    """

    def __init__(self) -> None:
        self._records = _Records()
        self._lock = threading.Lock()

    def _read(self, change: Callable[[_Records], _T], *, write: bool) -> _T:
        with self._lock:
            return change(self._records)

    def __repr__(self) -> str:
        return f"<MemoryKeyStore roots={len(self._records.roots)} keys={len(self._records.data)}>"


class FileKeyStore(_StoreBase):
    """A key store in one JSON file, replaced atomically (mode 0600).

    Safe with several processes on one host: writers take a lock file next to it
    (``PATH.lock``) and readers never see a half-written file. Every call reads the
    file, so it suits keyrings with up to a few thousand scopes, not per-subject scopes
    for a large customer base.

    Example:
        ```python
        keyring = Keyring(LocalKeyProvider.from_file("master.key"), FileKeyStore("keys.json"))
        ```
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._temp_path = temp_path(self.path)
        self._thread_lock = threading.Lock()
        self._scrubbed = False

    def __repr__(self) -> str:
        return f"<FileKeyStore {str(self.path)!r}>"

    def _read(self, change: Callable[[_Records], _T], *, write: bool) -> _T:
        if not write:
            if not self._scrubbed:
                self._scrub_on_first_use()
            return change(self._load())
        try:
            with self._thread_lock, locked(self._lock_path):
                scrub(leftovers(self.path))  # a killed writer's copy of every wrapped key
                self._scrubbed = True
                records = self._load()
                before = _dump(records)
                result = change(records)
                after = _dump(records)
                if after != before:
                    atomic_write(self.path, after, temp=self._temp_path)
                return result
        except OSError as exc:
            raise KeyStoreError(
                f"{self.path}: cannot write key store ({exc.strerror or exc})"
            ) from exc

    def _scrub_on_first_use(self) -> None:
        """Scrub what killed writers left (see `_fs`), under the lock, if there is any."""
        if leftovers(self.path):
            try:
                with self._thread_lock, locked(self._lock_path):
                    scrub(leftovers(self.path))
            except OSError:
                return  # a reader without write access: the next writer scrubs
        self._scrubbed = True

    def _load(self) -> _Records:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return _Records()
        except OSError as exc:
            raise KeyStoreError(f"{self.path}: cannot read key store ({exc.strerror})") from None
        try:
            return _parse(raw)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise KeyStoreError(f"{self.path}: corrupt key store: {exc}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _dump(records: _Records) -> bytes:
    document: dict[str, Any] = {
        "format": _FORMAT,
        "version": 1,
        "roots": [
            {
                "version": r.version,
                "state": r.state.value,
                "created_at": r.created_at.isoformat(),
                "wrapped": [
                    {"provider": w.provider, "key_ref": w.key_ref, "ciphertext": _b64(w.ciphertext)}
                    for w in r.wrapped
                ],
            }
            for r in (records.roots[v] for v in sorted(records.roots))
        ],
        "data_keys": [
            {
                "key_id": r.key_id,
                "scope": r.scope,
                "version": r.version,
                "state": r.state.value,
                "created_at": r.created_at.isoformat(),
                "root_version": r.root_version,
                "wrapped": _b64(r.wrapped),
            }
            for r in sorted(records.data.values(), key=lambda r: (r.scope, r.version))
        ],
    }
    if records.marks:  # only then: files without tombstones stay as older versions wrote them
        document["scopes"] = [
            {"scope": scope, "state": records.marks[scope].value} for scope in sorted(records.marks)
        ]
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()


class _Corrupt(KeyStoreError, ValueError):
    """A key-store document that does not parse; `_load` adds the file's name."""


def _parse(raw: bytes) -> _Records:
    document: Any = json.loads(raw.decode("utf-8"))
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise _Corrupt(f'"format" must be "{_FORMAT}"')
    if document.get("version") != 1:
        raise _Corrupt('unsupported "version" (expected 1)')
    records = _Records()
    for index, item in enumerate(document["roots"]):
        try:
            root = RootKeyRecord(
                version=_int(item["version"]),
                state=KeyState(item["state"]),
                created_at=dt.datetime.fromisoformat(item["created_at"]),
                wrapped=tuple(
                    WrappedKey(
                        provider=str(w["provider"]),
                        key_ref=str(w["key_ref"]),
                        ciphertext=base64.b64decode(w["ciphertext"], validate=True),
                    )
                    for w in item["wrapped"]
                ),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise _Corrupt(f"roots[{index}]: {exc!r}") from None
        records.roots[root.version] = root
    for index, item in enumerate(document["data_keys"]):
        try:
            key = DataKeyRecord(
                key_id=_int(item["key_id"]),
                scope=str(item["scope"]),
                version=_int(item["version"]),
                state=KeyState(item["state"]),
                created_at=dt.datetime.fromisoformat(item["created_at"]),
                root_version=_int(item["root_version"]),
                wrapped=base64.b64decode(item["wrapped"], validate=True),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise _Corrupt(f"data_keys[{index}]: {exc!r}") from None
        if key.key_id in records.data:
            raise _Corrupt(f"data_keys[{index}]: duplicate key id {key.key_id:#010x}")
        records.data[key.key_id] = key
    for index, item in enumerate(document.get("scopes", [])):
        try:
            scope, state = str(item["scope"]), KeyState(item["state"])
            if state not in (KeyState.ACTIVE, KeyState.DESTROYED):
                raise _Corrupt(f"a scope cannot be {state.value!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise _Corrupt(f"scopes[{index}]: {exc!r}") from None
        records.marks[scope] = state
    return records


def _int(value: object) -> int:
    if type(value) is not int:
        raise _Corrupt("expected an integer")
    return value
