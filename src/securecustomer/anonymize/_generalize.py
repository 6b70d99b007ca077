"""Generalisation, date shifting and noise: make a value coarser instead of hiding it.

``None`` passes through every function unchanged (a missing value stays missing). A value of
the wrong type raises `AnonymizationError` naming the type, never the value; bad settings
raise `ConfigurationError`. `truncate_postcode` is the exception: it is a mask and, like the
masks, never raises on its value.
"""

from __future__ import annotations

import bisect
import datetime as dt
import decimal
import fractions
import hashlib
import hmac
import itertools
import math
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, Protocol

from securecustomer.anonymize._mask import REDACTED, redact
from securecustomer.anonymize._pseudonym import KeyBytes, check_key, domain_prefix, value_bytes
from securecustomer.exceptions import AnonymizationError, ConfigurationError

__all__ = [
    "Hierarchy",
    "age_band",
    "generalize_date",
    "generalize_number",
    "laplace_noise",
    "shift_date",
    "truncate_postcode",
]

_SHIFT_TAG: Final = b"securecustomer.date-shift.v1\x00"


_REAL: Final = (int, float, decimal.Decimal, fractions.Fraction)


def _number(value: Any, what: str = "value") -> Any:
    """``value`` if it is a finite real number (not a bool), else `AnonymizationError`."""
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise AnonymizationError(f"{what} must be a real number, not {type(value).__name__}")
    if isinstance(value, float | decimal.Decimal) and not math.isfinite(value):
        raise AnonymizationError(f"{what} must be finite")
    return value


def _floor(value: Any, what: str = "value") -> int:
    floor: int = math.floor(_number(value, what))
    return floor


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{name} must be an int of at least 1")
    return value


def generalize_number(
    value: Any, *, width: int | None = None, bins: Sequence[int] | None = None
) -> str | None:
    """The range a number falls in, as a label; give exactly one of ``width`` and ``bins``.

    - ``width=10``: ranges of ten integers from zero, ``37 -> "30-39"``, ``-3 -> "-10--1"``.
    - ``bins=[18, 65]``: increasing integer edges, ``17 -> "<18"``, ``30 -> "18-64"``,
      ``70 -> "65+"``.

    A non-integer value is placed by its floor (``39.5 -> "30-39"``). Leaks: the range.
    """
    if (width is None) == (bins is None):
        raise ConfigurationError("give exactly one of width and bins")
    if value is None:
        return None
    number = _floor(value)
    if width is not None:
        width = _positive_int("width", width)
        low = number // width * width
        return f"{low}-{low + width - 1}"
    edges = _check_bins(bins)
    index = bisect.bisect_right(edges, number)
    if index == 0:
        return f"<{edges[0]}"
    if index == len(edges):
        return f"{edges[-1]}+"
    return f"{edges[index - 1]}-{edges[index] - 1}"


def _check_bins(bins: Any) -> list[int]:
    edges = list(bins) if isinstance(bins, Sequence) and not isinstance(bins, str) else None
    if (
        not edges
        or not all(isinstance(e, int) and not isinstance(e, bool) for e in edges)
        or any(a >= b for a, b in itertools.pairwise(edges))
    ):
        raise ConfigurationError("bins must be a non-empty sequence of increasing ints")
    return edges


def age_band(age: Any, width: int = 10, top: int = 90) -> str | None:
    """``37 -> "30-39"``, ``92 -> "90+"``: bands of ``width`` years from zero, capped at ``top``.

    The band below ``top`` is cut short if ``top`` is not a multiple of ``width``
    (``width=10, top=85``: ``"80-84"``, ``"85+"``). Leaks: the band. The default top of 90
    follows the HIPAA Safe Harbor rule that ages over 89 be grouped together.
    """
    width = _positive_int("width", width)
    top = _positive_int("top", top)
    if age is None:
        return None
    years = _floor(age, "age")
    if years < 0:
        raise AnonymizationError("age must not be negative")
    if years >= top:
        return f"{top}+"
    low = years // width * width
    return f"{low}-{min(low + width, top) - 1}"


def generalize_date(value: Any, to: Literal["month", "quarter", "year"] = "month") -> str | None:
    """A date's month (``"2024-03"``), quarter (``"2024-Q1"``) or year (``"2024"``).

    Takes a ``date`` or a ``datetime`` (its own wall-clock date, whatever its time zone).
    Leaks: the period.
    """
    if to not in ("month", "quarter", "year"):
        raise ConfigurationError("to must be 'month', 'quarter' or 'year'")
    if value is None:
        return None
    if not isinstance(value, dt.date):
        raise AnonymizationError(f"value must be a date or datetime, not {type(value).__name__}")
    if to == "year":
        return f"{value.year:04d}"
    if to == "quarter":
        return f"{value.year:04d}-Q{(value.month - 1) // 3 + 1}"
    return f"{value.year:04d}-{value.month:02d}"


def truncate_postcode(value: Any, keep: int = 3, *, char: str | None = None) -> Any:
    """The first ``keep`` characters of a postcode: ``"SW1A 1AA" -> "SW1"``.

    With ``char="*"`` the rest is masked instead of dropped, spaces kept:
    ``"SW1A 1AA" -> "SW1* ***"`` (this leaks the length and the position of spaces).
    Leading and trailing whitespace is stripped first. A postcode of ``keep`` characters or
    fewer is redacted (keeping it would keep it whole); so is any non-string; ``None`` stays
    ``None``. Never raises on its value. (HIPAA Safe Harbor keeps three ZIP digits only where
    that prefix covers more than 20,000 people: check it for your data.)
    """
    keep = _positive_int("keep", keep)
    if char is not None and (not isinstance(char, str) or len(char) != 1):
        raise ConfigurationError("char must be None or a str of exactly one character")
    if not isinstance(value, str):
        return redact(value)
    stripped = value.strip()
    if len(stripped) <= keep:
        return REDACTED
    if char is None:
        return stripped[:keep]
    rest = "".join(ch if ch.isspace() else char for ch in stripped[keep:])
    return stripped[:keep] + rest


class Hierarchy:
    """A generalisation hierarchy given as data: each value and its ever coarser labels.

    ``Hierarchy({"Paris": ["Ile-de-France", "France"], "Lyon": ["Rhone", "France"]})`` has
    depth 2; ``generalize("Paris", 0) == "Paris"``, ``generalize("Paris", 1) ==
    "Ile-de-France"``, ``generalize("Paris", 2) == "France"``. Every row has the same
    length, and a label of one level always has the same parent (it is a tree), or the
    constructor raises `ConfigurationError`. An unknown value raises `AnonymizationError`.
    """

    __slots__ = ("_rows", "depth")

    def __init__(self, mapping: Mapping[str, Sequence[str]]) -> None:
        if not isinstance(mapping, Mapping) or not mapping:
            raise ConfigurationError("a hierarchy must be a non-empty mapping")
        rows: dict[str, tuple[str, ...]] = {}
        for key, labels in mapping.items():
            if isinstance(labels, str) or not isinstance(labels, Sequence):
                raise ConfigurationError("each hierarchy row must be a sequence of labels")
            rows[key] = tuple(labels)
        depths = {len(row) for row in rows.values()}
        if len(depths) != 1:
            raise ConfigurationError("every hierarchy row must have the same number of levels")
        parents: dict[tuple[int, str], str] = {}
        for key, row in rows.items():
            path = (key, *row)
            for level in range(len(row)):
                if parents.setdefault((level, path[level]), path[level + 1]) != path[level + 1]:
                    raise ConfigurationError(f"hierarchy level {level} gives one label two parents")
        self._rows = rows
        self.depth: int = depths.pop()

    def generalize(self, value: str, level: int) -> str:
        """``value`` at ``level`` (0 is the value itself, ``depth`` the coarsest label)."""
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= self.depth:
            raise ConfigurationError(f"level must be an int from 0 to {self.depth}")
        try:
            row = self._rows[value]
        except (KeyError, TypeError):
            raise AnonymizationError("the value is not in the hierarchy") from None
        return value if level == 0 else row[level - 1]

    def __repr__(self) -> str:
        return f"Hierarchy(<{len(self._rows)} values>, depth={self.depth})"


def _shift_days(key: bytes, subject: Any, max_days: int) -> int:
    message = domain_prefix(_SHIFT_TAG, "date-shift") + value_bytes(subject, "subject")
    digest = hmac.digest(key, message, hashlib.sha256)
    draw = int.from_bytes(digest[:24], "big") % (2 * max_days)  # bias below 2**-128
    return draw - max_days if draw < max_days else draw - max_days + 1


def shift_date(value: Any, key: KeyBytes, *, subject: Any, max_days: int = 30) -> Any:
    """``value`` moved by a keyed number of days, the same for every date of one subject.

    The offset is taken from ``HMAC-SHA256(key, tag || subject)`` and lies in
    ``[-max_days, -1]`` or ``[1, max_days]``: never zero unless ``max_days == 0``. A
    ``datetime`` keeps its time of day and time zone. ``subject`` is a ``str``, ``bytes`` or
    ``int`` (encoded as for `pseudonymize`).

    Leaks: every interval between two dates of one subject (that is the point: durations
    survive), the weekday only if ``max_days`` is a multiple of 7 -- it is not by default --
    and the true date to within ``max_days``. Anyone with the key can undo the shift.
    """
    checked = check_key(key)
    if not isinstance(max_days, int) or isinstance(max_days, bool) or max_days < 0:
        raise ConfigurationError("max_days must be an int of at least 0")
    if value is None:
        return None
    if not isinstance(value, dt.date):
        raise AnonymizationError(f"value must be a date or datetime, not {type(value).__name__}")
    if max_days == 0:
        value_bytes(subject, "subject")
        return value
    days = _shift_days(checked, subject, max_days)
    try:
        return value + dt.timedelta(days=days)
    except OverflowError:
        raise AnonymizationError("the shifted date is out of range") from None


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise ConfigurationError(f"{name} must be a positive finite number")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ConfigurationError(f"{name} must be a positive finite number")
    return number


class Random(Protocol):
    """What `laplace_noise` needs of its random source (`random.Random` has it)."""

    def expovariate(self, lambd: float, /) -> float: ...


def laplace_noise(
    value: Any, *, sensitivity: float, epsilon: float, rng: Random | None = None
) -> float:
    """``value`` plus noise drawn from Laplace(0, ``sensitivity / epsilon``).

    The noise is the difference of two exponential draws from ``rng``, by default a
    `secrets.SystemRandom` (the OS's CSPRNG).

    Read before use: this is a *plain* Laplace mechanism in floating point. It is
    vulnerable to Mironov's floating-point attack (2012), in which the set of doubles a noisy
    result can take reveals the input, so it does **not** give epsilon-differential privacy
    as implemented; and there is no privacy-budget accounting -- every call spends
    ``epsilon`` again and nothing stops repeated queries from averaging the noise away. Use
    it to blur values for testing or low-stakes release. For real differential privacy use
    OpenDP (``opendp``), which samples noise exactly and tracks the budget.
    """
    scale = _positive("sensitivity", sensitivity) / _positive("epsilon", epsilon)
    number = float(_number(value))
    source: Random = secrets.SystemRandom() if rng is None else rng
    return number + scale * (source.expovariate(1.0) - source.expovariate(1.0))
