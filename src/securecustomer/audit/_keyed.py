"""`KeyedChain`: the audit trail's keyed hash chain, for records another store keeps.

The consent ledger and the legal holds of `securecustomer.privacy` keep their records in
tables of the application's database, where anyone with write access could change them.
Each record there is chained as the trail's records are: record *n* stores ``hash =
HMAC-SHA256(chain key, domain | n | prev | digest)``, where ``prev`` is record *n-1*'s hash
(`GENESIS` for the first) and ``digest`` is a keyed MAC of the record's content (`tag`).
Without the secret nobody can compute a digest or a hash, so a changed, inserted or
back-dated record does not verify, and a deleted one leaves a gap in the positions.

The content digest is kept apart from the link so that a store may erase a record's
content and keep its position: it stores the digest in the content's place, and the chain
still verifies. Only the secret's holder can compute a digest, so nobody else can turn a
record into such a tombstone. Each store names its own *label*: keys derived for one store
never verify another's records, nor the audit trail's.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from securecustomer.audit._chain import GENESIS
from securecustomer.audit._event import canonical
from securecustomer.exceptions import ConfigurationError, UnpicklableError

__all__ = ["KeyedChain"]

_MAX_SEQ: Final = 2**63 - 1


class KeyedChain:
    """The MAC keys of one chained store, derived from *secret* (32 bytes or more, the
    same kind of secret as an `AuditTrail` key) and *label* (which store: its own keys).

    Holds secrets: no repr of them, no pickling, compared by identity.

    Example:
        ```python
        chain = KeyedChain(secret, "consent ledger")
        digest = chain.tag({"subject": "42", "purpose": "marketing", "granted": False})
        first = chain.link(1, KeyedChain.GENESIS, digest)
        assert chain.matches(first, chain.link(1, KeyedChain.GENESIS, digest))
        ```
    """

    __slots__ = ("_content", "_link", "label")

    #: The ``prev`` of the first record.
    GENESIS: Final = GENESIS

    def __init__(self, secret: bytes, label: str) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < 32:
            raise ConfigurationError(f"the key of the {label} is at least 32 random bytes")
        self.label = label

        def derive(use: str) -> bytes:
            info = f"securecustomer keyed chain v1|{label}|{use}".encode()
            return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(bytes(secret))

        self._content = derive("content")
        self._link = derive("link")

    def __repr__(self) -> str:
        return f"<KeyedChain label={self.label!r}>"

    def __getstate__(self) -> None:
        raise UnpicklableError(f"the keys of the {self.label} cannot be pickled")

    def tag(self, content: Mapping[str, Any]) -> str:
        """The keyed digest of *content* (a JSON-able mapping, encoded canonically): 64
        lower-case hex digits."""
        return hmac.digest(self._content, canonical(content), "sha256").hex()

    def link(self, seq: int, prev: str, digest: str) -> str:
        """The hash of record *seq* (from 1; 0 for a store's head record) after *prev*."""
        if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
            raise ConfigurationError("a chain position is an int from 0 to 2**63 - 1")
        message = b"%d|%s|%s" % (seq, prev.encode("ascii"), digest.encode("ascii"))
        return hmac.digest(self._link, message, "sha256").hex()

    @staticmethod
    def matches(expected: str, given: object) -> bool:
        """Whether *given* (as stored: anything) is *expected*, in constant time."""
        if not isinstance(given, str) or not given.isascii():
            return False
        return hmac.compare_digest(expected, given)
