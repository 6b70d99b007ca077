"""The keyed hash chain, signed checkpoints, and the verifier.

Record *n* (from 1) stores ``hash = HMAC-SHA256(chain_key, "sc-audit-v1" | n | prev | event)``
where ``prev`` is record *n-1*'s hash (32 zero bytes for the first) and ``event`` the
event's canonical JSON. Without the chain key nobody can recompute a hash, so an edit,
deletion, insertion or swap shows at the first record it touches. A cut tail leaves a valid
chain: a `Checkpoint` (the last sequence number and hash, signed with Ed25519 and kept
elsewhere) detects it.

The MAC covers the canonical encoding of the *parsed* record, so stored text is accepted only
when it is exactly that encoding (`parse_line`): text that parses to the same record but is
spelt differently (duplicate keys, spaces, escapes, ``"seq":"2"``) would verify while meaning
something else to another reader (MariaDB's ``JSON_VALUE`` reads the first of duplicate
keys). Stored text that is not a record at all becomes a record with a ``problem``, which
the verifier reports as tampering at its position: reading a hostile line never raises.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import re
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
from securecustomer.exceptions import AuditError, ConfigurationError, UnpicklableError, UsageError

__all__ = [
    "GENESIS",
    "Checkpoint",
    "ChainKeys",
    "Record",
    "VerificationReport",
    "parse_line",
    "verify_chain",
]

GENESIS: Final = "00" * 32
_HEX: Final = re.compile(r"[0-9a-f]{64}")
_MAX_SEQ: Final = 2**63 - 1  # a signed BIGINT, and 8 bytes in the MAC
_RECORD_KEYS: Final = frozenset({"event", "hash", "prev", "seq"})
NOT_CANONICAL: Final = (
    "is not stored in its canonical encoding (rewritten: spacing, escapes, key order, "
    "duplicate keys or value types differ from what was signed)"
)
_PSEUDONYMS: Final = 4096
_DOMAIN: Final = b"sc-audit-v1"


@attrs.frozen(slots=True)
class Record:
    """One stored event: its position, the previous record's hash, and its own.

    ``problem`` is set by a sink on a record whose stored text is not a valid record (then
    ``hash`` is empty and ``event`` too) or not exactly its canonical encoding: the verifier
    reports it as tampering at the record's position.
    """

    seq: int
    prev: str
    hash: str
    event: Mapping[str, Any]
    body: bytes | None = attrs.field(default=None, eq=False, repr=False)
    problem: str | None = attrs.field(default=None, eq=False)

    @classmethod
    def unreadable(cls, seq: int, prev: str, problem: str) -> Record:
        """A placeholder at position *seq* for stored text that is not a record."""
        return cls(seq, prev, "", {}, problem=problem)

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
        """The event, checked (`AuditEvent.from_dict`): `AuditError` when it is not one."""
        if self.problem is not None:
            raise AuditError(f"record {self.seq}: {self.problem}")
        return AuditEvent.from_dict(self.event)


class _NotARecord(AuditError, ValueError):
    """Stored text that is not a record (`parse_line`); callers report it as tampering."""


class _BadSignature(AuditError, ValueError):
    """A checkpoint whose signature does not verify under the given public key."""


def parse_line(stored: bytes) -> Record:
    """The record whose canonical line (`Record.line`, no newline) is *stored*.

    Raises ``ValueError`` (saying what is wrong, never quoting the text) when *stored* is not
    a record; a record that parses but is not spelt exactly canonically comes back with
    ``problem`` set. Never raises anything else, whatever the bytes.
    """
    try:
        data = json.loads(stored)
    except RecursionError:
        raise _NotARecord("not a record (nested too deeply)") from None
    except ValueError:
        raise _NotARecord("not a record (not JSON)") from None
    if not isinstance(data, dict):
        raise _NotARecord("not a record (not a JSON object)")
    if data.keys() != _RECORD_KEYS:
        raise _NotARecord("not a record (its keys are not event, hash, prev and seq)")
    seq, prev, digest, event = data["seq"], data["prev"], data["hash"], data["event"]
    if type(seq) is not int or not 0 < seq <= _MAX_SEQ:
        raise _NotARecord("not a record (seq is not a positive 64-bit integer)")
    for name, value in (("prev", prev), ("hash", digest)):
        if not isinstance(value, str) or not _HEX.fullmatch(value):
            raise _NotARecord(f"not a record ({name} is not 64 lower-case hex digits)")
    if not isinstance(event, dict):
        raise _NotARecord("not a record (event is not a JSON object)")
    try:
        body: bytes | None = canonical(event)
    except (TypeError, ValueError, RecursionError):
        body = None  # NaN, infinity: no canonical encoding exists
    record = Record(seq, prev, digest, event, body)
    if body is None or record.line() != stored:
        return attrs.evolve(record, body=None, problem=NOT_CANONICAL)
    return record


class ChainKeys:
    """The keys derived from a trail's secret: chain MAC, checkpoint signing, pseudonyms.

    Holds secrets: no repr of them, no pickling, compared by identity.
    """

    __slots__ = ("_chain", "_pseudonym", "_pseudonyms", "_signing", "public_key")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < 32:
            raise ConfigurationError("an audit trail key is at least 32 random bytes")

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
        raise UnpicklableError("audit trail keys cannot be pickled")

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
            raise _BadSignature("the checkpoint's signature is not valid for this key") from None

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
        raise UsageError("a VerificationReport is not a bool: test report.ok")


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
        if record.problem is not None:
            return VerificationReport(False, checked, expected, record.problem)
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
        except (TypeError, ValueError, RecursionError):
            digest = ""
        given = record.hash if isinstance(record.hash, str) and record.hash.isascii() else ""
        if not hmac.compare_digest(digest, given):
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
