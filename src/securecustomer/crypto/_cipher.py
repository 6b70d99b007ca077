"""FieldCipher: encrypt and decrypt single values and batches for one key scope.

The per-value paths are written for speed (measured in ``benchmarks/run.py``, explained
in ``docs/performance.md``). Everything that can be computed once is computed once:

* per key set (`KeySet`, rebuilt whenever the keyring reloads a scope): a dict from the
  6 header bytes of every usable key to ``(AES-GCM decrypt or None, decoder, key)``,
  and the primary key's bound ``AESGCM.encrypt`` with its header bytes;
* per cipher: the scope's length-prefixed AAD part, and a one-entry memo of the last
  associated data built, as one immutable ``(context, header, aad)`` tuple.

What is still done on every call, on purpose: the cache expiry check against the clock
(a key destroyed or disabled elsewhere stops working within the keyring's cache TTL),
the token type check, a fresh ``os.urandom(12)`` nonce per value, the AEAD itself, the
usage counters and the context type check (done before a context enters the memo).
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from hashlib import sha256
from typing import Any, Final, NoReturn, Protocol, TypeVar

import attrs
from cryptography.exceptions import InvalidTag

from securecustomer.crypto import _nonces
from securecustomer.crypto._encoding import DECODERS, STR, TYPE_CODES, Value, encode_value
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
    ConfigurationError,
    ContextError,
    DecryptionError,
    KeyDestroyedError,
    KeyDisabledError,
    KeyStateError,
    SecureCustomerError,
    UnpicklableError,
    UsageError,
)

__all__ = ["FieldCipher", "KeySet", "KeySource"]

_GCM_BODY: Final = HEADER_SIZE + NONCE_SIZE
_USABLE: Final = (KeyState.ACTIVE, KeyState.DECRYPT_ONLY)
_urandom = os.urandom

#: The value type asked of `FieldCipher.decrypt_as` (``str`` gives a ``str``).
V = TypeVar("V", bound=Value)

#: What a header maps to: (AES-GCM decrypt, or None for AES-SIV; decoder; key).
_Entry = tuple[Callable[[bytes, bytes, bytes], bytes] | None, Callable[[bytes], Any], DataKey]
#: The primary key as encryption needs it: (key, its AESGCM.encrypt, its GCM headers).
_Sealer = tuple[DataKey, Callable[[bytes, bytes, bytes], bytes], tuple[bytes, ...]]


def _open_siv(key: DataKey, token: bytes, aad: bytes) -> bytes:
    if len(token) < HEADER_SIZE + TAG_SIZE:
        raise InvalidTag
    return key.siv.decrypt(token[-TAG_SIZE:] + token[HEADER_SIZE:-TAG_SIZE], [aad])


def _seal_siv(key: DataKey, head: bytes, data: bytes, aad: bytes) -> bytes:
    # AES-SIV puts its 16-byte synthetic IV first; the format puts the tag last.
    sealed = key.siv.encrypt(data, [aad])
    return head + sealed[TAG_SIZE:] + sealed[:TAG_SIZE]


def _open(entry: _Entry, token: bytes, aad: bytes) -> Any:
    """Authenticate and decode *token*: raises InvalidTag or ValueError on any fault.

    AES-GCM itself rejects a short nonce (ValueError) or a short tag (InvalidTag).
    """
    gcm, decode, key = entry
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
    #: Header bytes of every usable key -> (opener, decoder, key); built once, never mutated.
    entries: dict[bytes, _Entry] = attrs.field(init=False, repr=False)
    #: The primary key with its bound ``AESGCM.encrypt`` and headers, or None; built once.
    sealer: _Sealer | None = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        entries: dict[bytes, _Entry] = {}
        for key in self.by_id.values():
            # Disabled and destroyed keys get no entry: their tokens take the slow path,
            # which re-reads the key store and raises the typed error.
            if key.state not in _USABLE or key.gcm is None:
                continue
            for code, decoder in DECODERS.items():
                entries[key.gcm_headers[code]] = (key.gcm.decrypt, decoder, key)
                entries[key.siv_headers[code]] = (None, decoder, key)
        self.entries = entries
        primary = self.primary
        if primary is None or primary.state is not KeyState.ACTIVE or primary.gcm is None:
            self.sealer = None  # encrypting raises KeyStateError
        else:
            self.sealer = (primary, primary.gcm.encrypt, primary.gcm_headers)

    @property
    def usable(self) -> list[DataKey]:
        """Keys that may still decrypt, newest first."""
        keys = (k for k in self.by_id.values() if k.state in _USABLE)
        return sorted(keys, key=lambda k: k.version, reverse=True)


class KeySource(Protocol):
    """What a FieldCipher needs from a keyring: the current keys of a scope."""

    def keyset(self, scope: str, *, refresh: bool = False, create: bool = True) -> KeySet:
        """Return the scope's keys; *refresh* forces a re-read of the key store.

        With *create*, a scope that has no key at all gets its first one; without, it
        gets an empty key set (reading never creates keys).
        """
        ...

    def missing_key(self, key_id: int, scope: str) -> Exception:
        """Return the error for a token whose key id is not in the scope's key set."""
        ...


class FieldCipher:
    """Encrypts and decrypts values of one key scope; what framework plugins wrap.

    Get one from `securecustomer.Keyring.cipher`. Randomized AES-256-GCM is the default;
    ``deterministic=True`` selects AES-256-SIV (equal values give equal tokens, so it
    reveals equality: use it only where a column must be matched exactly).

    A cipher may be shared between threads (the usage counters of `Keyring.status` are
    plain increments, so under heavy contention they may undercount slightly).

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
        create: bool = True,
    ) -> None:
        self.scope = scope
        self._source = source
        self._deterministic = deterministic
        self._clock = clock
        self._scope_part = length_prefixed(scope.encode("utf-8"))
        # The last (context, header, associated data) built, as ONE immutable tuple that
        # is replaced, never mutated: a thread reads it once into locals, so it always
        # sees an AAD together with the context and header it was built from, whatever
        # other threads store meanwhile (they can only cause a miss). It holds a strong
        # reference to the context, so an identity match cannot be a recycled id(), and
        # contexts are frozen, so a matching context still has the same parts. Only
        # contexts that passed the type check in `_aad` are ever stored.
        self._memo: tuple[object, bytes, bytes] = (None, b"", b"")
        self._keys = source.keyset(scope, create=create)

    @property
    def deterministic(self) -> bool:
        """True when new values are encrypted with AES-256-SIV."""
        return self._deterministic

    def __repr__(self) -> str:
        mode = "deterministic" if self._deterministic else "randomized"
        return f"<FieldCipher scope={self.scope!r} {mode}>"

    def __reduce__(self) -> NoReturn:
        raise UnpicklableError("FieldCipher objects hold keys and cannot be pickled")

    # -- keys ---------------------------------------------------------------------------

    def _keyset(self) -> KeySet:
        keys = self._keys
        if keys.expires_at <= self._clock():
            keys = self._keys = self._source.keyset(self.scope, create=False)
        return keys

    def _sealer(self) -> _Sealer:
        sealer = self._keyset().sealer
        if sealer is None:  # a scope never used for writing gets its first key now
            self._keys = self._source.keyset(self.scope, refresh=True, create=True)
            sealer = self._keys.sealer
        if sealer is None:
            keys = self._keys.by_id.values()
            if keys and all(k.state is KeyState.DESTROYED for k in keys):
                raise KeyStateError(
                    f"scope {self.scope!r} was destroyed: only Keyring.recreate() gives it "
                    "a new key",
                    scope=self.scope,
                )
            raise KeyStateError(
                f"scope {self.scope!r} has no active key: rotate it to create one",
                scope=self.scope,
            )
        return sealer

    def _primary(self) -> DataKey:
        return self._sealer()[0]

    def _aad(self, head: bytes, context: Context) -> bytes:
        """The associated data: header, context parts, key scope (see ``_format``).

        `encrypt` and `decrypt` inline this, type check included, on a memo miss.
        """
        if type(context) is not Context:
            raise _context_error(context)
        return head + context.aad_parts + self._scope_part

    # -- single values ------------------------------------------------------------------

    def encrypt(self, value: Value, *, context: Context) -> bytes:
        """Encrypt *value* for *context*; the token embeds the type of *value*."""
        keys = self._keys
        sealer = keys.sealer
        # The expiry check runs on every call: see the module docstring.
        if sealer is None or keys.expires_at <= self._clock():
            sealer = self._sealer()
        key, seal, headers = sealer
        if type(value) is str:
            code = STR
            try:
                data = value.encode()  # UTF-8, strict: what _encoding does for str
            except UnicodeEncodeError:  # lone surrogates: let the encoder raise its error
                code, data = encode_value(value)
        else:
            code, data = encode_value(value)
        if self._deterministic:
            head = key.siv_headers[code]
            token = _seal_siv(key, head, data, self._aad(head, context))
            key.encryptions += 1
            return token
        head = headers[code]
        ctx, memo_head, aad = self._memo  # one read of one immutable tuple
        # The header is compared by value: the AAD starts with exactly these bytes.
        if ctx is not context or memo_head != head:
            if type(context) is not Context:
                raise _context_error(context)
            aad = head + context.aad_parts + self._scope_part
            self._memo = (context, head, aad)
        try:  # inlined _nonces.nonce(): see the safety argument in _nonces.py
            nonce: bytes = _nonces._pool.nonces.pop()
        except (AttributeError, IndexError):
            nonce = _nonces.refill()
        sealed = seal(nonce, data, aad)
        key.encryptions += 1
        return head + nonce + sealed

    def decrypt(self, token: bytes | bytearray | memoryview, *, context: Context) -> Value:
        """Decrypt *token* for *context*.

        Raises `DecryptionError` for any altered, truncated, extended or misplaced
        token, `KeyDestroyedError` when its key was destroyed.
        """
        keys = self._keys
        # Only an exact bytes object takes the fast path (slicing and hashing anything
        # else could raise a foreign error); the expiry check runs on every call.
        if type(token) is not bytes or keys.expires_at <= self._clock():
            return self._decrypt_slow(token, context)
        head = token[:HEADER_SIZE]
        entry = keys.entries.get(head)
        if entry is None:  # unknown, disabled or destroyed key, or not a token at all
            return self._decrypt_slow(token, context)
        gcm, decode, key = entry
        ctx, memo_head, aad = self._memo  # one read of one immutable tuple
        # The header is compared by value: the AAD starts with exactly these bytes.
        if ctx is not context or memo_head != head:
            if type(context) is not Context:
                raise _context_error(context)
            aad = head + context.aad_parts + self._scope_part
            self._memo = (context, head, aad)
        try:
            if gcm is not None:
                value = decode(gcm(token[HEADER_SIZE:_GCM_BODY], token[_GCM_BODY:], aad))
            else:
                value = decode(_open_siv(key, token, aad))
        except (InvalidTag, ValueError):
            raise DecryptionError from None
        key.decryptions += 1
        return value  # type: ignore[no-any-return]

    def decrypt_as(
        self, token: bytes | bytearray | memoryview, expected: type[V], *, context: Context
    ) -> V:
        """Decrypt *token* for *context*; return its value if it is an *expected*.

        The typed form of `decrypt` for code that knows what a field holds
        (``name: str = cipher.decrypt_as(token, str, context=ctx)``). The type must match
        exactly, as a column's does: a ``bool`` is not an ``int``, a ``datetime`` is not a
        ``date``; JSON is a ``dict`` or a ``list``.

        Raises what `decrypt` raises; `DecryptionError` also when the token holds a value
        of another type (the message names both types, never the value), and
        `UsageError` when *expected* is not a value type (``str``, ``int``, ``Decimal``...).
        """
        value = self.decrypt(token, context=context)  # the one fast path, not a copy
        if type(value) is not expected:
            raise _mismatch(value, expected)
        return value

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
        keys = self._keyset()
        entry = keys.entries.get(head)
        if entry is None:
            key_id = int.from_bytes(token[2:HEADER_SIZE], "big")
            known = keys.by_id.get(key_id)
            if known is not None and known.state is KeyState.DESTROYED:
                # Destroyed is final: no need to ask the key store again (a table of
                # erased subjects' rows would otherwise cost one store read per value).
                raise KeyDestroyedError(key_id=key_id, scope=self.scope)
            self._keys = self._source.keyset(self.scope, refresh=True, create=False)
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
        entry[2].decryptions += 1
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
        key, seal, headers = self._sealer()  # one expiry check for the whole batch
        scope_part = self._scope_part
        if self._deterministic:
            out = []
            for value, ctx in zip(values, contexts, strict=True):
                code, data = encode_value(value)
                head = key.siv_headers[code]
                out.append(_seal_siv(key, head, data, head + ctx.aad_parts + scope_part))
            key.encryptions += len(out)
            return out
        # With one shared Context the AAD depends only on the value's type code: build
        # the possible AADs once, indexed by type code like the headers.
        shared = None
        if type(context) is Context:
            shared = [head + context.aad_parts + scope_part for head in headers]
        # One read from the OS for the whole batch, cut into disjoint 12-byte nonces: the
        # same random bytes as one os.urandom(12) per value, with one system call.
        nonces = _urandom(NONCE_SIZE * len(values))
        out = []
        append = out.append
        start = 0
        for value, ctx in zip(values, contexts, strict=True):
            if type(value) is str:
                code = STR
                try:
                    data = value.encode()  # UTF-8, strict: what _encoding does for str
                except UnicodeEncodeError:  # lone surrogates: let the encoder raise
                    code, data = encode_value(value)
            else:
                code, data = encode_value(value)
            head = headers[code]
            aad = shared[code] if shared is not None else head + ctx.aad_parts + scope_part
            nonce = nonces[start : start + NONCE_SIZE]
            start += NONCE_SIZE
            append(head + nonce + seal(nonce, data, aad))
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
        entries = self._keyset().entries  # one expiry check for the whole batch
        scope_part = self._scope_part
        shared = type(context) is Context
        # For this batch only (a local dict, not state shared with other calls): header ->
        # (opener, decoder, key, AAD prefix). With a shared Context the prefix is the whole
        # AAD; with one Context per token it is the header, completed token by token.
        openers: dict[bytes, tuple[Any, Callable[[bytes], Any], DataKey, bytes]] = {}
        tail = context.aad_parts + scope_part if shared else b""  # type: ignore[union-attr]
        out: list[Value] = []
        append = out.append
        for token, ctx in zip(tokens, contexts, strict=True):
            # Only exact bytes take the fast path (see decrypt); other types, and tokens
            # of keys that are not usable in this key set, go the careful way.
            opener = None
            if type(token) is bytes:
                head = token[:HEADER_SIZE]
                opener = openers.get(head)
                if opener is None:
                    entry = entries.get(head)
                    if entry is not None:
                        opener = openers[head] = (*entry, head + tail)
            if opener is None:
                append(self._decrypt_slow(token, ctx))
                # The slow path may have re-read the key store (a key created or rotated
                # by another process): continue with that key set, not the old snapshot.
                if self._keys.entries is not entries:
                    entries = self._keys.entries
                    openers = {}
                continue
            gcm, decode, key, aad = opener
            if not shared:  # a new bytes object: the prefix in openers stays as it is
                aad = aad + ctx.aad_parts + scope_part
            try:
                if gcm is not None:
                    append(decode(gcm(token[HEADER_SIZE:_GCM_BODY], token[_GCM_BODY:], aad)))
                else:
                    append(decode(_open_siv(key, token, aad)))
            except (InvalidTag, ValueError):
                raise DecryptionError from None
            key.decryptions += 1
        return out

    def decrypt_many_as(
        self,
        tokens: Iterable[bytes | bytearray | memoryview],
        expected: type[V],
        *,
        context: Context | Sequence[Context],
    ) -> list[V]:
        """Decrypt many tokens, each of which must hold an *expected*; all or nothing.

        The typed form of `decrypt_many`, checked as `decrypt_as` checks one value.
        """
        values = self.decrypt_many(tokens, context=context)
        for value in values:
            if type(value) is not expected:
                raise _mismatch(value, expected)
        return values  # type: ignore[return-value]

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
        raise ConfigurationError("blind index size must be an int from 1 to 32 bytes")
    if type(context) is not Context:
        raise ContextError("context must be a securecustomer.crypto.Context")
    code, data = encode_value(value)
    message = context.index_parts + bytes((code,)) + data
    return hmac.new(key.index_key, message, sha256).digest()[:size]


def _mismatch(value: object, expected: object) -> SecureCustomerError:
    """The error for a value that is not an *expected*: it names types, never the value."""
    if not isinstance(expected, type) or expected not in TYPE_CODES:
        return UsageError(
            f"expected must be one of the value types ({_TYPE_NAMES}), not {expected!r}"
        )
    return DecryptionError(
        f"the token's value is of type {_name(type(value))}, not {_name(expected)}"
    )


def _name(kind: type) -> str:
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


_TYPE_NAMES: Final = ", ".join(_name(t) for t in TYPE_CODES)


def _context_error(context: object) -> ContextError:
    return ContextError(
        f"context must be a securecustomer.crypto.Context, got {type(context).__qualname__}"
    )


def _contexts(context: Context | Sequence[Context], count: int) -> Sequence[Context]:
    """Check *context* (one Context, or one per value) and return one per value."""
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
