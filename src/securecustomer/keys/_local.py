"""LocalKeyProvider: a master key held in a key file, an environment variable or memory."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securecustomer.crypto._keys import derive
from securecustomer.exceptions import ConfigurationError, KeyUnwrapError, UnpicklableError
from securecustomer.keys._fs import atomic_write, leftovers, locked, scrub, temp_path
from securecustomer.keys._records import WrappedKey

__all__ = ["LocalKeyProvider"]

_FORMAT = "securecustomer.local-master-key"
_LABEL_WRAP = b"securecustomer/v1/local-wrap"
_LABEL_ID = b"securecustomer/v1/local-key-id"
_KEY_SIZE = 32
_NONCE = 12
DEFAULT_ENV = "SECURECUSTOMER_MASTER_KEY"


def _key_ref(key: bytes) -> str:
    return derive(key, _LABEL_ID, 4).hex()


def _aad(key_ref: str, context: dict[str, str]) -> bytes:
    return json.dumps([key_ref, context], sort_keys=True, separators=(",", ":")).encode()


class LocalKeyProvider:
    """A master key kept on this machine (a key file, an environment variable or memory).

    Suited to development, tests, single-host services and offline recovery keys; a
    key in Vault or a cloud KMS is safer for production because it never leaves the
    provider. The key file is written with mode 0600 and refused when group or others
    may access it.

    Example:
        ```python
        provider = LocalKeyProvider.create_key_file("master.key")   # once
        provider = LocalKeyProvider.from_file("master.key")         # at every start
        ```
    """

    name = "local"

    def __init__(self, keys: list[bytes], *, source: str = "memory") -> None:
        if not keys:
            raise ConfigurationError(f"{source}: no master key")
        for key in keys:
            if len(key) != _KEY_SIZE:
                raise ConfigurationError(f"{source}: a master key must be {_KEY_SIZE} bytes")
        self._source = source
        self._wrappers = {_key_ref(k): AESGCM(derive(k, _LABEL_WRAP, 32)) for k in keys}
        self._primary = _key_ref(keys[-1])

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def generate(cls) -> LocalKeyProvider:
        """A fresh random master key that lives only in memory (tests, throw-away demos)."""
        return cls([os.urandom(_KEY_SIZE)])

    @classmethod
    def from_env(cls, variable: str = DEFAULT_ENV) -> LocalKeyProvider:
        """Read a base64-encoded 32-byte master key from the environment variable *variable*."""
        text = os.environ.get(variable)
        if not text:
            raise ConfigurationError(f"environment variable {variable} is not set or empty")
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except binascii.Error:
            raise ConfigurationError(
                f"environment variable {variable} is not valid base64"
            ) from None
        return cls([key], source=f"environment variable {variable}")

    @classmethod
    def create_key_file(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        """Write a new key file with mode 0600 and return its provider.

        Refuses to overwrite an existing file: losing a master key loses the data.
        """
        path = Path(path)
        key = os.urandom(_KEY_SIZE)
        try:
            atomic_write(path, _document([_entry(key)]), exclusive=True)
        except FileExistsError:
            raise ConfigurationError(
                f"{path}: key file exists already; not overwriting it"
            ) from None
        return cls([key], source=str(path))

    @classmethod
    def add_key_to_file(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        """Append a new master key to a key file (master-key rotation, step 1).

        The old keys stay, so every root key still unwraps; the new key wraps root keys
        from now on. Follow with `Keyring.rotate_root` and, once no live root key is
        wrapped by an old key, `remove_key_from_file`.
        """
        path = Path(path)
        with locked(path.with_name(path.name + ".lock")):
            entries = _read_entries(path)
            entries.append(_entry(os.urandom(_KEY_SIZE)))
            _replace(path, _document(entries))
        return cls.from_file(path)

    @classmethod
    def remove_key_from_file(cls, path: str | os.PathLike[str], key_ref: str) -> LocalKeyProvider:
        """Remove the master key *key_ref* from a key file (master-key rotation, last step).

        Refuses to remove the last key. Root keys still wrapped by the removed key can no
        longer be unwrapped: check `Keyring.store.roots()` first.
        """
        path = Path(path)
        with locked(path.with_name(path.name + ".lock")):
            entries = _read_entries(path)
            kept = [e for e in entries if e["id"] != key_ref]
            if len(kept) == len(entries):
                raise ConfigurationError(f"{path}: no master key {key_ref!r} in the key file")
            if not kept:
                raise ConfigurationError(f"{path}: refusing to remove the last master key")
            _replace(path, _document(kept))
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        """Load the master key(s) of a key file; the newest key wraps new root keys."""
        path = Path(path)
        entries = _read_entries(path)
        return cls([base64.b64decode(e["key"]) for e in entries], source=str(path))

    # -- KeyProvider ----------------------------------------------------------------------

    @property
    def key_refs(self) -> list[str]:
        """Identifiers of the master keys this provider holds (not secret)."""
        return list(self._wrappers)

    def wrap(self, material: bytes, *, context: dict[str, str]) -> WrappedKey:
        nonce = os.urandom(_NONCE)
        sealed = self._wrappers[self._primary].encrypt(
            nonce, material, _aad(self._primary, context)
        )
        return WrappedKey(provider=self.name, key_ref=self._primary, ciphertext=nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> bytes:
        wrapper = self._wrappers.get(wrapped.key_ref)
        if wrapped.provider != self.name or wrapper is None:
            raise KeyUnwrapError(
                f"key was wrapped by master key {wrapped.provider}:{wrapped.key_ref}, which "
                f"{self._source} does not hold (wrong master key?)"
            )
        data = wrapped.ciphertext
        try:
            return wrapper.decrypt(data[:_NONCE], data[_NONCE:], _aad(wrapped.key_ref, context))
        except (InvalidTag, ValueError):
            raise KeyUnwrapError(
                f"a key wrapped by master key local:{wrapped.key_ref} did not authenticate: "
                "the key store was altered or belongs to another master key"
            ) from None

    def __repr__(self) -> str:
        return f"<LocalKeyProvider source={self._source!r} primary={self._primary}>"

    def __reduce__(self) -> NoReturn:
        raise UnpicklableError("LocalKeyProvider holds a master key and cannot be pickled")


def _read_entries(path: Path) -> list[dict[str, str]]:
    """Read and check a key file: its permissions, its format and every key in it."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: key file not found") from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read key file ({exc.strerror})") from None
    if os.name == "posix" and stat.S_IMODE(mode) & 0o077:
        raise ConfigurationError(
            f"{path}: key file mode is {stat.S_IMODE(mode):04o}; group and others must have "
            f"no access (run: chmod 600 {path})"
        )
    return _parse_key_file(raw, path)


def _replace(path: Path, data: bytes) -> None:
    """Replace the key file (the caller holds its lock), scrubbing what crashed writers left:
    a copy of a removed master key must not outlive its removal (see `_fs`)."""
    scrub(leftovers(path))
    atomic_write(path, data, temp=temp_path(path))


def _entry(key: bytes) -> dict[str, str]:
    return {
        "id": _key_ref(key),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "key": base64.b64encode(key).decode(),
    }


def _document(entries: list[dict[str, str]]) -> bytes:
    document = {"format": _FORMAT, "version": 1, "keys": entries}
    return (json.dumps(document, indent=2) + "\n").encode()


def _parse_key_file(raw: bytes, path: Path) -> list[dict[str, str]]:
    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(f"{path}: not a valid securecustomer key file: {why}")

    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise bad(f"it is not JSON{where}") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise bad(f'"format" must be "{_FORMAT}"')
    if document.get("version") != 1:
        raise bad('unsupported "version" (expected 1)')
    listed = document.get("keys")
    if not isinstance(listed, list) or not listed:
        raise bad('"keys" must be a non-empty list')
    entries: list[dict[str, str]] = []
    for index, entry in enumerate(listed):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise bad(f'keys[{index}] must be an object with a "key" string')
        try:
            key = base64.b64decode(entry["key"], validate=True)
        except binascii.Error:
            raise bad(f"keys[{index}].key is not valid base64") from None
        if len(key) != _KEY_SIZE:
            raise bad(f"keys[{index}].key must decode to {_KEY_SIZE} bytes")
        if entry.get("id") != _key_ref(key):
            raise bad(f"keys[{index}].id does not match its key (the file was altered)")
        entries.append(entry)
    return entries
