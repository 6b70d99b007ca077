"""Reading a token's header without decrypting it: `parse_header` and `TokenHeader`.

A reader who wants to know which key a stored value needs (a re-encryption job, an
incident report counting the values of one key, another language's implementation)
parses the 6 header bytes here, in one place, instead of slicing ``token[2:6]``.
Nothing is authenticated by parsing: the header is only trusted once the token decrypts
(the header is part of the associated data). Any input that is not the header of a
well-formed v1 token, of any length or type, raises the one opaque `DecryptionError`.
"""

from __future__ import annotations

from typing import Literal

import attrs

from securecustomer.crypto._encoding import DECODERS
from securecustomer.crypto._format import (
    AES_256_GCM,
    AES_256_SIV,
    FORMAT_VERSION,
    HEADER_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
)
from securecustomer.exceptions import DecryptionError

__all__ = ["TokenHeader", "parse_header"]

_ALGORITHMS: dict[int, tuple[Literal["aes-256-gcm", "aes-256-siv"], int]] = {
    AES_256_GCM: ("aes-256-gcm", HEADER_SIZE + NONCE_SIZE + TAG_SIZE),
    AES_256_SIV: ("aes-256-siv", HEADER_SIZE + TAG_SIZE),
}


@attrs.frozen
class TokenHeader:
    """The unauthenticated header of a v1 token: format version, AEAD, plaintext type
    code and data-key id (docs/format.md). Holds nothing secret."""

    version: int
    algorithm: Literal["aes-256-gcm", "aes-256-siv"]
    type_code: int
    key_id: int


def parse_header(token: bytes | bytearray | memoryview) -> TokenHeader:
    """Parse the header of *token*; raise `DecryptionError` if it cannot be a v1 token.

    Checks the format version, the algorithm and type code, and that the token is long
    enough to hold its nonce and tag; it does not decrypt or authenticate anything.
    """
    if isinstance(token, memoryview):
        token = token.tobytes()  # any shape or item format: its raw bytes
    elif not isinstance(token, (bytes, bytearray)):
        raise DecryptionError(f"a token must be bytes, not {type(token).__qualname__}")
    head = bytes(token[:HEADER_SIZE])
    if len(head) < HEADER_SIZE or head[0] != FORMAT_VERSION:
        raise DecryptionError
    known = _ALGORITHMS.get(head[1] & 0x0F)
    type_code = head[1] >> 4
    if known is None or type_code not in DECODERS or len(token) < known[1]:
        raise DecryptionError
    return TokenHeader(
        version=FORMAT_VERSION,
        algorithm=known[0],
        type_code=type_code,
        key_id=int.from_bytes(head[2:], "big"),
    )
