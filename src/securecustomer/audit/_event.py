"""`AuditEvent`: one structured, versioned record of an access to customer data.

Key names are stable and documented (``docs/audit.md``); ``schema`` says which version of
them an event follows. An event never carries argument or return values unless the
decorator was told to record them by name (``extra``), and refers to a data subject only
through a keyed pseudonym.

``subject_count`` (how many data subjects one call touched: a list endpoint, a batch) is
optional and left out of `AuditEvent.to_dict` when unset, so the canonical encoding, and
the chain hash, of every event written before it existed is unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from securecustomer.crypto._nonces import nonce
from securecustomer.exceptions import AuditError, ConfigurationError, UsageError

__all__ = ["OUTCOMES", "SCHEMA_VERSION", "AuditEvent", "canonical", "utc_now"]

SCHEMA_VERSION: Final = 1
OUTCOMES: Final = ("success", "denied", "error")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _EMPTY if not value else MappingProxyType(dict(value))


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise UsageError("fields must be a collection of field names, not one string")
    return tuple(value)


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ConfigurationError("an audit event's timestamp must be timezone-aware")
    return value.astimezone(dt.UTC)


def _count(value: object) -> bool:
    return value is None or (type(value) is int and value >= 0)


def _subject_count(instance: Any, attribute: Any, value: int | None) -> None:
    if not _count(value):
        raise ConfigurationError("subject_count must be a whole number of subjects (0 or more)")


def _outcome(instance: Any, attribute: Any, value: str) -> None:
    if value not in OUTCOMES:
        raise ConfigurationError(f"outcome must be one of {', '.join(OUTCOMES)}, not {value!r}")


@attrs.frozen(slots=True)
class AuditEvent:
    """What happened, who did it, to what, and how it ended.

    Example:
        ```python
        AuditEvent(action="read", actor="user-7", resource_type="customer",
                   resource_id="42", subject="ps_3kq...", fields=("email",))
        ```
    """

    action: str
    actor: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    subject: str | None = None
    fields: tuple[str, ...] = attrs.field(default=(), converter=_names)
    outcome: str = attrs.field(default="success", validator=_outcome)
    error_type: str | None = None
    reason: str | None = None
    duration_ms: float | None = None
    request_id: str | None = None
    actor_attributes: Mapping[str, Any] = attrs.field(default=None, converter=_frozen_map)
    extra: Mapping[str, Any] = attrs.field(default=None, converter=_frozen_map)
    timestamp: dt.datetime = attrs.field(factory=lambda: dt.datetime.now(dt.UTC), converter=_aware)
    id: str = attrs.field(factory=lambda: nonce().hex())
    schema: int = SCHEMA_VERSION
    subject_count: int | None = attrs.field(default=None, validator=_subject_count)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values under its stable key names (``subject_count``
        only when set)."""
        data: dict[str, Any] = {
            "schema": self.schema,
            "id": self.id,
            "timestamp": self.timestamp.isoformat(timespec="microseconds"),
            "action": self.action,
            "actor": self.actor,
            "actor_attributes": dict(self.actor_attributes),
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "subject": self.subject,
            "fields": list(self.fields),
            "outcome": self.outcome,
            "error_type": self.error_type,
            "reason": self.reason,
            "duration_ms": self.duration_ms,
            "request_id": self.request_id,
            "extra": dict(self.extra),
        }
        if self.subject_count is not None:
            data["subject_count"] = self.subject_count
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        """The inverse of `to_dict` (what a sink reads back). Raises `AuditError`, naming the
        key (never its value), when *data* is not an event of this form."""
        if not isinstance(data, Mapping):
            raise AuditError("not a valid audit event: not an object")
        for name, check in _CHECKS.items():
            if name not in data:
                raise AuditError(f"not a valid audit event: key {name!r} is missing")
            if not check(data[name]):
                raise AuditError(f"not a valid audit event: key {name!r} {_WANTED[name]}")
        count = data.get("subject_count")
        if not _count(count):
            raise AuditError(
                "not a valid audit event: key 'subject_count' is not a whole number (0 or more)"
            )
        return cls(
            schema=data["schema"],
            id=data["id"],
            timestamp=dt.datetime.fromisoformat(data["timestamp"]),
            action=data["action"],
            actor=data["actor"],
            actor_attributes=data["actor_attributes"],
            resource_type=data["resource_type"],
            resource_id=data["resource_id"],
            subject=data["subject"],
            fields=data["fields"],
            outcome=data["outcome"],
            error_type=data["error_type"],
            reason=data["reason"],
            duration_ms=data["duration_ms"],
            request_id=data["request_id"],
            extra=data["extra"],
            subject_count=count,
        )


_CANONICAL: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


_SECOND: list[tuple[int, str]] = [(-1, "")]  # the last whole second seen, and its ISO text


def utc_now() -> str:
    """The current UTC time as ``AuditEvent.to_dict`` writes it (microseconds, +00:00),
    formatted once per second rather than once per event. Thread-safe: the cached pair is
    replaced in one assignment, never half-updated."""
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    cached_second, text = _SECOND[0]
    if cached_second != second:
        text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND[0] = (second, text)
    return f"{text}.{micro:06d}+00:00"


def canonical(data: Mapping[str, Any]) -> bytes:
    """One byte string per event dict: sorted keys, no spaces, ASCII (what is hashed)."""
    return _CANONICAL.encode(data).encode("ascii")


def _text(value: object) -> bool:
    return isinstance(value, str)


def _optional_text(value: object) -> bool:
    return value is None or isinstance(value, str)


def _timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.utcoffset() is not None


_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "schema": lambda v: type(v) is int,
    "id": _text,
    "timestamp": _timestamp,
    "action": _text,
    "actor": _optional_text,
    "actor_attributes": lambda v: isinstance(v, dict),
    "resource_type": _optional_text,
    "resource_id": _optional_text,
    "subject": _optional_text,
    "fields": lambda v: isinstance(v, list | tuple) and all(isinstance(f, str) for f in v),
    "outcome": lambda v: v in OUTCOMES,
    "error_type": _optional_text,
    "reason": _optional_text,
    "duration_ms": lambda v: v is None or (type(v) in (int, float) and math.isfinite(v)),
    "request_id": _optional_text,
    "extra": lambda v: isinstance(v, dict),
}
_TEXT: Final = "is not text"
_OPTIONAL: Final = "is neither text nor null"
_WANTED: Final = {
    "schema": "is not an integer",
    "id": _TEXT,
    "timestamp": "is not an ISO 8601 datetime with a time zone",
    "action": _TEXT,
    "actor": _OPTIONAL,
    "actor_attributes": "is not an object",
    "resource_type": _OPTIONAL,
    "resource_id": _OPTIONAL,
    "subject": _OPTIONAL,
    "fields": "is not a list of names",
    "outcome": f"is not one of {', '.join(OUTCOMES)}",
    "error_type": _OPTIONAL,
    "reason": _OPTIONAL,
    "duration_ms": "is neither a finite number nor null",
    "request_id": _OPTIONAL,
    "extra": "is not an object",
}
