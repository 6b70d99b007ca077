"""Built-in masks: readable on normal values, fail closed on odd ones, never raising."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securecustomer.policy._masks import BUILTIN_MASKS, REDACTED

ODD: list[Any] = [
    0,
    42,
    4242424242424242,
    -1,
    3.14,
    True,
    False,
    b"4242424242424242",
    "",
    " ",
    "a",
    "ab",
    "12",
    "1234",
    "@",
    "a@",
    "@b",
    "a@b@c",
    "no digits here",
    ["4242424242424242"],
    {"number": "4242424242424242"},
    object(),
]


def _name(value: Any) -> str:
    return "object()" if type(value) is object else repr(value)


class TestBuiltinMasks:
    """Each mask on the values it is meant for."""

    def test_names(self) -> None:
        assert ["card", "email", "initial", "last4", "phone", "redact"] == sorted(BUILTIN_MASKS)

    @pytest.mark.parametrize(
        ("mask", "value", "expected"),
        [
            ("redact", "078-05-1120", REDACTED),
            ("redact", 42, REDACTED),
            ("redact", {"a": 1}, REDACTED),
            ("email", "ada@example.com", "a***@example.com"),
            ("email", "j@x.io", "j***@x.io"),
            ("phone", "+1 555 010 0167", "+* *** *** **67"),
            ("phone", "0612345678", "********78"),
            ("phone", "123", "*23"),
            ("card", "4242 4242 4242 4242", "**** **** **** 4242"),
            ("card", "4242-4242-4242-4242", "****-****-****-4242"),
            ("card", "12345", "*2345"),
            ("last4", "078051120", "*****1120"),
            ("last4", "abcde", "*bcde"),
            ("initial", "Ada", "A."),
            ("initial", "  lovelace ", "l."),
        ],
    )
    def test_normal(self, mask: str, value: Any, expected: Any) -> None:
        assert expected == BUILTIN_MASKS[mask](value)

    @pytest.mark.parametrize("mask", sorted(BUILTIN_MASKS))
    def test_none_stays_none(self, mask: str) -> None:
        assert None is BUILTIN_MASKS[mask](None)


class TestOddInputs:
    """What a mask cannot mask meaningfully is redacted whole: never the original value."""

    @pytest.mark.parametrize("value", ODD, ids=_name)
    @pytest.mark.parametrize("mask", sorted(BUILTIN_MASKS))
    def test_never_the_original(self, mask: str, value: Any) -> None:
        masked = BUILTIN_MASKS[mask](value)
        assert value is not masked
        assert value != masked
        assert isinstance(masked, str)

    @pytest.mark.parametrize("value", [v for v in ODD if not isinstance(v, str)], ids=_name)
    @pytest.mark.parametrize("mask", sorted(BUILTIN_MASKS))
    def test_non_strings_are_redacted(self, mask: str, value: Any) -> None:
        assert REDACTED == BUILTIN_MASKS[mask](value)

    @pytest.mark.parametrize(
        ("mask", "value"),
        [
            ("email", ""),
            ("email", "@"),
            ("email", "a@"),
            ("email", "@b"),
            ("email", "a@b@c"),
            ("email", "plain"),
            ("phone", ""),
            ("phone", "12"),
            ("phone", "no digits here"),
            ("card", "1234"),
            ("card", "42-42"),
            ("last4", ""),
            ("last4", "1234"),
            ("last4", "abc"),
            ("initial", ""),
            ("initial", "   "),
        ],
    )
    def test_short_or_malformed_strings_are_redacted(self, mask: str, value: str) -> None:
        assert REDACTED == BUILTIN_MASKS[mask](value)


class TestProperties:
    """For any text: no exception, and no more of it shown than the mask promises."""

    @given(st.text())
    def test_never_raises(self, value: str) -> None:
        for mask in BUILTIN_MASKS.values():
            assert isinstance(mask(value), str)

    @given(st.text(), st.sampled_from([("card", 4), ("phone", 2)]))
    def test_digit_masks_keep_only_the_last_digits(self, value: str, spec: tuple[str, int]) -> None:
        name, keep = spec
        masked = BUILTIN_MASKS[name](value)
        digits = [ch for ch in value if ch.isdigit()]
        if len(digits) <= keep:
            assert REDACTED == masked
        else:
            assert digits[-keep:] == [ch for ch in masked if ch.isdigit()]
            assert len(value) == len(masked)

    @given(st.text())
    def test_last4_shows_four_characters(self, value: str) -> None:
        masked = BUILTIN_MASKS["last4"](value)
        if len(value) <= 4:
            assert REDACTED == masked
        else:
            assert "*" * (len(value) - 4) + value[-4:] == masked

    @given(st.text(min_size=1), st.text(min_size=1))
    def test_email_shows_first_letter_and_domain(self, local: str, domain: str) -> None:
        value = f"{local}@{domain}"
        masked = BUILTIN_MASKS["email"](value)
        if "@" in local or "@" in domain:
            assert REDACTED == masked
        else:
            assert f"{local[0]}***@{domain}" == masked

    @given(st.text())
    def test_redact(self, value: str) -> None:
        assert REDACTED == BUILTIN_MASKS["redact"](value)
