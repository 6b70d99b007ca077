"""Emergency response to a compromised data key: revoke, rotate, re-encrypt, disable."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
from sqlalchemy.engine import Engine

from securecustomer.audit import AuditTrail
from securecustomer.keys import Keyring, KeyStatus
from securecustomer.sqlalchemy import ReencryptReport

__all__ = ["KeyCompromiseResponse", "respond_to_key_compromise"]


@attrs.frozen
class KeyCompromiseResponse:
    """What the response did, step by step; holds key ids and counts, never key material.

    ``disabled`` is True when the compromised version was disabled at the end (nothing
    left under it); ``remaining`` counts values still under it (errors, or a dry run).
    """

    key_id: int
    scope: str
    new_key: KeyStatus | None
    reports: tuple[ReencryptReport, ...]
    remaining: int
    disabled: bool
    dry_run: bool
    steps: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def respond_to_key_compromise(
    keyring: Keyring,
    key_id: int,
    *,
    bind: Engine,
    models: Iterable[Any],
    trail: AuditTrail | None = None,
    dry_run: bool = False,
    batch_size: int = 500,
    progress: Callable[[str], None] | None = None,
) -> KeyCompromiseResponse:
    """Respond to the compromise of data key *key_id* in one guided run:

    1. revoke it for writes (decrypt-only) and rotate its scope to a new active version;
    2. re-encrypt every value under it in *models* (`reencrypt`, resumable);
    3. check nothing is left under it, then disable it (``KeyState.DISABLED``; destroy it
       later, once backups of the data that still need it have expired);
    4. write a ``key.compromise`` audit event to *trail* (default: `default_trail` if bound).

    A *dry_run* changes nothing and reports what would be moved. *progress* receives one
    line per step. Raises `KeyNotFoundError` for an unknown key, `KeyStateError` for a
    destroyed one.
    """
    raise NotImplementedError
