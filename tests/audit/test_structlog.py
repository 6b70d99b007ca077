"""StructlogAuditSink: records emitted through a real structlog logger and read back."""

from __future__ import annotations

import datetime as dt
import io
import json
import secrets
import threading
from collections.abc import Sequence
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from securecustomer.audit import (
    AuditEvent,
    AuditTrail,
    MemoryAuditSink,
    Record,
    StructlogAuditSink,
    records_from_lines,
)
from securecustomer.audit._structlog import EVENT_KEYS
from securecustomer.exceptions import AuditError

KEY = bytes(range(32))
AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def event(n: int = 0, **keys: Any) -> AuditEvent:
    base: dict[str, Any] = {"action": "read", "actor": f"user-{n}", "timestamp": AT}
    return AuditEvent(**(base | keys))


def json_logger(out: io.StringIO) -> Any:
    """A logger as a host application would build one, without structlog.configure."""
    return structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
    )


class BrokenLogger:
    """A logger whose second call fails, like a pipeline whose transport went away."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def info(self, event: str, **keys: Any) -> None:
        if len(self.calls) == 1:
            raise OSError("log transport closed")
        self.calls.append({"event": event, **keys})


class TestStructlogAuditSink:
    """Each record is one structlog call with stable keys; records() yields what was emitted."""

    def test_emits_one_call_per_record_with_stable_keys(self) -> None:
        sink = StructlogAuditSink(structlog.get_logger("app.audit"))
        trail = AuditTrail(sink, key=KEY)
        with capture_logs() as logs:
            trail.append(event(1, resource_type="customer", fields=("email",)))
            trail.append(event(2))
        assert 2 == len(logs)
        first = logs[0]
        assert "audit" == first["event"]
        assert "info" == first["log_level"]
        assert {"seq", "prev", "hash", *EVENT_KEYS, "event", "log_level"} == set(first)
        assert 1 == first["seq"]
        assert "00" * 32 == first["prev"]
        assert first["hash"] == logs[1]["prev"]
        assert ["email"] == first["fields"]
        assert "user-1" == first["actor"]

    def test_event_name_is_configurable(self) -> None:
        sink = StructlogAuditSink(structlog.get_logger(), event_name="customer_audit")
        with capture_logs() as logs:
            AuditTrail(sink, key=KEY).append(event())
        assert ["customer_audit"] == [entry["event"] for entry in logs]

    def test_empty_event_name_is_refused(self) -> None:
        with pytest.raises(ValueError, match="event_name"):
            StructlogAuditSink(structlog.get_logger(), event_name="")

    def test_records_yields_what_was_emitted_and_verifies(self) -> None:
        out = io.StringIO()
        sink = StructlogAuditSink(json_logger(out))
        trail = AuditTrail(sink, key=KEY)
        for n in range(3):
            trail.append(event(n))
        assert [1, 2, 3] == [record.seq for record in sink.records()]
        assert trail.verify().ok
        assert 3 == trail.verify().checked

    def test_head_is_kept_in_memory_across_batches(self) -> None:
        sink = StructlogAuditSink(json_logger(io.StringIO()))
        with AuditTrail(sink, key=KEY, batch_size=2) as trail:
            for n in range(5):
                trail.append(event(n))
        assert [1, 2, 3, 4, 5] == [record.seq for record in sink.records()]
        assert trail.verify().ok

    def test_partial_failure_keeps_the_logged_records_as_head(self) -> None:
        logger = BrokenLogger()
        sink = StructlogAuditSink(logger)
        trail = AuditTrail(sink, key=KEY, batch_size=2)
        trail.append(event(1))
        with pytest.raises(AuditError, match="OSError"):
            trail.append(event(2))
        assert [1] == [record.seq for record in sink.records()]
        assert [1] == [call["seq"] for call in logger.calls]

    def test_concurrent_appends_do_not_fork_the_chain(self) -> None:
        sink = StructlogAuditSink(json_logger(io.StringIO()))
        trail = AuditTrail(sink, key=KEY)

        def work(n: int) -> None:
            for i in range(20):
                trail.append(event(n * 100 + i))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert list(range(1, 81)) == [record.seq for record in sink.records()]
        assert trail.verify().ok

    def test_is_an_audit_sink(self) -> None:
        from securecustomer.audit import AuditSink

        assert isinstance(StructlogAuditSink(structlog.get_logger()), AuditSink)


class TestRecordsFromLines:
    """JSON lines rendered by structlog come back as records that verify with the key."""

    def write(self, count: int) -> tuple[str, list[Record]]:
        out = io.StringIO()
        logger = json_logger(out)
        sink = StructlogAuditSink(logger)
        trail = AuditTrail(sink, key=KEY)
        for n in range(count):
            logger.info("request_done", path="/customers", status=200)
            trail.append(event(n, extra={"page": n}))
        return out.getvalue(), list(sink.records())

    def verify(self, records: Sequence[Record], *, key: bytes = KEY) -> Any:
        sink = MemoryAuditSink()
        sink.stored.extend(records)
        return AuditTrail(sink, key=key).verify()

    def test_round_trip_skips_other_log_lines(self) -> None:
        text, emitted = self.write(3)
        lines = ["not json", "", "[1, 2]", '{"event": "audit"}', *text.splitlines()]
        parsed = list(records_from_lines(lines))
        assert emitted == parsed
        report = self.verify(parsed)
        assert report.ok
        assert 3 == report.checked

    def test_wrong_key_fails_verification(self) -> None:
        text, _ = self.write(2)
        report = self.verify(
            list(records_from_lines(text.splitlines())), key=secrets.token_bytes(32)
        )
        assert not report.ok
        assert 1 == report.first_bad

    def test_edited_line_is_detected(self) -> None:
        text, _ = self.write(3)
        lines = text.splitlines()
        data = json.loads(lines[3])
        assert "audit" == data["event"]
        data["actor"] = "someone-else"
        lines[3] = json.dumps(data)
        report = self.verify(list(records_from_lines(lines)))
        assert not report.ok
        assert 2 == report.first_bad

    def test_deleted_line_is_detected(self) -> None:
        text, _ = self.write(3)
        lines = [line for line in text.splitlines() if '"seq": 2' not in line]
        report = self.verify(list(records_from_lines(lines)))
        assert not report.ok
        assert 2 == report.first_bad
        assert "missing" in report.problem

    def test_missing_event_key_is_not_repaired(self) -> None:
        text, _ = self.write(1)
        data = json.loads(text.splitlines()[1])
        del data["reason"]
        (record,) = records_from_lines([json.dumps(data)])
        assert "reason" not in record.event
        assert not self.verify([record]).ok

    def test_other_event_name(self) -> None:
        text, _ = self.write(2)
        assert [] == list(records_from_lines(text.splitlines(), event_name="other"))

    def test_unparseable_seq_is_reported_at_its_position(self) -> None:
        line = json.dumps({"event": "audit", "seq": "x", "prev": "00", "hash": "00"})
        (record,) = records_from_lines([line])
        assert (1, "line 1: seq is not a number") == (record.seq, record.problem)
        report = self.verify([record])
        assert (False, 1, "line 1: seq is not a number") == (
            report.ok,
            report.first_bad,
            report.problem,
        )

    def test_a_repeated_key_is_reported(self) -> None:
        text, _ = self.write(1)
        line = text.splitlines()[-1]
        doubled = line.replace('"action": "read"', '"action": "export", "action": "read"')
        assert doubled != line
        (record,) = records_from_lines([doubled])
        assert "line 1: a key is repeated" == record.problem
        assert not self.verify([record]).ok

    def test_event_keys_match_the_event_schema(self) -> None:
        assert set(EVENT_KEYS) == set(event().to_dict())

    def test_subject_count_survives_the_log_store(self) -> None:
        out = io.StringIO()
        sink = StructlogAuditSink(json_logger(out))
        trail = AuditTrail(sink, key=KEY)
        trail.append(event(subject_count=250))
        trail.append(event(1))
        parsed = list(records_from_lines(out.getvalue().splitlines()))
        assert list(sink.records()) == parsed
        assert [250, None] == [r.audit_event().subject_count for r in parsed]
        assert self.verify(parsed).ok
