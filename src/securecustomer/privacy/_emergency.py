"""Emergency response to a compromised data key: revoke, rotate, re-encrypt, disable.

`respond_to_key_compromise` runs the whole procedure and can be run again at any moment:
each step looks at the key store and the data as they are now, so a run that was killed,
or that left values behind, continues where it stopped. Values under the compromised key
are found by the key id in each token's header (the 4 bytes at offset 2, big-endian; see
``docs/format.md``), read without decrypting anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securecustomer.audit import AuditEvent, AuditTrail, current_actor, default_trail
from securecustomer.crypto._format import FORMAT_VERSION, HEADER_SIZE
from securecustomer.exceptions import (
    ConfigurationError,
    DecryptionError,
    KeyNotFoundError,
    KeyStateError,
)
from securecustomer.keys import DataKeyRecord, Keyring, KeyState, KeyStatus
from securecustomer.keys._lifecycle import _data_status
from securecustomer.privacy._breach import subject_prefix_of
from securecustomer.sqlalchemy import BlindIndex, Encrypted, ReencryptReport, reencrypt

__all__ = ["KeyCompromiseResponse", "respond_to_key_compromise"]

_SCAN_BATCH: Final = 1000


@attrs.frozen
class KeyCompromiseResponse:
    """What the response did, step by step; holds key ids and counts, never key material.

    ``disabled`` is True when the compromised version was disabled at the end (nothing
    left under it); ``remaining`` counts values still under it (errors, or a dry run).
    ``new_key`` is the scope's active version the values were moved to (None in a dry
    run of a key that is still the active one). ``reports`` has one `ReencryptReport`
    per model that held values under the key (none in a dry run). ``found`` counts the
    values under the key per table before anything was moved.
    """

    key_id: int
    scope: str
    new_key: KeyStatus | None
    reports: tuple[ReencryptReport, ...]
    remaining: int
    disabled: bool
    dry_run: bool
    steps: tuple[str, ...]
    found: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def moved(self) -> int:
        """Values re-encrypted by this run."""
        return sum(r.values_reencrypted for r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (key ids as ints; the scope as given)."""
        new = self.new_key
        return {
            "key_id": self.key_id,
            "scope": self.scope,
            "new_key_id": new.key_id if new is not None else None,
            "new_key_version": new.version if new is not None else None,
            "found": dict(sorted(self.found.items())),
            "reencrypted": {r.table: r.values_reencrypted for r in self.reports},
            "errors": {r.table: r.errors for r in self.reports},
            "remaining": self.remaining,
            "disabled": self.disabled,
            "dry_run": self.dry_run,
            "steps": list(self.steps),
        }


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
    subject_prefix: str = "subject:",
) -> KeyCompromiseResponse:
    """Respond to the compromise of data key *key_id* in one guided run:

    1. revoke it for writes (decrypt-only) and rotate its scope to a new active version;
    2. re-encrypt every value under it in *models* (`reencrypt`, resumable);
    3. check nothing is left under it, then disable it (``KeyState.DISABLED``; destroy it
       later, once backups of the data that still need it have expired);
    4. write a ``key.compromise`` audit event to *trail* (default: `default_trail` if bound).

    *models* are mapped classes or Tables; any may be given: the token headers of each
    are scanned (no decryption) and only those holding values under the key are
    re-encrypted. `reencrypt` moves every stale value of such a model, including stale
    values of other scopes. Subject scopes (*subject_prefix* + id, `encrypt_rows`) work
    the same way; the audit event then names the subject by the trail's pseudonym only.
    A model whose `BlindIndex` is keyed by the compromised scope is re-encrypted too (its
    indexes recomputed under the new key) even when none of its values is under the key;
    the key stays decrypt-only while such a table reports errors or conflicts.

    Only the tables of *models* are checked: values under the key in a table not given
    (or in a backup) are not seen, and become unreadable once the key is disabled, until
    it is set back to decrypt-only. Give every model that uses the key's scope.

    Running it again is safe: a key that is no longer the active one is not rotated
    again; a disabled key that still has values under it (a straggler written by a
    process whose key cache was older than the rotation) is set back to decrypt-only,
    its values moved, and disabled again. Other processes keep encrypting with the old
    key for up to their keyring's ``cache_ttl`` after the rotation: run the response
    again after that. When values are left (errors, conflicts), the key stays
    decrypt-only and the steps say how many. A disabled key can be re-enabled
    (``set_state``), so disabling never loses data.

    A *dry_run* changes nothing (no audit event either) and reports what would be
    moved. *progress* receives one human-readable line per step (the same lines as
    ``steps``). Raises `KeyNotFoundError` for an unknown key, `KeyStateError` for a
    destroyed one.

    Example:
        ```python
        response = respond_to_key_compromise(
            keyring, 0x1A2B3C4D, bind=engine, models=[Customer, Order], progress=print
        )
        assert response.disabled, response.steps
        ```
    """
    record = keyring.store.data_key(key_id)
    if record is None:
        raise KeyNotFoundError(f"no data key with id {key_id:#010x}", key_id=key_id)
    if record.state is KeyState.DESTROYED:
        raise KeyStateError(
            f"data key {key_id:#010x} is destroyed: nothing under it can be read or moved",
            key_id=key_id,
            scope=record.scope,
        )
    targets = _targets(models)
    steps: list[str] = []

    def say(line: str) -> None:
        steps.append(line)
        if progress is not None:
            progress(line)

    name = f"key {key_id:#010x} (scope {record.scope!r}, version {record.version})"
    say(f"compromised {name}: {record.state.value}")
    found = {t: _count_under(bind, table, key_id) for t, (table, _) in targets.items()}
    total = sum(found.values())
    say(
        f"found {total} values under it: "
        + (", ".join(f"{t} {n}" for t, n in found.items()) or "no tables given")
    )
    indexed = _indexed_by(targets, record.scope)
    if indexed:
        say(
            f"blind indexes of {', '.join(indexed)} are keyed by its scope: their tables are "
            "re-indexed too (index bytes do not name their key)"
        )
    if dry_run:
        return KeyCompromiseResponse(
            key_id=key_id,
            scope=record.scope,
            new_key=_dry_run(keyring, record, total, say),
            reports=(),
            remaining=total,
            disabled=False,
            dry_run=True,
            steps=tuple(steps),
            found=found,
        )

    new_key = _revoke(keyring, record, total + len(indexed), say)
    reports: list[ReencryptReport] = []
    for table, count in found.items():
        if count == 0 and table not in indexed:
            continue
        say(f"re-encrypting {table} ({count} values under the key) ...")
        report = reencrypt(bind, targets[table][1], batch_size=batch_size)
        reports.append(report)
        say(
            f"re-encrypted {table}: {report.values_reencrypted} values moved, "
            f"{report.errors} errors, {report.conflicts} conflicts"
        )
    remaining = sum(_count_under(bind, table, key_id) for table, _ in targets.values())
    unindexed = sum(r.errors + r.conflicts for r in reports if r.table in indexed)
    disabled = False
    if remaining == 0 and unindexed:
        say(
            f"{unindexed} rows of {', '.join(indexed)} failed or changed meanwhile: their "
            f"blind indexes may still use it; {name} left decrypt-only: run again"
        )
    elif remaining == 0:
        keyring.set_state(key_id, KeyState.DISABLED)
        disabled = True
        say(
            f"no value is left under it: {name} disabled (destroy it once backups of the "
            "data that still need it have expired; run again once other processes' key "
            "caches have expired, to catch values they wrote under it meanwhile)"
        )
    else:
        say(
            f"{remaining} values are still under it: {name} left decrypt-only; "
            "see the failures of the re-encryption reports and run again"
        )
    written = _audit(trail, record, new_key, found, reports, remaining, disabled, subject_prefix)
    say("audit event key.compromise written" if written else "no audit trail: no event written")
    return KeyCompromiseResponse(
        key_id=key_id,
        scope=record.scope,
        new_key=new_key,
        reports=tuple(reports),
        remaining=remaining,
        disabled=disabled,
        dry_run=False,
        steps=tuple(steps),
        found=found,
    )


def _dry_run(
    keyring: Keyring, record: DataKeyRecord, total: int, say: Callable[[str], None]
) -> KeyStatus | None:
    """Say what a real run would do; the scope's active key if it would not rotate."""
    if record.state is KeyState.ACTIVE:
        say(f"would rotate scope {record.scope!r} and make the key decrypt-only")
        active = None
    else:
        active = _active(keyring, record.scope)
        say(f"would not rotate: the key is already {record.state.value}")
    say(f"would re-encrypt {total} values, check that none is left, then disable the key")
    say("dry run: nothing was changed, no audit event written")
    return active


def _revoke(
    keyring: Keyring, record: DataKeyRecord, total: int, say: Callable[[str], None]
) -> KeyStatus:
    """Make the key decrypt-only and the scope's newest version the active one."""
    name = f"key {record.key_id:#010x}"
    if record.state is KeyState.DISABLED and total:
        keyring.set_state(record.key_id, KeyState.DECRYPT_ONLY)
        say(f"{name} was disabled with data under it: decrypt-only until it moves")
    active = _active(keyring, record.scope)
    if record.state is KeyState.ACTIVE or active is None:
        active = keyring.rotate(record.scope)
        say(
            f"rotated scope {record.scope!r}: new active key {active.key_id:#010x} "
            f"(version {active.version}); {name} is decrypt-only"
        )
    else:
        say(
            f"not rotated: {name} is no longer active; the active key is "
            f"{active.key_id:#010x} (version {active.version})"
        )
    return active  # rotate() made every older active version decrypt-only


def _active(keyring: Keyring, scope: str) -> KeyStatus | None:
    """The scope's active version, as the key store has it now."""
    active = [r for r in keyring.store.data_keys(scope) if r.state is KeyState.ACTIVE]
    if not active:
        return None
    return _data_status(max(active, key=lambda r: r.version), None)


def _targets(models: Iterable[Any]) -> dict[str, tuple[sa.Table, Any]]:
    """Table name -> (table, the model as given: a mapped class keeps its row binding)."""
    targets: dict[str, tuple[sa.Table, Any]] = {}
    for model in models:
        table = model if isinstance(model, sa.Table) else getattr(model, "__table__", None)
        if not isinstance(table, sa.Table):
            raise ConfigurationError(f"{model!r} is neither a mapped class nor a Table")
        if not any(isinstance(c.type, Encrypted) for c in table.columns):
            raise ConfigurationError(f"table {table.fullname!r} has no encrypted columns")
        targets.setdefault(table.fullname, (table, model))
    return targets


def _indexed_by(targets: Mapping[str, tuple[sa.Table, Any]], scope: str) -> list[str]:
    """Tables among *targets* with a `BlindIndex` keyed by *scope* (the source column's own
    scope, even when its values are subject-scoped)."""
    return [
        name
        for name, (table, _) in targets.items()
        if any(
            isinstance(c.type, BlindIndex) and c.type.source_type.scope_name() == scope
            for c in table.columns
        )
    ]


def _count_under(bind: Engine, table: sa.Table, key_id: int) -> int:
    """Values of *table* whose token header names *key_id* (no decryption)."""
    types = {c.name: c.type for c in table.columns if isinstance(c.type, Encrypted)}
    raw = [
        sa.type_coerce(table.c[name], sa.Text() if t.storage == "text" else sa.LargeBinary())
        for name, t in types.items()
    ]
    wanted = key_id.to_bytes(4, "big")
    count = 0
    with bind.connect() as conn:
        result = conn.execution_options(yield_per=_SCAN_BATCH).execute(sa.select(*raw))
        for row in result:
            for column_type, stored in zip(types.values(), row, strict=True):
                if stored is None:
                    continue
                try:
                    token = column_type.decode_token(stored)
                except DecryptionError:
                    continue
                if len(token) >= HEADER_SIZE and token[0] == FORMAT_VERSION:
                    count += token[2:HEADER_SIZE] == wanted
    return count


def _trail(trail: AuditTrail | None) -> AuditTrail | None:
    if trail is not None:
        return trail
    try:
        return default_trail.get()
    except ConfigurationError:
        return None


def _audit(
    trail: AuditTrail | None,
    record: DataKeyRecord,
    new_key: KeyStatus,
    found: dict[str, int],
    reports: list[ReencryptReport],
    remaining: int,
    disabled: bool,
    subject_prefix: str,
) -> bool:
    target = _trail(trail)
    if target is None:
        return False
    who = current_actor()
    subject = None
    extra: dict[str, Any] = {
        "key_ids": [record.key_id, new_key.key_id],
        "key_id": record.key_id,
        "new_key_id": new_key.key_id,
        "found": dict(sorted(found.items())),
        "reencrypted": sum(r.values_reencrypted for r in reports),
        "errors": sum(r.errors for r in reports),
        "remaining": remaining,
        "disabled": disabled,
    }
    prefix = subject_prefix_of(record.scope, subject_prefix)
    if prefix is not None:
        subject = target.pseudonym(record.scope[len(prefix) :])
        extra["scope"] = f"{prefix}{subject}"  # never the raw subject id
    else:
        extra["scope"] = record.scope
    target.append(
        AuditEvent(
            action="key.compromise",
            actor=who.id if who is not None else None,
            request_id=who.request_id if who is not None else None,
            resource_type="data_key",
            resource_id=f"{record.key_id:#010x}",
            subject=subject,
            outcome="success" if disabled else "error",
            extra=extra,
            timestamp=dt.datetime.now(dt.UTC),
        )
    )
    target.flush()
    return True
