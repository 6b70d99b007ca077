"""The masks a rule can name, applied by `apply` to visible fields.

Each mask is a plain function ``value -> value`` that never raises on odd input: a value it
cannot mask meaningfully is redacted whole (fail closed). Hosts add their own by passing
``masks={"name": function}`` to `PolicyEngine`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["BUILTIN_MASKS", "REDACTED"]

REDACTED: Final = "[REDACTED]"


def _redact(value: Any) -> Any:
    return None if value is None else REDACTED


def _keep_last(value: Any, keep: int) -> Any:
    if not isinstance(value, str):
        return _redact(value)
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    if len(digits) <= keep:
        return REDACTED
    hide = set(digits[:-keep])
    return "".join("*" if i in hide else ch for i, ch in enumerate(value))


def _email(value: Any) -> Any:
    if not isinstance(value, str) or value.count("@") != 1:
        return _redact(value)
    local, domain = value.split("@")
    if not local or not domain:
        return REDACTED
    return f"{local[0]}***@{domain}"


def _phone(value: Any) -> Any:
    return _keep_last(value, 2)


def _card(value: Any) -> Any:
    return _keep_last(value, 4)


def _last4(value: Any) -> Any:
    if not isinstance(value, str) or len(value) <= 4:
        return _redact(value)
    return "*" * (len(value) - 4) + value[-4:]


def _initial(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        return _redact(value)
    return value.strip()[0] + "."


BUILTIN_MASKS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "redact": _redact,  # "[REDACTED]" (None stays None)
    "email": _email,  # "j***@example.com"
    "phone": _phone,  # every digit but the last two: "+** *** ***-**67"
    "card": _card,  # every digit but the last four: "**** **** **** 4242"
    "last4": _last4,  # every character but the last four
    "initial": _initial,  # "J."
}
