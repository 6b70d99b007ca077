"""Retention: delete or anonymize rows older than their maximum age, in batches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs
from sqlalchemy.orm import Session

from securecustomer.audit import AuditTrail
from securecustomer.privacy._holds import LegalHolds

__all__ = ["RetentionReport", "RetentionRule", "RuleOutcome", "apply_retention"]


@attrs.frozen(eq=False)
class RetentionRule:
    """Rows of *model* whose *age_column* is older than *max_age* are deleted or anonymized.

    *subject* names the attribute holding the subject id, which legal holds are checked
    against (rows of a held subject are kept). ``action="anonymize"`` replaces each
    attribute of *anonymize* by its transform's result (None sets NULL) and sets blind
    indexes to NULL; *anonymized_marker*, when given, is an attribute set to True so an
    anonymized row is not selected again.

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


@attrs.frozen
class RetentionReport:
    dry_run: bool
    ran_at: dt.datetime
    outcomes: tuple[RuleOutcome, ...]

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_markdown(self) -> str:
        raise NotImplementedError


def apply_retention(
    session: Session,
    rules: Iterable[RetentionRule],
    *,
    now: dt.datetime | None = None,
    batch_size: int = 500,
    dry_run: bool = False,
    holds: LegalHolds | None = None,
    trail: AuditTrail | None = None,
) -> RetentionReport:
    """Apply *rules*: each batch of *batch_size* expired rows is changed and committed in
    its own transaction, with one ``retention.delete`` / ``retention.anonymize`` audit
    event per batch (row count, rule, cutoff; no subject ids). A *dry_run* counts and
    writes nothing (no audit event either). Rows of subjects under a legal hold are kept
    and counted as ``held``. *trail* defaults to `default_trail`; unbound, it raises
    `ConfigurationError` before anything is changed (a dry run needs no trail).
    """
    raise NotImplementedError
