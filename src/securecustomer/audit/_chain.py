"""The keyed hash chain, signed checkpoints, and the verifier.

Record *n* (from 1) stores ``hash = HMAC-SHA256(chain_key, "sc-audit-v1" | n | prev | event)``
where ``prev`` is record *n-1*'s hash (32 zero bytes for the first) and ``event`` the
event's canonical JSON. Without the chain key nobody can recompute a hash, so an edit,
deletion, insertion or swap shows at the first record it touches. A cut tail leaves a valid
chain: a `Checkpoint` (the last sequence number and hash, signed with Ed25519 and kept
elsewhere) detects it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from securecustomer.audit._event import AuditEvent, canonical

__all__ = ["GENESIS", "Checkpoint", "ChainKeys", "Record", "VerificationReport", "verify_chain"]

GENESIS: Final = "00" * 32
_PSEUDONYMS: Final = 4096
_DOMAIN: Final = b"sc-audit-v1"


@attrs.frozen(slots=True)
class Record:
    """One stored event: its position, the previous record's hash, and its own."""

    seq: int
    prev: str
    hash: str
    event: Mapping[str, Any]
    body: bytes | None = attrs.field(default=None, eq=False, repr=False)

    def canonical_event(self) -> bytes:
        """The event's canonical JSON (what the hash covers), computed once."""
        return self.body if self.body is not None else canonical(self.event)

    def line(self) -> bytes:
        """The record's canonical JSON: equal to ``canonical(self.to_dict())``, built
        without encoding the event again."""
        return b'{"event":%s,"hash":"%s","prev":"%s","seq":%d}' % (
            self.canonical_event(),
            self.hash.encode("ascii"),
            self.prev.encode("ascii"),
            self.seq,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "prev": self.prev, "hash": self.hash, "event": dict(self.event)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        return cls(int(data["seq"]), str(data["prev"]), str(data["hash"]), data["event"])

    def audit_event(self) -> AuditEvent:
        return AuditEvent.from_dict(self.event)


class ChainKeys:
    """The keys derived from a trail's secret: chain MAC, checkpoint signing, pseudonyms.

    Holds secrets: no repr of them, no pickling, compared by identity.
    """

    __slots__ = ("_chain", "_pseudonym", "_pseudonyms", "_signing", "public_key")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < 32:
            raise ValueError("an audit trail key is at least 32 random bytes")

        def derive(label: bytes) -> bytes:
            return HKDF(hashes.SHA256(), 32, salt=None, info=label).derive(bytes(secret))

        self._chain = derive(b"securecustomer audit chain v1")
        self._pseudonym = derive(b"securecustomer audit pseudonym v1")
        self._signing = Ed25519PrivateKey.from_private_bytes(
            derive(b"securecustomer audit checkpoint ed25519 v1")
        )
        self.public_key: Ed25519PublicKey = self._signing.public_key()
        self._pseudonyms: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<ChainKeys public_key={public_key_hex(self.public_key)[:16]}...>"

    def __getstate__(self) -> None:
        raise TypeError("audit trail keys cannot be pickled")

    def link(
        self, head: Record | None, events: Sequence[AuditEvent | Mapping[str, Any]]
    ) -> list[Record]:
        """The records that append *events* (events, or their `AuditEvent.to_dict`) after
        *head* (``None``: an empty trail)."""
        seq, prev = (0, GENESIS) if head is None else (head.seq, head.hash)
        raw = bytes.fromhex(prev)
        key = self._chain
        out = []
        for event in events:
            seq += 1
            data = event.to_dict() if isinstance(event, AuditEvent) else event
            body = canonical(data)
            raw = hmac.digest(key, _DOMAIN + seq.to_bytes(8, "big") + raw + body, "sha256")
            digest = raw.hex()
            out.append(Record(seq, prev, digest, data, body))
            prev = digest
        return out

    def digest(self, seq: int, prev: str, event: Mapping[str, Any]) -> str:
        return self.digest_body(seq, prev, canonical(event))

    def digest_body(self, seq: int, prev: str, body: bytes) -> str:
        message = _DOMAIN + seq.to_bytes(8, "big") + bytes.fromhex(prev) + body
        return hmac.digest(self._chain, message, "sha256").hex()

    def pseudonym(self, subject_id: object) -> str:
        """A stable keyed pseudonym for a data subject: ``ps_`` and 26 base32 characters
        (the last few thousand are remembered: the same id always gives the same one)."""
        text = str(subject_id)
        found = self._pseudonyms.get(text)
        if found is None:
            mac = hmac.digest(self._pseudonym, text.encode(), "sha256")
            found = "ps_" + base64.b32encode(mac[:16]).decode().rstrip("=").lower()
            if len(self._pseudonyms) >= _PSEUDONYMS:
                self._pseudonyms.clear()
            self._pseudonyms[text] = found
        return found

    def sign(self, seq: int, digest: str, at: dt.datetime) -> Checkpoint:
        unsigned = Checkpoint(seq, digest, at, "", public_key_hex(self.public_key))
        return attrs.evolve(unsigned, signature=self._signing.sign(unsigned.message()).hex())


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@attrs.frozen(slots=True)
class Checkpoint:
    """The head of a trail at one moment, signed: keep it somewhere the trail's writers
    cannot change (another database, object storage with retention, a ticket)."""

    seq: int
    hash: str
    timestamp: dt.datetime
    signature: str
    public_key: str

    def message(self) -> bytes:
        stamp = self.timestamp.astimezone(dt.UTC).isoformat(timespec="microseconds")
        return b"sc-audit-checkpoint-v1|%d|%s|%s" % (self.seq, self.hash.encode(), stamp.encode())

    def verify(self, public_key: Ed25519PublicKey | str) -> None:
        """Raise ``ValueError`` unless the signature is valid for *public_key*."""
        if isinstance(public_key, str):
            public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        try:
            public_key.verify(bytes.fromhex(self.signature), self.message())
        except (InvalidSignature, ValueError):
            raise ValueError("the checkpoint's signature is not valid for this key") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "timestamp": self.timestamp.isoformat(timespec="microseconds"),
            "signature": self.signature,
            "public_key": self.public_key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(
            int(data["seq"]),
            str(data["hash"]),
            dt.datetime.fromisoformat(data["timestamp"]),
            str(data["signature"]),
            str(data["public_key"]),
        )


@attrs.frozen(slots=True)
class VerificationReport:
    """What `AuditTrail.verify` found. ``first_bad`` is the sequence number of the first
    record that is wrong (or where records are missing); ``problem`` says what."""

    ok: bool
    checked: int
    first_bad: int | None = None
    problem: str | None = None

    def __bool__(self) -> bool:
        raise TypeError("a VerificationReport is not a bool: test report.ok")


def verify_chain(
    keys: ChainKeys, records: Iterable[Record], checkpoints: Sequence[Checkpoint] = ()
) -> VerificationReport:
    for checkpoint in checkpoints:
        try:
            checkpoint.verify(keys.public_key)
        except ValueError:
            return VerificationReport(
                False, 0, checkpoint.seq, "a checkpoint's signature is not valid for this trail"
            )
    expected = 1
    prev = GENESIS
    wanted = {c.seq: c for c in checkpoints}
    checked = 0
    for record in records:
        if record.seq != expected:
            if record.seq > expected:
                problem = f"records {expected} to {record.seq - 1} are missing (deleted)"
            else:
                problem = (
                    f"record {record.seq} appears again after {expected - 1} (inserted or moved)"
                )
            return VerificationReport(False, checked, expected, problem)
        if record.prev != prev:
            return VerificationReport(
                False,
                checked,
                expected,
                "does not link to the record before it (inserted or moved)",
            )
        try:
            digest = keys.digest(record.seq, record.prev, record.event)
        except (TypeError, ValueError):
            digest = ""
        if not hmac.compare_digest(digest, record.hash):
            return VerificationReport(False, checked, expected, "its content or hash was altered")
        signed = wanted.get(record.seq)
        if signed is not None and not hmac.compare_digest(signed.hash, record.hash):
            return VerificationReport(
                False, checked, expected, "differs from the signed checkpoint at this position"
            )
        prev = record.hash
        expected += 1
        checked += 1
    last = expected - 1
    if checkpoints and max(wanted) > last:
        return VerificationReport(
            False,
            checked,
            last + 1,
            f"the trail ends at record {last}, before the checkpoint at {max(wanted)} (cut)",
        )
    return VerificationReport(True, checked)
