"""Consent and opt-out records per purpose (GDPR consent, CCPA opt-out of sale/sharing).

The ledger is append-only: every grant, withdrawal and opt-out is a row with its time and
source, and the current state of a purpose is its latest row. The rows are a keyed chain
(see `_ledger`): a changed, deleted or back-dated row is found on the next read, which then
fails closed. Purposes use the policy
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
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping

from securecustomer.audit import AuditTrail
from securecustomer.exceptions import AuditError, ConfigurationError, UnpicklableError
from securecustomer.policy import Decision, Outcome, PolicyEngine, Resource, Subject
from securecustomer.policy._guard import raise_unless_allowed
from securecustomer.privacy._holds import (
    EPOCH,
    UtcDateTime,
    actor_event,
    aware,
    chunks,
    utc_now,
)
from securecustomer.privacy._ledger import LedgerChain, chain_columns
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
    """The table a `ConsentLedger` keeps its records in (for Alembic or
    ``metadata.create_all``; then call `ConsentLedger.create`, which writes the chain's
    head)."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("subject_id", String(255), nullable=False, index=True),
        Column("purpose", String(100), nullable=False),
        Column("granted", Boolean, nullable=False),
        Column("recorded_at", UtcDateTime(), nullable=False),
        Column("source", String(500), nullable=True),
        *chain_columns(),
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
    """Consent records in a SQL table of the application's database, as a keyed chain.

    *key* is a secret of at least 32 bytes, from the application's configuration like the
    audit trail's key (it may be the same secret: the ledger derives keys of its own from
    it). Every read (`permits`, `purposes`, `state`, `history`) first checks the ledger's
    head and counts and the subject's records, and raises `AuditError` when they do not
    verify (a record changed, deleted, moved or back-dated); `evaluate` and `require` then
    deny. A table of an earlier version is refused until `migrate` chains it.

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
        ledger = ConsentLedger(engine, key=settings.ledger_key)
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
        key: bytes | None = None,
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
        self._chain = LedgerChain(
            engine,
            self.table,
            key,
            what="consent ledger",
            content=("subject_id", "purpose", "granted", "recorded_at", "source"),
            note="source",
            head=lambda: {"purpose": "", "granted": False, "recorded_at": EPOCH},
        )

    def __repr__(self) -> str:
        return f"<ConsentLedger table={self.table.name!r}>"

    def __getstate__(self) -> None:
        raise UnpicklableError("a ConsentLedger holds its chain key and cannot be pickled")

    def create(self) -> None:
        """Create the table if it does not exist, and its chain's head if it has none."""
        self._chain.create()

    def migrate(self) -> int:
        """Chain a table written by an earlier version (unchained): add the chain's columns
        and chain every record as it is now, in the order written. Returns how many rows
        were chained (0 when the table already was). Run it once, when the table is known
        to be intact, after `rekey_subject_ids`: a row whose subject id is not its canonical
        key (under *subject_type*) is refused, naming the row, and nothing is chained.
        """
        return self._chain.migrate([self.table.c.id], self.subject_type)

    def verify(self) -> int:
        """Read and check the whole table; the number of records. `AuditError` when it
        does not verify."""
        return self._chain.verify()

    def _records(self, conn: Connection, wanted: list[str]) -> dict[str, list[RowMapping]]:
        """The verified records of *wanted* subjects, oldest first (the ledger's head and
        counts checked first)."""
        self._chain.check_ledger(conn)
        table = self.table
        found: dict[str, list[RowMapping]] = {}
        for chunk in chunks(wanted):
            rows = conn.execute(select(table).where(table.c.subject_id.in_(chunk))).mappings()
            found.update(self._chain.subjects(conn, rows, chunk))
        return found

    def _append(
        self, subject_id: object, purposes: Iterable[str], granted: bool, source: str | None
    ) -> tuple[ConsentRecord, ...]:
        subject = canonical_subject_key(subject_id, self.subject_type)
        now = aware(self._clock(), "the clock of ConsentLedger")
        records = tuple(ConsentRecord(subject, _purpose(p), granted, now, source) for p in purposes)
        with self._chain.transaction() as conn:
            self._chain.append(
                conn,
                subject,
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
        """The latest recorded choice per purpose for many subjects, in one query per 500
        (verified first: `AuditError` when the ledger does not verify)."""
        wanted = sorted({canonical_subject_key(s, self.subject_type) for s in subject_ids})
        found: dict[str, dict[str, bool]] = {}
        with self.engine.connect() as conn:
            for subject, rows in self._records(conn, wanted).items():
                for row in rows:
                    found.setdefault(subject, {})[_purpose(row["purpose"])] = bool(row["granted"])
        return found

    def history(self, subject_id: object) -> tuple[ConsentRecord, ...]:
        """Every record of the subject, oldest first (verified first)."""
        key = canonical_subject_key(subject_id, self.subject_type)
        with self.engine.connect() as conn:
            return tuple(_record(row) for row in self._records(conn, [key]).get(key, []))

    def forget(self, subject_id: object) -> int:
        """Erase the subject's records (on erasure); returns how many.

        Each record keeps its place in the chain as a tombstone: its subject id emptied,
        its source replaced by the keyed digest of what it held (purpose, choice and time
        stay, naming nobody), so the ledger still verifies.
        """
        table = self.table
        key = canonical_subject_key(subject_id, self.subject_type)
        chain = self._chain
        query = select(table).where(table.c.subject_id == key)
        with chain.transaction() as conn:  # exact, whatever the collation
            n, h, last = chain.check_ledger(conn, lock=True)
            rows = [row for row in conn.execute(query).mappings() if row["subject_id"] == key]
            records = [row for row in rows if row["seq"] >= 1]
            for row in records:
                conn.execute(
                    update(table)
                    .where(table.c.seq == row["seq"])
                    .values(subject_id="", source=chain.tag(row))
                )
            heads = [row["seq"] for row in rows if row["seq"] <= -1]
            for chunk in chunks(heads):
                conn.execute(delete(table).where(table.c.seq.in_(chunk)))
            if heads:
                chain.write_head(conn, n, h - len(heads), last)
            return len(records)

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
        subject's choices allow the purpose. A ledger that does not verify denies (its
        reason says so). The deny for a missing consent names the
        purpose and never the data subject.
        """
        decision = engine.evaluate(
            subject, action, resource, fields=fields, purpose=purpose, context=context, now=now
        )
        if decision.outcome is Outcome.DENY:
            return decision
        key = canonical_subject_key(data_subject, self.subject_type)
        name = _purpose(purpose)
        try:
            latest = self.state([key]).get(key, {}).get(name)
        except AuditError as exc:  # fail closed: a ledger that does not verify consents to nothing
            return Decision(Outcome.DENY, f"{exc}: no consent or opt-out is assumed")
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
