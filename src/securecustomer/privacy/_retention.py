"""Retention: delete or anonymize rows older than their maximum age, in batches.

Rows are changed by the machinery of `_rows` (Core statements on the mapped table), shared
with `erase_subject`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    or_,
    select,
    true,
)
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeDecorator

from securecustomer.audit import AuditTrail, default_trail
from securecustomer.exceptions import ConfigurationError
from securecustomer.privacy._holds import (
    LegalHolds,
    NoLegalHolds,
    actor_event,
    aware,
    required_holds,
    utc_now,
)
from securecustomer.privacy._rows import (
    Shape,
    anonymize_rows,
    check_anonymize,
    delete_rows,
    shape_of,
    subject_key_of,
)
from securecustomer.sqlalchemy._blind import BlindIndex
from securecustomer.sqlalchemy._types import Encrypted

__all__ = ["RetentionReport", "RetentionRule", "RuleOutcome", "apply_retention"]


@attrs.frozen(eq=False)
class RetentionRule:
    """Rows of *model* whose *age_column* is older than *max_age* are deleted or anonymized.

    *subject* names the attribute holding the subject id, which legal holds are checked
    against (rows of a held subject are kept). ``action="anonymize"`` replaces each
    attribute of *anonymize* by its transform's result (None sets NULL) and sets blind
    indexes to NULL; *anonymized_marker*, when given, is an attribute set to True so an
    anonymized row is not selected again. A naive value in *age_column* (SQLite keeps no
    offset) is taken to be UTC; rows whose age is NULL are never selected. Only
    PostgreSQL's ``timestamptz`` keeps an offset: on SQLite and MariaDB a
    ``DateTime(timezone=True)`` column stores the wall time of the value written, so the
    application must write UTC there or rows expire hours early or late. A row exactly
    *max_age* old is kept (``age < now - max_age`` expires); a `Date` column is compared
    with the cutoff's date. Legal holds match the canonical key (`canonical_subject_key`)
    of the subject value, the same however the hold's id was given (``42`` or ``"42"``, a
    UUID in any case); a row whose subject value has no key (a string with white space at
    its ends or control characters, which no hold can be placed on) is kept and counted as
    held.

    Example:
        ```python
        RetentionRule(Order, age_column="created_at", max_age=dt.timedelta(days=365 * 7),
                      action="delete", subject="customer_id")
        ```
    """

    model: type[Any]
    age_column: str
    max_age: dt.timedelta
    action: Literal["delete", "anonymize"] = "delete"
    subject: str | None = None
    anonymize: Mapping[str, Callable[[Any], Any] | None] = attrs.field(factory=dict)
    anonymized_marker: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        """The rule's name in reports and audit events (default: the model's class name)."""
        return self.name if self.name is not None else self.model.__name__


@attrs.frozen
class RuleOutcome:
    """What one rule did (or, in a dry run, would do)."""

    rule: str
    expired: int
    deleted: int
    anonymized: int
    held: int
    batches: int
    cutoff: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "cutoff": self.cutoff.isoformat()}


@attrs.frozen
class RetentionReport:
    """The outcome of each rule of one `apply_retention` run."""

    dry_run: bool
    ran_at: dt.datetime
    outcomes: tuple[RuleOutcome, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ran_at": self.ran_at.isoformat(),
            "outcomes": [o.to_dict() for o in self.outcomes],
        }

    def to_markdown(self) -> str:
        title = "Retention (dry run)" if self.dry_run else "Retention"
        lines = [
            f"# {title}, {self.ran_at.isoformat()}",
            "",
            "| rule | cutoff | expired | deleted | anonymized | held | batches |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {o.rule} | {o.cutoff.isoformat()} | {o.expired} | {o.deleted} | "
            f"{o.anonymized} | {o.held} | {o.batches} |"
            for o in self.outcomes
        ]
        return "\n".join(lines) + "\n"


def _check_rule(rule: RetentionRule) -> Shape:
    what = f"retention rule {rule.label}"
    try:
        shape = shape_of(rule.model)
    except NoInspectionAvailable:
        raise ConfigurationError(f"{what}: {rule.model!r} is not a mapped class") from None
    name = rule.model.__name__
    if rule.action not in ("delete", "anonymize"):
        raise ConfigurationError(f'{what}: action must be "delete" or "anonymize"')
    if not isinstance(rule.max_age, dt.timedelta) or rule.max_age <= dt.timedelta(0):
        raise ConfigurationError(f"{what}: max_age must be a positive timedelta")
    if len(shape.pk) != 1:
        raise ConfigurationError(f"{what}: {name} needs a single-column primary key")
    for key in (rule.age_column, rule.subject, rule.anonymized_marker):
        if key is not None and key not in shape.mapper.column_attrs:
            raise ConfigurationError(f"{what}: {name} has no column attribute {key!r}")
    age_type = shape.column(rule.age_column).type
    if isinstance(age_type, (Encrypted, BlindIndex)) or not isinstance(
        age_type, (Date, DateTime, TypeDecorator)
    ):
        raise ConfigurationError(f"{what}: {name}.{rule.age_column} is not a plain date column")
    if rule.action == "delete" and (rule.anonymize or rule.anonymized_marker):
        raise ConfigurationError(f'{what}: anonymize= needs action="anonymize"')
    if rule.action == "anonymize":
        check_anonymize(shape, rule.anonymize, what)
    return shape


def _bound(column: Column[Any], cutoff: dt.datetime, dialect: str) -> Any:
    """The cutoff as the age column compares with it (naive UTC where stored naive)."""
    column_type = column.type
    if isinstance(column_type, DateTime):
        if column_type.timezone and dialect == "postgresql":
            return cutoff
        return cutoff.replace(tzinfo=None)
    if isinstance(column_type, Date):
        return cutoff.date()
    return cutoff  # a TypeDecorator binds it as it needs


def apply_retention(
    session: Session,
    rules: Iterable[RetentionRule],
    *,
    now: dt.datetime | None = None,
    batch_size: int = 500,
    dry_run: bool = False,
    holds: LegalHolds | NoLegalHolds | None = None,
    trail: AuditTrail | None = None,
) -> RetentionReport:
    """Apply *rules*: each batch of *batch_size* expired rows is changed and committed in
    its own transaction, with one ``retention.delete`` / ``retention.anonymize`` audit
    event per batch (row count, rule, cutoff; no subject ids). A *dry_run* counts and
    writes nothing (no audit event either). *holds* is required, dry run too: the
    application's `LegalHolds`, or `NO_LEGAL_HOLDS` where no hold can apply (omitted,
    `ConfigurationError`). Rows of subjects under a legal hold are kept and counted as
    ``held`` (a holds table that does not verify raises `LegalHoldError`, and the batch
    being changed is rolled back); with a `LegalHolds`, every rule needs a *subject*
    (`ConfigurationError` otherwise), and the holds are checked again after a batch is
    changed and before it is committed: a hold placed meanwhile rolls the batch back and it
    is redone without the held rows (a hold placed during the commit itself is not seen).
    *trail* defaults to `default_trail`; unbound, it raises `ConfigurationError` before
    anything is changed (a dry run needs no trail).

    Every rule is checked before any row changes. *now* (default: the current time) must
    be timezone-aware; the cutoff of a rule is ``now - max_age``. Rows are selected in
    primary-key order, a batch at a time, so held rows do not stop the run.
    """
    checked_holds = required_holds(holds, "apply_retention")
    rules = list(rules)
    if type(batch_size) is not int or batch_size < 1:
        raise ConfigurationError("batch_size must be a positive int")
    ran_at = utc_now() if now is None else aware(now, "now")
    target = None if dry_run else (trail if trail is not None else default_trail.get())
    checked = [(rule, _check_rule(rule)) for rule in rules]
    for rule in rules:
        if checked_holds is not None and rule.subject is None:
            raise ConfigurationError(
                f"retention rule {rule.label} names no subject: with holds=, every rule needs "
                "subject= so that the rows of held subjects are kept"
            )
    outcomes = tuple(
        _apply(session, rule, shape, ran_at, batch_size, checked_holds, target)
        for rule, shape in checked
    )
    return RetentionReport(dry_run, ran_at, outcomes)


def _key(shape: Shape, rule: RetentionRule, value: Any) -> str | None:
    """The canonical key of a row's subject *value*, or None when it has none."""
    if value is None or rule.subject is None:
        return None
    try:
        return subject_key_of(shape, rule.subject, value)
    except ConfigurationError:
        return None


def _held(
    holds: LegalHolds | None,
    rule: RetentionRule,
    shape: Shape,
    batch: Any,
    known: frozenset[str],
) -> frozenset[str]:
    """The keys of the subjects of *batch* under a legal hold, with *known* ones."""
    if holds is None or rule.subject is None:
        return known
    keys = [_key(shape, rule, row[1]) for row in batch]
    return known | holds.held(key for key in keys if key is not None)


def _kept(
    holds: LegalHolds | None, rule: RetentionRule, shape: Shape, row: Any, held: frozenset[str]
) -> bool:
    """Whether *row* is kept for a legal hold (or because its subject has no key to check)."""
    if holds is None or rule.subject is None or row[1] is None:
        return False
    key = _key(shape, rule, row[1])
    return key is None or key in held


def _change(session: Session, rule: RetentionRule, shape: Shape, where: ColumnElement[bool]) -> int:
    """Delete or anonymize the rows *where* selects (not committed); how many changed."""
    if rule.action == "delete":
        return delete_rows(session, shape, [where])[0]
    return anonymize_rows(
        session,
        shape,
        [where],
        rule.anonymize,
        null_encrypted=False,
        marker=rule.anonymized_marker,
    )[0]


def _apply(
    session: Session,
    rule: RetentionRule,
    shape: Shape,
    ran_at: dt.datetime,
    batch_size: int,
    holds: LegalHolds | None,
    trail: AuditTrail | None,
) -> RuleOutcome:
    cutoff = ran_at - rule.max_age
    dialect = session.get_bind(mapper=shape.mapper).dialect.name
    age = shape.column(rule.age_column)
    pk = shape.column(shape.pk[0])
    conditions: list[ColumnElement[bool]] = [age < _bound(age, cutoff, dialect)]
    if rule.anonymized_marker is not None:
        marker = shape.column(rule.anonymized_marker)
        conditions.append(or_(marker.is_(None), marker != true()))
    selected: list[Any] = [pk]
    if rule.subject is not None:
        selected.append(shape.column(rule.subject))
    counts = {"expired": 0, "deleted": 0, "anonymized": 0, "held": 0, "batches": 0}
    last: Any = None
    done = 0
    while True:
        where = [*conditions, *([] if last is None else [pk > last])]
        query = select(*selected).where(*where).order_by(pk).limit(batch_size)
        batch = session.execute(query).all()
        if not batch:
            break
        last = batch[-1][0]
        counts["expired"] += len(batch)
        held = _held(holds, rule, shape, batch, frozenset())
        while True:
            ids = [row[0] for row in batch if not _kept(holds, rule, shape, row, held)]
            if not ids or trail is None:  # all held, or a dry run
                break
            try:
                done = _change(session, rule, shape, pk.in_(ids))
                late = _held(holds, rule, shape, batch, held)  # a hold placed meanwhile
                if late == held:
                    session.commit()
                    break
                session.rollback()
                held = late
            except BaseException:
                session.rollback()
                raise
        counts["held"] += len(batch) - len(ids)
        if not ids:
            continue
        counts["batches"] += 1
        if trail is None:  # a dry run
            counts["deleted" if rule.action == "delete" else "anonymized"] += len(ids)
            continue
        counts["deleted" if rule.action == "delete" else "anonymized"] += done
        trail.append(
            actor_event(
                f"retention.{rule.action}",
                resource_type=shape.table.name,
                extra={
                    "rule": rule.label,
                    "rows": done,
                    "held": len(batch) - len(ids),
                    "batch": counts["batches"],
                    "cutoff": cutoff.isoformat(),
                },
            )
        )
        trail.flush()
    return RuleOutcome(rule=rule.label, cutoff=cutoff, **counts)
