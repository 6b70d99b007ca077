"""Typed plaintext encoding: canonical, exact round-trips, strict refusal."""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from strategies import values

from securecustomer.crypto._encoding import DECODERS, decode_value, encode_value
from securecustomer.exceptions import UnsupportedValueError


def same(a: Any, b: Any) -> bool:
    """Equal, of the same type, and for datetimes with the same offset and zone."""
    if type(a) is not type(b) or a != b:
        return False
    if isinstance(a, dt.datetime):
        return a.utcoffset() == b.utcoffset() and str(a.tzinfo) == str(b.tzinfo)
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return True


class TestRoundTrip:
    """Every supported value decodes to an equal value of the same type."""

    @given(values)
    def test_property(self, value: Any) -> None:
        code, data = encode_value(value)
        assert same(value, decode_value(code, data))

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "ünïcødé ✓",
            b"",
            b"\x00\xff",
            0,
            -1,
            255,
            -(2**200),
            True,
            False,
            -0.0,
            math.inf,
            Decimal("1.10"),
            Decimal("-0"),
            dt.date(1, 1, 1),
            dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
            dt.datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            uuid.UUID(int=0),
            {"b": [1, 2.5, None, True], "a": "x"},
            [],
        ],
    )
    def test_edge_cases(self, value: Any) -> None:
        code, data = encode_value(value)
        assert same(value, decode_value(code, data))

    def test_decimal_keeps_exponent(self) -> None:
        """1.10 and 1.1 are equal numbers but different values for a bookkeeper."""
        assert encode_value(Decimal("1.10")) != encode_value(Decimal("1.1"))

    def test_bool_is_not_int(self) -> None:
        assert encode_value(True)[0] != encode_value(1)[0]

    def test_json_is_canonical(self) -> None:
        """Key order does not change the encoding (deterministic encryption depends on it)."""
        assert encode_value({"a": 1, "b": 2}) == encode_value({"b": 2, "a": 1})


class TestRefusals:
    """Values that would not round-trip exactly are refused with a typed error."""

    class Colour(enum.StrEnum):
        RED = "red"

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [
            (None, "None cannot be encrypted"),
            (object(), "supported types"),
            (Colour.RED, "subclass of str"),
            (dt.datetime(2024, 1, 1), "naive datetime"),
            ("\ud800", "lone surrogates"),
            ({"x": math.nan}, "JSON value"),
            ({"x": object()}, "JSON value"),
            ((1, 2), "supported types"),
            (bytearray(b"x"), "supported types"),
        ],
    )
    def test_refused(self, value: object, fragment: str) -> None:
        with pytest.raises(UnsupportedValueError, match=fragment):
            encode_value(value)

    def test_error_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            encode_value(None)


class TestStrictDecoding:
    """Authenticated but non-canonical bytes are rejected, not silently accepted."""

    @pytest.mark.parametrize(
        ("code", "data"),
        [
            (2, b""),  # int: empty
            (2, b"\x00\x01"),  # int: redundant leading byte
            (3, b"\x02"),  # bool: not 0 or 1
            (4, b"\x00" * 7),  # float: wrong length
            (5, b"1.0e0"),  # Decimal: not str() form
            (5, b"abc"),
            (6, b"2024-1-1"),
            (7, b"2024-01-01T00:00:00"),  # datetime without offset
            (7, b"2024-01-01T00:00:00+00:00[No/Such_Zone]"),
            (8, b"\x00" * 15),
            (9, b"42"),  # JSON scalar
            (9, b"[NaN]"),
            (1, b"\xff"),  # str: invalid UTF-8
            (15, b""),  # unknown type code
        ],
    )
    def test_rejected(self, code: int, data: bytes) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 - the caller turns it into DecryptionError
            decode_value(code, data)

    def test_every_decoder_is_registered(self) -> None:
        assert sorted(DECODERS) == list(range(10))


class TestClockChanges:
    """Local times in a DST gap are refused; ambiguous ones keep their fold."""

    def test_gap_refused(self) -> None:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
        with pytest.raises(UnsupportedValueError, match="clock change gap"):
            encode_value(dt.datetime(2024, 3, 31, 2, 30, tzinfo=paris))

    def test_fold_kept(self) -> None:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
        for fold in (0, 1):
            value = dt.datetime(2024, 10, 27, 2, 30, fold=fold, tzinfo=paris)
            back = decode_value(*encode_value(value))
            assert (value.utcoffset(), fold) == (back.utcoffset(), back.fold)  # type: ignore[union-attr]

    def test_fold_on_fixed_offset_is_meaningless(self) -> None:
        value = dt.datetime(2000, 1, 1, fold=1, tzinfo=dt.UTC)
        assert value == decode_value(*encode_value(value))


class TestJsonRoundTrip:
    """JSON values that would come back different are refused."""

    @pytest.mark.parametrize("value", [{1: "a"}, [(1, 2)], {"a": (1,)}, {"x": "\ud800"}])
    def test_refused(self, value: Any) -> None:
        with pytest.raises(UnsupportedValueError, match="JSON value"):
            encode_value(value)

    def test_too_deep(self) -> None:
        value: list[Any] = []
        for _ in range(100_000):
            value = [value]
        with pytest.raises(UnsupportedValueError, match="JSON value"):
            encode_value(value)

    def test_minimal_int(self) -> None:
        """Two's complement with the fewest bytes: -128 is 0x80, 128 is 0x0080."""
        assert (b"\x80", b"\x00\x80", b"\xff\x7f", b"\x00") == tuple(
            encode_value(n)[1] for n in (-128, 128, -129, 0)
        )
