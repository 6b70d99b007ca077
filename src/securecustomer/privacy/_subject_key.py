"""The one text form of a subject id that legal holds, consent records, erasure, retention,
exports and audit pseudonyms all use.

A subject is a row's subject column value: an int, a UUID or a str. Its *key* is that
value as text, in one spelling only:

- int: decimal digits, a ``-`` for a negative number, no ``+``, leading zeros, white space
  or underscores (``42``, never ``"042"``, ``" 42"``, ``"4_2"``);
- UUID: lower-case, hyphenated 8-4-4-4-12 (``str(uuid.UUID(...))``); with
  ``subject_type=uuid.UUID`` a string is also read in upper case, without hyphens, in braces
  or as ``urn:uuid:...``, and keyed in the canonical form;
- str: the string exactly, code point by code point, as the subject column compares it (no
  case folding, no Unicode normalisation); refused when it begins or ends with white space
  or holds a control, format, surrogate or line/paragraph separator character.

Without a *subject_type*, a value is keyed by its Python type, and a str that reads as an
int or a UUID is taken only in that type's canonical spelling: ``"42"`` is subject 42,
``"042"`` is refused (is it the int 42 or the string "042"?) with an error saying which
spelling to use. Refusing when a hold or a consent is recorded, and when one is looked up,
is what makes a hold or an opt-out impossible to miss because of how its id was spelled.

The key is returned as a `str` subclass that the function gives back unchanged, so that
a key the erasure derived from a typed column value is used as it is by holds and
consents of any *subject_type*. Errors never include the id.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any, Final

from securecustomer.exceptions import ConfigurationError

__all__ = ["SUBJECT_TYPES", "SubjectKey", "canonical_subject_key", "check_subject_type"]

#: The Python types a subject id can have.
SUBJECT_TYPES: Final = (int, str, uuid.UUID)

#: The longest key (the holds and consent tables keep 255 characters).
MAX_LENGTH: Final = 255

_INT: Final = re.compile(r"0|-?[1-9][0-9]*", re.ASCII)
_UUID: Final = re.compile(
    r"[0-9a-f]{8}(-?)[0-9a-f]{4}\1[0-9a-f]{4}\1[0-9a-f]{4}\1[0-9a-f]{12}",
    re.ASCII | re.IGNORECASE,
)
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_INT_FORM: Final = "decimal digits with no '+', leading zeros, white space or underscores"
_UUID_FORM: Final = "lower-case and hyphenated, 8-4-4-4-12 hex digits"


class SubjectKey(str):
    """A subject id in its canonical text form (see `canonical_subject_key`)."""

    __slots__ = ()


def check_subject_type(subject_type: object) -> type[Any] | None:
    """*subject_type* if it is None, int, str or uuid.UUID; `ConfigurationError` otherwise."""
    if subject_type is None or subject_type in SUBJECT_TYPES:
        return subject_type
    raise ConfigurationError("subject_type must be int, str, uuid.UUID or None")


def _where(where: str | None) -> str:
    return f" for {where}" if where else ""


def _text(text: str, where: str | None) -> str:
    if not text or len(text) > MAX_LENGTH:
        raise ConfigurationError(
            f"a subject id must be 1 to {MAX_LENGTH} characters long as text{_where(where)}"
        )
    if text != text.strip():
        raise ConfigurationError(
            f"a subject id must not begin or end with white space{_where(where)}"
        )
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in text):
        raise ConfigurationError(
            f"a subject id must not hold control or format characters{_where(where)}"
        )
    return text


def _uuid_spelling(text: str) -> uuid.UUID | None:
    """The UUID *text* spells (any case, with or without hyphens, braces, ``urn:uuid:``)."""
    bare = text[9:] if text[:9].lower() == "urn:uuid:" else text
    if bare.startswith("{") and bare.endswith("}"):
        bare = bare[1:-1]
    return uuid.UUID(bare) if _UUID.fullmatch(bare) else None


def _reads_as_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return _uuid_spelling(text) is not None
    return True


def _reads_as_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _typed(subject_id: object, subject_type: type[Any] | None, where: str | None) -> object:
    """*subject_id* as a value of *subject_type* (or of its own type), canonical."""
    if subject_id is None or isinstance(subject_id, bool):
        raise ConfigurationError(
            f"a subject id must be a str, int or UUID, not None or a bool{_where(where)}"
        )
    if not isinstance(subject_id, SUBJECT_TYPES):
        raise ConfigurationError(
            f"a subject id must be a str, int or UUID, not {type(subject_id).__name__}"
            f"{_where(where)}"
        )
    if subject_type is None or isinstance(subject_id, subject_type):
        if not isinstance(subject_id, str):
            return subject_id
        if subject_type is str:
            return _text(subject_id, where)
        return _untyped(subject_id, where)
    if subject_type is str:  # an int or a UUID for a string column: its text
        return str(subject_id)
    if not isinstance(subject_id, str):
        raise ConfigurationError(
            f"the subject id is of type {type(subject_id).__name__}, not a valid "
            f"{subject_type.__name__}{_where(where)}"
        )
    if subject_type is int:
        if not _INT.fullmatch(subject_id):
            raise ConfigurationError(
                f"the subject id is not a valid int{_where(where)}: write it as {_INT_FORM}"
            )
        return int(subject_id)
    found = _uuid_spelling(subject_id)
    if found is None:
        raise ConfigurationError(f"the subject id is not a valid UUID{_where(where)}")
    return found


def _untyped(text: str, where: str | None) -> str:
    """A str given with no subject type: taken only in its canonical spelling."""
    if _reads_as_uuid(text):
        if text != str(_uuid_spelling(text) or uuid.UUID(text)):
            raise ConfigurationError(
                f"the subject id reads as a UUID but is not spelled canonically{_where(where)}: "
                f"pass a uuid.UUID or its canonical form ({_UUID_FORM}), or give "
                "subject_type=str where subject ids are strings"
            )
        return text
    if _reads_as_int(text):
        if not _INT.fullmatch(text):
            raise ConfigurationError(
                f"the subject id reads as an int but is not spelled canonically{_where(where)}: "
                f"pass the int or its canonical form ({_INT_FORM}), or give subject_type=str "
                "where subject ids are strings"
            )
        return text
    return _text(text, where)


def canonical_subject_key(
    subject_id: object, subject_type: type[Any] | None = None, *, where: str | None = None
) -> str:
    """The canonical text key of *subject_id* (see the module docstring).

    *subject_type* is the Python type of the subject column (int, str or uuid.UUID): a str
    id is then read as that type, strictly for int and str. Without it, an int or a UUID is
    keyed as it is and a str only in its canonical spelling. A key this function returned
    is returned unchanged. Raises `ConfigurationError` (naming *where*, never the id) for
    None, a bool, another type, an empty or too long id, white space at its ends, control
    characters, and a spelling that is not canonical.

    Example:
        ```python
        canonical_subject_key(42) == canonical_subject_key("42") == "42"
        canonical_subject_key("042")                      # ConfigurationError
        canonical_subject_key("042", str) == "042"        # a string id
        canonical_subject_key("A1B2...", uuid.UUID)       # lower-case, hyphenated
        ```
    """
    if isinstance(subject_id, SubjectKey):
        return subject_id
    typed = _typed(subject_id, check_subject_type(subject_type), where)
    key = typed if isinstance(typed, str) else str(typed)
    if len(key) > MAX_LENGTH:
        raise ConfigurationError(
            f"a subject id must be 1 to {MAX_LENGTH} characters long as text{_where(where)}"
        )
    return SubjectKey(key)


def subject_type_of(column_type: Any) -> type[Any] | None:
    """The Python type of a subject column's SQL type, if it is int, str or uuid.UUID."""
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return None
    return python_type if python_type in SUBJECT_TYPES else None


def typed_subject_id(subject_id: object, subject_type: type[Any], where: str) -> object:
    """*subject_id* as a value of *subject_type*, canonical (the erasure's row lookup)."""
    return _typed(subject_id, subject_type, where)
