"""Normalisers for blind indexes: plain callables from ``str`` to ``str``."""

from __future__ import annotations

import unicodedata
import weakref
from collections.abc import Callable
from typing import Any, TypeAlias

from securecustomer.exceptions import ConfigurationError

__all__ = [
    "Normalizer",
    "casefold",
    "compose",
    "composed_steps",
    "digits_only",
    "name_of",
    "nfkc",
    "normalize_email",
    "normalize_phone",
    "strip",
]

#: A normaliser: any callable from ``str`` to ``str``, applied before hashing and comparing.
Normalizer: TypeAlias = Callable[[str], str]

#: The steps of each `compose` result, so that Alembic can write it as ``compose(...)``.
_composed: weakref.WeakKeyDictionary[Normalizer, tuple[Normalizer, ...]]
_composed = weakref.WeakKeyDictionary()


def casefold(value: str) -> str:
    """Fold case for caseless matching: ``"Straße"``, ``"STRASSE"`` and ``"strasse"`` match."""
    return value.casefold()


def nfkc(value: str) -> str:
    """Unicode NFKC: compatibility forms match (fullwidth and ASCII letters, ligatures)."""
    return unicodedata.normalize("NFKC", value)


def strip(value: str) -> str:
    """Remove leading and trailing whitespace (Unicode whitespace included)."""
    return value.strip()


def digits_only(value: str) -> str:
    """Keep the decimal digits of any script, as ASCII: ``"+44 (0)20-7"`` gives ``"440207"``.

    A value without digits normalises to ``""``, so all such values share one token and
    match each other (see `BlindIndex`).
    """
    return "".join(
        str(digit) for char in value if (digit := unicodedata.decimal(char, None)) is not None
    )


def normalize_email(value: str) -> str:
    """E-mail addresses: NFKC, case folding, NFKC again, outer whitespace removed.

    The whole address is folded (mail providers treat local parts case-insensitively in
    practice); sub-addresses (``+tag``) and dots are kept.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold()).strip()


def normalize_phone(value: str) -> str:
    """Phone numbers: the digits only (`digits_only`).

    ``"+44 20 7946 0000"`` and ``"0044 20 7946 0000"`` stay different: use a custom
    normaliser (for example one built on the ``phonenumbers`` package) to get E.164.
    """
    return digits_only(value)


def compose(*normalizers: Normalizer) -> Normalizer:
    """One normaliser that applies *normalizers* from left to right.

    Example:
        ```python
        name = compose(strip, nfkc, casefold)
        assert name("  Ada ") == "ada"
        ```
    """
    if not normalizers:
        raise ConfigurationError("compose() needs at least one normalizer")
    for step in normalizers:
        if not callable(step):
            raise ConfigurationError(f"compose() takes callables, got {type(step).__qualname__}")
    steps = tuple(normalizers)

    def composed(value: str) -> str:
        for step in steps:
            value = step(value)
        return value

    composed.__name__ = composed.__qualname__ = f"compose({', '.join(map(name_of, steps))})"
    _composed[composed] = steps
    return composed


def composed_steps(normalizer: Normalizer) -> tuple[Normalizer, ...] | None:
    """The normalizers that *normalizer* applies if `compose` made it, else None."""
    try:
        return _composed.get(normalizer)
    except TypeError:  # not weakly referenceable (nor hashable): not a compose() result
        return None


def name_of(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", None) or type(function).__qualname__
