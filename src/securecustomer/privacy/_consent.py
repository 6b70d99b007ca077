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
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    select,
)
from sqlalchemy.engine import Engine, RowMapping

from securecustomer.audit import AuditTrail
from securecustomer.exceptions import ConfigurationError
from securecustomer.policy import Decision, Outcome, PolicyEngine, Resource, Subject
from securecustomer.policy._guard import raise_unless_allowed
from securecustomer.privacy._holds import (
    UtcDateTime,
    actor_event,
    aware,
    chunks,
    utc_now,
)
from securecustomer.privacy._subject_key import canonical_subject_key, check_subject_type

__all__ = ["OPT_OUT_PURPOSES", "ConsentLedger", "ConsentRecord", "consent_table"]

#: Purposes that are allowed until the subject opts out (CCPA "sale" and "sharing" of
#: personal information); every other purpose needs a recorded grant (opt-in).
OPT_OUT_PURPOSES: tuple[str, ...] = ("sale", "sharing")


@attrs.frozen
class ConsentRecord:
    """One change of one subject's consent to one purpose."""

    subject_id: str = attrs.field(repr=False)
    purpose: str
    granted: bool
    recorded_at: dt.datetime
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject_id,
            "purpose": self.purpose,
            "granted": self.granted,
            "recorded_at": self.recorded_at.isoformat(),
            "source": self.source,
        }


def consent_table(metadata: MetaData, name: str = "securecustomer_consents") -> Table:
    """The table a `ConsentLedger` keeps its records in."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("subject_id", String(255), nullable=False, index=True),
        Column("purpose", String(100), nullable=False),
        Column("granted", Boolean, nullable=False),
        Column("recorded_at", UtcDateTime(), nullable=False),
        Column("source", String(500), nullable=True),
    )


def _record(row: RowMapping) -> ConsentRecord:
    return ConsentRecord(
        subject_id=row["subject_id"],
        purpose=row["purpose"],
        granted=bool(row["granted"]),
        recorded_at=row["recorded_at"],
        source=row["source"],
    )


def _purpose(purpose: object) -> str:
    """*purpose* in its canonical form: stripped and lower-case, so that a withdrawal of
    ``"Marketing"`` withdraws the consent to ``"marketing"``."""
    if not isinstance(purpose, str) or not purpose.strip() or len(purpose) > 100:
        raise ConfigurationError("a purpose must be a non-empty str of at most 100 characters")
    return purpose.strip().lower()


class ConsentLedger:
    """Consent records in a SQL table of the application's database.

    The latest record of a (subject, purpose) pair decides; records of the same time are
    ordered as they were written (by the table's autoincrement id). Purpose names are
    compared stripped and lower-case (records are written that way). A purpose of
    *opt_out_purposes* is allowed until it is withdrawn; any other purpose needs a grant.
    With *trail*, every change writes a ``consent.grant`` or ``consent.withdraw`` audit
    event (the subject as the trail's pseudonym, the purpose and the source).

    Subject ids are kept as their canonical key (`canonical_subject_key`), as
    `LegalHolds` keeps them: ``"042"``, ``"42 "`` or an upper-case UUID string are refused
    when a choice is recorded and when one is looked up (an opt-out can't be missed because
    of its spelling); *subject_type* (int, str or uuid.UUID) reads string ids as that type.

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
        subject_type: type[Any] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if isinstance(opt_out_purposes, str):
            raise ConfigurationError("opt_out_purposes must be a collection of purpose names")
        self.engine = engine
        self.table = consent_table(MetaData(), table)
        self.opt_out_purposes = tuple(_purpose(p) for p in opt_out_purposes)
        self.trail = trail
        self.subject_type = check_subject_type(subject_type)
        self._clock = clock if clock is not None else utc_now

    def __repr__(self) -> str:
        return f"<ConsentLedger table={self.table.name!r}>"

    def create(self) -> None:
        """Create the table if it does not exist."""
        self.table.create(self.engine, checkfirst=True)

    def _append(
        self, subject_id: object, purposes: Iterable[str], granted: bool, source: str | None
    ) -> tuple[ConsentRecord, ...]:
        subject = canonical_subject_key(subject_id, self.subject_type)
        now = aware(self._clock(), "the clock of ConsentLedger")
        records = tuple(ConsentRecord(subject, _purpose(p), granted, now, source) for p in purposes)
        with self.engine.begin() as conn:
            conn.execute(
                self.table.insert(),
                [
                    {
                        "subject_id": r.subject_id,
                        "purpose": r.purpose,
                        "granted": r.granted,
                        "recorded_at": r.recorded_at,
                        "source": r.source,
                    }
                    for r in records
                ],
            )
        if self.trail is not None:
            for record in records:
                self.trail.append(
                    actor_event(
                        "consent.grant" if granted else "consent.withdraw",
                        resource_type="consent",
                        subject=self.trail.pseudonym(subject),
                        extra={"purpose": record.purpose, "source": record.source},
                        timestamp=now,
                    )
                )
            self.trail.flush()
        return records

    def grant(
        self, subject_id: object, purpose: str, *, source: str | None = None
    ) -> ConsentRecord:
        """Record that the subject consents to *purpose* (or opts back in to it)."""
        return self._append(subject_id, [purpose], True, source)[0]

    def withdraw(
        self, subject_id: object, purpose: str, *, source: str | None = None
    ) -> ConsentRecord:
        """Record that the subject withdraws consent to (or opts out of) *purpose*."""
        return self._append(subject_id, [purpose], False, source)[0]

    def opt_out(
        self, subject_id: object, *, source: str | None = None
    ) -> tuple[ConsentRecord, ...]:
        """Withdraw every opt-out purpose (sale, sharing) at once, e.g. on a "Do Not Sell or
        Share" request or a Global Privacy Control signal."""
        return self._append(subject_id, self.opt_out_purposes, False, source)

    def _allows(self, choices: Mapping[str, bool], purpose: str) -> bool:
        latest = choices.get(purpose)
        if latest is None:
            return purpose in self.opt_out_purposes
        return latest

    def permits(self, subject_id: object, purpose: str) -> bool:
        """Whether processing for *purpose* is allowed by the subject's choices."""
        subject = canonical_subject_key(subject_id, self.subject_type)
        return self._allows(self.state([subject]).get(subject, {}), _purpose(purpose))

    def purposes(self, subject_id: object, candidates: Iterable[str]) -> frozenset[str]:
        """The *candidates* the subject's choices allow."""
        subject = canonical_subject_key(subject_id, self.subject_type)
        choices = self.state([subject]).get(subject, {})
        return frozenset(p for p in candidates if self._allows(choices, _purpose(p)))

    def state(self, subject_ids: Iterable[object]) -> Mapping[str, Mapping[str, bool]]:
        """The latest recorded choice per purpose for many subjects, in one query per 500."""
        wanted = sorted({canonical_subject_key(s, self.subject_type) for s in subject_ids})
        table = self.table
        found: dict[str, dict[str, bool]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(wanted):
                query = (
                    select(table.c.subject_id, table.c.purpose, table.c.granted)
                    .where(table.c.subject_id.in_(chunk))
                    .order_by(table.c.id)
                )
                for subject, purpose, granted in conn.execute(query):
                    if subject in chunk:  # exact, whatever the collation
                        found.setdefault(subject, {})[_purpose(purpose)] = bool(granted)
        return found

    def history(self, subject_id: object) -> tuple[ConsentRecord, ...]:
        """Every record of the subject, oldest first."""
        table = self.table
        key = canonical_subject_key(subject_id, self.subject_type)
        query = select(table).where(table.c.subject_id == key).order_by(table.c.id)
        with self.engine.connect() as conn:  # exact, whatever the collation
            rows = conn.execute(query).mappings()
            return tuple(_record(row) for row in rows if row["subject_id"] == key)

    def forget(self, subject_id: object) -> int:
        """Delete the subject's records (on erasure); returns how many."""
        table = self.table
        key = canonical_subject_key(subject_id, self.subject_type)
        query = select(table.c.id, table.c.subject_id).where(table.c.subject_id == key)
        with self.engine.begin() as conn:  # exact, whatever the collation
            ids = [i for i, subject in conn.execute(query) if subject == key]
            for chunk in chunks(ids):
                conn.execute(delete(table).where(table.c.id.in_(chunk)))
            return len(ids)

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
        when the data subject has not consented to (or opted out of) *purpose*.

        A denial by the engine is returned as it is; a step-up is returned only when the
        subject's choices allow the purpose. The deny for a missing consent names the
        purpose and never the data subject.
        """
        decision = engine.evaluate(
            subject, action, resource, fields=fields, purpose=purpose, context=context, now=now
        )
        if decision.outcome is Outcome.DENY:
            return decision
        key = canonical_subject_key(data_subject, self.subject_type)
        name = _purpose(purpose)
        latest = self.state([key]).get(key, {}).get(name)
        if latest is True or (latest is None and name in self.opt_out_purposes):
            return decision
        if name in self.opt_out_purposes:
            reason = f"the data subject opted out of {purpose}"
        elif latest is None:
            reason = f"the data subject has not consented to {purpose}"
        else:
            reason = f"the data subject withdrew consent to {purpose}"
        return Decision(Outcome.DENY, reason)

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
        decision = self.evaluate(
            engine,
            subject,
            action,
            resource,
            data_subject=data_subject,
            purpose=purpose,
            fields=fields,
            context=context,
            now=now,
        )
        return raise_unless_allowed(decision, subject, action, resource)
