"""Data-subject rights: export (access, portability) and erasure across registered models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs
from sqlalchemy.orm import Session

from securecustomer.audit import AuditTrail
from securecustomer.keys import Keyring
from securecustomer.privacy._holds import LegalHolds

__all__ = [
    "ErasureMode",
    "ErasureReceipt",
    "SubjectExport",
    "SubjectModel",
    "erase_subject",
    "export_subject",
    "register_subject",
    "registered_subject_models",
]

ErasureMode = Literal["delete", "anonymize", "shred"]


@attrs.frozen(eq=False)
class SubjectModel:
    """How one mapped class holds data about a subject, and how to erase it.

    - ``subject``: the plain (unencrypted) attribute holding the subject id.
    - ``erase``: ``"delete"`` the rows; ``"anonymize"`` them (each attribute of
      ``anonymize`` is replaced by its transform's result, None sets NULL; every
      encrypted or blind-index column not listed is set to NULL); or ``"shred"``: keep
      the rows and destroy the subject's key scope (the model must be subject-scoped with
      `encrypt_rows`), blind indexes set to NULL.
    - ``export``: the attributes an export includes (default: every column attribute
      except blind-index columns).
    """

    model: type[Any]
    subject: str
    erase: ErasureMode
    anonymize: Mapping[str, Callable[[Any], Any] | None]
    export: tuple[str, ...] | None
    name: str


def register_subject(
    model: type[Any],
    *,
    subject: str,
    erase: ErasureMode = "delete",
    anonymize: Mapping[str, Callable[[Any], Any] | None] | None = None,
    export: Iterable[str] | None = None,
    name: str | None = None,
) -> SubjectModel:
    """Register *model* as holding data about the subject named by its *subject* attribute.

    Raises `ConfigurationError` for an unknown attribute, an encrypted *subject* column, a
    second registration, ``"shred"`` on a model that is not subject-scoped, or
    ``anonymize`` with another mode.

    Example:
        ```python
        register_subject(Customer, subject="id", erase="anonymize",
                         anonymize={"name": lambda _: "erased", "email": None})
        register_subject(Order, subject="customer_id", erase="shred")
        ```
    """
    raise NotImplementedError


def registered_subject_models() -> tuple[SubjectModel, ...]:
    """Every registered model, in registration order."""
    raise NotImplementedError


@attrs.frozen
class SubjectExport:
    """Everything held about one subject, decrypted, as JSON-ready values.

    ``records`` maps a model's name to its rows (attribute -> value: dates and datetimes
    as ISO 8601, Decimal as a string, bytes as base64, UUID as a string, an erased value
    as None and its attribute listed in ``erased``).
    """

    subject_id: str
    generated_at: dt.datetime
    records: Mapping[str, tuple[Mapping[str, Any], ...]]
    erased: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    consents: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, *, indent: int | None = 2) -> str:
        raise NotImplementedError


@attrs.frozen
class ErasureReceipt:
    """What `erase_subject` did; holds counts and key ids, never data.

    ``subject`` is the trail's pseudonym of the subject (the receipt may be kept after
    the erasure); ``event_id`` the id of the audit event that records it.
    """

    subject: str
    erased_at: dt.datetime
    deleted: Mapping[str, int]
    anonymized: Mapping[str, int]
    shredded: Mapping[str, int]
    blind_indexes_purged: int
    keys_destroyed: tuple[int, ...]
    event_id: str
    already_erased: bool

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def export_subject(
    session: Session,
    subject_id: object,
    *,
    trail: AuditTrail | None = None,
    models: Iterable[type[Any]] | None = None,
    consents: Any = None,
    reason: str | None = None,
) -> SubjectExport:
    """Every row about *subject_id* across the registered models, decrypted.

    Writes one ``subject.export`` audit event (the subject as the trail's pseudonym, the
    exported field names, the row counts) to *trail* (default: `default_trail`; an unbound
    slot raises `ConfigurationError` before anything is read). *consents* is a
    `ConsentLedger` whose history is included. Reads only.

    Example:
        ```python
        with Session(engine) as session:
            print(export_subject(session, 42, trail=trail).to_json())
        ```
    """
    raise NotImplementedError


def erase_subject(
    session: Session,
    subject_id: object,
    *,
    mode: ErasureMode | None = None,
    keyring: Keyring | None = None,
    trail: AuditTrail | None = None,
    holds: LegalHolds | None = None,
    consents: Any = None,
    models: Iterable[type[Any]] | None = None,
    reason: str | None = None,
) -> ErasureReceipt:
    """Erase *subject_id* everywhere: rows deleted or anonymized per model (or as *mode*
    says for every model), blind-index entries purged, the subject's key scopes destroyed,
    consent history (*consents*) deleted, and a ``subject.erase`` audit receipt written.

    Order, so that nothing is half-done: legal holds are checked first (`LegalHoldError`,
    nothing changed); the row changes are flushed and committed in the session's
    transaction; then the key scopes are destroyed (not transactional; an already
    destroyed or missing scope is fine); then the audit event. Running it again is safe:
    it finds nothing left and returns a receipt with ``already_erased=True``. The audit
    trail still verifies afterwards (events refer to subjects by pseudonym only).
    *keyring* defaults to the keyring the registered models' columns resolve.
    """
    raise NotImplementedError
