"""Encrypting a plaintext column in place: `encrypt_column` backfills, `swap_columns` swaps.

`encrypt_column` fills a new encrypted column from an existing plaintext column, batch by
batch (the NULLs of the encrypted column are its own checkpoint), and verifies every row;
`swap_columns` verifies again, then drops the plaintext column and gives its name to the
encrypted one. The table, its batches and transactions are those of `_jobs`, shared with
`reencrypt`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from sqlalchemy import JSON, Engine, Table, and_, text
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from securecustomer.exceptions import (
    ConfigurationError,
    ContextError,
    DecryptionError,
    KeyStateError,
    UnsupportedValueError,
)
from securecustomer.sqlalchemy._jobs import (
    FailedValue,
    Progress,
    _batches,
    _column,
    _Failures,
    _Plan,
    _prepare,
    _Unit,
    _update_guarded,
)
from securecustomer.sqlalchemy._types import Encrypted, Sealed

__all__ = ["EncryptColumnReport", "encrypt_column", "swap_columns"]


@attrs.frozen
class EncryptColumnReport:
    """What `encrypt_column` (or the check of `swap_columns`) found. Holds no secret.

    *verified* is None when verification was not asked for, else True when every row's
    encrypted value decrypts to its plaintext (NULL where the plaintext is NULL).
    *errors* counts plaintexts that could not be encrypted (a wrong type, a row without
    its subject), *conflicts* rows whose plaintext changed while the batch was worked on
    (both left NULL for the next run); *failures* lists the first 100 of either kind and
    of the *mismatches*.

    Example:
        ```python
        report = encrypt_column(engine, Customer, "email", "email_enc")
        assert report.ok, report.failures
        ```
    """

    table: str
    plaintext_column: str
    encrypted_column: str
    rows_scanned: int
    values_encrypted: int
    conflicts: int
    errors: int
    rows_verified: int
    mismatches: int
    verified: bool | None
    failures: tuple[FailedValue, ...]

    @property
    def ok(self) -> bool:
        """True when every value was encrypted and, if verified, every row matched."""
        return self.errors == 0 and self.conflicts == 0 and self.verified is not False


# -- encrypting a plaintext column in place -------------------------------------------------


def encrypt_column(
    bind: Engine | Session,
    target: type[Any] | Table,
    plaintext_column: str,
    encrypted_column: str,
    *,
    batch_size: int = 500,
    verify: bool = True,
    convert: Callable[[Any], Any] | None = None,
    progress: Progress | None = None,
) -> EncryptColumnReport:
    """Fill the encrypted column from the plaintext column, batch by batch, then verify.

    The migration of an existing plaintext column, in three steps:

    1. Add the new encrypted column, nullable, next to the plaintext one (Alembic:
       ``op.add_column("customers", sa.Column("email_enc", EncryptedString(
       context=("customers", "email")), nullable=True))``; declare it in the model the
       same way). Pin ``context`` to the *final* name if the encrypted column will take
       over the plaintext column's name: tokens are bound to their table and column.
       Application code should write both columns from now on.
    2. Backfill and verify: ``encrypt_column(engine, Customer, "email", "email_enc")``.
       Only rows whose encrypted column is NULL are filled, so the job is idempotent and
       resumes by itself after a kill (each batch is one transaction; the encrypted column
       is its own checkpoint). Each UPDATE is guarded by the plaintext read (except JSON
       columns, which SQL cannot compare), so a row changed meanwhile is left for the next
       run and counted as a conflict. Blind indexes (`BlindIndex`) of the encrypted column
       are filled in the same UPDATE. *convert* maps each plaintext to the value to
       encrypt (e.g. naive datetimes to aware ones). ``verify=True`` then decrypts every
       row and compares it with its plaintext (the report's *mismatches*).
    3. Swap, once the report is ``ok`` and nothing writes the plaintext column any more:
       `swap_columns` (checks again, then drops and renames), or by hand::

           ALTER TABLE customers DROP COLUMN email;                 -- op.drop_column
           ALTER TABLE customers RENAME COLUMN email_enc TO email;  -- op.alter_column(
                                                                    --   new_column_name=)

       Drop indexes and constraints on the plaintext column first (use a blind index to
       search the encrypted one). If the encrypted column keeps its own name, only drop
       the plaintext column.

    Example:
        ```python
        report = encrypt_column(engine, Customer, "email", "email_enc", batch_size=1000)
        assert report.ok, report.failures
        swap_columns(engine, Customer, "email", "email_enc")
        ```
    """
    plan, unit = _prepare(
        bind, target, batch_size, encrypted=[encrypted_column], plaintext=plaintext_column
    )
    raw = plan.raw
    plain, enc = raw.c[plaintext_column], raw.c[encrypted_column]
    todo = and_(enc.is_(None), plain.isnot(None))
    total = unit.scalar(plan.count(todo))
    if progress is not None:
        progress(0, total)
    guarded = not isinstance(_column(plan.table, plaintext_column).type, JSON)
    column_type = plan.encrypted[encrypted_column][1]
    failures = _Failures()
    scanned = encrypted = conflicts = 0
    for rows in _batches(plan, unit, batch_size, todo):
        sealed = _seal_batch(plan, rows, plaintext_column, encrypted_column, convert, failures)
        with unit.write() as conn:
            for pk, old, new_values in sealed:
                try:  # a token too long for its column is refused, never cut by the database
                    column_type.check_stored_size(new_values[encrypted_column], conn.dialect)
                except UnsupportedValueError as exc:
                    failures.add(encrypted_column, pk, str(exc), None)
                    continue
                # the plaintext read is not NULL (todo): its guard is plaintext = :old
                read = {encrypted_column: None, **({plaintext_column: old} if guarded else {})}
                if _update_guarded(conn, plan, pk, read, new_values):
                    encrypted += 1
                else:
                    conflicts += 1
        scanned += len(rows)
        if progress is not None:
            progress(scanned, max(total, scanned))
    rows_verified = mismatches = 0
    if verify:
        rows_verified, mismatches = _verify(
            plan, unit, plaintext_column, encrypted_column, batch_size, convert, failures
        )
    return EncryptColumnReport(
        table=plan.table.fullname,
        plaintext_column=plaintext_column,
        encrypted_column=encrypted_column,
        rows_scanned=scanned,
        values_encrypted=encrypted,
        conflicts=conflicts,
        errors=failures.count - mismatches,
        rows_verified=rows_verified,
        mismatches=mismatches,
        verified=(mismatches == 0) if verify else None,
        failures=tuple(failures.kept),
    )


def swap_columns(
    bind: Engine | Session,
    target: type[Any] | Table,
    plaintext_column: str,
    encrypted_column: str,
    *,
    batch_size: int = 500,
    convert: Callable[[Any], Any] | None = None,
) -> EncryptColumnReport:
    """Verify every row once more, then drop the plaintext column and rename the encrypted one.

    The last step of `encrypt_column`'s migration. Refuses (`ConfigurationError`, nothing
    changed) unless the encrypted column's tokens are bound to the plaintext column's name
    (``context=(table, plaintext_column)``: after the rename they must still decrypt) and
    every row verifies. It runs ``ALTER TABLE ... DROP COLUMN`` then ``ALTER TABLE ...
    RENAME COLUMN`` (SQLite 3.35+, PostgreSQL, MariaDB 10.5.2+), in one transaction where
    the database has transactional DDL. Stop every writer of the plaintext column first,
    drop indexes on it, and change the model afterwards: the *target* object still
    describes the old columns.

    Example:
        ```python
        swap_columns(engine, Customer, "email", "email_enc")
        # then in the model: email = mapped_column(EncryptedString())
        ```
    """
    plan, unit = _prepare(
        bind, target, batch_size, encrypted=[encrypted_column], plaintext=plaintext_column
    )
    column_type = plan.encrypted[encrypted_column][1]
    if column_type.names != (plan.table.name, plaintext_column):
        raise ConfigurationError(
            f"{plan.table.fullname}.{encrypted_column} binds its tokens to "
            f"{'.'.join(column_type.names)}: after the rename they would not decrypt; declare "
            f"it with context=({plan.table.name!r}, {plaintext_column!r}) before the backfill, "
            "or keep its name and only drop the plaintext column"
        )
    failures = _Failures()
    rows, mismatches = _verify(
        plan, unit, plaintext_column, encrypted_column, batch_size, convert, failures
    )
    if mismatches:
        first = failures.kept[0]
        raise ConfigurationError(
            f"{plan.table.fullname}: {mismatches} rows do not verify (first: primary key "
            f"{first.primary_key!r}: {first.reason}); nothing was changed: run encrypt_column() "
            "again"
        )
    with unit.write() as conn:
        quote = conn.dialect.identifier_preparer
        name = quote.format_table(plan.table)
        conn.execute(text(f"ALTER TABLE {name} DROP COLUMN {quote.quote(plaintext_column)}"))
        conn.execute(
            text(
                f"ALTER TABLE {name} RENAME COLUMN {quote.quote(encrypted_column)} "
                f"TO {quote.quote(plaintext_column)}"
            )
        )
    return EncryptColumnReport(
        table=plan.table.fullname,
        plaintext_column=plaintext_column,
        encrypted_column=encrypted_column,
        rows_scanned=0,
        values_encrypted=0,
        conflicts=0,
        errors=0,
        rows_verified=rows,
        mismatches=0,
        verified=True,
        failures=(),
    )


def _prefetch(plan: _Plan, name: str, rows: Sequence[Row[Any]]) -> None:
    """Load the subject keys of a batch with one key-store read."""
    if plan.config is None or plan.config.subject is None:
        return
    column_type = plan.encrypted[name][1]
    scopes = set()
    for row in rows:
        try:
            scopes.add(plan.locate(name, plan.values(row))[0])
        except (ConfigurationError, ContextError):
            continue  # reported when the row's value is worked on
    column_type.resolve_keyring().prefetch(scopes)


def _seal_batch(
    plan: _Plan,
    rows: Sequence[Row[Any]],
    plaintext: str,
    encrypted: str,
    convert: Callable[[Any], Any] | None,
    failures: _Failures,
) -> list[tuple[tuple[Any, ...], Any, dict[str, Any]]]:
    """(primary key, plaintext read, values to write) for every row that could be encrypted.

    The values are the stored token and the blind indexes of the encrypted column.
    """
    key, column_type = plan.encrypted[encrypted]
    indexes = {ix: plan.indexes[ix][1] for ix in plan.indexes_of(encrypted)}
    _prefetch(plan, encrypted, rows)
    out = []
    for row in rows:
        pk = plan.pk_of(row)
        old = row._mapping[plaintext]
        value = convert(old) if convert is not None else old
        try:
            if plan.config is not None:
                token = plan.config.seal(key, value, plan.values(row)).token
            else:
                column_type.check_value(value)
                token = column_type.cipher().encrypt(value, context=column_type.column_context())
            new_values: dict[str, Any] = {ix: index.token(value) for ix, index in indexes.items()}
        except (UnsupportedValueError, ConfigurationError, ContextError, KeyStateError) as exc:
            failures.add(encrypted, pk, str(exc), None)
            continue
        new_values[encrypted] = column_type.encode_token(token)
        out.append((pk, old, new_values))
    return out


def _verify(
    plan: _Plan,
    unit: _Unit,
    plaintext: str,
    encrypted: str,
    batch_size: int,
    convert: Callable[[Any], Any] | None,
    failures: _Failures,
) -> tuple[int, int]:
    """Decrypt every row's encrypted value and compare it with its plaintext."""
    key, column_type = plan.encrypted[encrypted]
    rows_verified = mismatches = 0
    for rows in _batches(plan, unit, batch_size):
        _prefetch(plan, encrypted, rows)
        for row in rows:
            rows_verified += 1
            reason = _check_row(plan, row, plaintext, encrypted, key, column_type, convert)
            if reason is not None:
                mismatches += 1
                failures.add(encrypted, plan.pk_of(row), reason, None)
    return rows_verified, mismatches


def _check_row(
    plan: _Plan,
    row: Row[Any],
    plaintext: str,
    encrypted: str,
    key: str,
    column_type: Encrypted,
    convert: Callable[[Any], Any] | None,
) -> str | None:
    """None when the row's encrypted value matches its plaintext, else why not."""
    plain, stored = row._mapping[plaintext], row._mapping[encrypted]
    if plain is None or stored is None:
        if plain is None and stored is None:
            return None
        return "not encrypted yet" if stored is None else "encrypted value without plaintext"
    try:
        token = column_type.decode_token(stored)
        if plan.config is not None:
            value = plan.config.open(key, Sealed(token), plan.values(row))
        else:
            value = column_type.cipher().decrypt(token, context=column_type.column_context())
    except (DecryptionError, ConfigurationError, ContextError) as exc:
        return f"does not decrypt: {exc}"
    expected = convert(plain) if convert is not None else plain
    if type(value) is not type(expected) or value != expected:
        return "decrypts to another value than the plaintext"
    return None
