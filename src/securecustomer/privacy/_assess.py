"""`assess`: a security risk report over the inventory, the policy and the keyring."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from securecustomer.audit import AuditEvent, AuditTrail, Record
from securecustomer.keys import Keyring
from securecustomer.policy import PolicyEngine
from securecustomer.privacy._inventory import DataInventory, RiskFinding

__all__ = ["RiskReport", "assess"]


@attrs.frozen
class RiskReport:
    """Findings ordered high, medium, low; ``counts`` per severity."""

    generated_at: dt.datetime
    findings: tuple[RiskFinding, ...]

    @property
    def counts(self) -> Mapping[str, int]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, *, indent: int | None = 2) -> str:
        raise NotImplementedError

    def to_markdown(self) -> str:
        raise NotImplementedError


def assess(
    inventory: DataInventory,
    *,
    policy: PolicyEngine | None = None,
    keyring: Keyring | None = None,
    trail: AuditTrail | Iterable[Record | AuditEvent] | None = None,
    resource_types: Mapping[str, str] | None = None,
    stale_after: dt.timedelta = dt.timedelta(days=90),
    max_key_age: dt.timedelta = dt.timedelta(days=365),
    now: dt.datetime | None = None,
) -> RiskReport:
    """A risk report: the inventory's findings; with *policy*, every role or subject that
    can read a restricted column (``resource_types`` maps table names to the policy's
    resource types; default: the same name), unconditioned grants of restricted data, and,
    with *trail*, roles granted access that no event used in *stale_after* (stale) or ever
    (unused); with *keyring*, keys past *max_key_age* and a master key held in a local
    file.

    Example:
        ```python
        report = assess(inventory, policy=engine, keyring=keyring, trail=trail)
        print(report.to_markdown())
        ```
    """
    raise NotImplementedError
