"""Keyed pseudonyms: HMAC-SHA256 over a domain-separated encoding of a value.

A pseudonym is ``HMAC-SHA256(key, message)`` rendered in one of three formats, where::

    message = b"securecustomer.pseudonym.v1\\x00"
              || len(domain) as 4 bytes, big-endian || domain (UTF-8)
              || value bytes

and the value bytes are the UTF-8 encoding of a ``str`` (lone surrogates passed through), the
ASCII decimal form of an ``int``, or a ``bytes`` value as is -- so ``42``, ``"42"`` and
``b"42"`` share one pseudonym, which lets an identifier stored as text in one table and as an
integer in another still join. The length prefix makes ``(domain, value)`` unambiguous: two
domains never share a message, so the same value gets unrelated pseudonyms in each.

What a pseudonym leaks: equality (the same value, key and domain always give the same
pseudonym -- that is the point) and, in the ``"digits"`` format, the value's length and the
position and identity of every non-digit character. Anyone holding the key can test guesses,
so a pseudonym of a low-entropy value (a birth year, a phone number) is only as private as the
key. Pseudonyms are not encryption: they cannot be reversed, even with the key.

`Pseudonymizer` is the hot path: it precomputes the HMAC inner and outer SHA-256 states
(RFC 2104) with the domain prefix already absorbed, so each value costs two state copies and
two short hashes. It was measured against ``hmac.new(...).copy()`` (about 1.6x slower) and
``hmac.digest`` (about 2.6x slower) on CPython 3.11.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any, Final, Literal, NoReturn

from securecustomer.exceptions import AnonymizationError, ConfigurationError, UnpicklableError

__all__ = ["MIN_KEY_SIZE", "Pseudonymizer", "pseudonymize"]

#: The shortest key accepted, in bytes.
MIN_KEY_SIZE: Final = 16

PseudonymFormat = Literal["hex", "base32", "digits"]
KeyBytes = bytes | bytearray | memoryview

_PREFIX: Final = b"securecustomer.pseudonym.v1\x00"
_BLOCK: Final = 64  # SHA-256 block size
_IPAD: Final = bytes(b ^ 0x36 for b in range(256))  # RFC 2104, as a translation table
_OPAD: Final = bytes(b ^ 0x5C for b in range(256))
_MAX_LENGTH: Final = {"hex": 64, "base32": 52}
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_TRANSLATE_DIGITS: Final = {ord(d): None for d in "0123456789"}


def check_key(key: Any) -> bytes:
    """Return ``key`` as ``bytes``, or raise `ConfigurationError` (never echoing the key)."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise ConfigurationError(f"a key must be bytes, not {type(key).__name__}")
    data = bytes(key)
    if len(data) < MIN_KEY_SIZE:
        raise ConfigurationError(f"a key must be at least {MIN_KEY_SIZE} bytes, not {len(data)}")
    return data


def value_bytes(value: Any, what: str = "value") -> bytes:
    """The canonical bytes of a ``str``, ``int`` or ``bytes`` value."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode("ascii")
    raise AnonymizationError(f"a {what} must be str, bytes or int, not {type(value).__name__}")


def domain_prefix(tag: bytes, domain: Any) -> bytes:
    """``tag || len(domain) || domain``: the start of every message under one domain."""
    if not isinstance(domain, str) or not domain:
        raise ConfigurationError("domain must be a non-empty str")
    encoded = domain.encode("utf-8", "surrogatepass")
    return tag + len(encoded).to_bytes(4, "big") + encoded


class _HmacState:
    """HMAC-SHA256 with the key schedule and a message prefix precomputed."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, prefix: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\x00")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._inner.update(prefix)
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __reduce__(self) -> NoReturn:
        raise UnpicklableError("key material cannot be pickled")


def _check_format(format: Any, length: Any) -> None:
    if format not in ("hex", "base32", "digits"):
        raise ConfigurationError("format must be 'hex', 'base32' or 'digits'")
    if length is None:
        return
    if format == "digits":
        raise ConfigurationError("the 'digits' format takes its length from the value")
    maximum = _MAX_LENGTH[format]
    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= maximum:
        raise ConfigurationError(f"length must be an int from 1 to {maximum} for {format!r}")


def _check_key_id(key_id: Any) -> str:
    if key_id is None:
        return ""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ConfigurationError("key_id must be 1 to 32 characters from A-Z a-z 0-9 _ . -")
    return key_id + ":"


def _same_shape_digits(digest: bytes, shape: str) -> str:
    count = len(shape) - len(shape.translate(_TRANSLATE_DIGITS))
    if count == 0:
        raise AnonymizationError("the 'digits' format needs a value with at least one digit")
    # Reduce a number at least 128 bits longer than 10**count: the bias is below 2**-128.
    size = (count * 3322 // 8000) + 1 + 16
    stream = digest if size <= len(digest) else hashlib.shake_256(digest).digest(size)
    number = int.from_bytes(stream, "big") % (10**count)
    digits = iter(f"{number:0{count}d}")
    return "".join(next(digits) if "0" <= ch <= "9" else ch for ch in shape)


def _render(digest: bytes, value: Any, format: str, length: int | None) -> str:
    if format == "hex":
        out = digest.hex()
    elif format == "base32":
        out = base64.b32encode(digest).decode("ascii").rstrip("=")
    else:
        shape = value if isinstance(value, str) else value_bytes(value).decode("latin-1")
        return _same_shape_digits(digest, shape)
    return out if length is None else out[:length]


def pseudonymize(
    value: str | bytes | int,
    key: KeyBytes,
    *,
    domain: str,
    format: PseudonymFormat = "hex",
    length: int | None = None,
    key_id: str | None = None,
) -> str:
    """A keyed, stable pseudonym of ``value`` within ``domain``.

    ``format``:

    - ``"hex"``: 64 lowercase hex digits (256 bits), or the first ``length``.
    - ``"base32"``: 52 RFC 4648 base32 characters without padding, or the first ``length``.
    - ``"digits"``: the value's own shape -- each ASCII digit ``0-9`` replaced by a keyed
      digit, every other character kept where it was (``"+44 20 7946 0018"`` ->
      ``"+17 93 0482 5521"``). Not a permutation: two values of the same shape may collide
      (likely beyond about ``10**(n/2)`` values of ``n`` digits), and check digits (Luhn)
      are not kept. Use format-preserving encryption when the mapping must be invertible.

    With ``key_id`` (1-32 of ``A-Z a-z 0-9 _ . -``) the pseudonym is prefixed ``"k1:"`` so
    pseudonyms made under different keys are told apart during a rotation.

    Raises `ConfigurationError` for a bad key (not bytes, shorter than 16 bytes), domain,
    format, length or key id, and `AnonymizationError` for a value that is not ``str``,
    ``bytes`` or ``int`` (or has no digit, in the ``"digits"`` format). Messages never
    contain the value or the key.
    """
    return Pseudonymizer(key, domain=domain, format=format, length=length, key_id=key_id)(value)


class Pseudonymizer:
    """`pseudonymize` with the key, domain and format fixed, and the HMAC state precomputed.

    Holds key material: its repr shows the domain and format only, it compares by identity
    and it refuses to be pickled or copied.
    """

    __slots__ = ("_format", "_length", "_prefix", "_state", "domain", "key_id")

    def __init__(
        self,
        key: KeyBytes,
        *,
        domain: str,
        format: PseudonymFormat = "hex",
        length: int | None = None,
        key_id: str | None = None,
    ) -> None:
        checked = check_key(key)
        _check_format(format, length)
        self._prefix = _check_key_id(key_id)
        self._state = _HmacState(checked, domain_prefix(_PREFIX, domain))
        self._format: str = format
        self._length = length
        self.domain: str = domain
        self.key_id = key_id

    def __call__(self, value: str | bytes | int) -> str:
        """The pseudonym of one value (see `pseudonymize`)."""
        digest = self._state.digest(value_bytes(value))
        return self._prefix + _render(digest, value, self._format, self._length)

    def many(self, values: Iterable[str | bytes | int]) -> list[str]:
        """The pseudonyms of many values, in order; the first bad value raises."""
        digest = self._state.digest
        prefix, format, length = self._prefix, self._format, self._length
        if format == "hex" and length is None and not prefix:
            # The common case, without per-value dispatch.
            out = []
            for value in values:
                if isinstance(value, str):
                    data = value.encode("utf-8", "surrogatepass")
                else:
                    data = value_bytes(value)
                out.append(digest(data).hex())
            return out
        return [prefix + _render(digest(value_bytes(v)), v, format, length) for v in values]

    def __repr__(self) -> str:
        key_id = "" if self.key_id is None else f", key_id={self.key_id!r}"
        return f"Pseudonymizer(domain={self.domain!r}, format={self._format!r}{key_id})"

    def __reduce__(self) -> NoReturn:
        raise UnpicklableError("a Pseudonymizer holds key material and cannot be pickled or copied")
