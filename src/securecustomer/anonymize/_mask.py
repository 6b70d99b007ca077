"""Masks: ``value -> value`` functions that hide part of a string and never raise on it.

They behave like the policy engine's built-in masks (``securecustomer.policy``): ``None`` stays
``None``; any other value a mask cannot handle meaningfully (not a ``str``, or too short to hide
anything) becomes ``"[REDACTED]"`` whole -- they fail closed. Each docstring says exactly what
the result still shows. Lengths are counted in code points, not grapheme clusters.

Bad *settings* (a negative ``keep``, a mask character that is not one character) raise
`ConfigurationError`; bad *values* never raise.
"""

from __future__ import annotations

from typing import Any, Final

from securecustomer.exceptions import ConfigurationError

__all__ = ["REDACTED", "mask", "mask_card", "mask_email", "mask_phone", "redact"]

#: What a redacted value becomes (the same text as the policy engine's ``redact`` mask).
REDACTED: Final = "[REDACTED]"

#: A card number shows its issuer prefix only if it has at least this many digits.
_MIN_ISSUER_DIGITS: Final = 13


def redact(value: Any) -> Any:
    """``"[REDACTED]"`` for any value but ``None``, which stays ``None``.

    Leaks: only whether the value was ``None``.
    """
    return None if value is None else REDACTED


def _check_count(name: str, count: Any) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ConfigurationError(f"{name} must be an int of at least 0")
    return count


_DIGITS: Final = b"0123456789"
_STAR_DIGITS: Final = bytes.maketrans(_DIGITS, b"*" * 10)


def _hide_digits(value: str, keep_first: int, keep_last: int) -> str:
    """Star every digit of ``value`` but the first ``keep_first`` and last ``keep_last``."""
    if not value.isascii():  # other scripts' digits (str.isdigit): the general path
        positions = [i for i, ch in enumerate(value) if ch.isdigit()]
        if len(positions) <= keep_first + keep_last:
            return REDACTED
        hide = set(positions[keep_first : len(positions) - keep_last])
        return "".join("*" if i in hide else ch for i, ch in enumerate(value))
    # ASCII: the digits are exactly 0-9, and bytes.translate does the work.
    data = value.encode("ascii")
    if len(data) - len(data.translate(None, _DIGITS)) <= keep_first + keep_last:
        return REDACTED
    start, end = 0, len(data)
    if keep_first and data[:keep_first].isdigit():
        start = keep_first
    else:
        for _ in range(keep_first):
            while data[start] not in _DIGITS:
                start += 1
            start += 1
    if keep_last and data[-keep_last:].isdigit():
        end -= keep_last
    else:
        for _ in range(keep_last):
            end -= 1
            while data[end] not in _DIGITS:
                end -= 1
    return value[:start] + data[start:end].translate(_STAR_DIGITS).decode("ascii") + value[end:]


def mask_email(value: Any) -> Any:
    """``"jane.doe@example.com"`` -> ``"j***@example.com"``.

    Leaks: the first character of the local part and the whole domain; not the length of the
    local part (always three stars). A string without exactly one ``@``, or with an empty
    local part or domain, is redacted; so is any non-string.
    """
    if not isinstance(value, str) or value.count("@") != 1:
        return redact(value)
    local, domain = value.split("@")
    if not local or not domain:
        return REDACTED
    return f"{local[0]}***@{domain}"


def mask_phone(value: Any, keep: int = 2) -> Any:
    """Every digit but the last ``keep`` becomes ``*``: ``"+44 20 7946 0018"`` ->
    ``"+** ** **** **18"``.

    Leaks: the length, every non-digit character in place (``+``, spaces, dashes, letters),
    hence the number of digits and their grouping, and the last ``keep`` digits. A string
    with ``keep`` digits or fewer is redacted (showing them would show the whole number);
    so is any non-string. Digits are the characters for which ``str.isdigit`` holds.
    """
    keep = _check_count("keep", keep)
    if not isinstance(value, str):
        return redact(value)
    return _hide_digits(value, 0, keep)


def mask_card(value: Any, *, keep_issuer: bool = False) -> Any:
    """Every digit but the last four becomes ``*``: ``"4242 4242 4242 4242"`` ->
    ``"**** **** **** 4242"``.

    With ``keep_issuer=True`` the first six digits (the issuer identification number) are
    kept as well -- ``"4242 42** **** 4242"``, the most PCI DSS allows to be shown --
    but only for numbers of at least 13 digits; shorter numbers keep the last four only.

    Leaks: the length, every separator in place (hence the digit count and grouping), the
    last four digits and, with ``keep_issuer``, the first six. A string with four digits or
    fewer is redacted; so is any non-string (an ``int`` card number included).
    """
    if not isinstance(value, str):
        return redact(value)
    first = 0
    if keep_issuer and sum(ch.isdigit() for ch in value) >= _MIN_ISSUER_DIGITS:
        first = 6
    return _hide_digits(value, first, 4)


def mask(value: Any, *, keep_start: int = 0, keep_end: int = 0, char: str = "*") -> Any:
    """Every character but the first ``keep_start`` and the last ``keep_end`` becomes
    ``char``: ``mask("ABCDEFGH", keep_end=4)`` -> ``"****EFGH"``.

    Leaks: the length, the first ``keep_start`` and the last ``keep_end`` characters. A
    string of ``keep_start + keep_end`` characters or fewer is redacted (nothing would be
    hidden), and so is the empty string and any non-string. ``mask(v, keep_end=4)`` is the
    policy engine's ``last4`` mask.
    """
    keep_start = _check_count("keep_start", keep_start)
    keep_end = _check_count("keep_end", keep_end)
    if not isinstance(char, str) or len(char) != 1:
        raise ConfigurationError("char must be a str of exactly one character")
    if not isinstance(value, str):
        return redact(value)
    hidden = len(value) - keep_start - keep_end
    if hidden <= 0:
        return REDACTED
    return value[:keep_start] + char * hidden + value[len(value) - keep_end :]
