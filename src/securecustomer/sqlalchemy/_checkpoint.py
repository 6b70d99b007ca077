"""Where `reencrypt` resumes: one checkpoint row per table, and the keys it was made for.

The checkpoint table holds, per job (the table's full name), the primary key of the last
committed batch as JSON (int, str, UUID or bytes parts) and a fingerprint of the rotated
keys of the job's scopes; a checkpoint with another fingerprint is stale and ignored.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import uuid
from typing import Any, Final

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from securecustomer.exceptions import ConfigurationError
from securecustomer.sqlalchemy._jobs import _Plan, _Unit

__all__ = ["CHECKPOINT_TABLE"]

#: The default name of the table where `reencrypt` keeps one checkpoint row per table.
CHECKPOINT_TABLE: Final = "securecustomer_reencrypt_progress"


# -- checkpoints ----------------------------------------------------------------------------


class _Checkpoint:
    """One row per table in the checkpoint table: the last primary key of a committed batch.

    It is written in the transaction of the batch it describes, so it never claims a batch
    that did not commit. *fingerprint* identifies the rotated keys of the job's scopes: if a
    key was rotated since, the checkpoint is stale and the job starts again from the top.
    """

    def __init__(self, name: str, plan: _Plan) -> None:
        self.job = plan.table.fullname
        self.table = Table(
            name,
            MetaData(),
            Column("job", String(255), primary_key=True),
            Column("position", Text, nullable=False),
            Column("fingerprint", String(64), nullable=False),
            Column("updated_at", DateTime, nullable=False),
        )

    def load(self, unit: _Unit, fingerprint: str) -> tuple[Any, ...] | None:
        with unit.write() as conn:
            self.table.create(conn, checkfirst=True)
        t = self.table
        rows = unit.read(select(t.c.position, t.c.fingerprint).where(t.c.job == self.job))
        if not rows or rows[0].fingerprint != fingerprint:
            return None
        return _decode_position(rows[0].position)

    def save(self, conn: Connection, position: str, fingerprint: str) -> None:
        t = self.table
        values = {
            "position": position,
            "fingerprint": fingerprint,
            "updated_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        }
        if conn.execute(update(t).where(t.c.job == self.job).values(values)).rowcount == 0:
            conn.execute(insert(t).values(job=self.job, **values))

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(self.table).where(self.table.c.job == self.job))


def _encode_position(position: tuple[Any, ...], plan: _Plan) -> str:
    parts: list[object] = []
    for name, value in zip(plan.pk, position, strict=True):
        if isinstance(value, uuid.UUID):
            parts.append({"uuid": str(value)})
        elif isinstance(value, bytes):
            parts.append({"bytes": base64.b64encode(value).decode("ascii")})
        elif isinstance(value, (int, str)) and not isinstance(value, bool):
            parts.append(value)
        else:
            raise ConfigurationError(
                f"{plan.table.fullname}.{name} holds {type(value).__qualname__} keys: a "
                "checkpoint stores int, str, UUID or bytes keys (pass checkpoint=None)"
            )
    return json.dumps(parts)


def _decode_position(stored: str) -> tuple[Any, ...] | None:
    """The primary key of a checkpoint, or None if unreadable (the job then starts over)."""
    try:
        parts = json.loads(stored)
        out: list[Any] = []
        for part in parts:
            if isinstance(part, dict) and "uuid" in part:
                out.append(uuid.UUID(part["uuid"]))
            elif isinstance(part, dict) and "bytes" in part:
                out.append(base64.b64decode(part["bytes"], validate=True))
            elif isinstance(part, (int, str)):
                out.append(part)
            else:
                return None
    except (ValueError, TypeError, binascii.Error):
        return None
    return tuple(out) or None


def _fingerprint(plan: _Plan) -> str:
    """A digest of the ids of every rotated key (version 2 or later) of the job's scopes."""
    found: set[int] = set()
    read: set[tuple[int, str]] = set()
    config = plan.config
    prefix = config.subject_prefix if config is not None and config.subject is not None else None
    for _, column_type in plan.encrypted.values():
        store = column_type.resolve_keyring().store
        scope = (
            prefix
            if prefix is not None
            else column_type.scope_name(schema=plan.schema_of(column_type))
        )
        if (id(store), scope) in read:
            continue
        read.add((id(store), scope))
        if prefix is not None:  # subject scopes: every key under the prefix
            records = [r for r in store.all_data_keys() if r.scope.startswith(prefix)]
        else:
            records = store.data_keys(scope)
        found.update(r.key_id for r in records if r.version > 1)
    for _, index in plan.indexes.values():  # blind indexes: keyed by the column's own scope
        source = index.source_type
        found.update(
            r.key_id
            for r in source.resolve_keyring().store.data_keys(source.scope_name())
            if r.version > 1
        )
    digest = hashlib.sha256(b"securecustomer/reencrypt/v1")
    for key_id in sorted(found):
        digest.update(key_id.to_bytes(4, "big"))
    return digest.hexdigest()
