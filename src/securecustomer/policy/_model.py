"""The values a policy check works on: `Subject`, `Resource`, `AccessRequest`, `Decision`."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from securecustomer.exceptions import PolicyUsageError

__all__ = ["AccessRequest", "Decision", "Outcome", "Resource", "Subject"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _roles(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise PolicyUsageError("roles must be a collection of role names, not one string")
    return frozenset(value)


def _fields(value: Iterable[str] | None) -> frozenset[str] | None:
    if isinstance(value, str):
        raise PolicyUsageError("fields must be a collection of field names, not one string")
    return None if value is None else frozenset(value)


def _mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not value:
        return _EMPTY
    return MappingProxyType(dict(value))


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise PolicyUsageError("mfa_at must be timezone-aware (for example datetime.now(UTC))")
    return value


@attrs.frozen(slots=True)
class Subject:
    """Who asks: an id, the roles assigned to it, attributes for conditions, a tenant.

    ``mfa_at`` is when the subject last completed multi-factor authentication (aware
    datetime); rules with ``mfa_max_age`` allow only when it is recent enough.

    Example:
        ```python
        agent = Subject("user-7", roles=["agent"], attributes={"region": "eu"}, tenant="acme")
        ```
    """

    id: str
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_roles)
    attributes: Mapping[str, Any] = attrs.field(default=None, converter=_mapping, repr=False)
    tenant: str | None = None
    mfa_at: datetime | None = attrs.field(default=None, converter=_aware)


@attrs.frozen(slots=True)
class Resource:
    """What is asked for: a resource type, optionally an id, attributes and a tenant.

    Example:
        ```python
        row = Resource("customer", id=42, attributes={"region": "eu"}, tenant="acme")
        ```
    """

    type: str
    id: Any = None
    attributes: Mapping[str, Any] = attrs.field(default=None, converter=_mapping, repr=False)
    tenant: str | None = None


@attrs.frozen(slots=True)
class AccessRequest:
    """One request, as `PolicyEngine.evaluate_many` and `PolicyEngine.diff` take them."""

    subject: Subject
    action: str
    resource: Resource
    fields: frozenset[str] | None = attrs.field(default=None, converter=_fields)
    purpose: str | None = None
    context: Mapping[str, Any] = attrs.field(default=None, converter=_mapping)
    now: datetime | None = None


class Outcome(enum.Enum):
    """The three answers: allow, deny, or allow after a fresh MFA (step-up)."""

    ALLOW = "allow"
    DENY = "deny"
    STEP_UP = "step_up"


@attrs.frozen(slots=True, eq=True)
class Decision:
    """The answer to one request.

    - ``outcome``: `Outcome.ALLOW`, `Outcome.DENY` or `Outcome.STEP_UP`; ``allowed`` is
      ``outcome is Outcome.ALLOW``.
    - ``fields``: the fields the subject may see; ``None`` means every field except those
      in ``hidden``. When the request named fields, both are subsets of them.
    - ``masks``: field name -> mask name, for visible fields that must be shown masked.
    - ``rule_ids``: the rules that decided (the allows that granted, or the denies that
      denied), sorted.
    - ``reason``: one sentence for logs and error messages (no attribute values).
    - ``errors``: conditions that could not be evaluated, as ``(rule_id, message)``; such a
      rule failed closed.
    - ``step_up_max_age``: for a step-up outcome, how recent the MFA must be.

    A `Decision` refuses to be used as a bool: test ``decision.allowed``.
    """

    outcome: Outcome
    reason: str
    rule_ids: tuple[str, ...] = ()
    fields: frozenset[str] | None = None
    hidden: frozenset[str] = frozenset()
    masks: Mapping[str, str] = attrs.field(default=_EMPTY, converter=_mapping)
    errors: tuple[tuple[str, str], ...] = ()
    step_up_max_age: timedelta | None = None

    @property
    def allowed(self) -> bool:
        """True only for `Outcome.ALLOW`."""
        return self.outcome is Outcome.ALLOW

    def visible(self, field: str) -> bool:
        """Whether *field* may be shown (possibly masked) under this decision."""
        if self.outcome is not Outcome.ALLOW or field in self.hidden:
            return False
        return self.fields is None or field in self.fields

    def __bool__(self) -> bool:
        raise PolicyUsageError(
            "a Decision is not a bool: test decision.allowed, or call engine.require(...)"
        )
