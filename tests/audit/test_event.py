"""AuditEvent: stable keys, a lossless dict round trip, canonical bytes, validated input."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import attrs
import pytest

from securecustomer.audit import SCHEMA_VERSION, AuditEvent
from securecustomer.audit._chain import ChainKeys, parse_line, verify_chain
from securecustomer.audit._event import canonical
from securecustomer.exceptions import AuditError

AT = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def full_event() -> AuditEvent:
    return AuditEvent(
        action="read",
        actor="user-7",
        resource_type="customer",
        resource_id="42",
        subject="ps_abc",
        fields=["name", "email"],
        outcome="denied",
        error_type="AccessDenied",
        reason="rule agents-read",
        duration_ms=1.5,
        request_id="req-1",
        actor_attributes={"ip": "10.0.0.1"},
        extra={"page": 2, "tags": ["a"]},
        timestamp=AT,
        id="e1",
    )


class TestRoundTrip:
    """to_dict is JSON-ready under stable keys and from_dict inverts it."""

    def test_round_trip(self) -> None:
        event = full_event()
        assert event == AuditEvent.from_dict(event.to_dict())

    def test_round_trip_through_json(self) -> None:
        event = full_event()
        assert event == AuditEvent.from_dict(json.loads(json.dumps(event.to_dict())))

    def test_stable_keys(self) -> None:
        expected = {
            "schema": SCHEMA_VERSION,
            "id": "e1",
            "timestamp": "2024-05-01T12:00:00.123456+00:00",
            "action": "read",
            "actor": "user-7",
            "actor_attributes": {"ip": "10.0.0.1"},
            "resource_type": "customer",
            "resource_id": "42",
            "subject": "ps_abc",
            "fields": ["name", "email"],
            "outcome": "denied",
            "error_type": "AccessDenied",
            "reason": "rule agents-read",
            "duration_ms": 1.5,
            "request_id": "req-1",
            "extra": {"page": 2, "tags": ["a"]},
        }
        assert expected == full_event().to_dict()

    def test_defaults(self) -> None:
        event = AuditEvent(action="read")
        assert (None, (), "success", SCHEMA_VERSION) == (
            event.actor,
            event.fields,
            event.outcome,
            event.schema,
        )
        assert {} == dict(event.extra) == dict(event.actor_attributes)
        assert 24 == len(event.id)  # 96 random bits
        assert event.id != AuditEvent(action="read").id
        assert dt.UTC == event.timestamp.tzinfo

    def test_maps_are_read_only_copies(self) -> None:
        extra = {"page": 1}
        event = AuditEvent(action="read", extra=extra)
        extra["page"] = 2
        assert 1 == event.extra["page"]
        with pytest.raises(TypeError):
            event.extra["page"] = 3  # type: ignore[index]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.action = "write"  # type: ignore[misc]


class TestCanonical:
    """One byte string per event: sorted keys, no spaces, ASCII, no NaN."""

    def test_stable_regardless_of_key_order(self) -> None:
        data = full_event().to_dict()
        reordered = dict(reversed(list(data.items())))
        assert canonical(data) == canonical(reordered)
        assert canonical(data) == canonical(AuditEvent.from_dict(data).to_dict())

    def test_known_bytes(self) -> None:
        assert b'{"a":[1,"\\u00e9"],"b":null}' == canonical({"b": None, "a": [1, "é"]})

    def test_nan_refused(self) -> None:
        with pytest.raises(ValueError, match="JSON"):
            canonical({"x": float("nan")})


class TestValidation:
    """Bad input is refused when the event is made."""

    def test_naive_timestamp(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            AuditEvent(action="read", timestamp=dt.datetime(2024, 5, 1, 12))

    def test_aware_timestamp_is_stored_in_utc(self) -> None:
        local = dt.datetime(2024, 5, 1, 14, tzinfo=ZoneInfo("Europe/Berlin"))
        event = AuditEvent(action="read", timestamp=local)
        assert dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC) == event.timestamp
        assert dt.UTC == event.timestamp.tzinfo

    @pytest.mark.parametrize("outcome", ["ok", "Success", ""])
    def test_outcome(self, outcome: str) -> None:
        with pytest.raises(ValueError, match="outcome must be one of"):
            AuditEvent(action="read", outcome=outcome)

    @pytest.mark.parametrize("outcome", ["success", "denied", "error"])
    def test_valid_outcomes(self, outcome: str) -> None:
        assert outcome == AuditEvent(action="read", outcome=outcome).outcome

    def test_fields_not_a_string(self) -> None:
        with pytest.raises(TypeError, match="not one string"):
            AuditEvent(action="read", fields="email")  # type: ignore[arg-type]

    def test_fields_from_any_iterable(self) -> None:
        assert ("a", "b") == AuditEvent(action="read", fields=iter(["a", "b"])).fields


class TestSubjectCount:
    """subject_count: how many data subjects one event touched (a list endpoint, a batch).

    Optional and omitted from the event's dict when unset, so the canonical encoding, and
    with it the chain hash, of every event written before the field existed is unchanged.
    """

    OLD_BYTES = (
        b'{"action":"read","actor":"user-7","actor_attributes":{"ip":"10.0.0.1"},'
        b'"duration_ms":1.5,"error_type":"AccessDenied","extra":{"page":2,"tags":["a"]},'
        b'"fields":["name","email"],"id":"e1","outcome":"denied","reason":"rule agents-read",'
        b'"request_id":"req-1","resource_id":"42","resource_type":"customer","schema":1,'
        b'"subject":"ps_abc","timestamp":"2024-05-01T12:00:00.123456+00:00"}'
    )
    # Record 1's hash under key bytes(range(32)), computed by the code before subject_count.
    OLD_HASH = "20fd026e7f3ab12687a6749c582b06568a709980ed73c31eb3f033725f54ae81"

    def test_unset_keeps_the_old_canonical_bytes_and_hash(self) -> None:
        event = full_event()
        assert event.subject_count is None
        assert "subject_count" not in event.to_dict()
        assert self.OLD_BYTES == canonical(event.to_dict())
        (record,) = ChainKeys(bytes(range(32))).link(None, [event])
        assert self.OLD_HASH == record.hash

    def test_old_records_read_back_and_verify(self) -> None:
        keys = ChainKeys(bytes(range(32)))
        old = json.loads(self.OLD_BYTES)
        record = parse_line(
            b'{"event":%s,"hash":"%s","prev":"%s","seq":1}'
            % (self.OLD_BYTES, self.OLD_HASH.encode(), b"0" * 64)
        )
        assert record.problem is None
        assert full_event() == record.audit_event()
        assert verify_chain(keys, [record], []).ok
        assert old == AuditEvent.from_dict(old).to_dict()

    def test_round_trip_and_hashed(self) -> None:
        event = attrs.evolve(full_event(), subject_count=10_000)
        data = event.to_dict()
        assert 10_000 == data["subject_count"]
        assert event == AuditEvent.from_dict(json.loads(json.dumps(data)))
        keys = ChainKeys(bytes(range(32)))
        (record,) = keys.link(None, [event])
        assert verify_chain(keys, [record], []).ok
        edited = attrs.evolve(record, event={**data, "subject_count": 1}, body=None)
        assert not verify_chain(keys, [edited], []).ok

    @pytest.mark.parametrize("value", [-1, True, 1.0, "3"])
    def test_bad_values_refused(self, value: object) -> None:
        with pytest.raises((ValueError, TypeError), match="subject_count"):
            AuditEvent(action="list", subject_count=value)  # type: ignore[arg-type]
        data = {**full_event().to_dict(), "subject_count": value}
        with pytest.raises(AuditError, match="'subject_count'"):
            AuditEvent.from_dict(data)
