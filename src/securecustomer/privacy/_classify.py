"""Data classification: a category, a sensitivity, purposes and a retention per column.

A classification lives in the column's SQLAlchemy ``info`` under the key ``"securecustomer"``
(`classify` builds that dict), so it travels with the model and needs no other registry.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Any, Final

import attrs

__all__ = [
    "CATEGORIES",
    "INFO_KEY",
    "Classification",
    "Sensitivity",
    "classification_of",
    "classify",
]

#: The key of a column's ``info`` dict that holds its `Classification`.
INFO_KEY: Final = "securecustomer"

#: The data categories a column can be classified under (the GDPR's special categories are
#: ``health``, ``biometric`` and ``special``; ``credentials`` are secrets of the subject).
CATEGORIES: Final = frozenset(
    {
        "behavioral",
        "biometric",
        "contact",
        "credentials",
        "demographic",
        "financial",
        "government_id",
        "health",
        "identifier",
        "location",
        "other",
        "special",
    }
)


class Sensitivity(enum.Enum):
    """How much harm a disclosure does, in increasing order (they compare with ``<``)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    def __lt__(self, other: object) -> bool:
        raise NotImplementedError


@attrs.frozen
class Classification:
    """What a column holds about a person, how sensitive it is, why and how long it is kept.

    ``retention`` None means "as long as the record exists"; ``purposes`` are the purposes
    of processing (the same names as the policy engine's ``purposes``).
    """

    category: str
    sensitivity: Sensitivity
    purposes: tuple[str, ...] = ()
    retention: dt.timedelta | None = None
    description: str | None = None


def classify(
    category: str,
    *,
    sensitivity: Sensitivity | str | None = None,
    purposes: Iterable[str] = (),
    retention: dt.timedelta | str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The ``info`` dict of a classified column.

    *sensitivity* defaults by category (restricted for health, biometric, special,
    credentials, government_id and financial; confidential otherwise). *retention* is a
    timedelta or an ISO 8601 duration in days/weeks/years/months (``"P30D"``, ``"P2Y"``).
    An unknown category or sensitivity raises `ConfigurationError` with the known names.

    Example:
        ```python
        email: Mapped[str] = mapped_column(
            EncryptedString(),
            info=classify("contact", purposes=["service", "marketing"], retention="P2Y"),
        )
        ```
    """
    raise NotImplementedError


def classification_of(column: Any) -> Classification | None:
    """The classification of a Column, mapped attribute or ``info`` dict, or None."""
    raise NotImplementedError
