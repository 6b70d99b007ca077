"""Jobs over whole tables: re-encrypt to the current keys, encrypt a plaintext column in place.

- `reencrypt` moves every value of a model to its scope's current data key (after
  `Keyring.rotate`), batch by batch, resumable from a checkpoint row in the same database.
- `encrypt_column` backfills a new encrypted column from an existing plaintext column and
  verifies every row; `swap_columns` then drops the plaintext column and gives its name to
  the encrypted one.

Every batch is read, worked out (decrypt, encrypt) before anything is written, and written in
one short transaction whose UPDATEs are guarded by what was read (``WHERE pk = :pk AND
col = :token_read``): a row that another writer changed meanwhile keeps that writer's value
and is counted as a conflict. A killed job loses nothing: each committed batch is complete,
the batch in flight rolls back, and the next run continues.

Example:
    ```python
    keyring.rotate("customers.email")
    report = reencrypt(engine, Customer)             # or: securecustomer keys reencrypt
    print(report.values_reencrypted, report.errors)
    ```

This module holds `reencrypt` and its report; the batch it works out and writes is in
`_rekey`, its checkpoint in `_checkpoint`, `encrypt_column` and `swap_columns` in
`_migrate` (re-exported here), and what the jobs share (the table plan, batches,
transactions, `FailedValue`) in `_jobs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from sqlalchemy import Engine, Table
from sqlalchemy.orm import Session

from securecustomer.sqlalchemy._checkpoint import (
    CHECKPOINT_TABLE,
    _Checkpoint,
    _encode_position,
    _fingerprint,
)
from securecustomer.sqlalchemy._jobs import FailedValue, Progress, _batches, _prepare
from securecustomer.sqlalchemy._migrate import EncryptColumnReport, encrypt_column, swap_columns
from securecustomer.sqlalchemy._rekey import _Tally, _work_out, _write

__all__ = [
    "CHECKPOINT_TABLE",
    "EncryptColumnReport",
    "FailedValue",
    "ReencryptReport",
    "encrypt_column",
    "reencrypt",
    "swap_columns",
]


@attrs.frozen
class ReencryptReport:
    """What `reencrypt` did (or, with ``dry_run=True``, would do). Holds no secret.

    Counts cover the rows this run scanned: a run resumed from a checkpoint
    (*resumed_from* is the primary key it started after) does not see earlier batches.
    *key_ids_before* counts the values per key id as found; *key_ids_after* as the run
    left them (rows with conflicts are not in it). Values whose key was destroyed
    (crypto-shredded subjects) are *values_destroyed*: left as they are, never an error.
    *indexes_updated* counts blind-index values recomputed. *errors* counts the values
    that could not be moved; *failures* lists the first 100.

    Example:
        ```python
        report = reencrypt(engine, Customer)
        if not report.ok:
            raise SystemExit(f"{report.errors} values could not be re-encrypted")
        ```
    """

    table: str
    dry_run: bool
    resumed_from: tuple[Any, ...] | None
    rows_scanned: int
    rows_changed: int
    values_reencrypted: int
    values_current: int
    values_destroyed: int
    indexes_updated: int
    conflicts: int
    errors: int
    failures: tuple[FailedValue, ...]
    key_ids_before: Mapping[int, int]
    key_ids_after: Mapping[int, int]

    @property
    def ok(self) -> bool:
        """True when no value failed (destroyed values and conflicts are not failures)."""
        return self.errors == 0


def reencrypt(
    bind: Engine | Session,
    model: type[Any] | Table,
    *,
    batch_size: int = 500,
    checkpoint: str | None = CHECKPOINT_TABLE,
    dry_run: bool = False,
    progress: Progress | None = None,
    migrate_schema: bool = False,
) -> ReencryptReport:
    """Move every encrypted value of *model* to its key scope's current data key.

    Run it after `Keyring.rotate`. Rows are read in primary-key order, *batch_size* at a
    time; only the key id in each token's header is compared with the scope's current key
    (no decryption), so values already current cost almost nothing. Stale ones (an older
    key, or not the algorithm of the column's ``deterministic`` setting) are decrypted and
    encrypted again with the row's own context and scope, row-bound and subject-scoped
    models (`encrypt_rows`) included. Each batch is written in one transaction, each
    UPDATE guarded by the token read, so a concurrent writer's newer value is never
    overwritten (the row counts as a conflict and keeps that value).

    Blind indexes (`BlindIndex` columns) of moved values are recomputed under the current
    key in the same UPDATE. An index's bytes do not name their key version, so while the
    index's scope has more than one usable version (a rotation in progress), every indexed
    value is decrypted to check its index; this also catches an index scope rotated under
    subject-scoped values. A search only matches indexes of usable versions: run the job
    before disabling an old version.

    The job is idempotent and safe to kill at any moment: a committed batch is complete,
    the batch in flight rolls back, and the next run continues after the last committed
    batch (or starts at the top if a key of the job's scopes was rotated meanwhile). A
    complete run deletes its checkpoint. Database errors are not caught: the batch in
    flight rolls back and the next run resumes.

    Values that cannot be moved are counted and listed in the report, never fatal: those
    whose key was destroyed (crypto-shredded subjects: *values_destroyed*, left as they
    are, not an error) and errors (a disabled or unknown key, a token that does not
    decrypt, a scope without an active key).

    Other processes keep encrypting with a rotated key for up to their keyring's
    ``cache_ttl``: start the job after that, then check with a dry run that nothing is
    left. The old key versions can then be disabled; the job never does it itself.

    Parameters:
        bind: an Engine (one transaction per batch), or a Session, committed once per
            batch (it must hold no unflushed changes).
        model: a mapped class, or a Table.
        batch_size: rows per transaction.
        checkpoint: the table that keeps one row per job, the last primary key of the
            last committed batch, written in that batch's transaction; created on first
            use. ``None`` keeps no checkpoint: every run starts at the top.
        dry_run: decrypt but write nothing (checkpoint included); count what would change.
        progress: called as ``progress(rows_done, rows_total)`` at the start and after
            each batch.
        migrate_schema: the table is in a schema (its own, or one the bind's
            ``schema_translate_map`` gives it) and holds values written before
            securecustomer bound schemas: read each value that does not decrypt bound to
            the schema as written then (no schema in the context, key scope
            ``table.column``), and encrypt it again bound to the schema. Values already
            bound to it are left alone, so the job can be resumed or run again.

    Example:
        ```python
        keyring.rotate("customers.email")
        report = reencrypt(engine, Customer, batch_size=1000)
        check = reencrypt(engine, Customer, dry_run=True)  # a full scan, writes nothing
        if report.ok and check.ok and check.values_reencrypted == check.indexes_updated == 0:
            for key in keyring.status():  # versions no value of the table uses any more
                if (
                    key.scope == "customers.email"
                    and key.state is KeyState.DECRYPT_ONLY
                    and key.key_id not in check.key_ids_before
                ):
                    keyring.set_state(key.key_id, KeyState.DISABLED)
        ```
    """
    plan, unit = _prepare(bind, model, batch_size)
    job = _Checkpoint(checkpoint, plan) if checkpoint is not None and not dry_run else None
    fingerprint = _fingerprint(plan) if job is not None else ""
    start = job.load(unit, fingerprint) if job is not None else None
    total = unit.scalar(plan.count())
    done = 0
    if start is not None:
        done = total - unit.scalar(plan.count(plan.after(start)))
    if progress is not None:
        progress(done, total)
    tally = _Tally()
    for rows in _batches(plan, unit, batch_size, start=start):
        changes = _work_out(plan, rows, tally, dry_run=dry_run, migrate_schema=migrate_schema)
        position = plan.pk_of(rows[-1])
        if not dry_run:
            saved = _encode_position(position, plan) if job is not None else ""
            with unit.write() as conn:
                written = _write(conn, plan, changes)
                if job is not None:
                    job.save(conn, saved, fingerprint)
        else:
            written = [True] * len(changes)
        for (_, columns), ok in zip(changes, written, strict=True):
            if not ok:
                tally.conflicts += 1
                continue
            tally.rows_changed += 1
            moved = [new_id for _, _, new_id in columns.values() if new_id is not None]
            tally.reencrypted += len(moved)
            tally.indexes += len(columns) - len(moved)
            tally.after.update(moved)
        tally.rows += len(rows)
        done += len(rows)
        if progress is not None:
            progress(done, max(total, done))
    if job is not None:
        with unit.write() as conn:
            job.clear(conn)
    return ReencryptReport(
        table=plan.table.fullname,
        dry_run=dry_run,
        resumed_from=start,
        rows_scanned=tally.rows,
        rows_changed=tally.rows_changed,
        values_reencrypted=tally.reencrypted,
        values_current=tally.current,
        values_destroyed=tally.destroyed,
        indexes_updated=tally.indexes,
        conflicts=tally.conflicts,
        errors=tally.failures.count,
        failures=tuple(tally.failures.kept),
        key_ids_before=dict(sorted(tally.before.items())),
        key_ids_after=dict(sorted(tally.after.items())),
    )
