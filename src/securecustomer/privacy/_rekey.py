"""The migration of legal holds and consent records stored under another spelling of
their subject's id than its canonical key (`canonical_subject_key`).

Before keys were canonical, a hold or a consent was stored under ``str()`` of the id as
given: ``"042"``, ``"42 "``, an upper-case UUID. Such rows are invisible to the lookups,
which use the canonical key only (a hold that does not stop an erasure, an opt-out that
does not stop a sale). The tables of those versions are not chained either: the order is
`rekey_subject_ids` (the ids to their keys), then ``migrate()`` (chain the table), which
refuses a row whose id is not its canonical key. A chained table is never rekeyed: its
ids are chained content (a rewrite would break the chain) and canonical by construction
(refused when recorded); there it checks that and rewrites nothing.

`rekey_subject_ids` rewrites the subject column to the canonical key, in one
transaction; a row whose stored id is no spelling of an id of the subject type (``"abc"``
for int ids, a string with white space at its ends for str ids) is a conflict a person
has to resolve: the whole migration is refused and nothing changes. Moving a consent
record to the canonical key merges its history with the records already there; the
ledger's rule (the latest record of a purpose decides, in the order the records were
written) then applies to the merged history.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, inspect, select, update
from sqlalchemy.engine import Connection

from securecustomer.exceptions import ConfigurationError
from securecustomer.privacy._subject_key import SUBJECT_TYPES, canonical_subject_key

if TYPE_CHECKING:
    from securecustomer.privacy._consent import ConsentLedger
    from securecustomer.privacy._holds import LegalHolds

__all__ = ["rekey_subject_ids"]


def _legacy_key(stored: str, subject_type: type[Any]) -> str:
    """The canonical key of a stored id, read as leniently as ``str()`` may have written it."""
    if subject_type is str:
        return canonical_subject_key(stored, str)
    try:
        value: object = int(stored) if subject_type is int else uuid.UUID(stored.strip())
    except ValueError:
        raise ConfigurationError(f"the subject id is not a valid {subject_type.__name__}") from None
    return canonical_subject_key(value, subject_type)


def _chained(conn: Connection, table: Table) -> bool:
    """Whether *table* is chained: it has the chain's columns and its ledger's head."""
    if "seq" not in {c["name"] for c in inspect(conn).get_columns(table.name)}:
        return False
    return conn.execute(select(table.c.id).where(table.c.seq == 0)).first() is not None


def rekey_subject_ids(
    store: LegalHolds | ConsentLedger, subject_type: type[Any], *, dry_run: bool = False
) -> int:
    """Rewrite the subject ids of *store*'s rows (a `LegalHolds` or a `ConsentLedger`) that
    are another spelling of an id of *subject_type* (int, str or uuid.UUID) to its
    canonical key; returns how many rows were (with *dry_run*: would be) rewritten.

    Run it once per table of an earlier version, before its ``migrate()`` chains it, with
    the type of the subject column the table's ids belong to; running it again rewrites
    nothing. Raises `ConfigurationError` naming the table and the row (never the id) when
    a stored id has no canonical key, before anything is changed. On a chained table it
    rewrites nothing: it returns 0 when every id is its canonical key, and raises
    `ConfigurationError` naming the row otherwise (the row was changed outside the ledger:
    ``verify()`` fails on it too).

    Example:
        ```python
        holds = LegalHolds(engine, key=settings.ledger_key)
        rekey_subject_ids(holds, int)
        holds.migrate()
        ```
    """
    from securecustomer.privacy._consent import ConsentLedger
    from securecustomer.privacy._holds import LegalHolds

    if not isinstance(store, (LegalHolds, ConsentLedger)):
        raise ConfigurationError("rekey_subject_ids takes a LegalHolds or a ConsentLedger")
    if subject_type not in SUBJECT_TYPES:
        raise ConfigurationError("subject_type must be int, str or uuid.UUID")
    table = store.table
    with store.engine.begin() as conn:
        chained = _chained(conn, table)
        query = select(table.c.id, table.c.subject_id).order_by(table.c.id)
        if chained:  # its records: the heads repeat their subject's id, the ledger's is ""
            query = query.where(table.c.seq >= 1)
        moves: dict[str, list[Any]] = {}
        for row_id, stored in conn.execute(query):
            if chained and stored == "":  # a tombstone (exact, whatever the collation)
                continue
            try:
                key = _legacy_key(stored, subject_type)
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"{table.name}, row {row_id}: {exc}; nothing was changed "
                    "(correct or delete the row, then run the migration again)"
                ) from None
            if key != stored and chained:
                raise ConfigurationError(
                    f"{table.name}, row {row_id}: the subject id is not its canonical key, in "
                    "a chained table (changed outside the ledger: verify() fails on it); a "
                    "chained id is never rewritten, nothing was changed (rekey_subject_ids "
                    "is for tables of an earlier version, before migrate())"
                )
            if key != stored:
                moves.setdefault(str(key), []).append(row_id)
        if not dry_run:
            for key, ids in moves.items():
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    conn.execute(update(table).where(table.c.id.in_(chunk)).values(subject_id=key))
    return sum(len(ids) for ids in moves.values())
