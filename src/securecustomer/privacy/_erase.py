"""Subject erasure: rows deleted, anonymized or shredded, keys destroyed, an audit receipt."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from sqlalchemy.orm import Session
from sqlalchemy.schema import sort_tables

from securecustomer.audit import AuditTrail, default_trail
from securecustomer.crypto import KeyState
from securecustomer.exceptions import ConfigurationError, KeyNotFoundError, LegalHoldError
from securecustomer.keys import Keyring
from securecustomer.privacy._holds import LegalHolds
from securecustomer.privacy._rows import (
    Shape,
    anonymize_rows,
    delete_rows,
    shred_rows,
    subject_value,
)
from securecustomer.privacy._subjects import (
    MODES,
    ErasureMode,
    SubjectModel,
    check_subject_anonymize,
    chosen_models,
    model_shape,
    subject_event,
)

__all__ = ["ErasureReceipt", "erase_subject"]


@attrs.frozen
class ErasureReceipt:
    """What `erase_subject` did; holds counts and key ids, never data.

    ``subject`` is the trail's pseudonym of the subject (the receipt may be kept after
    the erasure); ``event_id`` the id of the audit event that records it. The counts are
    of what this run changed: rows deleted, rows anonymized (whose values changed), rows
    shredded (kept, their key destroyed or their blind indexes purged now), blind-index
    values set to NULL or deleted, and the ids of the data keys destroyed now.
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
        return {
            "subject": self.subject,
            "erased_at": self.erased_at.isoformat(),
            "deleted": dict(self.deleted),
            "anonymized": dict(self.anonymized),
            "shredded": dict(self.shredded),
            "blind_indexes_purged": self.blind_indexes_purged,
            "keys_destroyed": list(self.keys_destroyed),
            "event_id": self.event_id,
            "already_erased": self.already_erased,
        }


def _destroy(keyring: Keyring, scope: str) -> list[int]:
    """Destroy *scope*'s live keys; the ids of those destroyed now (none when gone)."""
    live = [r.key_id for r in keyring.store.data_keys(scope) if r.state is not KeyState.DESTROYED]
    if not live:
        return []
    try:
        keyring.destroy(scope)
    except KeyNotFoundError:
        return []
    return live


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
    *keyring* defaults to the keyring the registered models' columns resolve. Rows are
    changed child tables first (foreign keys); *models* restricts the erasure to those
    registered models.
    """
    target = trail if trail is not None else default_trail.get()
    if mode is not None and mode not in MODES:
        raise ConfigurationError(f"mode must be one of {', '.join(MODES)}")
    plan: list[tuple[SubjectModel, Shape, str]] = []
    for registered in chosen_models(models):
        shape = model_shape(registered.model)
        how: str = mode or registered.erase
        what = f"erase_subject({registered.name})"
        if how == "shred" and not shape.subject_scoped:
            raise ConfigurationError(f'{what}: mode="shred" needs a subject-scoped model')
        if how == "anonymize":
            check_subject_anonymize(shape, registered.anonymize, what)
        plan.append((registered, shape, how))
    order = {t: i for i, t in enumerate(reversed(sort_tables({s.table for _, s, _ in plan})))}
    plan.sort(key=lambda item: order[item[1].table])
    scopes: dict[tuple[int, str], tuple[Keyring, str]] = {}
    scope_of: dict[str, tuple[int, str]] = {}
    for registered, shape, _ in plan:
        if shape.rows is not None and shape.subject_scoped:
            ring = keyring if keyring is not None else shape.rows.keyring()
            scope = f"{shape.rows.subject_prefix}{subject_id}"
            scopes[(id(ring), scope)] = (ring, scope)
            scope_of[registered.name] = (id(ring), scope)
    if holds is not None:
        active = holds.active(subject_id)
        if active:
            ids = tuple(h.id for h in active)
            raise LegalHoldError(
                f"{len(ids)} active legal hold(s) forbid erasing this subject: {', '.join(ids)}",
                subject=str(subject_id),
                hold_ids=ids,
            )
    deleted: dict[str, int] = {}
    anonymized: dict[str, int] = {}
    shredded: dict[str, tuple[int, int]] = {}
    purged = 0
    try:
        session.flush()  # the caller's pending changes first, so none is written after
        for registered, shape, how in plan:
            where = [
                shape.column(registered.subject)
                == subject_value(shape, registered.subject, subject_id)
            ]
            if how == "delete":
                deleted[registered.name], cells = delete_rows(session, shape, where)
            elif how == "anonymize":
                anonymized[registered.name], cells = anonymize_rows(
                    session, shape, where, registered.anonymize, null_encrypted=True
                )
            else:
                rows, touched, cells = shred_rows(session, shape, where)
                shredded[registered.name] = (rows, touched)
            purged += cells
        session.commit()
    except BaseException:
        session.rollback()
        raise
    destroyed: dict[tuple[int, str], list[int]] = {
        key: _destroy(ring, scope) for key, (ring, scope) in scopes.items()
    }
    shred_counts = {
        name: rows if destroyed.get(scope_of[name]) else touched
        for name, (rows, touched) in shredded.items()
    }
    key_ids = tuple(sorted(k for ids in destroyed.values() for k in ids))
    forgotten = 0 if consents is None else int(consents.forget(subject_id))
    already = not (
        any(deleted.values())
        or any(anonymized.values())
        or any(shred_counts.values())
        or purged
        or key_ids
        or forgotten
    )
    pseudonym = target.pseudonym(subject_id)
    event = subject_event(
        "subject.erase",
        pseudonym,
        reason,
        extra={
            "deleted": deleted,
            "anonymized": anonymized,
            "shredded": shred_counts,
            "blind_indexes_purged": purged,
            "keys_destroyed": list(key_ids),
            "consents_forgotten": forgotten,
            "already_erased": already,
        },
    )
    target.append(event)
    target.flush()
    return ErasureReceipt(
        subject=pseudonym,
        erased_at=event.timestamp,
        deleted=deleted,
        anonymized=anonymized,
        shredded=shred_counts,
        blind_indexes_purged=purged,
        keys_destroyed=key_ids,
        event_id=event.id,
        already_erased=already,
    )
