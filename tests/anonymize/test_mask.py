"""Tests for the masks of securecustomer.anonymize._mask."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securecustomer.anonymize._mask import (
    REDACTED,
    mask,
    mask_card,
    mask_email,
    mask_phone,
    redact,
)
from securecustomer.exceptions import ConfigurationError
from securecustomer.policy._masks import BUILTIN_MASKS

ODD_VALUES: list[Any] = [
    42,
    4242424242424242,
    3.5,
    b"4242 4242 4242 4242",
    ["a@b.c"],
    {"email": "a@b.c"},
    dt.date(2024, 1, 1),
    True,
    object(),
]
MASKS = [
    mask_email,
    mask_phone,
    mask_card,
    lambda v: mask_card(v, keep_issuer=True),
    mask,
    lambda v: mask(v, keep_start=2, keep_end=2),
    redact,
]

ascii_digits = st.characters(min_codepoint=ord("0"), max_codepoint=ord("9"))
separators = st.sampled_from(" -+().")
phone_like = st.text(alphabet=st.one_of(ascii_digits, separators), max_size=30)
#: Phone-like text, and any text (other scripts' digits take the general path).
any_phone = phone_like | st.text(alphabet=st.one_of(ascii_digits, st.characters()), max_size=30)


def _digits(value: str) -> list[str]:
    return [ch for ch in value if ch.isdigit()]


class TestExamples:
    """Each mask on the examples its docstring gives."""

    def test_email(self) -> None:
        assert "j***@example.com" == mask_email("jane.doe@example.com")

    def test_phone(self) -> None:
        assert "+** ** **** **18" == mask_phone("+44 20 7946 0018")
        assert "+** ** **** *018" == mask_phone("+44 20 7946 0018", keep=3)
        assert "+** ** **** ****" == mask_phone("+44 20 7946 0018", keep=0)

    def test_card(self) -> None:
        assert "**** **** **** 4242" == mask_card("4242 4242 4242 4242")
        assert "4000 05** **** 1234" == mask_card("4000 0566 5566 1234", keep_issuer=True)
        assert "************1234" == mask_card("4000056655661234")

    def test_other_scripts_digits(self) -> None:
        assert "***-**\u0667\u0668" == mask_phone("\u0661\u0662\u0663-\u0664\u0665\u0667\u0668")
        assert "+** (*) **12" == mask_phone("+44 (0) 9912")

    def test_card_keeps_issuer_only_for_long_numbers(self) -> None:
        assert "********1234" == mask_card("400005661234", keep_issuer=True)
        assert "400005***1234" == mask_card("4000056661234", keep_issuer=True)

    def test_mask(self) -> None:
        assert "****EFGH" == mask("ABCDEFGH", keep_end=4)
        assert "AB####GH" == mask("ABCDEFGH", keep_start=2, keep_end=2, char="#")
        assert "********" == mask("ABCDEFGH")

    def test_redact(self) -> None:
        assert REDACTED == redact("anything")
        assert REDACTED == redact(0)


class TestFailClosed:
    """Odd or too short values are redacted, None stays None, and nothing raises."""

    @pytest.mark.parametrize("value", ODD_VALUES)
    @pytest.mark.parametrize("function", MASKS)
    def test_odd_types_are_redacted(self, function: Any, value: Any) -> None:
        assert REDACTED == function(value)

    @pytest.mark.parametrize("function", MASKS)
    def test_none_stays_none(self, function: Any) -> None:
        assert function(None) is None

    @pytest.mark.parametrize(
        "value", ["", "jane", "@example.com", "jane@", "a@b@c", "no at sign.com"]
    )
    def test_bad_emails(self, value: str) -> None:
        assert REDACTED == mask_email(value)

    @pytest.mark.parametrize("value", ["", "12", "+4-2", "abc"])
    def test_phones_too_short_to_hide(self, value: str) -> None:
        assert REDACTED == mask_phone(value)

    @pytest.mark.parametrize("value", ["", "1234", "12 34", "card"])
    def test_cards_too_short_to_hide(self, value: str) -> None:
        assert REDACTED == mask_card(value)
        assert REDACTED == mask_card(value, keep_issuer=True)

    @pytest.mark.parametrize("value", ["", "abcd", "abc"])
    def test_mask_never_shows_whole_value(self, value: str) -> None:
        assert REDACTED == mask(value, keep_end=4)
        assert REDACTED == mask(value, keep_start=2, keep_end=2)

    @given(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.binary(),
            st.dates(),
            st.lists(st.text(), max_size=3),
            st.dictionaries(st.text(max_size=3), st.text(), max_size=3),
        )
    )
    def test_any_non_string_is_redacted_or_none(self, value: Any) -> None:
        for function in MASKS:
            assert function(value) in (None, REDACTED)
            assert (function(value) is None) == (value is None)


class TestBadSettings:
    """Bad settings raise ConfigurationError; they are not values."""

    @pytest.mark.parametrize("keep", [-1, 1.5, "2", True, None])
    def test_phone_keep(self, keep: Any) -> None:
        with pytest.raises(ConfigurationError):
            mask_phone("+44 20 7946 0018", keep=keep)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"keep_start": -1},
            {"keep_end": -1},
            {"keep_end": "4"},
            {"char": ""},
            {"char": "**"},
            {"char": 1},
        ],
    )
    def test_mask_settings(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError) as info:
            mask("secret value", **kwargs)
        assert "secret value" not in str(info.value)


class TestPromises:
    """Properties: a mask keeps exactly what its docstring promises, nothing else."""

    @given(any_phone, st.integers(0, 5))
    def test_phone_keeps_separators_length_and_last_digits(self, value: str, keep: int) -> None:
        masked = mask_phone(value, keep)
        digits = _digits(value)
        if len(digits) <= keep:
            assert REDACTED == masked
            return
        assert len(value) == len(masked)
        for original, shown in zip(value, masked, strict=True):
            assert shown in ("*", original) if original.isdigit() else shown == original
        assert _digits(masked) == (digits[len(digits) - keep :] if keep else [])
        assert masked.count("*") - value.count("*") == len(digits) - keep

    @given(any_phone, st.booleans())
    def test_card_keeps_last_four_and_maybe_six(self, value: str, keep_issuer: bool) -> None:
        masked = mask_card(value, keep_issuer=keep_issuer)
        digits = _digits(value)
        if len(digits) <= 4:
            assert REDACTED == masked
            return
        first = digits[:6] if keep_issuer and len(digits) >= 13 else []
        assert first + digits[-4:] == _digits(masked)
        assert len(value) == len(masked)
        for original, shown in zip(value, masked, strict=True):
            assert shown in ("*", original) if original.isdigit() else shown == original

    @given(st.text(), st.integers(0, 6), st.integers(0, 6), st.characters())
    def test_mask_keeps_ends_and_length(
        self, value: str, keep_start: int, keep_end: int, char: str
    ) -> None:
        masked = mask(value, keep_start=keep_start, keep_end=keep_end, char=char)
        if len(value) <= keep_start + keep_end:
            assert REDACTED == masked
            return
        hidden = len(value) - keep_start - keep_end
        assert value[:keep_start] + char * hidden + value[len(value) - keep_end :] == masked

    @given(st.text(min_size=1), st.text(min_size=1))
    def test_email_shows_first_character_and_domain(self, local: str, domain: str) -> None:
        value = f"{local}@{domain}"
        masked = mask_email(value)
        if "@" in local or "@" in domain:
            assert REDACTED == masked
        else:
            assert f"{local[0]}***@{domain}" == masked


class TestPolicyCompatibility:
    """The masks give what the policy engine's built-in masks of the same name give."""

    @given(st.one_of(st.none(), st.integers(), phone_like, st.text(), st.emails()))
    def test_same_as_policy_masks(self, value: Any) -> None:
        assert BUILTIN_MASKS["email"](value) == mask_email(value)
        assert BUILTIN_MASKS["phone"](value) == mask_phone(value)
        assert BUILTIN_MASKS["card"](value) == mask_card(value)
        assert BUILTIN_MASKS["last4"](value) == mask(value, keep_end=4)
        assert BUILTIN_MASKS["redact"](value) == redact(value)
