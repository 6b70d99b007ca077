"""Tests for keyed pseudonyms (securecustomer.anonymize._pseudonym)."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import pickle
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securecustomer.anonymize._pseudonym import MIN_KEY_SIZE, Pseudonymizer, pseudonymize
from securecustomer.exceptions import AnonymizationError, ConfigurationError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SECRET = "jane.doe@example.com"

keys = st.binary(min_size=MIN_KEY_SIZE, max_size=100)
domains = st.text(min_size=1, max_size=20)
identifiers = st.one_of(st.text(), st.binary(), st.integers())
shaped = st.text(alphabet=st.sampled_from("0123456789 -+()./x"), min_size=1, max_size=40).filter(
    lambda v: any(ch.isdigit() for ch in v)
)


def reference(key: bytes, domain: str, value: bytes) -> bytes:
    """The documented construction, computed with the standard library's hmac module."""
    encoded = domain.encode()
    message = b"securecustomer.pseudonym.v1\x00" + len(encoded).to_bytes(4, "big") + encoded
    return hmac.new(key, message + value, hashlib.sha256).digest()


class TestKnownAnswers:
    """Pseudonyms equal HMAC-SHA256 over the documented message, computed independently."""

    def test_fixed_vector(self) -> None:
        # Computed once with hmac.new(bytes(range(32)), message, hashlib.sha256) in CPython
        # 3.11 (the documented message for domain "customer.email"); pins the format.
        expected = "4b2b3b39b7d5d9385414300b94dd964aaa8d486cdf47221454d8c3ebc3161471"
        assert expected == pseudonymize(SECRET, KEY, domain="customer.email")

    @given(keys, domains, st.text())
    def test_hex_is_hmac(self, key: bytes, domain: str, value: str) -> None:
        expected = reference(key, domain, value.encode("utf-8", "surrogatepass")).hex()
        assert expected == pseudonymize(value, key, domain=domain)
        assert expected == Pseudonymizer(key, domain=domain)(value)
        assert [expected] == Pseudonymizer(key, domain=domain).many([value])

    @given(keys, domains, st.binary(), st.integers(1, 52))
    def test_base32_is_hmac(self, key: bytes, domain: str, value: bytes, length: int) -> None:
        full = base64.b32encode(reference(key, domain, value)).decode().rstrip("=")
        assert 52 == len(full)
        assert full[:length] == pseudonymize(
            value, key, domain=domain, format="base32", length=length
        )

    @given(keys, domains, st.integers())
    def test_int_str_and_bytes_share_a_pseudonym(self, key: bytes, domain: str, n: int) -> None:
        expected = reference(key, domain, str(n).encode()).hex()
        assert expected == pseudonymize(n, key, domain=domain)
        assert expected == pseudonymize(str(n), key, domain=domain)
        assert expected == pseudonymize(str(n).encode(), key, domain=domain)

    def test_digits_from_digest(self) -> None:
        digest = reference(KEY, "customer.phone", b"+44 20 7946 0018")
        digits = f"{int.from_bytes(digest, 'big') % 10**12:012d}"
        expected = f"+{digits[:2]} {digits[2:4]} {digits[4:8]} {digits[8:]}"
        assert expected == pseudonymize(
            "+44 20 7946 0018", KEY, domain="customer.phone", format="digits"
        )

    def test_long_keys_are_hashed_first(self) -> None:
        key = bytes(range(200))
        assert reference(key, "d", b"v").hex() == Pseudonymizer(key, domain="d")("v")


class TestProperties:
    """Stable per key and domain, separated across domains and keys, shapes kept."""

    @given(keys, domains, identifiers)
    def test_stable(self, key: bytes, domain: str, value: Any) -> None:
        first = pseudonymize(value, key, domain=domain)
        assert first == pseudonymize(value, key, domain=domain)
        assert first == Pseudonymizer(key, domain=domain).many([value, value])[1]

    @given(keys, domains, domains, st.text())
    def test_domains_separate(self, key: bytes, one: str, two: str, value: str) -> None:
        if one != two:
            assert pseudonymize(value, key, domain=one) != pseudonymize(value, key, domain=two)

    def test_domain_value_boundary_is_unambiguous(self) -> None:
        assert pseudonymize("bc", KEY, domain="a") != pseudonymize("c", KEY, domain="ab")

    @given(domains, st.text())
    def test_keys_separate(self, domain: str, value: str) -> None:
        assert pseudonymize(value, KEY, domain=domain) != pseudonymize(
            value, OTHER_KEY, domain=domain
        )

    @given(keys, domains, shaped)
    def test_digits_keep_length_and_separators(self, key: bytes, domain: str, value: str) -> None:
        out = pseudonymize(value, key, domain=domain, format="digits")
        assert len(value) == len(out)
        for original, new in zip(value, out, strict=True):
            assert new.isdigit() if original.isdigit() else new == original

    @given(keys, st.text(alphabet="0123456789", min_size=60, max_size=120))
    def test_long_digit_strings(self, key: bytes, value: str) -> None:
        out = pseudonymize(value, key, domain="d", format="digits")
        assert len(value) == len(out)
        assert out.isdigit()

    def test_digits_vary(self) -> None:
        outs = {pseudonymize(f"{n:04d}", KEY, domain="d", format="digits") for n in range(200)}
        assert len(outs) > 150  # 200 draws from 10,000: a handful of collisions at most

    @given(keys, identifiers)
    def test_key_id_prefix(self, key: bytes, value: Any) -> None:
        plain = pseudonymize(value, key, domain="d", length=20)
        assert "k1:" + plain == pseudonymize(value, key, domain="d", length=20, key_id="k1")
        assert ":" not in plain

    @given(keys, st.lists(identifiers, max_size=20), st.sampled_from(["hex", "base32"]))
    def test_many_matches_call(self, key: bytes, values: list[Any], format: Any) -> None:
        p = Pseudonymizer(key, domain="d", format=format, key_id="v2")
        assert [p(v) for v in values] == p.many(values)
        assert [pseudonymize(v, key, domain="d", format=format, key_id="v2") for v in values] == (
            p.many(iter(values))
        )


class TestErrors:
    """Bad keys and settings raise ConfigurationError, bad values AnonymizationError,
    and no message repeats the value or the key."""

    @pytest.mark.parametrize(
        "key", [b"", b"x" * (MIN_KEY_SIZE - 1), "k" * 32, 12345678901234567890, None]
    )
    def test_bad_keys(self, key: Any) -> None:
        with pytest.raises(ConfigurationError) as info:
            Pseudonymizer(key, domain="d")
        assert str(key) not in str(info.value) or key in (b"", None)

    def test_short_key_not_echoed(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            pseudonymize(SECRET, b"short-secret-key", domain="d", format="hex", length=0)
        assert "short-secret" not in str(info.value)
        with pytest.raises(ConfigurationError) as info:
            pseudonymize(SECRET, b"tiny-secret", domain="d")
        assert "tiny-secret" not in str(info.value)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"domain": ""},
            {"domain": b"d"},
            {"domain": "d", "format": "b64"},
            {"domain": "d", "length": 0},
            {"domain": "d", "length": 65},
            {"domain": "d", "format": "base32", "length": 53},
            {"domain": "d", "length": True},
            {"domain": "d", "format": "digits", "length": 4},
            {"domain": "d", "key_id": ""},
            {"domain": "d", "key_id": "k:1"},
            {"domain": "d", "key_id": 1},
            {"domain": "d", "key_id": "k" * 33},
        ],
    )
    def test_bad_settings(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError):
            pseudonymize(SECRET, KEY, **kwargs)

    @pytest.mark.parametrize("value", [None, 1.5, True, ["a"], {"a": 1}, object()])
    def test_bad_value_types(self, value: Any) -> None:
        with pytest.raises(AnonymizationError) as info:
            pseudonymize(value, KEY, domain="d")
        assert type(value).__name__ in str(info.value)

    @pytest.mark.parametrize("value", ["jane.doe@example.com", "no digits here", ""])
    def test_digits_need_a_digit(self, value: str) -> None:
        with pytest.raises(AnonymizationError) as info:
            pseudonymize(value, KEY, domain="d", format="digits")
        assert value not in str(info.value) or value == ""

    def test_many_raises_on_bad_value(self) -> None:
        with pytest.raises(AnonymizationError):
            Pseudonymizer(KEY, domain="d").many(["a", 1.5])  # type: ignore[list-item]


class TestKeyHandling:
    """A Pseudonymizer hides its key: repr, pickling, copying and equality."""

    def test_repr_has_no_key(self) -> None:
        p = Pseudonymizer(KEY, domain="customer.email", key_id="k1")
        text = repr(p)
        assert "Pseudonymizer(domain='customer.email', format='hex', key_id='k1')" == text
        assert KEY.hex() not in text
        assert not re.search(r"\\x0[0-9]", text)

    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_refuses_pickling(self, protocol: int) -> None:
        with pytest.raises(TypeError):
            pickle.dumps(Pseudonymizer(KEY, domain="d"), protocol=protocol)

    def test_refuses_copying(self) -> None:
        p = Pseudonymizer(KEY, domain="d")
        with pytest.raises(TypeError):
            copy.copy(p)
        with pytest.raises(TypeError):
            copy.deepcopy(p)

    def test_compares_by_identity(self) -> None:
        p = Pseudonymizer(KEY, domain="d")
        assert p == p
        assert p != Pseudonymizer(KEY, domain="d")

    def test_accepts_bytearray_and_memoryview(self) -> None:
        expected = pseudonymize(SECRET, KEY, domain="d")
        assert expected == pseudonymize(SECRET, bytearray(KEY), domain="d")
        assert expected == pseudonymize(SECRET, memoryview(KEY), domain="d")
