"""Tests for generalisation, date shifting and noise (securecustomer.anonymize._generalize)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import random
import re
import statistics
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securecustomer.anonymize._generalize import (
    Hierarchy,
    age_band,
    generalize_date,
    generalize_number,
    laplace_noise,
    shift_date,
    truncate_postcode,
)
from securecustomer.anonymize._mask import REDACTED
from securecustomer.exceptions import AnonymizationError, ConfigurationError

KEY = bytes(range(32))
keys = st.binary(min_size=16, max_size=64)
subjects = st.one_of(st.text(), st.binary(), st.integers())
safe_dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1))
safe_datetimes = st.datetimes(
    min_value=dt.datetime(1900, 1, 1),
    max_value=dt.datetime(2100, 1, 1),
    timezones=st.sampled_from([None, dt.UTC]),
)
PLACES = {
    "Paris": ["Ile-de-France", "France", "Europe"],
    "Versailles": ["Ile-de-France", "France", "Europe"],
    "Lyon": ["Rhone", "France", "Europe"],
    "Berlin": ["Berlin", "Germany", "Europe"],
}


class TestGeneralizeNumber:
    """Numbers become range labels, by width or by bin edges."""

    @pytest.mark.parametrize(
        ("value", "label"),
        [(37, "30-39"), (30, "30-39"), (39.5, "30-39"), (0, "0-9"), (-3, "-10--1")],
    )
    def test_width(self, value: Any, label: str) -> None:
        assert label == generalize_number(value, width=10)

    @pytest.mark.parametrize(
        ("value", "label"),
        [(17, "<18"), (18, "18-64"), (64.9, "18-64"), (65, "65+"), (Decimal("70.5"), "65+")],
    )
    def test_bins(self, value: Any, label: str) -> None:
        assert label == generalize_number(value, bins=[18, 65])

    @given(st.integers(-(10**6), 10**6), st.integers(1, 1000))
    def test_width_label_contains_value(self, value: int, width: int) -> None:
        label = generalize_number(value, width=width)
        found = re.fullmatch(r"(-?\d+)-(-?\d+)", label or "")
        assert found is not None
        low, high = int(found[1]), int(found[2])
        assert low <= value <= high
        assert width - 1 == high - low
        assert 0 == low % width

    @given(st.floats(allow_nan=False, allow_infinity=False) | st.fractions())
    def test_float_uses_floor(self, value: Any) -> None:
        assert generalize_number(math.floor(value), width=5) == generalize_number(value, width=5)

    def test_none_passes(self) -> None:
        assert generalize_number(None, width=10) is None

    @pytest.mark.parametrize("value", ["37", True, float("nan"), float("inf"), Decimal("NaN")])
    def test_bad_values(self, value: Any) -> None:
        with pytest.raises(AnonymizationError) as info:
            generalize_number(value, width=10)
        assert "37" not in str(info.value)

    @pytest.mark.parametrize(
        "kwargs",
        [{}, {"width": 10, "bins": [1]}, {"width": 0}, {"width": 2.5}, {"bins": []},
         {"bins": [5, 5]}, {"bins": [5, 1]}, {"bins": "12"}, {"bins": [1.5]}],
    )  # fmt: skip
    def test_bad_settings(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError):
            generalize_number(37, **kwargs)


class TestAgeBand:
    """Ages become bands of a width, capped at a top band."""

    @pytest.mark.parametrize(
        ("age", "band"), [(0, "0-9"), (37, "30-39"), (89, "80-89"), (90, "90+"), (120, "90+")]
    )
    def test_default(self, age: int, band: str) -> None:
        assert band == age_band(age)

    def test_top_not_a_multiple(self) -> None:
        assert "80-84" == age_band(83, width=10, top=85)
        assert "85+" == age_band(85, width=10, top=85)
        assert "35-39" == age_band(37.9, width=5)

    @given(st.integers(0, 200), st.integers(1, 30), st.integers(1, 120))
    def test_band_contains_age(self, age: int, width: int, top: int) -> None:
        band = age_band(age, width, top)
        assert band is not None
        if age >= top:
            assert f"{top}+" == band
        else:
            low, high = (int(part) for part in band.split("-"))
            assert low <= age <= high < top

    @pytest.mark.parametrize("age", [-1, "40", None])
    def test_bad_or_missing(self, age: Any) -> None:
        if age is None:
            assert age_band(age) is None
        else:
            with pytest.raises(AnonymizationError):
                age_band(age)

    def test_bad_settings(self) -> None:
        with pytest.raises(ConfigurationError):
            age_band(30, width=0)
        with pytest.raises(ConfigurationError):
            age_band(30, top=0)


class TestGeneralizeDate:
    """Dates become month, quarter or year labels."""

    @pytest.mark.parametrize(
        ("to", "label"), [("month", "2024-08"), ("quarter", "2024-Q3"), ("year", "2024")]
    )
    def test_levels(self, to: Any, label: str) -> None:
        assert label == generalize_date(dt.date(2024, 8, 31), to)
        assert label == generalize_date(dt.datetime(2024, 8, 31, 23, 59, tzinfo=dt.UTC), to)

    @given(st.dates())
    def test_quarter_matches_month(self, value: dt.date) -> None:
        quarter = generalize_date(value, "quarter")
        assert f"{value.year:04d}-Q{(value.month + 2) // 3}" == quarter
        assert f"{value.year:04d}-{value.month:02d}" == generalize_date(value)
        assert f"{value.year:04d}" == generalize_date(value, "year")

    def test_errors(self) -> None:
        assert generalize_date(None) is None
        with pytest.raises(AnonymizationError):
            generalize_date("2024-08-31")
        with pytest.raises(ConfigurationError):
            generalize_date(dt.date(2024, 8, 31), "week")  # type: ignore[arg-type]


class TestTruncatePostcode:
    """Postcodes keep their first characters; the rest is dropped or masked."""

    def test_examples(self) -> None:
        assert "SW1" == truncate_postcode("SW1A 1AA")
        assert "SW1* ***" == truncate_postcode(" SW1A 1AA ", char="*")
        assert "021" == truncate_postcode("02139")
        assert "75" == truncate_postcode("75008", keep=2)

    @pytest.mark.parametrize("value", ["", "123", "  12  ", 2139, b"02139", ["02139"]])
    def test_fail_closed(self, value: Any) -> None:
        assert REDACTED == truncate_postcode(value)

    def test_none(self) -> None:
        assert truncate_postcode(None) is None

    @given(st.text(), st.integers(1, 6))
    def test_keeps_prefix_only(self, value: str, keep: int) -> None:
        out = truncate_postcode(value, keep)
        stripped = value.strip()
        if len(stripped) <= keep:
            assert REDACTED == out
        else:
            assert stripped[:keep] == out
            masked = truncate_postcode(value, keep, char="#")
            assert len(stripped) == len(masked)
            assert masked.startswith(stripped[:keep])
            assert all(c == "#" or c.isspace() for c in masked[keep:])

    def test_bad_settings(self) -> None:
        with pytest.raises(ConfigurationError):
            truncate_postcode("SW1A 1AA", keep=0)
        with pytest.raises(ConfigurationError):
            truncate_postcode("SW1A 1AA", char="**")


class TestHierarchy:
    """Hierarchies given as data generalise values level by level and must be trees."""

    def test_levels(self) -> None:
        h = Hierarchy(PLACES)
        assert 3 == h.depth
        assert ["Paris", "Ile-de-France", "France", "Europe"] == [
            h.generalize("Paris", level) for level in range(4)
        ]
        assert h.generalize("Paris", 2) == h.generalize("Lyon", 2)
        assert h.generalize("Paris", 1) != h.generalize("Lyon", 1)

    def test_unknown_value_not_echoed(self) -> None:
        with pytest.raises(AnonymizationError) as info:
            Hierarchy(PLACES).generalize("Toulouse", 1)
        assert "Toulouse" not in str(info.value)
        with pytest.raises(AnonymizationError):
            Hierarchy(PLACES).generalize(["Paris"], 1)  # type: ignore[arg-type]

    @pytest.mark.parametrize("level", [-1, 4, 1.0, True])
    def test_bad_level(self, level: Any) -> None:
        with pytest.raises(ConfigurationError):
            Hierarchy(PLACES).generalize("Paris", level)

    @pytest.mark.parametrize(
        "mapping",
        [
            {},
            {"a": "bc"},
            {"a": ["x", "y"], "b": ["x"]},
            {"a": ["x", "top"], "b": ["x", "other top"]},
            [("a", ["x"])],
        ],
    )
    def test_bad_hierarchies(self, mapping: Any) -> None:
        with pytest.raises(ConfigurationError):
            Hierarchy(mapping)

    def test_repr_has_no_values(self) -> None:
        assert "Hierarchy(<4 values>, depth=3)" == repr(Hierarchy(PLACES))


def expected_shift(key: bytes, subject: bytes, max_days: int) -> int:
    """The documented offset, computed independently with the hmac module."""
    domain = b"date-shift"
    message = b"securecustomer.date-shift.v1\x00" + len(domain).to_bytes(4, "big") + domain
    digest = hmac.new(key, message + subject, hashlib.sha256).digest()
    draw = int.from_bytes(digest[:24], "big") % (2 * max_days)
    return draw - max_days if draw < max_days else draw - max_days + 1


class TestShiftDate:
    """Dates move by a keyed offset: consistent per subject, bounded, never zero."""

    @given(keys, subjects, safe_dates, safe_dates, st.integers(1, 400))
    def test_consistent_per_subject_and_bounded(
        self, key: bytes, subject: Any, one: dt.date, two: dt.date, max_days: int
    ) -> None:
        a = shift_date(one, key, subject=subject, max_days=max_days)
        b = shift_date(two, key, subject=subject, max_days=max_days)
        assert a - one == b - two
        assert 1 <= abs((a - one).days) <= max_days

    @given(keys, subjects, safe_datetimes)
    def test_datetimes_keep_time_and_zone(self, key: bytes, subject: Any, value: Any) -> None:
        shifted = shift_date(value, key, subject=subject)
        assert value.timetz() == shifted.timetz()
        assert shift_date(value.date(), key, subject=subject) == shifted.date()

    @given(keys, st.text(), safe_dates)
    def test_known_answer(self, key: bytes, subject: str, value: dt.date) -> None:
        days = expected_shift(key, subject.encode("utf-8", "surrogatepass"), 30)
        assert value + dt.timedelta(days=days) == shift_date(value, key, subject=subject)

    def test_subjects_differ(self) -> None:
        day = dt.date(2024, 6, 15)
        shifts = {shift_date(day, KEY, subject=f"customer-{n}") for n in range(100)}
        assert len(shifts) > 30  # 100 draws from 60 offsets
        assert day not in shifts

    def test_offsets_cover_the_range(self) -> None:
        day = dt.date(2024, 6, 15)
        offsets = {(shift_date(day, KEY, subject=n, max_days=3) - day).days for n in range(300)}
        assert {-3, -2, -1, 1, 2, 3} == offsets

    def test_max_days_zero_and_none(self) -> None:
        day = dt.date(2024, 6, 15)
        assert day == shift_date(day, KEY, subject="s", max_days=0)
        assert shift_date(None, KEY, subject="s") is None

    def test_errors_never_echo(self) -> None:
        with pytest.raises(AnonymizationError) as info:
            shift_date("2024-06-15", KEY, subject="s")
        assert "2024" not in str(info.value)
        with pytest.raises(AnonymizationError) as info:
            shift_date(dt.date(2024, 6, 15), KEY, subject=1.5)
        assert "1.5" not in str(info.value)
        with pytest.raises(AnonymizationError):
            shift_date(dt.date.max, KEY, subject=next(s for s in range(99) if _up(s)))
        with pytest.raises(ConfigurationError):
            shift_date(dt.date(2024, 6, 15), b"short", subject="s")
        with pytest.raises(ConfigurationError):
            shift_date(dt.date(2024, 6, 15), KEY, subject="s", max_days=-1)


def _up(subject: int) -> bool:
    day = dt.date(2000, 1, 1)
    return bool(shift_date(day, KEY, subject=subject) > day)


class TestLaplaceNoise:
    """Laplace noise has the scale sensitivity / epsilon; bad settings are refused."""

    def test_distribution(self) -> None:
        rng = random.Random(7)
        draws = [
            laplace_noise(100, sensitivity=2, epsilon=0.5, rng=rng) - 100 for _ in range(20000)
        ]
        # Laplace(0, b=4): mean 0, mean absolute deviation b.
        assert abs(statistics.fmean(draws)) < 0.2
        assert 3.8 < statistics.fmean(abs(d) for d in draws) < 4.2

    def test_default_rng_is_random(self) -> None:
        draws = {laplace_noise(1, sensitivity=1, epsilon=1) for _ in range(10)}
        assert 10 == len(draws)

    def test_seeded_rng_repeats(self) -> None:
        one = laplace_noise(Fraction(1, 3), sensitivity=1, epsilon=1, rng=random.Random(1))
        two = laplace_noise(Fraction(1, 3), sensitivity=1, epsilon=1, rng=random.Random(1))
        assert one == two
        assert isinstance(one, float)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"sensitivity": 0, "epsilon": 1},
            {"sensitivity": 1, "epsilon": 0},
            {"sensitivity": -1, "epsilon": 1},
            {"sensitivity": 1, "epsilon": float("inf")},
            {"sensitivity": True, "epsilon": 1},
            {"sensitivity": "1", "epsilon": 1},
        ],
    )
    def test_bad_settings(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError):
            laplace_noise(1, **kwargs)

    @pytest.mark.parametrize("value", [None, "12", float("nan"), True])
    def test_bad_values(self, value: Any) -> None:
        with pytest.raises(AnonymizationError):
            laplace_noise(value, sensitivity=1, epsilon=1)
