"""Key-store records for tests of every store (memory, file, SQL)."""

from __future__ import annotations

import datetime as dt

from securecustomer.keys import DataKeyRecord, KeyState

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def record(key_id: int, scope: str = "s", version: int = 1, **kw: object) -> DataKeyRecord:
    """An active data-key record with dummy wrapped material; *kw* overrides fields."""
    fields: dict[str, object] = {
        "key_id": key_id,
        "scope": scope,
        "version": version,
        "state": KeyState.ACTIVE,
        "created_at": NOW,
        "root_version": 1,
        "wrapped": b"w" * 60,
    }
    fields.update(kw)
    return DataKeyRecord(**fields)  # type: ignore[arg-type]
