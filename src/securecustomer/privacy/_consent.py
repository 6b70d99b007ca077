"""Consent and opt-out records per purpose (GDPR consent, CCPA opt-out of sale/sharing).

The ledger is append-only: every grant, withdrawal and opt-out is a row with its time and
source, and the current state of a purpose is its latest row. Purposes use the policy
engine's purpose names, and `ConsentLedger.evaluate` combines the engine's decision with
the data subject's choices.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Engine

from securecustomer.audit import AuditTrail
from securecustomer.policy import Decision, PolicyEngine, Resource, Subject

__all__ = ["OPT_OUT_PURPOSES", "ConsentLedger", "ConsentRecord", "consent_table"]

#: Purposes that are allowed until the subject opts out (CCPA "sale" and "sharing" of
#: personal information); every other purpose needs a recorded grant (opt-in).
OPT_OUT_PURPOSES: tuple[str, ...] = ("sale", "sharing")


@attrs.frozen
class ConsentRecord:
    """One change of one subject's consent to one purpose."""

    subject_id: str
    purpose: str
    granted: bool
    recorded_at: dt.datetime
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def consent_table(metadata: MetaData, name: str = "securecustomer_consents") -> Table:
    """The table a `ConsentLedger` keeps its records in."""
    raise NotImplementedError


class ConsentLedger:
    """Consent records in a SQL table of the application's database.

    Example:
        ```python
        ledger = ConsentLedger(engine)
        ledger.create()
        ledger.grant(42, "marketing", source="signup form v3")
        ledger.opt_out(42, source="Global Privacy Control")   # CCPA: sale and sharing
        decision = ledger.evaluate(engine_, agent, "read", Resource("customer", id=42),
                                   data_subject=42, purpose="marketing")
        ```
    """

    def __init__(
        self,
        engine: Engine,
        *,
        table: str = "securecustomer_consents",
        opt_out_purposes: Iterable[str] = OPT_OUT_PURPOSES,
        trail: AuditTrail | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        raise NotImplementedError

    def create(self) -> None:
        raise NotImplementedError

    def grant(
        self, subject_id: object, purpose: str, *, source: str | None = None
    ) -> ConsentRecord:
        raise NotImplementedError

    def withdraw(
        self, subject_id: object, purpose: str, *, source: str | None = None
    ) -> ConsentRecord:
        raise NotImplementedError

    def opt_out(
        self, subject_id: object, *, source: str | None = None
    ) -> tuple[ConsentRecord, ...]:
        """Withdraw every opt-out purpose (sale, sharing) at once, e.g. on a "Do Not Sell or
        Share" request or a Global Privacy Control signal."""
        raise NotImplementedError

    def permits(self, subject_id: object, purpose: str) -> bool:
        """Whether processing for *purpose* is allowed by the subject's choices."""
        raise NotImplementedError

    def purposes(self, subject_id: object, candidates: Iterable[str]) -> frozenset[str]:
        """The *candidates* the subject's choices allow."""
        raise NotImplementedError

    def state(self, subject_ids: Iterable[object]) -> Mapping[str, Mapping[str, bool]]:
        """The latest recorded choice per purpose for many subjects, in one query per 500."""
        raise NotImplementedError

    def history(self, subject_id: object) -> tuple[ConsentRecord, ...]:
        raise NotImplementedError

    def forget(self, subject_id: object) -> int:
        """Delete the subject's records (on erasure); returns how many."""
        raise NotImplementedError

    def evaluate(
        self,
        engine: PolicyEngine,
        subject: Subject,
        action: str,
        resource: Resource,
        *,
        data_subject: object,
        purpose: str,
        fields: Iterable[str] | None = None,
        context: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> Decision:
        """The policy engine's decision for the request with *purpose*, turned into a deny
        when the data subject has not consented to (or opted out of) *purpose*."""
        raise NotImplementedError

    def require(
        self,
        engine: PolicyEngine,
        subject: Subject,
        action: str,
        resource: Resource,
        *,
        data_subject: object,
        purpose: str,
        fields: Iterable[str] | None = None,
        context: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> Decision:
        """`evaluate`, raising `AccessDenied` (or `StepUpRequired`) unless allowed."""
        raise NotImplementedError
