"""FF3-1 format-preserving encryption: vectors, properties, the ff3 package, refusals.

The vectors are ``tests/vectors/ff3_1.json`` (provenance in ``tests/vectors/README.md``).
The differential tests run the `ff3` package (PyPI ``ff3``, github.com/mysto/python-fpe)
in its FF3-1 mode (56-bit tweaks) on the same random inputs.
"""

from __future__ import annotations

import copy
import json
import pickle
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securecustomer.anonymize._ff3 import DIGITS, FF3Cipher
from securecustomer.exceptions import AnonymizationError

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = json.loads((ROOT / "tests/vectors/ff3_1.json").read_text("utf-8"))
VECTORS: list[dict[str, Any]] = DOC["vectors"]
INVALID: list[dict[str, Any]] = DOC["invalid"]

KEY = bytes.fromhex("ef4359d8d580aa4f7f036d6f04fc6a94")
TWEAK = bytes.fromhex("d8e7920afa330a")
BASE62 = string.digits + string.ascii_lowercase + string.ascii_uppercase


def vector_params(vectors: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(v, id=v["id"]) for v in vectors]


def cipher_of(v: dict[str, Any]) -> FF3Cipher:
    return FF3Cipher(bytes.fromhex(v["key"]), v["tweak"], alphabet=v["alphabet"])


@st.composite
def cases(draw: st.DrawFn) -> tuple[bytes, bytes, str, str]:
    """A key of any AES size, a 56-bit tweak, an alphabet of radix 2..256, a text in limits."""
    radix = draw(st.integers(2, 256))
    chars = st.characters(exclude_categories=("Cs",))  # any code point a str can hold
    alphabet = "".join(draw(st.lists(chars, min_size=radix, max_size=radix, unique=True)))
    key = draw(st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
    tweak = draw(st.binary(min_size=7, max_size=7))
    limits = FF3Cipher(key, tweak, alphabet=alphabet)
    n = draw(st.integers(limits.min_length, limits.max_length))
    text = "".join(draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n)))
    return key, tweak, alphabet, text


class TestVectors:
    """Every FF3-1 vector of ``ff3_1.json`` encrypts and decrypts to its expected value."""

    @pytest.mark.parametrize("v", vector_params(VECTORS))
    def test_encrypt(self, v: dict[str, Any]) -> None:
        assert v["ciphertext"] == cipher_of(v).encrypt(v["plaintext"])

    @pytest.mark.parametrize("v", vector_params(VECTORS))
    def test_decrypt(self, v: dict[str, Any]) -> None:
        assert v["plaintext"] == cipher_of(v).decrypt(v["ciphertext"])

    @pytest.mark.parametrize("v", vector_params(VECTORS))
    def test_per_call_tweak(self, v: dict[str, Any]) -> None:
        cipher = FF3Cipher(bytes.fromhex(v["key"]), bytes(7), alphabet=v["alphabet"])
        tweak = bytes.fromhex(v["tweak"])
        assert v["ciphertext"] == cipher.encrypt(v["plaintext"], tweak=tweak)
        assert v["plaintext"] == cipher.decrypt(v["ciphertext"], tweak=v["tweak"].upper())

    def test_coverage_of_the_file(self) -> None:
        published = {
            (len(v["alphabet"]), len(v["key"]) * 4) for v in VECTORS if v["kind"] == "published"
        }
        expected = {(r, k) for r in (10, 26, 64) for k in (128, 192, 256)}
        assert expected == published
        kinds = [v["kind"] for v in VECTORS]
        assert (18, 2, 6) == (
            kinds.count("published"),
            kinds.count("implementation-test"),
            kinds.count("cross-implementation"),
        )
        assert all(v["source"] for v in VECTORS)
        assert len(VECTORS) == len({v["id"] for v in VECTORS})


class TestInvalidVectors:
    """The negative vectors of ``ff3_1.json`` are refused with a message saying why."""

    @pytest.mark.parametrize("v", vector_params(INVALID))
    def test_refused(self, v: dict[str, Any]) -> None:
        with pytest.raises(AnonymizationError) as info:
            cipher_of(v).encrypt(v["plaintext"])
        assert v["message"] in str(info.value)
        assert v["error"] in str(info.value)
        if v["plaintext"] is not None:
            assert v["plaintext"] not in str(info.value)

    @pytest.mark.parametrize("v", vector_params([v for v in INVALID if v["plaintext"]]))
    def test_refused_by_decrypt(self, v: dict[str, Any]) -> None:
        with pytest.raises(AnonymizationError, match=v["message"]):
            cipher_of(v).decrypt(v["plaintext"])


class TestRoundTrip:
    """Decryption inverts encryption for any alphabet, length and key size in the limits."""

    @settings(max_examples=300, deadline=None)
    @given(cases())
    def test_round_trip(self, case: tuple[bytes, bytes, str, str]) -> None:
        key, tweak, alphabet, text = case
        cipher = FF3Cipher(key, tweak, alphabet=alphabet)
        encrypted = cipher.encrypt(text)
        assert len(text) == len(encrypted)
        assert set(encrypted) <= set(alphabet)
        assert text == cipher.decrypt(encrypted)
        assert text == cipher.decrypt_many([encrypted])[0]
        assert [encrypted] == cipher.encrypt_many([text])

    @pytest.mark.parametrize("radix", [2, 3, 10, 16, 26, 36, 62, 64, 85, 100, 255, 256])
    def test_extreme_texts(self, radix: int) -> None:
        alphabet = "".join(chr(0x100 + i) for i in range(radix))
        cipher = FF3Cipher(KEY, TWEAK, alphabet=alphabet)
        shortest, longest = cipher.min_length, cipher.max_length
        for n in (shortest, shortest + 1, longest - 1, longest):
            for text in (alphabet[0] * n, alphabet[-1] * n, (alphabet * n)[:n]):
                assert text == cipher.decrypt(cipher.encrypt(text))


class TestTweak:
    """The tweak changes the ciphertext; its bytes and hex forms are the same tweak."""

    @settings(max_examples=100, deadline=None)
    @given(st.binary(min_size=7, max_size=7), st.binary(min_size=7, max_size=7))
    def test_other_tweak_other_ciphertext(self, one: bytes, two: bytes) -> None:
        text = "4111111111111111"
        cipher = FF3Cipher(KEY, one)
        if one == two:
            assert cipher.encrypt(text) == cipher.encrypt(text, tweak=two)
        else:
            assert cipher.encrypt(text) != cipher.encrypt(text, tweak=two)

    def test_forms_of_a_tweak(self) -> None:
        text = "890121234567890000"
        expected = FF3Cipher(KEY, TWEAK).encrypt(text)
        for form in (TWEAK.hex(), TWEAK.hex().upper(), bytearray(TWEAK), memoryview(TWEAK)):
            assert expected == FF3Cipher(KEY, form).encrypt(text)
            assert expected == FF3Cipher(KEY, bytes(7)).encrypt(text, tweak=form)

    def test_many_per_call_tweaks(self) -> None:
        # More tweaks than the cipher caches: each call still uses its own tweak.
        text = "890121234567890000"
        cipher = FF3Cipher(KEY, TWEAK)
        for n in range(300):
            tweak = n.to_bytes(7, "big")
            for form in (tweak, tweak.hex()):
                encrypted = cipher.encrypt(text, tweak=form)
                assert FF3Cipher(KEY, tweak).encrypt(text) == encrypted
                assert text == cipher.decrypt(encrypted, tweak=form)
        assert FF3Cipher(KEY, TWEAK).encrypt(text) == cipher.encrypt(text)

    def test_only_the_56_tweak_bits_differ(self) -> None:
        # FF3-1 uses every bit of the 56-bit tweak: flipping any one changes the output.
        text = "890121234567890000"
        expected = FF3Cipher(KEY, TWEAK).encrypt(text)
        for bit in range(56):
            flipped = (int.from_bytes(TWEAK, "big") ^ (1 << bit)).to_bytes(7, "big")
            assert expected != FF3Cipher(KEY, flipped).encrypt(text), bit


class TestDifferential:
    """The `ff3` package (FF3-1 mode, 56-bit tweaks) agrees on random inputs."""

    @settings(max_examples=300, deadline=None)
    @given(cases())
    def test_same_as_ff3_package(self, case: tuple[bytes, bytes, str, str]) -> None:
        ff3 = pytest.importorskip("ff3")
        key, tweak, alphabet, text = case
        reference = ff3.FF3Cipher.withCustomAlphabet(key.hex(), tweak.hex(), alphabet)
        if not reference.minLen <= len(text) <= reference.maxLen:  # its float limits
            return
        expected = reference.encrypt(text)
        cipher = FF3Cipher(key, tweak, alphabet=alphabet)
        assert expected == cipher.encrypt(text)
        assert text == cipher.decrypt(expected)

    def test_ff3_package_limits_match(self) -> None:
        ff3 = pytest.importorskip("ff3")
        for radix in range(2, 257):
            alphabet = "".join(chr(0x100 + i) for i in range(radix))
            reference = ff3.FF3Cipher.withCustomAlphabet(KEY.hex(), TWEAK.hex(), alphabet)
            cipher = FF3Cipher(KEY, TWEAK, alphabet=alphabet)
            assert reference.maxLen == cipher.max_length, radix
            assert reference.minLen in (cipher.min_length, cipher.min_length + 1), radix


class TestLimits:
    """The standard's domain limits, computed exactly for every radix 2..256."""

    @pytest.mark.parametrize(
        ("radix", "shortest", "longest"),
        [
            (2, 20, 192),
            (10, 6, 56),
            (16, 5, 48),
            (26, 5, 40),
            (62, 4, 32),
            (64, 4, 32),
            (256, 3, 24),
        ],
    )
    def test_known_limits(self, radix: int, shortest: int, longest: int) -> None:
        cipher = FF3Cipher(
            KEY,
            TWEAK,
            alphabet=BASE62[:radix]
            if radix <= 62
            else "".join(chr(0x100 + i) for i in range(radix)),
        )
        assert (radix, shortest, longest) == (cipher.radix, cipher.min_length, cipher.max_length)
        first = cipher.alphabet[0]
        for n in (shortest, longest):
            assert n == len(cipher.encrypt(first * n))
        for n in (shortest - 1, longest + 1):
            with pytest.raises(AnonymizationError, match=f"got {n}$"):
                cipher.encrypt(first * n)
            with pytest.raises(AnonymizationError, match=f"got {n}$"):
                cipher.decrypt(first * n)

    def test_every_radix(self) -> None:
        for radix in range(2, 257):
            alphabet = "".join(chr(0x100 + i) for i in range(radix))
            cipher = FF3Cipher(KEY, TWEAK, alphabet=alphabet)
            shortest, half = cipher.min_length, cipher.max_length // 2
            assert radix**shortest >= 1_000_000 > radix ** (shortest - 1), radix
            assert radix**half <= 2**96 < radix ** (half + 1), radix
            assert 0 == cipher.max_length % 2


class TestRefusals:
    """Bad keys, tweaks, alphabets and texts raise AnonymizationError naming the problem."""

    @pytest.mark.parametrize("size", [0, 8, 15, 17, 20, 31, 33, 64])
    def test_key_size(self, size: int) -> None:
        with pytest.raises(AnonymizationError, match=f"16, 24 or 32 bytes.*got {size} bytes"):
            FF3Cipher(bytes(size), TWEAK)

    @pytest.mark.parametrize("key", ["ef4359d8d580aa4f7f036d6f04fc6a94", None, 16])
    def test_key_type(self, key: Any) -> None:
        with pytest.raises(AnonymizationError, match="the key must be bytes"):
            FF3Cipher(key, TWEAK)

    @pytest.mark.parametrize("size", [0, 6, 8, 16])
    def test_tweak_size(self, size: int) -> None:
        with pytest.raises(AnonymizationError, match=f"exactly 7 bytes.*got {size} bytes"):
            FF3Cipher(KEY, bytes(size))
        with pytest.raises(AnonymizationError, match=f"exactly 7 bytes.*got {size} bytes"):
            FF3Cipher(KEY, TWEAK).encrypt("123456", tweak=bytes(size))

    @pytest.mark.parametrize(
        "tweak", ["", "d8e7920afa33", "d8e7920afa330a73", "d8e7920afa330g", " 8e7920afa330a"]
    )
    def test_tweak_text(self, tweak: str) -> None:
        with pytest.raises(AnonymizationError, match=f"14 hexadecimal digits \\(got {len(tweak)} "):
            FF3Cipher(KEY, tweak)
        with pytest.raises(AnonymizationError, match="14 hexadecimal digits"):
            FF3Cipher(KEY, TWEAK).decrypt("123456", tweak=tweak)

    def test_tweak_type(self) -> None:
        with pytest.raises(AnonymizationError, match="not int"):
            FF3Cipher(KEY, 7)  # type: ignore[arg-type]

    @pytest.mark.parametrize("alphabet", ["", "0", "".join(chr(0x100 + i) for i in range(257))])
    def test_alphabet_size(self, alphabet: str) -> None:
        with pytest.raises(AnonymizationError, match=f"2 to 256 characters, got {len(alphabet)}"):
            FF3Cipher(KEY, TWEAK, alphabet=alphabet)

    def test_alphabet_repeats(self) -> None:
        with pytest.raises(AnonymizationError, match="character at index 7 occurs earlier"):
            FF3Cipher(KEY, TWEAK, alphabet="abcdefgc")

    def test_alphabet_type(self) -> None:
        with pytest.raises(AnonymizationError, match="alphabet must be a str, not list"):
            FF3Cipher(KEY, TWEAK, alphabet=list(DIGITS))  # type: ignore[arg-type]

    @pytest.mark.parametrize("index", [0, 5, 8, 9, 15])
    def test_character_outside_alphabet(self, index: int) -> None:
        text = "4111111111111111"
        bad = text[:index] + "§" + text[index + 1 :]
        cipher = FF3Cipher(KEY, TWEAK)
        for operation in (cipher.encrypt, cipher.decrypt):
            with pytest.raises(AnonymizationError, match=f"character at index {index} ") as info:
                operation(bad)
            assert "§" not in str(info.value)
            assert "41111" not in str(info.value)

    def test_text_type(self) -> None:
        with pytest.raises(AnonymizationError, match="text must be a str, not bytes"):
            FF3Cipher(KEY, TWEAK).encrypt(b"4111111111111111")  # type: ignore[arg-type]

    def test_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="at index 0"):
            FF3Cipher(KEY, TWEAK).encrypt("x23456")


class TestSecretHandling:
    """A cipher hides its key: no key in repr, no pickling or copying, identity equality."""

    def test_repr(self) -> None:
        key = bytes(range(32))
        text = repr(FF3Cipher(key, TWEAK, alphabet=BASE62))
        assert "<FF3Cipher FF3-1 AES-256 radix=62>" == text
        assert key.hex() not in text.lower()
        assert repr(key)[2:-1] not in text
        assert TWEAK.hex() not in text.lower()

    def test_no_key_attribute(self) -> None:
        cipher = FF3Cipher(KEY, TWEAK)
        assert not hasattr(cipher, "__dict__")
        held = [getattr(cipher, name) for name in FF3Cipher.__slots__]
        assert KEY not in held
        assert KEY[::-1] not in held

    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_pickle_refused(self, protocol: int) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(FF3Cipher(KEY, TWEAK), protocol=protocol)

    def test_copy_refused(self) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            copy.copy(FF3Cipher(KEY, TWEAK))

    def test_identity_equality(self) -> None:
        one, two = FF3Cipher(KEY, TWEAK), FF3Cipher(KEY, TWEAK)
        assert one == one
        assert one != two
        assert 2 == len({one, two})
