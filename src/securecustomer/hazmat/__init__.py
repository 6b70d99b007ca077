"""Dangerous building blocks: raw data keys and caller-chosen nonces.

These exist to generate and check the published test vectors of the value format and
to let implementations in other languages compare their output byte for byte. A
repeated nonce under one key destroys the confidentiality and integrity of AES-GCM:
never use `encrypt_with_nonce` for real data. Applications use `securecustomer.Keyring`.

Example:
    ```python
    token = encrypt_with_nonce(
        material, key_id=1, scope="customers.email", value="ada@example.com",
        context=Context("customers", "email"), nonce=bytes(12),
    )
    ```
"""

from __future__ import annotations

import math
from typing import Literal

from securecustomer.crypto import Context, DataKey, FieldCipher, KeySet, KeyState, Value
from securecustomer.crypto._encoding import encode_value
from securecustomer.crypto._format import NONCE_SIZE
from securecustomer.exceptions import (
    ConfigurationError,
    DecryptionError,
    KeyStateError,
    UnknownKeyError,
)

__all__ = ["StaticKeySource", "decrypt_with_key", "encrypt_with_nonce", "field_cipher"]


class StaticKeySource:
    """A fixed set of raw data keys for one scope: no store, no cache expiry."""

    def __init__(self, scope: str, keys: dict[int, bytes]) -> None:
        data_keys = {
            key_id: DataKey(
                key_id=key_id,
                scope=scope,
                version=index + 1,
                state=KeyState.ACTIVE,
                material=material,
            )
            for index, (key_id, material) in enumerate(keys.items())
        }
        primary = max(data_keys.values(), key=lambda k: k.version) if data_keys else None
        self._keyset = KeySet(scope, primary, data_keys, math.inf)

    def keyset(self, scope: str, *, refresh: bool = False, create: bool = True) -> KeySet:
        return self._keyset

    def missing_key(self, key_id: int, scope: str) -> Exception:
        return UnknownKeyError(f"no data key with id {key_id:#010x}", key_id=key_id)

    def __repr__(self) -> str:
        return f"<StaticKeySource scope={self._keyset.scope!r} keys={len(self._keyset.by_id)}>"


def field_cipher(
    material: bytes, *, key_id: int, scope: str, deterministic: bool = False
) -> FieldCipher:
    """A FieldCipher over one raw 32-byte data key, outside any keyring."""
    return FieldCipher(
        StaticKeySource(scope, {key_id: material}), scope, deterministic=deterministic
    )


def encrypt_with_nonce(
    material: bytes,
    *,
    key_id: int,
    scope: str,
    value: Value,
    context: Context,
    nonce: bytes | None = None,
    algorithm: Literal["aes-256-gcm", "aes-256-siv"] = "aes-256-gcm",
) -> bytes:
    """Encrypt like `FieldCipher.encrypt`, but with a caller-chosen nonce (test vectors only)."""
    cipher = field_cipher(
        material, key_id=key_id, scope=scope, deterministic=algorithm == "aes-256-siv"
    )
    if algorithm == "aes-256-siv":
        if nonce is not None:
            raise ConfigurationError("AES-256-SIV takes no nonce")
        return cipher.encrypt(value, context=context)
    if nonce is None or len(nonce) != NONCE_SIZE:
        raise ConfigurationError(f"AES-256-GCM needs a {NONCE_SIZE}-byte nonce")
    key = cipher._keyset().primary
    if key is None or key.gcm is None:  # pragma: no cover - a static key set is always active
        raise KeyStateError("no usable key")
    code, data = encode_value(value)
    head = key.gcm_headers[code]
    aad = cipher._aad(head, context)
    return head + nonce + key.gcm.encrypt(nonce, data, aad)


def decrypt_with_key(
    material: bytes, *, key_id: int, scope: str, token: bytes, context: Context
) -> Value:
    """Decrypt *token* with one raw data key; raises `DecryptionError` like FieldCipher."""
    cipher = field_cipher(material, key_id=key_id, scope=scope)
    try:
        return cipher.decrypt(token, context=context)
    except UnknownKeyError:
        raise DecryptionError from None
