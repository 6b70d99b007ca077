"""The masks a rule can name, applied by `apply` to visible fields.

Each mask is a plain function ``value -> value`` that never raises on odd input: a value it
cannot mask meaningfully is redacted whole (fail closed). Hosts add their own by passing
``masks={"name": function}`` to `PolicyEngine`.

When several matching rules mask one field, the strictest mask applies (`strictest`), as a
deny overrides an allow: a rule that grants the field in clear does not lift a mask, a rule
listing the field in ``unmask`` does. The order of strictness, strictest first:

1. ``redact``: nothing of the value is left;
2. a host's own masks, by name: the engine cannot see what they keep, so they rank above
   every built-in mask that keeps a part of the value (a keyed pseudonym or a hash belongs
   here), and below ``redact``;
3. the built-in partial masks, by how much they keep: ``initial`` (one letter), ``phone``
   (two digits), ``card`` (four digits), ``last4`` (four characters), ``email`` (a letter
   and the whole domain).

The order is total and depends only on the mask names, never on rule ids or rule order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

__all__ = ["BUILTIN_MASKS", "REDACTED", "strictest", "strictness"]

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

#: The built-in masks that keep a part of the value, strictest (keeping least) first.
_PARTIAL: Final[Mapping[str, int]] = {
    name: rank for rank, name in enumerate(("initial", "phone", "card", "last4", "email"))
}


def strictness(name: str) -> tuple[int, int, str]:
    """A sort key: the stricter of two masks sorts first (see the module docstring)."""
    if name == "redact":
        return (0, 0, "")
    rank = _PARTIAL.get(name)
    if rank is None:
        return (1, 0, name)  # a host's own mask
    return (2, rank, "")


def strictest(names: Iterable[str]) -> str:
    """The strictest of one or more mask names."""
    return min(names, key=strictness)
