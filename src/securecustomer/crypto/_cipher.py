"""FieldCipher: encrypt and decrypt single values and batches for one key scope.

The per-value paths are written for speed: one dict lookup on the 6 header bytes finds
the key, the AEAD and the plaintext decoder; header bytes are precomputed per key.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from hashlib import sha256
from typing import Any, Final, NoReturn, Protocol

import attrs
from cryptography.exceptions import InvalidTag

from securecustomer.crypto._encoding import DECODERS, STR, Value, encode_value
from securecustomer.crypto._format import (
    AES_256_GCM,
    AES_256_SIV,
    FORMAT_VERSION,
    HEADER_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    Context,
    length_prefixed,
)
from securecustomer.crypto._keys import DataKey, KeyState
from securecustomer.exceptions import (
    ContextError,
    DecryptionError,
    KeyDestroyedError,
    KeyDisabledError,
    KeyStateError,
)

__all__ = ["FieldCipher", "KeySet", "KeySource"]

_GCM_BODY: Final = HEADER_SIZE + NONCE_SIZE
_GCM_MIN: Final = _GCM_BODY + TAG_SIZE
_USABLE: Final = (KeyState.ACTIVE, KeyState.DECRYPT_ONLY)
_urandom = os.urandom

#: What a header maps to: (key, AES-GCM decrypt function or None for AES-SIV, decoder).
_Entry = tuple[DataKey, Callable[[bytes, bytes, bytes], bytes] | None, Callable[[bytes], Any]]


def _open_siv(key: DataKey, token: bytes, aad: bytes) -> bytes:
    if len(token) < HEADER_SIZE + TAG_SIZE:
        raise InvalidTag
    return key.siv.decrypt(token[-TAG_SIZE:] + token[HEADER_SIZE:-TAG_SIZE], [aad])


def _open(entry: _Entry, token: bytes, aad: bytes) -> Any:
    """Authenticate and decode *token*: raises InvalidTag or ValueError on any fault.

    AES-GCM itself rejects a short nonce (ValueError) or a short tag (InvalidTag).
    """
    key, gcm, decode = entry
    if gcm is not None:
        return decode(gcm(token[HEADER_SIZE:_GCM_BODY], token[_GCM_BODY:], aad))
    return decode(_open_siv(key, token, aad))


@attrs.define(eq=False)
class KeySet:
    """The keys of one scope as a cipher sees them, valid until *expires_at*.

    The keyring sets *expires_at* to ``-inf`` when the scope changes in this process,
    so that every cipher holding the set fetches a new one on its next call.
    """

    scope: str
    primary: DataKey | None
    by_id: Mapping[int, DataKey]
    expires_at: float
    #: Header bytes of every usable key -> (key, opener, decoder); built once.
    entries: dict[bytes, _Entry] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        entries: dict[bytes, _Entry] = {}
        for key in self.by_id.values():
            if key.state not in _USABLE or key.gcm is None:
                continue
            for code, decoder in DECODERS.items():
                entries[key.gcm_headers[code]] = (key, key.gcm.decrypt, decoder)
                entries[key.siv_headers[code]] = (key, None, decoder)
        self.entries = entries

    @property
    def usable(self) -> list[DataKey]:
        """Keys that may still decrypt, newest first."""
        keys = (k for k in self.by_id.values() if k.state in _USABLE)
        return sorted(keys, key=lambda k: k.version, reverse=True)


class KeySource(Protocol):
    """What a FieldCipher needs from a keyring: the current keys of a scope."""

    def keyset(self, scope: str, *, refresh: bool = False) -> KeySet:
        """Return the scope's keys; *refresh* forces a re-read of the key store."""
        ...

    def missing_key(self, key_id: int, scope: str) -> Exception:
        """Return the error for a token whose key id is not in the scope's key set."""
        ...


class FieldCipher:
    """Encrypts and decrypts values of one key scope; what framework plugins wrap.

    Get one from `securecustomer.Keyring.cipher`. Randomized AES-256-GCM is the default;
    ``deterministic=True`` selects AES-256-SIV (equal values give equal tokens, so it
    reveals equality: use it only where a column must be matched exactly).

    Example::

        cipher = keyring.cipher("customers.email")
        ctx = Context("customers", "email", row=42)
        token = cipher.encrypt("ada@example.com", context=ctx)
        assert cipher.decrypt(token, context=ctx) == "ada@example.com"
    """

    __slots__ = ("_clock", "_deterministic", "_keys", "_memo", "_scope_part", "_source", "scope")

    def __init__(
        self,
        source: KeySource,
        scope: str,
        *,
        deterministic: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scope = scope
        self._source = source
        self._deterministic = deterministic
        self._clock = clock
        self._scope_part = length_prefixed(scope.encode("utf-8"))
        #: (context, header, associated data) of the last call: one tuple, swapped atomically.
        self._memo: tuple[object, bytes, bytes] = (None, b"", b"")
        self._keys = source.keyset(scope)

    @property
    def deterministic(self) -> bool:
        """True when new values are encrypted with AES-256-SIV."""
        return self._deterministic

    def __repr__(self) -> str:
        mode = "deterministic" if self._deterministic else "randomized"
        return f"<FieldCipher scope={self.scope!r} {mode}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("FieldCipher objects hold keys and cannot be pickled")

    # -- keys ---------------------------------------------------------------------------

    def _keyset(self) -> KeySet:
        keys = self._keys
        if keys.expires_at <= self._clock():
            keys = self._keys = self._source.keyset(self.scope)
        return keys

    def _primary(self) -> DataKey:
        key = self._keyset().primary
        if key is None:
            raise KeyStateError(
                f"scope {self.scope!r} has no active key: rotate it to create one",
                scope=self.scope,
            )
        return key

    def _aad(self, head: bytes, context: Context) -> bytes:
        try:
            return head + context.aad_parts + self._scope_part
        except AttributeError:
            raise ContextError(
                "context must be a securecustomer.crypto.Context, "
                f"got {type(context).__qualname__}"
            ) from None

    # -- single values ------------------------------------------------------------------

    def encrypt(self, value: Value, *, context: Context) -> bytes:
        """Encrypt *value* for *context*; the token embeds the type of *value*."""
        keys = self._keys
        key = keys.primary
        if key is None or keys.expires_at <= self._clock():
            key = self._primary()
        if type(value) is str:
            code = STR
            try:
                data = value.encode("utf-8")
            except UnicodeEncodeError:
                code, data = encode_value(value)
        else:
            code, data = encode_value(value)
        key.encryptions += 1
        if self._deterministic:
            head = key.siv_headers[code]
            sealed = key.siv.encrypt(data, [self._aad(head, context)])
            return head + sealed[TAG_SIZE:] + sealed[:TAG_SIZE]
        head = key.gcm_headers[code]
        memo = self._memo
        if memo[0] is context and memo[1] is head:
            aad = memo[2]
        else:
            aad = self._aad(head, context)
            self._memo = (context, head, aad)
        nonce = _urandom(NONCE_SIZE)
        return head + nonce + key.gcm.encrypt(nonce, data, aad)  # type: ignore[union-attr]

    def decrypt(self, token: bytes | bytearray | memoryview, *, context: Context) -> Value:
        """Decrypt *token* for *context*.

        Raises `DecryptionError` for any altered, truncated, extended or misplaced
        token, `KeyDestroyedError` when its key was destroyed.
        """
        keys = self._keys
        try:
            head = token[:HEADER_SIZE]
            entry = keys.entries.get(head)  # type: ignore[call-overload]
        except TypeError:  # not sliceable, or a memoryview (unhashable)
            return self._decrypt_slow(token, context)
        if entry is None or keys.expires_at <= self._clock() or type(token) is not bytes:
            return self._decrypt_slow(token, context)
        key, gcm, decode = entry
        memo = self._memo
        if memo[0] is context and memo[1] == head:
            aad = memo[2]
        else:
            aad = self._aad(head, context)  # type: ignore[arg-type]
            self._memo = (context, head, aad)  # type: ignore[assignment]
        try:
            if gcm is not None:
                value = decode(gcm(token[HEADER_SIZE:_GCM_BODY], token[_GCM_BODY:], aad))
            else:
                value = decode(_open_siv(key, token, aad))
        except (InvalidTag, ValueError):
            raise DecryptionError from None
        key.decryptions += 1
        return value  # type: ignore[no-any-return]

    def _decrypt_slow(self, token: object, context: Context) -> Value:
        """Decrypt after refreshing keys, converting the token, or explaining failure."""
        if isinstance(token, (bytearray, memoryview)):
            token = bytes(token)
        elif type(token) is not bytes:
            raise DecryptionError(f"a token must be bytes, not {type(token).__qualname__}")
        if len(token) < HEADER_SIZE + TAG_SIZE or token[0] != FORMAT_VERSION:
            raise DecryptionError
        if token[1] & 0x0F not in (AES_256_GCM, AES_256_SIV) or token[1] >> 4 not in DECODERS:
            raise DecryptionError
        head = token[:HEADER_SIZE]
        entry = self._keyset().entries.get(head)
        if entry is None:
            key_id = int.from_bytes(token[2:HEADER_SIZE], "big")
            self._keys = self._source.keyset(self.scope, refresh=True)
            entry = self._keys.entries.get(head)
            if entry is None:
                key = self._keys.by_id.get(key_id)
                if key is None:
                    raise self._source.missing_key(key_id, self.scope)
                if key.state is KeyState.DISABLED:
                    raise KeyDisabledError(key_id=key_id, scope=self.scope)
                raise KeyDestroyedError(key_id=key_id, scope=self.scope)
        try:
            value = _open(entry, token, self._aad(head, context))
        except (InvalidTag, ValueError):
            raise DecryptionError from None
        entry[0].decryptions += 1
        return value  # type: ignore[no-any-return]

    # -- batches ------------------------------------------------------------------------

    def encrypt_many(
        self, values: Iterable[Value], *, context: Context | Sequence[Context]
    ) -> list[bytes]:
        """Encrypt many values with one key lookup; *context* is shared or one per value.

        Either every value is encrypted or an error is raised and nothing is returned.
        """
        values = values if isinstance(values, list) else list(values)
        contexts = _contexts(context, len(values))
        key = self._primary()
        if self._deterministic:
            return [self.encrypt(v, context=c) for v, c in zip(values, contexts, strict=True)]
        headers = key.gcm_headers
        seal = key.gcm.encrypt  # type: ignore[union-attr]
        scope_part = self._scope_part
        shared = contexts[0].aad_parts + scope_part if type(context) is Context else None
        nonces = _urandom(NONCE_SIZE * len(values))
        out = []
        start = 0
        for value, ctx in zip(values, contexts, strict=True):
            if type(value) is str:
                code = STR
                try:
                    data = value.encode("utf-8")
                except UnicodeEncodeError:
                    code, data = encode_value(value)
            else:
                code, data = encode_value(value)
            head = headers[code]
            end = start + NONCE_SIZE
            nonce = nonces[start:end]
            start = end
            tail = shared if shared is not None else ctx.aad_parts + scope_part
            out.append(head + nonce + seal(nonce, data, head + tail))
        key.encryptions += len(out)
        return out

    def decrypt_many(
        self,
        tokens: Iterable[bytes | bytearray | memoryview],
        *,
        context: Context | Sequence[Context],
    ) -> list[Value]:
        """Decrypt many tokens; *context* is shared or one per token. All or nothing."""
        tokens = tokens if isinstance(tokens, list) else list(tokens)
        contexts = _contexts(context, len(tokens))
        keys = self._keyset()
        entries = keys.entries
        shared = contexts[0].aad_parts + self._scope_part if type(context) is Context else None
        out: list[Value] = []
        append = out.append
        for token, ctx in zip(tokens, contexts, strict=True):
            entry = entries.get(token[:HEADER_SIZE]) if type(token) is bytes else None
            if entry is None:  # refresh, convert or explain: the careful path
                append(self._decrypt_slow(token, ctx))
                continue
            key, gcm, decode = entry
            tail = shared if shared is not None else ctx.aad_parts + self._scope_part
            try:
                if gcm is not None:
                    data = gcm(token[HEADER_SIZE:_GCM_BODY], token[_GCM_BODY:], token[:HEADER_SIZE] + tail)
                else:
                    data = _open_siv(key, token, token[:HEADER_SIZE] + tail)
                append(decode(data))
            except (InvalidTag, ValueError):
                raise DecryptionError from None
            key.decryptions += 1
        return out

    # -- blind indexes ------------------------------------------------------------------

    def blind_index(self, value: Value, *, context: Context, size: int = 32) -> bytes:
        """Return an HMAC-SHA256 equality token of *value* under the primary key.

        The token depends on the table and column of *context* (not on its row), on
        the value's type and on the key version; *size* truncates it (1 to 32 bytes).
        """
        return _index(self._primary(), value, context, size)

    def blind_indexes(self, value: Value, *, context: Context, size: int = 32) -> list[bytes]:
        """Return the equality tokens of *value* under every key that may still decrypt.

        Queries match any of them while a key rotation is in progress.
        """
        return [_index(k, value, context, size) for k in self._keyset().usable]


def _index(key: DataKey, value: Value, context: Context, size: int) -> bytes:
    if type(size) is not int or not 1 <= size <= 32:
        raise ValueError("blind index size must be an int from 1 to 32 bytes")
    if type(context) is not Context:
        raise ContextError("context must be a securecustomer.crypto.Context")
    code, data = encode_value(value)
    message = (
        length_prefixed(context.table.encode("utf-8"))
        + length_prefixed(context.column.encode("utf-8"))
        + bytes((code,))
        + data
    )
    return hmac.new(key.index_key, message, sha256).digest()[:size]


def _contexts(context: Context | Sequence[Context], count: int) -> Sequence[Context]:
    if type(context) is Context:
        return [context] * count
    if isinstance(context, (str, bytes)) or not isinstance(context, Sequence):
        raise ContextError("context must be a Context or a sequence of Context objects")
    if len(context) != count:
        raise ContextError(f"got {len(context)} contexts for {count} values")
    for item in context:
        if type(item) is not Context:
            raise ContextError("every context must be a securecustomer.crypto.Context")
    return context
