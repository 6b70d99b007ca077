"""FF3-1 format-preserving encryption (NIST SP 800-38G Revision 1, section 5.2).

`FF3Cipher` encrypts a string over an alphabet of 2 to 256 characters into a string of
the same length over the same alphabet: a 16-digit card number stays 16 digits.

How the standard's notation maps onto this code:

* FF3-1 reads each half of the input as a number with ``NUM_radix(REV(X))``: the first
  character is the *least* significant digit. The halves are kept as those integers
  through all eight Feistel rounds and only turned back into characters at the end
  (``REV(STR^m_radix(c))``), so the rounds do no string work at all.
* The round block is ``P = W xor [i]^4 || [NUM_radix(REV(B))]^12`` and the round value is
  ``y = NUM(REVB(CIPH_REVB(K)(REVB(P))))``. Reversing ``P`` byte by byte gives
  ``NUM(REV(B))`` as 12 little-endian bytes followed by the reversed 4-byte ``W xor i``
  (precomputed per tweak and round), and ``NUM(REVB(S))`` is ``S`` read little-endian.
  ``CIPH_REVB(K)`` is AES-ECB under the byte-reversed key, set up once per cipher.
* The 56-bit tweak ``T`` splits into ``T_L = T[0..27] || 0^4`` and
  ``T_R = T[32..55] || T[28..31] || 0^4`` (bits).

Strings are parsed and written in chunks of several characters through precomputed
tables, which also reject characters outside the alphabet.

Limits (the standard's): keys of 16, 24 or 32 bytes; a tweak of exactly 7 bytes;
``radix ** minlen >= 1,000,000``; ``len(text) <= 2 * floor(log_radix(2 ** 96))``.
Errors are `AnonymizationError` and never contain the text, the key or the tweak.
"""

from __future__ import annotations

import functools
from typing import NoReturn

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from securecustomer.exceptions import AnonymizationError, UnpicklableError

__all__ = ["DIGITS", "FF3Cipher"]

#: The default alphabet: decimal digits (radix 10).
DIGITS = "0123456789"

_KEY_SIZES = (16, 24, 32)
_TWEAK_SIZE = 7
_DOMAIN_MIN = 1_000_000
_LIMIT = 2**96
_MAX_RADIX = 256
_HEX = frozenset("0123456789abcdefABCDEF")
_CHUNK_VALUES = 4096  # a chunk covers at most this many values (radix ** chunk)

_Plan = tuple[int, int, int, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], int, int]


def _length_limits(radix: int) -> tuple[int, int]:
    """The standard's ``minlen`` and ``maxlen`` for *radix*, in exact integer arithmetic."""
    minlen = 1
    while radix**minlen < _DOMAIN_MIN:
        minlen += 1
    half = 0
    while radix ** (half + 1) <= _LIMIT:
        half += 1
    return max(minlen, 2), 2 * half


def _tweak_blocks(tweak: bytes | str) -> tuple[bytes, ...]:
    """The eight reversed ``W xor [i]^4`` blocks of a 56-bit tweak, one per round."""
    if isinstance(tweak, str):
        if len(tweak) != 2 * _TWEAK_SIZE or not all(c in _HEX for c in tweak):
            raise AnonymizationError(
                f"the tweak must be {_TWEAK_SIZE} bytes (56 bits); as a str, exactly "
                f"{2 * _TWEAK_SIZE} hexadecimal digits (got {len(tweak)} characters)"
            )
        tweak = bytes.fromhex(tweak)
    elif not isinstance(tweak, bytes | bytearray | memoryview):
        raise AnonymizationError(
            f"the tweak must be bytes or a hexadecimal str, not {type(tweak).__name__}"
        )
    t = bytes(tweak)
    if len(t) != _TWEAK_SIZE:
        raise AnonymizationError(
            f"the tweak must be exactly {_TWEAK_SIZE} bytes (56 bits) for FF3-1, got {len(t)} bytes"
        )
    left = t[:3] + bytes([t[3] & 0xF0])  # T_L = T[0..27] || 0000
    right = t[4:] + bytes([(t[3] & 0x0F) << 4])  # T_R = T[32..55] || T[28..31] || 0000
    blocks = []
    for i in range(8):
        w = right if i % 2 == 0 else left
        blocks.append(bytes([w[3] ^ i, w[2], w[1], w[0]]))  # REVB(W xor [i]^4)
    return tuple(blocks)


@functools.lru_cache(maxsize=32)
def _tables(alphabet: str) -> tuple[int, dict[str, int], tuple[str, ...]]:
    """Chunk tables of an alphabet (no secret in them, so shared between ciphers).

    The chunk size is the most characters whose values number at most ``_CHUNK_VALUES``.
    The dict maps every string of 1 to chunk characters (least significant first) to its
    value; the tuple holds the strings of exactly chunk characters, by value. The dict is
    never changed after it is built.
    """
    radix = len(alphabet)
    chunk = 1
    while radix ** (chunk + 1) <= _CHUNK_VALUES:
        chunk += 1
    decode: dict[str, int] = {c: d for d, c in enumerate(alphabet)}
    level = list(alphabet)
    for width in range(2, chunk + 1):
        weight = radix ** (width - 1)
        level = [s + c for c in alphabet for s in level]  # a new most significant digit
        decode.update({s: decode[s[:-1]] + decode[s[-1]] * weight for s in level})
    return chunk, decode, tuple(level)


def _chunks(length: int, size: int) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` slices of *size* characters covering *length*, last one first."""
    bounds = [(s, min(s + size, length)) for s in range(0, length, size)]
    return tuple(reversed(bounds))


class FF3Cipher:
    """FF3-1 format-preserving encryption over an alphabet of 2 to 256 characters.

    ``key`` is an AES key of 16, 24 or 32 bytes; ``tweak`` the default 56-bit tweak, as 7
    bytes or 14 hexadecimal digits; ``alphabet`` the characters of the domain, each once,
    the first one being digit 0 (the radix is its length). ``encrypt`` and ``decrypt``
    accept ``tweak=`` to use another tweak for one call.

    The object keeps only the AES-ECB encryptor, not the key; its ``repr`` shows neither.
    It refuses to be pickled and compares by identity. Under CPython's GIL one cipher may
    be shared between threads (its state does not change, apart from a small cache of
    per-call tweaks).
    """

    __slots__ = (
        "_aes",
        "_alphabet",
        "_blocks",
        "_chunk",
        "_decode",
        "_encode",
        "_key_bits",
        "_max_len",
        "_min_len",
        "_plans",
        "_radix",
        "_tweaks",
    )

    def __init__(self, key: bytes, tweak: bytes | str, *, alphabet: str = DIGITS) -> None:
        if not isinstance(key, bytes | bytearray | memoryview):
            raise AnonymizationError(f"the key must be bytes, not {type(key).__name__}")
        raw = bytes(key)
        if len(raw) not in _KEY_SIZES:
            raise AnonymizationError(
                f"the key must be 16, 24 or 32 bytes (AES-128, -192 or -256), got {len(raw)} bytes"
            )
        if not isinstance(alphabet, str):
            raise AnonymizationError(f"the alphabet must be a str, not {type(alphabet).__name__}")
        radix = len(alphabet)
        if not 2 <= radix <= _MAX_RADIX:
            raise AnonymizationError(
                f"the alphabet must have 2 to {_MAX_RADIX} characters, got {radix}"
            )
        if len(set(alphabet)) != radix:
            first = next(i for i, c in enumerate(alphabet) if c in alphabet[:i])
            raise AnonymizationError(
                f"the alphabet must not repeat a character: the character at index {first} "
                "occurs earlier"
            )
        self._radix = radix
        self._alphabet = alphabet
        self._min_len, self._max_len = _length_limits(radix)
        self._key_bits = 8 * len(raw)
        self._blocks = _tweak_blocks(tweak)
        self._tweaks: dict[bytes | str, tuple[bytes, ...]] = {}
        encryptor = Cipher(algorithms.AES(raw[::-1]), modes.ECB()).encryptor()  # noqa: S305 - FF3-1's round function is single-block AES
        self._aes = encryptor.update

        chunk, self._decode, self._encode = _tables(alphabet)
        self._chunk = chunk

        self._plans: dict[int, _Plan] = {}  # one per length, made on first use

    # -- public -----------------------------------------------------------------------

    @property
    def radix(self) -> int:
        """The number of characters in the alphabet."""
        return self._radix

    @property
    def alphabet(self) -> str:
        """The characters of the domain; the first one is digit 0."""
        return self._alphabet

    @property
    def min_length(self) -> int:
        """The shortest text allowed: ``radix ** min_length >= 1,000,000``."""
        return self._min_len

    @property
    def max_length(self) -> int:
        """The longest text allowed: ``2 * floor(log_radix(2 ** 96))``."""
        return self._max_len

    def encrypt(self, text: str, *, tweak: bytes | str | None = None) -> str:
        """Encrypt *text* into a string of the same length over the same alphabet."""
        blocks = self._blocks if tweak is None else self._tweak(tweak)
        mod_u, mod_v, a, b = self._parse(text)
        aes = self._aes
        # Rounds 0, 2, 4, 6 replace A (u digits), rounds 1, 3, 5, 7 replace B (v digits).
        a = (a + int.from_bytes(aes(b.to_bytes(12, "little") + blocks[0]), "little")) % mod_u
        b = (b + int.from_bytes(aes(a.to_bytes(12, "little") + blocks[1]), "little")) % mod_v
        a = (a + int.from_bytes(aes(b.to_bytes(12, "little") + blocks[2]), "little")) % mod_u
        b = (b + int.from_bytes(aes(a.to_bytes(12, "little") + blocks[3]), "little")) % mod_v
        a = (a + int.from_bytes(aes(b.to_bytes(12, "little") + blocks[4]), "little")) % mod_u
        b = (b + int.from_bytes(aes(a.to_bytes(12, "little") + blocks[5]), "little")) % mod_v
        a = (a + int.from_bytes(aes(b.to_bytes(12, "little") + blocks[6]), "little")) % mod_u
        b = (b + int.from_bytes(aes(a.to_bytes(12, "little") + blocks[7]), "little")) % mod_v
        return self._write(len(text), a, b)

    def decrypt(self, text: str, *, tweak: bytes | str | None = None) -> str:
        """Decrypt *text*, the output of `encrypt` under the same key and tweak."""
        blocks = self._blocks if tweak is None else self._tweak(tweak)
        mod_u, mod_v, a, b = self._parse(text)
        aes = self._aes
        b = (b - int.from_bytes(aes(a.to_bytes(12, "little") + blocks[7]), "little")) % mod_v
        a = (a - int.from_bytes(aes(b.to_bytes(12, "little") + blocks[6]), "little")) % mod_u
        b = (b - int.from_bytes(aes(a.to_bytes(12, "little") + blocks[5]), "little")) % mod_v
        a = (a - int.from_bytes(aes(b.to_bytes(12, "little") + blocks[4]), "little")) % mod_u
        b = (b - int.from_bytes(aes(a.to_bytes(12, "little") + blocks[3]), "little")) % mod_v
        a = (a - int.from_bytes(aes(b.to_bytes(12, "little") + blocks[2]), "little")) % mod_u
        b = (b - int.from_bytes(aes(a.to_bytes(12, "little") + blocks[1]), "little")) % mod_v
        a = (a - int.from_bytes(aes(b.to_bytes(12, "little") + blocks[0]), "little")) % mod_u
        return self._write(len(text), a, b)

    def encrypt_many(self, texts: list[str], *, tweak: bytes | str | None = None) -> list[str]:
        """`encrypt` every text of a list, with one tweak."""
        encrypt = self.encrypt
        return [encrypt(t, tweak=tweak) for t in texts]

    def decrypt_many(self, texts: list[str], *, tweak: bytes | str | None = None) -> list[str]:
        """`decrypt` every text of a list, with one tweak."""
        decrypt = self.decrypt
        return [decrypt(t, tweak=tweak) for t in texts]

    def __repr__(self) -> str:
        return f"<FF3Cipher FF3-1 AES-{self._key_bits} radix={self._radix}>"

    def __getstate__(self) -> NoReturn:
        raise UnpicklableError("FF3Cipher holds a key and cannot be pickled")

    # -- private ----------------------------------------------------------------------

    def _tweak(self, tweak: bytes | str) -> tuple[bytes, ...]:
        try:
            return self._tweaks[tweak]
        except (KeyError, TypeError, ValueError):  # not seen, or unhashable (bytearray)
            pass
        blocks = _tweak_blocks(tweak)
        if type(tweak) in (bytes, str):  # a small cache for a few recurring tweaks
            if len(self._tweaks) >= 256:
                self._tweaks.clear()
            self._tweaks[tweak] = blocks
        return blocks

    def _parse(self, text: str) -> tuple[int, int, int, int]:
        """The moduli, ``NUM_radix(REV(A))`` and ``NUM_radix(REV(B))``."""
        if not isinstance(text, str):
            raise AnonymizationError(f"the text must be a str, not {type(text).__name__}")
        plan = self._plans.get(len(text))
        if plan is None:
            plan = self._plan(len(text))
        _, mod_u, mod_v, slices_a, slices_b, _, _ = plan
        decode = self._decode
        step = self._radix**self._chunk
        try:
            a = b = 0
            for s, e in slices_a:  # most significant chunk first (Horner)
                a = a * step + decode[text[s:e]]
            for s, e in slices_b:
                b = b * step + decode[text[s:e]]
        except KeyError:
            self._reject(text)
        return mod_u, mod_v, a, b

    def _plan(self, n: int) -> _Plan:
        """Split, moduli, parse slices and chunk counts for texts of *n* characters."""
        if not self._min_len <= n <= self._max_len:
            raise AnonymizationError(
                f"the text must have {self._min_len} to {self._max_len} characters for radix "
                f"{self._radix} (radix ** length >= 1,000,000 and at most "
                f"2 * floor(log_radix(2 ** 96))), got {n}"
            )
        radix, chunk = self._radix, self._chunk
        u = (n + 1) // 2
        v = n - u
        plan = (
            u,
            radix**u,
            radix**v,
            _chunks(u, chunk),
            tuple((s + u, e + u) for s, e in _chunks(v, chunk)),
            -(-u // chunk),
            -(-v // chunk),
        )
        self._plans[n] = plan
        return plan

    def _write(self, n: int, a: int, b: int) -> str:
        """``REV(STR^u(a)) || REV(STR^v(b))``."""
        u, _, _, _, _, chunks_a, chunks_b = self._plans[n]
        encode = self._encode
        step = self._radix**self._chunk
        parts = []
        for _ in range(chunks_a - 1):
            a, r = divmod(a, step)
            parts.append(encode[r])
        parts.append(encode[a])
        left = "".join(parts)[:u]
        parts = []
        for _ in range(chunks_b - 1):
            b, r = divmod(b, step)
            parts.append(encode[r])
        parts.append(encode[b])
        return left + "".join(parts)[: n - u]

    def _reject(self, text: str) -> NoReturn:
        alphabet = self._decode
        index = next(i for i, c in enumerate(text) if c not in alphabet)
        raise AnonymizationError(
            f"the character at index {index} (0-based) of the text is not in the alphabet "
            f"of radix {self._radix}"
        ) from None
