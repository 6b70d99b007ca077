"""Subject erasure: rows deleted, anonymized or shredded, keys destroyed, an audit receipt."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from sqlalchemy import inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.base import NO_VALUE
from sqlalchemy.schema import sort_tables

from securecustomer.audit import AuditTrail, default_trail
from securecustomer.crypto import KeyState
from securecustomer.exceptions import ConfigurationError, KeyNotFoundError, LegalHoldError
from securecustomer.keys import Keyring
from securecustomer.privacy._holds import LegalHolds, NoLegalHolds, required_holds
from securecustomer.privacy._rows import (
    Shape,
    anonymize_rows,
    delete_rows,
    follow_path,
    lock_rows,
    select_rows,
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
    subject_keys,
    subject_rows,
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


def _check_holds(holds: LegalHolds | None, names: Iterable[str], subject: str) -> None:
    """Raise `LegalHoldError` when a hold is active on the subject under any of *names*."""
    if holds is None:
        return
    active = sorted({h.id for name in sorted(names) for h in holds.active(name)})
    if active:
        raise LegalHoldError(
            f"{len(active)} active legal hold(s) forbid erasing this subject: {', '.join(active)}",
            subject=str(subject),
            hold_ids=tuple(active),
        )


def _forget_loaded(session: Session, plan: Iterable[tuple[SubjectModel, Shape, str, Any]]) -> None:
    """Expire the objects of *session* that hold the erased rows, so that they return the
    erased values on their next access instead of the plaintexts they loaded (a session
    with ``expire_on_commit=False`` keeps them otherwise); objects of deleted rows are
    expunged too. An object whose subject attribute is not loaded is expired in case."""
    for obj in list(session.identity_map.values()):
        state = inspect(obj)
        for registered, shape, how, value in plan:
            if not state.mapper.isa(shape.mapper):
                continue
            loaded = NO_VALUE if registered.via else state.dict.get(registered.subject, NO_VALUE)
            if loaded is NO_VALUE:
                session.expire(obj)
            elif type(loaded) is type(value) and loaded == value:
                session.expire(obj)
                if how == "delete":
                    session.expunge(obj)
                break


def _path_scopes(
    session: Session,
    registered: SubjectModel,
    shape: Shape,
    where: Any,
    keyring: Keyring | None,
    scopes: dict[tuple[int, str], tuple[Keyring, str]],
    scope_of: dict[str, list[tuple[int, str]]],
) -> None:
    """Add the key scopes the rows of a model registered ``via=`` a path are encrypted
    under (its own subject column's values, e.g. one scope per order) to *scopes*."""
    rows = shape.rows
    if rows is None or rows.subject is None:  # not subject-scoped: no key of its own
        return
    ring = keyring if keyring is not None else rows.keyring()
    for row in select_rows(session, shape, (rows.subject,), where):
        if row[rows.subject] is not None:
            scope = f"{rows.subject_prefix}{row[rows.subject]}"  # as the ORM names it
            scopes[(id(ring), scope)] = (ring, scope)
            scope_of.setdefault(registered.name, []).append((id(ring), scope))


def erase_subject(
    session: Session,
    subject_id: object,
    *,
    mode: ErasureMode | None = None,
    keyring: Keyring | None = None,
    trail: AuditTrail | None = None,
    holds: LegalHolds | NoLegalHolds | None = None,
    consents: Any = None,
    models: Iterable[type[Any]] | None = None,
    reason: str | None = None,
) -> ErasureReceipt:
    """Erase *subject_id* everywhere: rows deleted or anonymized per model (or as *mode*
    says for every model), blind-index entries purged, the subject's key scopes destroyed,
    consent history (*consents*) deleted, and a ``subject.erase`` audit receipt written.

    *holds* is required: the application's `LegalHolds`, or `NO_LEGAL_HOLDS` where no hold
    can apply (omitted, `ConfigurationError` before anything is read). Order, so that
    nothing is half-done: legal holds are checked first (`LegalHoldError`, nothing changed;
    a holds table that does not verify raises it too), and the consent ledger is verified
    (`AuditError`, nothing changed); the holds are checked again after the row changes and
    before they are committed (a hold placed meanwhile rolls them back; one placed during
    the commit is not seen); the row changes are flushed and committed in the session's
    transaction (with any pending change of the caller's); then the key scopes are destroyed
    (not transactional; an already destroyed or missing scope is fine); then the audit
    event. Running it again is safe: it finds nothing left and returns a receipt with
    ``already_erased=True``. The audit trail still verifies afterwards (events refer to
    subjects by pseudonym only).
    *keyring* defaults to the keyring the registered models' columns resolve. Rows are
    changed child tables first (foreign keys); *models* restricts the erasure to those
    registered models.

    *subject_id* is converted to each model's subject column type; a non-canonical form
    (``"042"`` for 42, a string with white space at its ends) raises `ConfigurationError`,
    and strings match exactly, whatever the column's collation. Holds and consents are
    looked up under the canonical key (`canonical_subject_key`) of the id as each model's
    column holds it, and the audit pseudonym is made of that key.

    The subject's rows of every model are locked before any is read or changed (``SELECT
    ... FOR UPDATE`` on PostgreSQL and MariaDB; on SQLite, which has no row locks, the
    database's write lock): a concurrent write of them waits until the erasure commits, so
    no value written while the erasure runs is left in an erased row. A write that waited
    runs after the commit, as any later write of the application would (stop writes for
    the subject first).

    What it does not reach: models not registered (a subject-scoped `encrypt_rows` model
    too: its key scope is destroyed only through a registered model); plain columns that
    ``anonymize`` does not list; and ciphertext of deleted or anonymized rows of models
    that are not subject-scoped, which stays readable in database backups and replicas
    for as long as their column key lives (only a destroyed subject key shreds copies).
    A row of the subject inserted concurrently, after its table was erased, survives (in
    a subject-scoped model unreadable once the key is destroyed): stop writes for the
    subject first. The objects of the erased rows in *session* are expired (deleted ones
    expunged) after the commit, even with ``expire_on_commit=False``; objects that *other*
    sessions loaded cannot be reached and keep their values until those sessions expire
    them. Forgetting *consents* also deletes opt-outs (sale, sharing): keep the
    subject out of such processing by other means if any of its data remains.
    """
    checked = required_holds(holds, "erase_subject")
    target = trail if trail is not None else default_trail.get()
    if mode is not None and mode not in MODES:
        raise ConfigurationError(f"mode must be one of {', '.join(MODES)}")
    plan: list[tuple[SubjectModel, Shape, str, Any]] = []
    for registered in chosen_models(models):
        shape = model_shape(registered.model)
        how: str = mode or registered.erase
        what = f"erase_subject({registered.name})"
        if how == "shred" and not shape.subject_scoped:
            raise ConfigurationError(f'{what}: mode="shred" needs a subject-scoped model')
        if how == "anonymize":
            check_subject_anonymize(shape, registered.anonymize, what)
        end = follow_path(shape, registered.via)  # the model itself when not registered via=
        value = subject_value(end, registered.subject, subject_id)
        plan.append((registered, shape, how, value))
    order = {t: i for i, t in enumerate(reversed(sort_tables({p[1].table for p in plan})))}
    plan.sort(key=lambda item: order[item[1].table])
    scopes: dict[tuple[int, str], tuple[Keyring, str]] = {}
    scope_of: dict[str, list[tuple[int, str]]] = {}
    names = subject_keys([(r, s) for r, s, _, _ in plan], subject_id)
    for registered, shape, _, value in plan:
        if shape.rows is not None and shape.subject_scoped and not registered.via:
            ring = keyring if keyring is not None else shape.rows.keyring()
            scope = f"{shape.rows.subject_prefix}{value}"  # as the ORM names it
            scopes[(id(ring), scope)] = (ring, scope)
            scope_of[registered.name] = [(id(ring), scope)]
    _check_holds(checked, names, names[0])
    if consents is not None:
        for name in sorted(names):
            consents.history(name)  # verified now: forgetting it must not fail after the erasure
    deleted: dict[str, int] = {}
    anonymized: dict[str, int] = {}
    shredded: dict[str, tuple[int, int]] = {}
    purged = 0
    try:
        session.flush()  # the caller's pending changes first, so none is written after
        found = [subject_rows(session, p[0], p[1], subject_id) for p in plan]  # before changes
        for (_, shape, _, _), (where, _) in zip(plan, found, strict=True):
            lock_rows(session, shape, where)  # no concurrent write until committed
        for (registered, shape, _, _), (where, _) in zip(plan, found, strict=True):
            if registered.via:
                _path_scopes(session, registered, shape, where, keyring, scopes, scope_of)
        for (registered, shape, how, _), (where, match) in zip(plan, found, strict=True):
            if how == "delete":
                deleted[registered.name], cells = delete_rows(
                    session, shape, where, match, lock=True
                )
            elif how == "anonymize":
                anonymized[registered.name], cells = anonymize_rows(
                    session,
                    shape,
                    where,
                    registered.anonymize,
                    null_encrypted=True,
                    match=match,
                    lock=True,
                )
            else:
                rows, touched, cells = shred_rows(session, shape, where, match, lock=True)
                shredded[registered.name] = (rows, touched)
            purged += cells
        _check_holds(checked, names, names[0])  # a hold placed meanwhile: nothing committed
        session.commit()
    except BaseException:
        session.rollback()
        raise
    _forget_loaded(session, plan)
    destroyed: dict[tuple[int, str], list[int]] = {
        key: _destroy(ring, scope) for key, (ring, scope) in scopes.items()
    }
    shred_counts = {
        name: rows if any(destroyed.get(key) for key in scope_of.get(name, ())) else touched
        for name, (rows, touched) in shredded.items()
    }
    key_ids = tuple(sorted(k for ids in destroyed.values() for k in ids))
    forgotten = 0 if consents is None else sum(int(consents.forget(n)) for n in sorted(names))
    already = not (
        any(deleted.values())
        or any(anonymized.values())
        or any(shred_counts.values())
        or purged
        or key_ids
        or forgotten
    )
    pseudonym = target.pseudonym(names[0])
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
