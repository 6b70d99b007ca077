"""Data classification: a category, a sensitivity, purposes and a retention per column.

A classification lives in the column's SQLAlchemy ``info`` under the key ``"securecustomer"``
(`classify` builds that dict), so it travels with the model and needs no other registry.
A column declared without one is *unclassified*; it can be classified after the fact with
``Customer.__table__.c.phone.info.update(classify("contact"))``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import enum
import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
from sqlalchemy import JSON, Column, Integer, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import ColumnProperty, MappedColumn, QueryableAttribute

from securecustomer.anonymize import scan_columns
from securecustomer.exceptions import ConfigurationError

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

#: The GDPR's special categories of personal data (article 9): never public.
SPECIAL_CATEGORIES: Final = frozenset({"biometric", "health", "special"})

#: Categories whose default sensitivity is restricted (every other one: confidential).
_RESTRICTED_BY_DEFAULT: Final = frozenset(
    {"biometric", "credentials", "financial", "government_id", "health", "special"}
)

_DURATION: Final = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?")
_DAYS_PER: Final = (365, 30, 7, 1)  # year, month, week, day


class Sensitivity(enum.Enum):
    """How much harm a disclosure does, in increasing order (they compare with ``<``).

    Example:
        ```python
        assert Sensitivity.CONFIDENTIAL < Sensitivity.RESTRICTED
        restricted = [e for e in inventory.entries if e.sensitivity >= Sensitivity.RESTRICTED]
        ```
    """

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        """0 for public up to 3 for restricted."""
        return _RANKS[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank >= other.rank


_RANKS: Final = {level: rank for rank, level in enumerate(Sensitivity)}


@attrs.frozen
class Classification:
    """What a column holds about a person, how sensitive it is, why and how long it is kept.

    ``retention`` None means "as long as the record exists"; ``purposes`` are the purposes
    of processing (the same names as the policy engine's ``purposes``). Build one with
    `classify`, which validates its input.

    Example:
        ```python
        Classification("contact", Sensitivity.CONFIDENTIAL, ("service",), dt.timedelta(days=730))
        ```
    """

    category: str
    sensitivity: Sensitivity
    purposes: tuple[str, ...] = ()
    retention: dt.timedelta | None = None
    description: str | None = None


def _unknown(what: str, value: object, known: Iterable[str]) -> ConfigurationError:
    names = sorted(known)
    close = difflib.get_close_matches(str(value), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigurationError(f"unknown {what} {value!r}{hint}; known: {', '.join(names)}")


def _sensitivity(value: Sensitivity | str | None, category: str) -> Sensitivity:
    if value is None:
        restricted = category in _RESTRICTED_BY_DEFAULT
        return Sensitivity.RESTRICTED if restricted else Sensitivity.CONFIDENTIAL
    if isinstance(value, Sensitivity):
        return value
    if isinstance(value, str):
        for level in Sensitivity:
            if level.value == value.lower():
                return level
    raise _unknown("sensitivity", value, (level.value for level in Sensitivity))


def _retention(value: dt.timedelta | str | None) -> dt.timedelta | None:
    """A positive timedelta from a timedelta or an ISO 8601 duration of whole years (365
    days), months (30 days), weeks and days, e.g. ``"P30D"``, ``"P1Y6M"``, ``"P4W"``."""
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        if value <= dt.timedelta(0):
            raise ConfigurationError(f"retention must be positive, got {value!r}")
        return value
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip().upper())
        if match is not None and any(match.groups()):
            days = sum(int(n or 0) * per for n, per in zip(match.groups(), _DAYS_PER, strict=True))
            if days > 0:
                return dt.timedelta(days=days)
    raise ConfigurationError(
        f"retention must be a positive timedelta or an ISO 8601 duration in years, months, "
        f'weeks and days such as "P30D", "P6M" or "P1Y6M", got {value!r}'
    )


def _purposes(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigurationError(f"purposes must be a list of names, not one string: {value!r}")
    purposes: list[str] = []
    for purpose in value:
        if not isinstance(purpose, str) or not purpose.strip():
            raise ConfigurationError(f"a purpose must be a non-empty string, got {purpose!r}")
        if purpose not in purposes:
            purposes.append(purpose)
    return tuple(purposes)


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
    positive timedelta or an ISO 8601 duration of whole years, months, weeks and days
    (``"P30D"``, ``"P4W"``, ``"P1Y6M"``), counting a month as 30 days and a year as 365.
    An unknown category or sensitivity, a malformed or non-positive retention, or a bare
    string as *purposes* raises `ConfigurationError` naming the value (and the known names).
    A column holding nothing about people can be marked ``classify("other",
    sensitivity="public")``, which keeps the inventory from flagging it.

    Example:
        ```python
        email: Mapped[str] = mapped_column(
            EncryptedString(),
            info=classify("contact", purposes=["service", "marketing"], retention="P2Y"),
        )
        ```
    """
    if category not in CATEGORIES:
        raise _unknown("category", category, CATEGORIES)
    if description is not None and not isinstance(description, str):
        raise ConfigurationError(f"description must be a string, got {description!r}")
    classification = Classification(
        category=category,
        sensitivity=_sensitivity(sensitivity, category),
        purposes=_purposes(purposes),
        retention=_retention(retention),
        description=description,
    )
    return {INFO_KEY: classification}


def _info_of(column: Any) -> Mapping[str, Any] | None:
    if isinstance(column, Mapping):
        return column
    if isinstance(column, QueryableAttribute):
        prop = column.property
        if isinstance(prop, ColumnProperty) and prop.columns:
            column = prop.columns[0]
        else:
            return prop.info
    if isinstance(column, MappedColumn):
        column = column.column
    if isinstance(column, Column):
        return column.info
    return None


def classification_of(column: Any) -> Classification | None:
    """The classification of a Column, a mapped attribute (``Customer.email``) or an
    ``info`` dict; None when it has none. Anything else raises `ConfigurationError`.

    Example:
        ```python
        assert classification_of(Customer.email).category == "contact"
        assert classification_of(Customer.__table__.c.id) is None
        ```
    """
    info = _info_of(column)
    if info is None:
        raise ConfigurationError(
            f"classification_of() takes a Column, a mapped attribute or an info dict, "
            f"not {type(column).__name__}"
        )
    found = info.get(INFO_KEY)
    return found if isinstance(found, Classification) else None


# -- suggestions for unclassified columns ---------------------------------------------------

#: Column-name words that suggest personal data, and the category they suggest.
_NAME_HINTS: Final = {
    **dict.fromkeys(("email", "mail", "phone", "mobile", "telephone", "fax"), "contact"),
    **dict.fromkeys(("address", "street", "postcode", "zip", "postal", "city"), "location"),
    **dict.fromkeys(("latitude", "longitude", "geo", "gps"), "location"),
    **dict.fromkeys(("ip", "username", "fullname", "firstname", "lastname"), "identifier"),
    **dict.fromkeys(("surname", "forename", "nickname"), "identifier"),
    **dict.fromkeys(("ssn", "passport", "nino", "tin", "license", "licence"), "government_id"),
    **dict.fromkeys(("nin", "nationalid", "taxid", "tfn", "nif", "nie", "cpf"), "government_id"),
    **dict.fromkeys(("aadhaar", "pesel", "bsn", "curp", "personnummer"), "government_id"),
    **dict.fromkeys(("birth", "birthday", "birthdate", "dob", "gender", "age"), "demographic"),
    **dict.fromkeys(("iban", "card", "pan", "bic", "salary", "income"), "financial"),
    **dict.fromkeys(("password", "passwd", "secret", "otp", "totp"), "credentials"),
    **dict.fromkeys(("health", "medical", "diagnosis", "allergy", "disability"), "health"),
    **dict.fromkeys(("religion", "ethnicity", "orientation", "union"), "special"),
}
#: Word pairs that name a personal identifier (``national_id``, ``taxId``), checked before
#: the single words (``id_card`` is an identity card, not a payment card).
_ID_PAIRS: Final = frozenset(
    {
        ("national", "id"),
        ("national", "identity"),
        ("national", "insurance"),
        ("national", "number"),
        ("tax", "id"),
        ("tax", "number"),
        ("tax", "no"),
        ("tax", "code"),
        ("social", "security"),
        ("id", "card"),
        ("id", "number"),
        ("identity", "card"),
        ("identity", "number"),
        ("personal", "id"),
        ("personal", "number"),
        ("citizen", "id"),
        ("voter", "id"),
        ("residence", "permit"),
        ("driver", "id"),
        ("drivers", "id"),
    }
)
#: Words that make a plain ``name`` a person's name (``product_name`` is not one).
_PERSON_WORDS: Final = frozenset(
    {"first", "last", "full", "given", "family", "middle", "maiden", "legal", "display"}
    | {"customer", "contact", "person", "user", "holder", "account"}
)


def suggest_category(name: str) -> str | None:
    """The category a column's *name* suggests (``"billing_email"`` -> ``"contact"``,
    ``"national_id"`` or ``"taxId"`` -> ``"government_id"``), or None. Words are split at
    underscores, hyphens, digits and camelCase boundaries."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    words = [w for w in re.split(r"[^a-zA-Z]+", spaced.lower()) if w]
    if not _ID_PAIRS.isdisjoint(itertools.pairwise(words)):
        return "government_id"
    for word in words:
        if word in _NAME_HINTS:
            return _NAME_HINTS[word]
    if "name" in words and (words == ["name"] or not _PERSON_WORDS.isdisjoint(words)):
        return "identifier"
    return None


#: The word a category hint gives the detectors as context for a bare run of digits (which
#: they only take for a phone number or an SSN after such a word).
_DIGIT_CONTEXT: Final = {"contact": "phone", "government_id": "SSN"}
_MAX_LEAVES: Final = 200


def _leaves(value: Any, key: str, out: list[str]) -> None:
    """The string leaves of a JSON document as ``key: value`` lines (at most 200)."""
    if len(out) >= _MAX_LEAVES:
        return
    if isinstance(value, str):
        out.append(f"{key}: {value}")
    elif isinstance(value, Mapping):
        for name, item in value.items():
            _leaves(item, str(name), out)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, key, out)


def _scannable(column: Column[Any], value: Any) -> Any:
    """The text the detectors read for one sampled *value*: a JSON document's string
    leaves, one per line under their keys; an integer's digits after the word its column
    name suggests (``phone``, ``SSN``), with a ``+`` before 11 to 15 digits of a contact
    column (an international number stored without it); anything else as it is."""
    if isinstance(column.type, JSON):
        lines: list[str] = []
        _leaves(value, column.name, lines)
        return "\n".join(lines) or None
    if isinstance(column.type, Integer) and isinstance(value, int):
        hint = suggest_category(column.name)
        digits = str(value)
        if hint == "contact" and 11 <= len(digits) <= 15:
            digits = "+" + digits
        word = _DIGIT_CONTEXT.get(hint or "")
        return f"{word}: {digits}" if word else digits
    return value


def sample_shares(
    bind: Engine | Connection, columns: Iterable[Column[Any]], sample_size: int
) -> dict[str, tuple[int, dict[str, float]]]:
    """For each column, ``"table.column"`` -> (values read, PII kind -> share of them).

    Reads up to *sample_size* non-null values per column with one read-only ``SELECT ...
    LIMIT`` each and scans them with `securecustomer.anonymize.scan_columns`: a JSON
    document's string leaves (the first 200), an integer's digits (see `_scannable`), any
    other value as text; the values are dropped once scanned. A database error raises
    `ConfigurationError`.
    """
    shares: dict[str, tuple[int, dict[str, float]]] = {}
    context = bind.connect() if isinstance(bind, Engine) else contextlib.nullcontext(bind)
    with context as connection:
        for column in columns:
            where = f"{column.table.name}.{column.name}"
            statement = select(column).where(column.is_not(None)).limit(sample_size)
            try:
                values = connection.execute(statement).scalars().all()
            except SQLAlchemyError as exc:
                raise ConfigurationError(
                    f"could not read a sample of {where} ({type(exc).__name__}): is the table "
                    "created in the database given as bind?"
                ) from exc
            found = scan_columns(
                ({column.name: _scannable(column, v)} for v in values), sample=sample_size
            )
            if column.name in found:
                result = found[column.name]
                shares[where] = (result.values, dict(result.shares))
    return shares
