"""hazmat: explicit nonces reproduce FieldCipher tokens exactly."""

from __future__ import annotations

import pytest

from securecustomer import Context
from securecustomer.exceptions import DecryptionError
from securecustomer.hazmat import decrypt_with_key, encrypt_with_nonce, field_cipher

KEY = bytes(range(32))
CTX = Context("customers", "email", row=1)


class TestHazmat:
    """Raw-key helpers agree with the cipher and refuse misuse."""

    def test_fixed_nonce_is_reproducible(self) -> None:
        args = {"key_id": 1, "scope": "s", "value": "v", "context": CTX, "nonce": bytes(12)}
        assert encrypt_with_nonce(KEY, **args) == encrypt_with_nonce(KEY, **args)  # type: ignore[arg-type]

    def test_cipher_reads_hazmat_tokens(self) -> None:
        token = encrypt_with_nonce(KEY, key_id=1, scope="s", value=7, context=CTX, nonce=bytes(12))
        assert 7 == field_cipher(KEY, key_id=1, scope="s").decrypt(token, context=CTX)
        assert 7 == decrypt_with_key(KEY, key_id=1, scope="s", token=token, context=CTX)

    def test_siv(self) -> None:
        token = encrypt_with_nonce(
            KEY, key_id=1, scope="s", value="v", context=CTX, algorithm="aes-256-siv"
        )
        assert 0x12 == token[1]
        with pytest.raises(ValueError, match="no nonce"):
            encrypt_with_nonce(
                KEY,
                key_id=1,
                scope="s",
                value="v",
                context=CTX,
                nonce=bytes(12),
                algorithm="aes-256-siv",
            )

    def test_nonce_required(self) -> None:
        with pytest.raises(ValueError, match="12-byte nonce"):
            encrypt_with_nonce(KEY, key_id=1, scope="s", value="v", context=CTX)

    def test_wrong_key_id_is_opaque(self) -> None:
        token = encrypt_with_nonce(KEY, key_id=1, scope="s", value=7, context=CTX, nonce=bytes(12))
        with pytest.raises(DecryptionError) as info:
            decrypt_with_key(KEY, key_id=2, scope="s", token=token, context=CTX)
        assert type(info.value) is DecryptionError
