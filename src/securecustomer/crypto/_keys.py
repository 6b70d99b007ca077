"""Data keys as in-memory objects: derived subkeys, precomputed ciphers, states."""

from __future__ import annotations

import enum
from functools import cached_property
from typing import Final, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from securecustomer.crypto._format import AES_256_GCM, AES_256_SIV, header, length_prefixed
from securecustomer.exceptions import ConfigurationError, KeyStateError, UnpicklableError

__all__ = ["KEY_SIZE", "DataKey", "KeyState", "derive"]

KEY_SIZE: Final = 32
_LABEL_GCM: Final = b"securecustomer/v1/aes-256-gcm"
_LABEL_SIV: Final = b"securecustomer/v1/aes-256-siv"
_LABEL_INDEX: Final = b"securecustomer/v1/blind-index"


class KeyState(enum.Enum):
    """Lifecycle of a key. ``DESTROYED`` is terminal: the material is erased."""

    ACTIVE = "active"
    DECRYPT_ONLY = "decrypt-only"
    DISABLED = "disabled"
    DESTROYED = "destroyed"


def derive(material: bytes, label: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) with no salt and *label* as info."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(material)


class DataKey:
    """One version of a scope's data key, ready to use.

    Holds the unwrapped key material; it has no secret in its repr, compares by
    identity and refuses to be pickled.
    """

    __slots__ = (
        "__dict__",
        "_material",
        "decryptions",
        "encryptions",
        "gcm",
        "gcm_headers",
        "key_id",
        "scope",
        "scope_part",
        "state",
        "version",
    )

    def __init__(
        self, *, key_id: int, scope: str, version: int, state: KeyState, material: bytes | None
    ) -> None:
        if not 0 <= key_id <= 0xFFFFFFFF:
            raise ConfigurationError("key id must fit in 32 bits")
        if material is not None and len(material) != KEY_SIZE:
            raise ConfigurationError(f"data key material must be {KEY_SIZE} bytes")
        self.key_id = key_id
        self.scope = scope
        self.version = version
        self.state = state
        self._material = material
        self.scope_part = length_prefixed(scope.encode("utf-8"))
        self.encryptions = 0
        self.decryptions = 0
        if material is None:
            self.gcm: AESGCM | None = None
            self.gcm_headers: tuple[bytes, ...] = ()
        else:
            self.gcm = AESGCM(derive(material, _LABEL_GCM, 32))
            self.gcm_headers = tuple(header(AES_256_GCM, code, key_id) for code in range(16))

    @cached_property
    def siv(self) -> AESSIV:
        return AESSIV(derive(self._require(), _LABEL_SIV, 64))

    @cached_property
    def siv_headers(self) -> tuple[bytes, ...]:
        return tuple(header(AES_256_SIV, code, self.key_id) for code in range(16))

    @cached_property
    def index_key(self) -> bytes:
        return derive(self._require(), _LABEL_INDEX, 32)

    def _require(self) -> bytes:
        if self._material is None:
            raise KeyStateError("this key has no material")
        return self._material

    def __repr__(self) -> str:
        return (
            f"<DataKey id={self.key_id:#010x} scope={self.scope!r} version={self.version} "
            f"state={self.state.value}>"
        )

    def __reduce__(self) -> NoReturn:
        raise UnpicklableError("key objects cannot be pickled")
