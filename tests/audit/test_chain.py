"""ChainKeys, Record, Checkpoint and VerificationReport: the keyed chain's building blocks."""

from __future__ import annotations

import copy
import datetime as dt
import pickle
import re

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securecustomer.audit import (
    AuditEvent,
    AuditTrail,
    Checkpoint,
    MemoryAuditSink,
    Record,
    VerificationReport,
)
from securecustomer.audit._chain import GENESIS, ChainKeys, public_key_hex, verify_chain

SECRET = bytes(range(32))
OTHER = bytes(range(1, 33))
AT = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def events(count: int) -> list[AuditEvent]:
    return [AuditEvent(action="read", actor=f"user-{n}", timestamp=AT) for n in range(count)]


class TestChainKeys:
    """Keys derived from a secret of at least 32 bytes, kept out of repr and pickles."""

    @pytest.mark.parametrize("secret", [b"", b"x" * 31, "a" * 40])
    def test_short_or_wrong_type_refused(self, secret: object) -> None:
        with pytest.raises(ValueError, match="at least 32 random bytes"):
            ChainKeys(secret)  # type: ignore[arg-type]

    def test_accepts_32_bytes_and_bytearray(self) -> None:
        assert ChainKeys(bytearray(SECRET)).public_key is not None
        assert public_key_hex(ChainKeys(bytearray(SECRET)).public_key) == public_key_hex(
            ChainKeys(SECRET).public_key
        )

    def test_no_secret_in_repr(self) -> None:
        keys = ChainKeys(SECRET)
        text = repr(keys)
        assert re.fullmatch(r"<ChainKeys public_key=[0-9a-f]{16}\.\.\.>", text)
        for secret in (SECRET, keys._chain, keys._pseudonym):
            assert secret.hex() not in text
            assert repr(secret) not in text

    def test_refuses_pickling_and_copying(self) -> None:
        keys = ChainKeys(SECRET)
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(keys)
        with pytest.raises(TypeError, match="cannot be pickled"):
            copy.copy(keys)

    def test_trail_refuses_pickling(self) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(AuditTrail(MemoryAuditSink(), key=SECRET))

    def test_pseudonyms_stable_per_key_different_across_keys(self) -> None:
        keys, again, other = ChainKeys(SECRET), ChainKeys(SECRET), ChainKeys(OTHER)
        first = keys.pseudonym(42)
        assert re.fullmatch(r"ps_[a-z2-7]{26}", first)
        assert first == keys.pseudonym(42) == again.pseudonym(42) == keys.pseudonym("42")
        assert first != keys.pseudonym(43)
        assert first != other.pseudonym(42)

    def test_different_secrets_give_different_chains(self) -> None:
        batch = events(2)
        mine = ChainKeys(SECRET).link(None, batch)
        theirs = ChainKeys(OTHER).link(None, batch)
        assert [r.hash for r in mine] != [r.hash for r in theirs]
        assert public_key_hex(ChainKeys(SECRET).public_key) != public_key_hex(
            ChainKeys(OTHER).public_key
        )

    def test_link_numbers_and_links(self) -> None:
        keys = ChainKeys(SECRET)
        first = keys.link(None, events(2))
        more = keys.link(first[-1], events(1))
        assert [1, 2, 3] == [r.seq for r in first + more]
        assert GENESIS == first[0].prev
        assert first[0].hash == first[1].prev
        assert first[1].hash == more[0].prev
        assert first[0].hash == keys.digest(1, GENESIS, first[0].event)
        assert first[0].hash != keys.digest(2, GENESIS, first[0].event)


class TestRecord:
    """A record survives to_dict/from_dict and gives back its event."""

    def test_round_trip(self) -> None:
        batch = events(1)
        (record,) = ChainKeys(SECRET).link(None, batch)
        assert record == Record.from_dict(record.to_dict())
        assert batch[0] == record.audit_event()


class TestCheckpoint:
    """Signed heads: verify with the trail's public key, round trip, reject tampering."""

    def checkpoint(self) -> Checkpoint:
        return ChainKeys(SECRET).sign(7, "ab" * 32, AT)

    def test_sign_and_verify(self) -> None:
        keys = ChainKeys(SECRET)
        checkpoint = keys.sign(7, "ab" * 32, AT)
        assert public_key_hex(keys.public_key) == checkpoint.public_key
        assert checkpoint.verify(keys.public_key) is None
        assert checkpoint.verify(checkpoint.public_key) is None

    def test_round_trip(self) -> None:
        checkpoint = self.checkpoint()
        again = Checkpoint.from_dict(checkpoint.to_dict())
        assert checkpoint == again
        again.verify(ChainKeys(SECRET).public_key)

    @pytest.mark.parametrize(
        "change",
        [
            {"seq": 8},
            {"hash": "cd" * 32},
            {"timestamp": AT + dt.timedelta(seconds=1)},
            {"signature": "00" * 64},
            {"signature": "not hex"},
        ],
    )
    def test_tampered_rejected(self, change: dict[str, object]) -> None:
        tampered = attrs.evolve(self.checkpoint(), **change)
        with pytest.raises(ValueError, match=r"^the checkpoint's signature is not valid"):
            tampered.verify(ChainKeys(SECRET).public_key)

    def test_other_key_rejected(self) -> None:
        other = Ed25519PrivateKey.generate().public_key()
        with pytest.raises(ValueError, match="not valid"):
            self.checkpoint().verify(other)
        with pytest.raises(ValueError, match="not valid"):
            self.checkpoint().verify(ChainKeys(OTHER).public_key)

    def test_forged_checkpoint_fails_verify_chain(self) -> None:
        keys = ChainKeys(SECRET)
        records = keys.link(None, events(2))
        forged = ChainKeys(OTHER).sign(2, records[-1].hash, AT)
        report = verify_chain(keys, records, [forged])
        assert (False, 2) == (report.ok, report.first_bad)
        assert "signature" in (report.problem or "")

    def test_checkpoint_beyond_the_end_is_a_cut(self) -> None:
        keys = ChainKeys(SECRET)
        records = keys.link(None, events(3))
        checkpoint = keys.sign(3, records[-1].hash, AT)
        assert verify_chain(keys, records, [checkpoint]).ok
        report = verify_chain(keys, records[:2], [checkpoint])
        assert (False, 3) == (report.ok, report.first_bad)
        assert "cut" in (report.problem or "")


class TestVerificationReport:
    """A report is not a bool: callers must test .ok."""

    def test_refuses_bool(self) -> None:
        report = VerificationReport(True, 3)
        with pytest.raises(TypeError, match=r"test report\.ok"):
            bool(report)

    def test_fields(self) -> None:
        report = VerificationReport(False, 2, 3, "its content or hash was altered")
        assert (False, 2, 3, "its content or hash was altered") == (
            report.ok,
            report.checked,
            report.first_bad,
            report.problem,
        )

    def test_empty_chain_is_ok(self) -> None:
        report = verify_chain(ChainKeys(SECRET), [])
        assert (True, 0, None) == (report.ok, report.checked, report.first_bad)
