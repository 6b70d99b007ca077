"""`redact_pii`: a structlog processor that keeps personal data out of log lines.

It returns a redacted *copy* of the event dict (nested mappings and sequences are copied
too; the caller's objects are never changed). Values under sensitive keys are replaced by
the mask; strings anywhere else are scanned for e-mail addresses, phone numbers, payment
card numbers (Luhn-checked), IBANs (mod-97-checked) and US social security numbers. When
`securecustomer.anonymize` provides ``detect_pii``, its findings are masked too.

It fails closed: a value that cannot be redacted (its ``__str__`` raises, it nests too deep,
a detector fails) becomes the mask instead of passing through.

Put it late in the chain, after ``format_exc_info`` (so tracebacks are scanned as text) and
before the renderer::

    structlog.configure(processors=[..., structlog.processors.format_exc_info,
                                    redact_pii, structlog.processors.JSONRenderer()])
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final

from securecustomer.exceptions import AuditError, ConfigurationError

__all__ = ["DEFAULT_SENSITIVE_KEYS", "REDACTED", "make_redact_pii", "redact_pii"]

REDACTED: Final = "[REDACTED]"
DEFAULT_SENSITIVE_KEYS: Final = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "private_key",
        "ssn",
        "card",
        "card_number",
        "cvv",
        "iban",
        "email",
        "phone",
        "dob",
        "date_of_birth",
        "birthdate",
    }
)
_MAX_DEPTH: Final = 32
# Fragments this short match whole words of a key only ("ssn" in "user_ssn", not in
# "lessnumber"); longer ones match anywhere ("userpassword").
_WORD_ONLY_BELOW: Final = 5

Processor = Callable[[Any, str, MutableMapping[str, Any]], dict[str, Any]]
Detector = Callable[[str], str]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
# International numbers (+ and a country code) and North American ones (555-123-4567);
# not dates (2024-05-01) or IP addresses.
_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){2,6}(?!\w)"
    r"|(?<![\w+(])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def _masker(
    mask: str, check: Callable[[str], bool] | None = None
) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        return mask if check is None or check(found) else found

    return replace


def _card_ok(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _phone_ok(text: str) -> bool:
    return 8 <= sum(char.isdigit() for char in text) <= 15


# IP addresses stay in log lines (operators need them); detect_pii reports them too.
_KEPT_KINDS: Final = frozenset({"ip_address"})


@functools.cache
def _external_detector() -> Callable[[str], Iterable[Any]] | None:
    try:
        module = importlib.import_module("securecustomer.anonymize")
    except ImportError:
        return None
    detect = getattr(module, "detect_pii", None)
    return detect if callable(detect) else None


def _span(found: Any) -> tuple[int, int]:
    if isinstance(found, tuple):
        return int(found[0]), int(found[1])
    return int(found.start), int(found.end)


def builtin_detect(text: str, mask: str = REDACTED) -> str:
    """*text* with the PII the built-in detectors find replaced by *mask*."""
    text = _IBAN.sub(_masker(mask, _iban_ok), text)
    text = _CARD.sub(_masker(mask, _card_ok), text)
    text = _SSN.sub(_masker(mask), text)
    text = _EMAIL.sub(_masker(mask), text)
    return _PHONE.sub(_masker(mask, _phone_ok), text)


def _detect(text: str, mask: str) -> str:
    external = _external_detector()
    if external is not None:
        # Spans (start, end) or objects with .start/.end; anything else raises and the
        # caller fails closed.
        found = [f for f in external(text) if getattr(f, "kind", None) not in _KEPT_KINDS]
        for start, end in sorted((_span(f) for f in found), reverse=True):
            if not 0 <= start <= end <= len(text):
                raise AuditError("detect_pii returned a span outside the text")
            text = text[:start] + mask + text[end:]
    return builtin_detect(text, mask)


def _key_words(key: object) -> tuple[str, str]:
    text = _CAMEL.sub("_", str(key)).lower()
    words = _NOT_ALNUM.sub("_", text).strip("_")
    return words, words.replace("_", "")


def make_redact_pii(
    keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS, *, mask: str = REDACTED, detect: bool = True
) -> Processor:
    """A `redact_pii` processor with its own sensitive *keys*, *mask* and detection switch.

    A key is sensitive when it contains one of *keys*, compared case-insensitively and
    ignoring ``_``/``-``/camelCase (``userPassword``, ``X-Api-Key``, ``card_number_last``).
    Fragments shorter than five characters (``ssn``, ``dob``, ``card``) must be a whole word
    of the key.
    """
    long_fragments = []
    short_fragments = []
    for key in keys:
        words, compact = _key_words(key)
        if not compact:
            raise ConfigurationError("a sensitive key must contain a letter or digit")
        if len(compact) < _WORD_ONLY_BELOW:
            short_fragments.append(f"_{words}_")
        else:
            long_fragments.append(compact)

    def sensitive(key: object) -> bool:
        words, compact = _key_words(key)
        padded = f"_{words}_"
        return any(f in compact for f in long_fragments) or any(
            f in padded for f in short_fragments
        )

    def clean(value: Any, depth: int) -> Any:
        try:
            if depth > _MAX_DEPTH:
                return mask
            if value is None or isinstance(value, bool | float):
                return value
            if isinstance(value, str):
                return _detect(value, mask) if detect else value
            if isinstance(value, int):
                text = str(value)
                return value if not detect or _detect(text, mask) == text else mask
            if isinstance(value, Mapping):
                return {k: mask if sensitive(k) else clean(v, depth + 1) for k, v in value.items()}
            if isinstance(value, list | tuple | set | frozenset):
                items = [clean(item, depth + 1) for item in value]
                return items if isinstance(value, list) else tuple(items)
            text = str(value)
            return _detect(text, mask) if detect else text
        except Exception:
            return mask

    def redact_pii(
        logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> dict[str, Any]:
        """Return a copy of *event_dict* with sensitive keys and detected PII masked."""
        out: dict[str, Any] = {}
        for key, value in event_dict.items():
            try:
                out[key] = mask if sensitive(key) else clean(value, 0)
            except Exception:
                out[key] = mask
        return out

    return redact_pii


redact_pii: Final = make_redact_pii()
"""The processor with the default sensitive keys, ``[REDACTED]`` as mask, detection on."""
