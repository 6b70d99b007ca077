"""Fuzz target: token decoding.

Random bytes and mutated valid tokens (bit flips, truncations, extensions, header field
changes) of every value type, randomized (AES-256-GCM) and deterministic (AES-256-SIV),
fed to `FieldCipher.decrypt`, `FieldCipher.decrypt_many` and `parse_header`. Only
`DecryptionError` and its documented subclasses (`UnknownKeyError`, `KeyDisabledError`,
`KeyDestroyedError`) may escape: never IndexError, ValueError, struct.error and the like.
A mutated token never decrypts; an unchanged one always does.

``SECURECUSTOMER_FUZZ_EXAMPLES`` sets the number of examples per target (``nox -s fuzz``
runs them longer); the exhaustive single mutations of `TestEveryMutation` run every time.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import values

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.crypto import Context, FieldCipher, TokenHeader, parse_header
from securecustomer.exceptions import DecryptionError, KeyDestroyedError, KeyDisabledError
from securecustomer.keys import KeyState, MemoryKeyStore

EXAMPLES = int(os.environ.get("SECURECUSTOMER_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CTX = Context("customers", "email", row=7)
SCOPE = "customers.email"

#: One value of every type the format carries (one type code each).
SAMPLES: list[Any] = [
    "ada@example.com",
    b"\x00\xff",
    -(2**70),
    True,
    1.5,
    Decimal("-12.340"),
    dt.date(2026, 1, 2),
    dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    uuid.UUID(int=42),
    {"a": [1, None]},
]


class Ciphers:
    """A keyring whose scope has a destroyed, a disabled and an active key, and its
    randomized and deterministic ciphers; tokens of every state to mutate."""

    def __init__(self) -> None:
        self.keyring = Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load()
        random, deterministic = self.cipher(False), self.cipher(True)
        self.old = [random.encrypt("gone", context=CTX), deterministic.encrypt(1, context=CTX)]
        destroyed = self.keyring.store.data_keys(SCOPE)[0].key_id
        self.keyring.rotate(SCOPE)
        self.off = [random.encrypt("off", context=CTX), deterministic.encrypt(2, context=CTX)]
        disabled = self.keyring.store.data_keys(SCOPE)[1].key_id
        self.keyring.rotate(SCOPE)
        self.keyring.destroy_key(destroyed)
        self.keyring.set_state(disabled, KeyState.DISABLED)
        self.key_ids = [r.key_id for r in self.keyring.store.data_keys(SCOPE)]

    def cipher(self, deterministic: bool) -> FieldCipher:
        return self.keyring.cipher(SCOPE, deterministic=deterministic)


CIPHERS = Ciphers()


def check_decrypt(cipher: FieldCipher, token: Any, valid: dict[bytes, Any]) -> None:
    """*token* decrypts to ``valid[token]`` if it is one of *valid* (tokens of usable keys),
    else raises DecryptionError."""
    try:
        got = cipher.decrypt(token, context=CTX)
    except DecryptionError:
        assert bytes(token) not in valid
        return
    assert bytes(token) in valid
    assert same(valid[bytes(token)], got)


def check_parse(token: Any) -> None:
    try:
        header = parse_header(token)
    except DecryptionError:
        return
    assert isinstance(header, TokenHeader)
    assert bytes(token)[2:6] == header.key_id.to_bytes(4, "big")


def same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float):
        return math.isclose(expected, actual) or expected == actual
    return bool(expected == actual)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[FieldCipher, dict[bytes, Any], bytes]:
    """(cipher, the valid tokens with their values, a mutated token), drawn at random.

    The valid tokens are the original (unless its key is no longer usable) and the
    tokens spliced in: a splice at the header keeps a whole other valid token.
    """
    deterministic = draw(st.booleans())
    cipher = CIPHERS.cipher(deterministic)
    value = draw(values | st.sampled_from(SAMPLES))
    original = draw(
        st.sampled_from([cipher.encrypt(value, context=CTX), *CIPHERS.old, *CIPHERS.off])
    )
    valid = {} if original in CIPHERS.old + CIPHERS.off else {original: value}
    token = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "extend", "header", "key", "splice"]))
        if kind == "flip" and token:
            bit = draw(st.integers(0, 8 * len(token) - 1))
            token[bit // 8] ^= 1 << (bit % 8)
        elif kind == "truncate":
            del token[draw(st.integers(0, len(token))) :]
        elif kind == "extend":
            token += draw(st.binary(min_size=1, max_size=40))
        elif kind == "header" and token:
            token[draw(st.integers(0, min(5, len(token) - 1)))] = draw(st.integers(0, 255))
        elif kind == "key" and len(token) >= 6:
            key_id = draw(st.sampled_from(CIPHERS.key_ids) | st.integers(0, 2**32 - 1))
            token[2:6] = key_id.to_bytes(4, "big")
        elif kind == "splice":
            spliced = draw(st.sampled_from(SAMPLES))
            other = cipher.encrypt(spliced, context=CTX)
            valid[other] = spliced
            cut = draw(st.integers(0, min(len(token), len(other))))
            token[cut:] = other[cut:]
    return cipher, valid, bytes(token)


as_types = st.sampled_from([bytes, bytearray, memoryview])


class TestRandomInput:
    """Random bytes, and objects that are not bytes at all."""

    @FUZZ
    @given(data=st.binary(max_size=120), deterministic=st.booleans(), kind=as_types)
    def test_random_bytes(self, data: bytes, deterministic: bool, kind: type) -> None:
        token = kind(data)
        check_decrypt(CIPHERS.cipher(deterministic), token, {})
        check_parse(token)
        with pytest.raises(DecryptionError):
            CIPHERS.cipher(deterministic).decrypt_many([token], context=CTX)

    @FUZZ
    @given(data=st.binary(max_size=40).map(lambda b: b"\x01" + b))
    def test_version_one_prefix(self, data: bytes) -> None:
        """Random bytes that start like a v1 token go past the first check."""
        for deterministic in (False, True):
            check_decrypt(CIPHERS.cipher(deterministic), data, {})
        check_parse(data)

    @pytest.mark.parametrize(
        "thing",
        [None, "token", 7, 1.5, [1, 2], {"a": 1}, memoryview(b"\x01\x02").cast("B", (1, 2))],
    )
    def test_not_bytes(self, thing: object) -> None:
        with pytest.raises(DecryptionError):
            CIPHERS.cipher(False).decrypt(thing, context=CTX)  # type: ignore[arg-type]
        with pytest.raises(DecryptionError):
            CIPHERS.cipher(True).decrypt_many([thing], context=CTX)  # type: ignore[list-item]
        with pytest.raises(DecryptionError):
            parse_header(thing)  # type: ignore[arg-type]


class TestMutatedTokens:
    """Valid tokens of every type, mutated: they fail as DecryptionError, and only so."""

    @FUZZ
    @given(case=mutated(), kind=as_types)
    def test_decrypt(self, case: tuple[FieldCipher, dict[bytes, Any], bytes], kind: type) -> None:
        cipher, valid, token = case
        check_decrypt(cipher, kind(token), valid)
        check_parse(kind(token))

    @FUZZ
    @given(cases=st.lists(mutated(), min_size=1, max_size=5), data=st.data())
    def test_decrypt_many(
        self, cases: list[tuple[FieldCipher, dict[bytes, Any], bytes]], data: st.DataObject
    ) -> None:
        cipher = cases[0][0]
        fresh = [cipher.encrypt(v, context=CTX) for v in SAMPLES[:3]]
        tokens = data.draw(st.permutations(fresh + [c[2] for c in cases]))
        try:
            out = cipher.decrypt_many(tokens, context=CTX)
        except DecryptionError:
            return
        valid = {t: v for c in cases for t, v in c[1].items()}
        valid.update(zip(fresh, SAMPLES[:3], strict=True))
        assert all(c[2] in valid for c in cases)
        assert all(same(valid[t], v) for t, v in zip(tokens, out, strict=True))


class TestEveryMutation:
    """Deterministic: every single truncation, every bit flip of the header and of the
    first and last bytes, and every value of every header byte, for every type code."""

    @pytest.mark.parametrize("deterministic", [False, True], ids=["gcm", "siv"])
    @pytest.mark.parametrize("value", SAMPLES, ids=[type(v).__name__ for v in SAMPLES])
    def test_single_mutations(self, deterministic: bool, value: Any) -> None:
        cipher = CIPHERS.cipher(deterministic)
        original = cipher.encrypt(value, context=CTX)
        assert same(value, cipher.decrypt(original, context=CTX))
        assert parse_header(original).key_id == int.from_bytes(original[2:6], "big")
        mutations = [original[:n] for n in range(len(original))]
        mutations += [original + bytes([b]) for b in (0, 1, 255)]
        for index in [*range(6), 6, len(original) // 2, len(original) - 1]:
            for bit in range(8):
                token = bytearray(original)
                token[index] ^= 1 << bit
                mutations.append(bytes(token))
        for index in range(6):
            for byte in range(256):
                token = bytearray(original)
                token[index] = byte
                if bytes(token) != original:
                    mutations.append(bytes(token))
        for token in mutations:
            check_decrypt(cipher, token, {original: value})
            check_parse(token)
        with pytest.raises(DecryptionError):
            cipher.decrypt_many([original, *mutations[:50]], context=CTX)

    def test_old_keys_raise_their_errors(self) -> None:
        for old, off in zip(CIPHERS.old, CIPHERS.off, strict=True):
            for deterministic in (False, True):
                with pytest.raises(KeyDestroyedError):
                    CIPHERS.cipher(deterministic).decrypt(old, context=CTX)
                with pytest.raises(KeyDisabledError):
                    CIPHERS.cipher(deterministic).decrypt(off, context=CTX)
