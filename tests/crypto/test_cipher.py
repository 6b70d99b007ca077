"""FieldCipher: round trips, context binding, tamper detection, batches, blind indexes."""

from __future__ import annotations

import datetime as dt
import pickle
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import contexts, values
from test_encoding import same

from securecustomer import Context, Keyring
from securecustomer.crypto import FieldCipher
from securecustomer.exceptions import (
    ConfigurationError,
    ContextError,
    DecryptionError,
    KeyDestroyedError,
    UnknownKeyError,
    UnsupportedValueError,
    UsageError,
)

CTX = Context("customers", "email", row=7)


@pytest.fixture
def cipher(keyring: Keyring) -> FieldCipher:
    return keyring.cipher("customers.email")


@pytest.fixture
def siv(keyring: Keyring) -> FieldCipher:
    return keyring.cipher("customers.email", deterministic=True)


class TestRoundTrip:
    """What goes in comes out, with its type, in both modes."""

    @settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=values, context=contexts, deterministic=st.booleans())
    def test_property(
        self, keyring: Keyring, value: Any, context: Context, deterministic: bool
    ) -> None:
        cipher = keyring.cipher("scope", deterministic=deterministic)
        token = cipher.encrypt(value, context=context)
        assert same(value, cipher.decrypt(token, context=context))  # the keyring is reusable

    def test_randomized_tokens_differ(self, cipher: FieldCipher) -> None:
        assert cipher.encrypt("x", context=CTX) != cipher.encrypt("x", context=CTX)

    def test_deterministic_tokens_repeat(self, siv: FieldCipher) -> None:
        assert siv.encrypt("x", context=CTX) == siv.encrypt("x", context=CTX)
        assert siv.encrypt("x", context=CTX) != siv.encrypt("y", context=CTX)

    def test_either_cipher_reads_both_modes(self, cipher: FieldCipher, siv: FieldCipher) -> None:
        """The token says its algorithm, so a column can switch modes without a migration."""
        assert "a" == siv.decrypt(cipher.encrypt("a", context=CTX), context=CTX)
        assert "b" == cipher.decrypt(siv.encrypt("b", context=CTX), context=CTX)

    def test_overhead_is_34_bytes(self, cipher: FieldCipher) -> None:
        value = "alice@example.com123"
        assert 34 == len(cipher.encrypt(value, context=CTX)) - len(value.encode())

    def test_header(self, cipher: FieldCipher, siv: FieldCipher) -> None:
        token = cipher.encrypt("x", context=CTX)
        assert (0x01, 0x11) == (token[0], token[1])
        assert (0x01, 0x32) == tuple(siv.encrypt(True, context=CTX)[:2])

    def test_accepts_bytearray_and_memoryview(self, cipher: FieldCipher) -> None:
        token = cipher.encrypt("x", context=CTX)
        assert "x" == cipher.decrypt(bytearray(token), context=CTX)
        assert "x" == cipher.decrypt(memoryview(token), context=CTX)


class TestContextBinding:
    """A token moved to another table, column, row or scope does not decrypt."""

    @pytest.mark.parametrize(
        "other",
        [
            Context("customers", "phone", row=7),
            Context("orders", "email", row=7),
            Context("customers", "email", row=8),
            Context("customers", "email"),
            Context("customers", "email", row="7 "),
        ],
    )
    @pytest.mark.parametrize("deterministic", [False, True])
    def test_moved(self, keyring: Keyring, other: Context, deterministic: bool) -> None:
        cipher = keyring.cipher("customers.email", deterministic=deterministic)
        token = cipher.encrypt("ada@example.com", context=CTX)
        with pytest.raises(DecryptionError) as info:
            cipher.decrypt(token, context=other)
        assert type(info.value) is DecryptionError

    def test_other_scope(self, keyring: Keyring, cipher: FieldCipher) -> None:
        token = cipher.encrypt("x", context=CTX)
        other = keyring.cipher("customers.phone")
        with pytest.raises(DecryptionError) as info:
            other.decrypt(token, context=CTX)
        assert type(info.value) is DecryptionError

    def test_row_int_and_str_are_the_same_identity(self, cipher: FieldCipher) -> None:
        token = cipher.encrypt("x", context=Context("t", "c", row=7))
        assert "x" == cipher.decrypt(token, context=Context("t", "c", row="7"))

    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"table": "", "column": "c"}, "table must not be empty"),
            ({"table": "t", "column": ""}, "column must not be empty"),
            ({"table": "t", "column": "c", "row": ""}, "row must not be empty"),
            ({"table": "t", "column": "c", "row": 1.5}, "row must be"),
            ({"table": 1, "column": "c"}, "table must be a str"),
            ({"table": "t", "column": "x" * 70000}, "longer than"),
        ],
    )
    def test_bad_context(self, kwargs: dict[str, Any], fragment: str) -> None:
        with pytest.raises(ContextError, match=fragment):
            Context(**kwargs)

    def test_context_of_wrong_type(self, cipher: FieldCipher) -> None:
        with pytest.raises(ContextError, match=r"must be a securecustomer\.crypto\.Context"):
            cipher.encrypt("x", context=("customers", "email"))  # type: ignore[arg-type]
        token = cipher.encrypt("x", context=CTX)
        with pytest.raises(ContextError):
            cipher.decrypt(token, context="customers.email")  # type: ignore[arg-type]


class TestTampering:
    """Any change to a token gives one opaque DecryptionError, never wrong plaintext."""

    @pytest.mark.parametrize("deterministic", [False, True])
    def test_every_bit_flip(self, keyring: Keyring, deterministic: bool) -> None:
        cipher = keyring.cipher("customers.email", deterministic=deterministic)
        token = cipher.encrypt("ada@example.com", context=CTX)
        for index in range(len(token) * 8):
            bad = bytearray(token)
            bad[index // 8] ^= 1 << (index % 8)
            with pytest.raises(DecryptionError):
                cipher.decrypt(bytes(bad), context=CTX)

    @pytest.mark.parametrize("deterministic", [False, True])
    def test_truncation_and_extension(self, keyring: Keyring, deterministic: bool) -> None:
        cipher = keyring.cipher("customers.email", deterministic=deterministic)
        token = cipher.encrypt("ada@example.com", context=CTX)
        for cut in range(len(token)):
            with pytest.raises(DecryptionError):
                cipher.decrypt(token[:cut], context=CTX)
        with pytest.raises(DecryptionError):
            cipher.decrypt(token + b"\x00", context=CTX)

    def test_unknown_key_id(self, cipher: FieldCipher) -> None:
        token = cipher.encrypt("x", context=CTX)
        forged = token[:2] + bytes(4) + token[6:]
        with pytest.raises(UnknownKeyError) as info:
            cipher.decrypt(forged, context=CTX)
        assert 0 == info.value.key_id
        assert isinstance(info.value, DecryptionError)

    @pytest.mark.parametrize("token", [b"", "text", 42, None])
    def test_not_a_token(self, cipher: FieldCipher, token: Any) -> None:
        with pytest.raises(DecryptionError):
            cipher.decrypt(token, context=CTX)

    def test_message_is_opaque(self, cipher: FieldCipher) -> None:
        token = bytearray(cipher.encrypt("secret-value", context=CTX))
        token[-1] ^= 1
        with pytest.raises(DecryptionError) as info:
            cipher.decrypt(bytes(token), context=CTX)
        assert "the value could not be decrypted" == str(info.value)
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__


class TestBatches:
    """encrypt_many / decrypt_many agree with the single-value calls and are all-or-nothing."""

    def test_round_trip_shared_context(self, cipher: FieldCipher) -> None:
        items = ["a", b"b", 3, None is None]
        tokens = cipher.encrypt_many(items, context=CTX)
        assert items == cipher.decrypt_many(tokens, context=CTX)
        assert [cipher.decrypt(t, context=CTX) for t in tokens] == items

    def test_round_trip_per_value_context(self, cipher: FieldCipher) -> None:
        ctxs = [Context("customers", "email", row=i) for i in range(5)]
        tokens = cipher.encrypt_many((f"user{i}" for i in range(5)), context=ctxs)
        assert [f"user{i}" for i in range(5)] == cipher.decrypt_many(tokens, context=ctxs)
        with pytest.raises(DecryptionError):
            cipher.decrypt_many(tokens, context=list(reversed(ctxs)))

    def test_nonces_are_distinct(self, cipher: FieldCipher) -> None:
        tokens = cipher.encrypt_many(["same"] * 1000, context=CTX)
        assert 1000 == len({t[6:18] for t in tokens})

    def test_deterministic_batch(self, siv: FieldCipher) -> None:
        tokens = siv.encrypt_many(["a", "a"], context=CTX)
        assert tokens[0] == tokens[1]
        assert ["a", "a"] == siv.decrypt_many(tokens, context=CTX)

    def test_bad_value_returns_nothing(self, cipher: FieldCipher) -> None:
        with pytest.raises(UnsupportedValueError):
            cipher.encrypt_many(["a", None], context=CTX)  # type: ignore[list-item]

    def test_one_bad_token_fails_the_batch(self, cipher: FieldCipher) -> None:
        tokens = cipher.encrypt_many(["a", "b"], context=CTX)
        with pytest.raises(DecryptionError):
            cipher.decrypt_many([tokens[0], tokens[1][:-1]], context=CTX)

    def test_context_count_must_match(self, cipher: FieldCipher) -> None:
        with pytest.raises(ContextError, match="got 1 contexts for 2 values"):
            cipher.encrypt_many(["a", "b"], context=[CTX])
        with pytest.raises(ContextError):
            cipher.encrypt_many(["a"], context="customers")  # type: ignore[arg-type]

    def test_mixed_tokens_after_rotation(self, keyring: Keyring, cipher: FieldCipher) -> None:
        old = cipher.encrypt_many(["a"], context=CTX)
        keyring.rotate("customers.email")
        new = cipher.encrypt_many(["b"], context=CTX)
        assert old[0][2:6] != new[0][2:6]
        assert ["a", "b"] == cipher.decrypt_many(old + new, context=CTX)
        assert ["a", "b"] == cipher.decrypt_many([bytearray(old[0]), new[0]], context=CTX)


class TestTypedDecryption:
    """decrypt_as and decrypt_many_as return a value of the asked type, or raise."""

    @settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=values, deterministic=st.booleans())
    def test_round_trip(self, keyring: Keyring, value: Any, deterministic: bool) -> None:
        cipher = keyring.cipher("scope", deterministic=deterministic)
        token = cipher.encrypt(value, context=CTX)
        assert same(value, cipher.decrypt_as(token, type(value), context=CTX))
        [again] = cipher.decrypt_many_as([token], type(value), context=CTX)
        assert same(value, again)

    @pytest.mark.parametrize(
        ("value", "expected", "held"),
        [
            (7, str, "int"),
            (True, int, "bool"),  # the format keeps bool apart from int
            (dt.datetime(2024, 1, 2, tzinfo=dt.UTC), dt.date, "datetime.datetime"),
            ([1, 2], dict, "list"),
            (Decimal("1.5"), float, "decimal.Decimal"),
        ],
    )
    def test_other_type(self, cipher: FieldCipher, value: Any, expected: type, held: str) -> None:
        """An authentic token of another type is refused, naming types, never the value."""
        token = cipher.encrypt(value, context=CTX)
        with pytest.raises(DecryptionError) as info:
            cipher.decrypt_as(token, expected, context=CTX)
        assert f"the token's value is of type {held}, not " in str(info.value)
        assert repr(value) not in str(info.value)
        with pytest.raises(DecryptionError, match=f"of type {held}, not "):
            cipher.decrypt_many_as([token], expected, context=CTX)
        with pytest.raises(DecryptionError, match=f"of type {held}, not "):
            cipher.decrypt_as(bytearray(token), expected, context=CTX)  # the slow path too

    def test_secret_not_in_message(self, cipher: FieldCipher) -> None:
        token = cipher.encrypt("s3cr3t-value", context=CTX)
        with pytest.raises(DecryptionError) as info:
            cipher.decrypt_as(token, bytes, context=CTX)
        assert "the token's value is of type str, not bytes" == str(info.value)

    @pytest.mark.parametrize("expected", [object, dict[str, Any], "str", None, Context])
    def test_not_a_value_type(self, cipher: FieldCipher, expected: Any) -> None:
        token = cipher.encrypt("x", context=CTX)
        with pytest.raises(UsageError, match="expected must be one of the value types"):
            cipher.decrypt_as(token, expected, context=CTX)
        with pytest.raises(UsageError, match="expected must be one of the value types"):
            cipher.decrypt_many_as([token], expected, context=CTX)

    def test_bad_tokens_raise_as_decrypt_does(self, keyring: Keyring, cipher: FieldCipher) -> None:
        token = cipher.encrypt("x", context=CTX)
        with pytest.raises(DecryptionError) as info:
            cipher.decrypt_as(token[:-1] + bytes([token[-1] ^ 1]), str, context=CTX)
        assert "the value could not be decrypted" == str(info.value)
        keyring.destroy("customers.email")
        with pytest.raises(KeyDestroyedError):
            cipher.decrypt_as(token, str, context=CTX)

    def test_batch_is_all_or_nothing(self, cipher: FieldCipher) -> None:
        tokens = cipher.encrypt_many(["a", "b", 3, "d"], context=CTX)
        with pytest.raises(DecryptionError, match="of type int, not str"):
            cipher.decrypt_many_as(tokens, str, context=CTX)
        assert ["a", "b"] == cipher.decrypt_many_as(tokens[:2], str, context=CTX)
        contexts = [Context("customers", "email", row=i) for i in range(2)]
        per_row = cipher.encrypt_many(["a", "b"], context=contexts)
        assert ["a", "b"] == cipher.decrypt_many_as(per_row, str, context=contexts)


class TestBlindIndex:
    """Equality tokens: stable, column-separated, row-independent, rotation-aware."""

    def test_stable_and_row_independent(self, cipher: FieldCipher) -> None:
        a = cipher.blind_index("ada@example.com", context=Context("customers", "email", row=1))
        b = cipher.blind_index("ada@example.com", context=Context("customers", "email", row=2))
        assert a == b
        assert 32 == len(a)

    def test_separates_columns_types_and_values(self, cipher: FieldCipher) -> None:
        base = cipher.blind_index("1", context=CTX)
        assert base != cipher.blind_index("2", context=CTX)
        assert base != cipher.blind_index(1, context=CTX)
        assert base != cipher.blind_index("1", context=Context("customers", "phone"))

    def test_truncation(self, cipher: FieldCipher) -> None:
        full = cipher.blind_index("x", context=CTX)
        assert full[:8] == cipher.blind_index("x", context=CTX, size=8)
        for size in (0, 33, "8"):
            with pytest.raises(ConfigurationError, match="1 to 32"):
                cipher.blind_index("x", context=CTX, size=size)  # type: ignore[arg-type]

    def test_rotation_keeps_old_tokens_matchable(
        self, keyring: Keyring, cipher: FieldCipher
    ) -> None:
        before = cipher.blind_index("x", context=CTX)
        keyring.rotate("customers.email")
        after = cipher.blind_index("x", context=CTX)
        assert before != after
        assert [after, before] == cipher.blind_indexes("x", context=CTX)


class TestSecrets:
    """Cipher objects never show or serialise key material."""

    def test_repr(self, cipher: FieldCipher) -> None:
        assert "<FieldCipher scope='customers.email' randomized>" == repr(cipher)

    def test_not_picklable(self, cipher: FieldCipher) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(cipher)
        key = cipher._keyset().primary
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(key)
        assert "material" not in repr(key)


class TestDestroyed:
    """After destruction the cipher raises KeyDestroyedError, in single and batch calls."""

    def test_destroyed(self, keyring: Keyring, cipher: FieldCipher) -> None:
        token = cipher.encrypt("x", context=CTX)
        keyring.destroy("customers.email")
        with pytest.raises(KeyDestroyedError):
            cipher.decrypt(token, context=CTX)
        with pytest.raises(KeyDestroyedError):
            cipher.decrypt_many([token], context=CTX)


class TestKeyObjects:
    """Key objects compare by identity, never by (secret) content."""

    def test_identity(self) -> None:
        from securecustomer.crypto import DataKey, KeyState

        material = bytes(32)
        one = DataKey(key_id=1, scope="s", version=1, state=KeyState.ACTIVE, material=material)
        two = DataKey(key_id=1, scope="s", version=1, state=KeyState.ACTIVE, material=material)
        assert one != two
        assert one == one
        assert "DataKey id=0x00000001 scope='s' version=1 state=active" in repr(one)

    def test_bad_material(self) -> None:
        from securecustomer.crypto import DataKey, KeyState

        with pytest.raises(ValueError, match="32 bytes"):
            DataKey(key_id=1, scope="s", version=1, state=KeyState.ACTIVE, material=b"short")
        with pytest.raises(ValueError, match="32 bits"):
            DataKey(key_id=2**32, scope="s", version=1, state=KeyState.ACTIVE, material=None)


class TestEdges:
    """Empty batches, writable buffers, and Context subclasses."""

    def test_empty_batches(self, cipher: FieldCipher) -> None:
        assert [] == cipher.encrypt_many([], context=CTX)
        assert [] == cipher.decrypt_many([], context=CTX)
        assert [] == cipher.encrypt_many([], context=[])

    def test_writable_memoryview(self, cipher: FieldCipher) -> None:
        token = cipher.encrypt("x", context=CTX)
        assert "x" == cipher.decrypt(memoryview(bytearray(token)), context=CTX)
        assert ["x"] == cipher.decrypt_many([memoryview(bytearray(token))], context=CTX)

    def test_context_subclass_refused(self, cipher: FieldCipher) -> None:
        """Only the library's own Context decides what is bound into the token."""

        class Loose(Context):
            pass

        with pytest.raises(ContextError):
            cipher.encrypt("x", context=Loose("customers", "email"))
