"""One batch of `reencrypt`: which values are stale, their new tokens, the guarded write.

`_work_out` compares the key id in each token's header with its scope's current key (read
fresh from the key store by `_current_keys`), decrypts and encrypts again only the stale
values and those whose blind indexes must be checked, and counts everything in a `_Tally`.
`_write` then rewrites the changed rows, each guarded by the tokens read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
from sqlalchemy.engine import Connection, Row

from securecustomer.crypto import Context, FieldCipher, KeySet, KeyState
from securecustomer.crypto._format import AES_256_GCM, AES_256_SIV, FORMAT_VERSION, HEADER_SIZE
from securecustomer.exceptions import (
    ConfigurationError,
    ContextError,
    DecryptionError,
    KeyDestroyedError,
    KeyDisabledError,
    KeyStateError,
)
from securecustomer.keys import Keyring
from securecustomer.sqlalchemy._jobs import _Failures, _Plan, _update_guarded

__all__: list[str] = []


# -- keys -----------------------------------------------------------------------------------


def _current_keys(keyring: Keyring, scopes: set[str]) -> dict[str, KeySet | None]:
    """The key set of every scope as the key store has it now; None for a scope without keys.

    No key is created: a scope the store does not know maps to None.
    """
    store = keyring.store
    many = getattr(store, "data_keys_many", None)
    wanted = sorted(scopes)
    found: Mapping[str, list[Any]] = (
        many(wanted) if many is not None else {s: store.data_keys(s) for s in wanted}
    )
    keyring.prefetch(s for s in wanted if found.get(s))
    out: dict[str, KeySet | None] = {}
    for scope in wanted:
        records = found.get(scope)
        if not records:
            out[scope] = None
            continue
        active = [r for r in records if r.state is KeyState.ACTIVE]
        expected = max(active, key=lambda r: r.version).key_id if active else None
        keyset = keyring.keyset(scope)
        if (keyset.primary.key_id if keyset.primary is not None else None) != expected:
            keyset = keyring.keyset(scope, refresh=True)  # rotated by another process
        out[scope] = keyset
    return out


def _key_id(token: bytes) -> int | None:
    if len(token) < HEADER_SIZE or token[0] != FORMAT_VERSION:
        return None
    return int.from_bytes(token[2:HEADER_SIZE], "big")


# -- re-encryption --------------------------------------------------------------------------


@attrs.define
class _Tally:
    rows: int = 0
    rows_changed: int = 0
    reencrypted: int = 0
    current: int = 0
    destroyed: int = 0
    conflicts: int = 0
    indexes: int = 0
    before: Counter[int] = attrs.Factory(Counter)
    after: Counter[int] = attrs.Factory(Counter)
    failures: _Failures = attrs.Factory(_Failures)


#: A row to rewrite: its primary key, and per column the value read, the value to write and,
#: for encrypted columns, the new key id (None for blind-index columns).
_Change = tuple[tuple[Any, ...], dict[str, tuple[Any, Any, int | None]]]


def _work_out(
    plan: _Plan,
    rows: Sequence[Row[Any]],
    tally: _Tally,
    *,
    dry_run: bool,
    migrate_schema: bool = False,
) -> list[_Change]:
    """Decide every value of a batch (current, re-encrypted, destroyed or failed) and the
    blind indexes to recompute.

    With *migrate_schema*, a value that does not decrypt in its table's schema is read
    as written before schemas were bound (no schema in the context, the scope without
    it) and is re-encrypted bound to the schema.
    """
    fail = tally.failures.add
    # Pass 1: tokens, scopes and contexts; the scopes of the batch per keyring.
    found: list[tuple[Row[Any], tuple[Any, ...], str, bytes, int, Keyring, str, Context]] = []
    legacy: dict[tuple[tuple[Any, ...], str], tuple[str, Context]] = {}
    wanted: dict[int, tuple[Keyring, set[str]]] = {}
    for row in rows:
        pk = plan.pk_of(row)
        values = plan.values(row)
        for name, (_, column_type) in plan.encrypted.items():
            stored = row._mapping[name]
            if stored is None:
                continue
            try:
                token = column_type.decode_token(stored)
            except DecryptionError as exc:
                fail(name, pk, str(exc), None)
                continue
            key_id = _key_id(token)
            if key_id is None:
                fail(name, pk, "the stored value is not a securecustomer token", None)
                continue
            tally.before[key_id] += 1
            try:
                scope, context = plan.locate(name, values)
            except (ConfigurationError, ContextError) as exc:
                fail(name, pk, str(exc), key_id)
                continue
            keyring = column_type.resolve_keyring()
            wanted.setdefault(id(keyring), (keyring, set()))[1].add(scope)
            found.append((row, pk, name, token, key_id, keyring, scope, context))
            if migrate_schema and plan.schema_of(column_type) is not None:
                legacy[(pk, name)] = plan.locate(name, values, schema=None)
    index_scopes = {}
    for ix, (_, index) in plan.indexes.items():
        source = index.source_type
        keyring = source.resolve_keyring()
        index_scope = source.scope_name(schema=plan.schema_of(source))
        index_scopes[ix] = (id(keyring), index_scope)
        wanted.setdefault(id(keyring), (keyring, set()))[1].add(index_scope)
    keys = {
        (ident, scope): keyset
        for ident, (keyring, scopes) in wanted.items()
        for scope, keyset in _current_keys(keyring, scopes).items()
    }
    # An index is checked on every row while its scope has several usable key versions
    # (a rotation in progress): a token's header tells its key, an index's bytes do not.
    checked = {
        ix: (k := keys[where]) is not None and len(k.usable) > 1
        for ix, where in index_scopes.items()
    }
    # Pass 2: compare key ids; decrypt and encrypt only what is stale or has stale indexes.
    changes: dict[tuple[Any, ...], dict[str, tuple[Any, Any, int | None]]] = {}
    for row, pk, name, token, key_id, keyring, scope, context in found:
        column_type = plan.encrypted[name][1]
        keyset = keys[(id(keyring), scope)]
        old = legacy.get((pk, name))
        if keyset is None and old is not None:  # nothing written bound to the schema yet
            keyset = keyring.keyset(scope)  # creates the scope's first key
        if keyset is None:
            fail(name, pk, f"scope {scope!r} has no key in the key store", key_id)
            continue
        primary = keyset.primary if keyset.sealer is not None else None
        algorithm = AES_256_SIV if column_type.deterministic else AES_256_GCM
        stale = not (
            primary is not None and primary.key_id == key_id and token[1] & 0x0F == algorithm
        )
        indexes = [ix for ix in plan.indexes_of(name) if stale or checked[ix]]
        if not stale and not indexes and old is None:
            tally.current += 1
            tally.after[key_id] += 1
            continue
        cipher = keyring.cipher(scope, deterministic=column_type.deterministic)
        value = _open(cipher, token, context)
        if type(value) is _Failed and old is not None:  # written before schemas were bound
            old_cipher = keyring.cipher(old[0], deterministic=column_type.deterministic)
            value = _open(old_cipher, token, old[1])
            if type(value) is not _Failed and value is not _DESTROYED:
                stale = True
                indexes = plan.indexes_of(name)
        if value is _DESTROYED:
            tally.destroyed += 1
            tally.after[key_id] += 1
            continue
        if type(value) is _Failed:
            fail(name, pk, value.reason, key_id)
            continue
        row_changes: dict[str, tuple[Any, Any, int | None]] = {}
        if not stale:
            tally.current += 1
            tally.after[key_id] += 1
        elif primary is None:
            fail(name, pk, f"scope {scope!r} has no active key: rotate it to create one", key_id)
            continue
        elif dry_run:
            row_changes[name] = (row._mapping[name], None, primary.key_id)
        else:
            try:
                new = cipher.encrypt(value, context=context)
            except KeyStateError as exc:  # the last active key was disabled meanwhile
                fail(name, pk, str(exc), key_id)
                continue
            new_id = int.from_bytes(new[2:HEADER_SIZE], "big")
            row_changes[name] = (row._mapping[name], column_type.encode_token(new), new_id)
        for ix in indexes:
            index = plan.indexes[ix][1]
            index_token = index.token(value, schema=plan.schema_of(index.source_type))
            old_index = row._mapping[ix]
            if old_index is None or bytes(old_index) != index_token:
                row_changes[ix] = (old_index, index_token, None)
        if row_changes:
            changes.setdefault(pk, {}).update(row_changes)
    return list(changes.items())


@attrs.frozen
class _Failed:
    reason: str


_DESTROYED: Final = object()


def _open(cipher: FieldCipher, token: bytes, context: Context) -> Any:
    """The plaintext of *token*, `_DESTROYED` if its key was destroyed, or a `_Failed`."""
    try:
        return cipher.decrypt(token, context=context)
    except KeyDestroyedError:
        return _DESTROYED
    except KeyDisabledError as exc:
        return _Failed(f"{exc}: enable it again to re-encrypt its values")
    except DecryptionError as exc:  # KeyNotFoundError too: wrong key store or misplaced value
        return _Failed(str(exc))


def _write(conn: Connection, plan: _Plan, changes: list[_Change]) -> list[bool]:
    """Rewrite the changed rows, each guarded by the tokens read; False marks a conflict."""
    written = []
    for pk, columns in changes:
        read = {name: old for name, (old, _, _) in columns.items()}
        values = {name: new for name, (_, new, _) in columns.items()}
        written.append(_update_guarded(conn, plan, pk, read, values) == 1)
    return written
