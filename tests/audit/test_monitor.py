"""AccessMonitor and its rules: live observation, replay over a stored trail, reporting."""

from __future__ import annotations

import datetime as dt
import gc
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import structlog
from structlog.testing import capture_logs

from securecustomer.audit import (
    AccessMonitor,
    Alert,
    AuditEvent,
    AuditTrail,
    BulkExportRule,
    DenialBurstRule,
    FirstAccessRule,
    MemoryAuditSink,
    MonitorRule,
    OutsideHoursRule,
    TotalVolumeRule,
    VolumeRule,
    actor,
    audited,
)

KEY = bytes(range(32))
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def event(seconds: float = 0, **keys: Any) -> AuditEvent:
    base: dict[str, Any] = {
        "action": "read",
        "actor": "user-1",
        "resource_type": "customer",
        "timestamp": T0 + dt.timedelta(seconds=seconds),
    }
    return AuditEvent(**(base | keys))


def scan(rule: MonitorRule, events: list[AuditEvent]) -> list[Alert]:
    return AccessMonitor([rule]).scan(events)


class TestVolumeRule:
    """More than max_events per actor in a sliding window alerts once per crossing."""

    def test_crossing_alerts_once(self) -> None:
        alerts = scan(VolumeRule(3, dt.timedelta(minutes=1)), [event(i) for i in range(6)])
        assert 1 == len(alerts)
        (alert,) = alerts
        assert ("volume", "user-1", 4) == (alert.rule, alert.actor, alert.events)
        assert (T0, T0 + dt.timedelta(seconds=3)) == (alert.first, alert.last)

    def test_window_slides(self) -> None:
        events = [event(i * 30) for i in range(10)]
        assert [] == scan(VolumeRule(2, 60), events)
        assert 1 == len(scan(VolumeRule(1, 60), events))

    def test_alerts_again_after_calming_down(self) -> None:
        events = [event(0), event(1), event(200), event(201)]
        assert 2 == len(scan(VolumeRule(1, 60), events))

    def test_actors_are_counted_apart(self) -> None:
        events = [event(i, actor=f"user-{i % 3}") for i in range(9)]
        assert [] == scan(VolumeRule(3, 60), events)

    @pytest.mark.parametrize(("limit", "window"), [(0, 60), (1, 0), (1, -5)])
    def test_bad_settings(self, limit: int, window: float) -> None:
        with pytest.raises(ValueError, match=r"at least 1|positive"):
            VolumeRule(limit, window)


class TestDenialBurstRule:
    """Only denied outcomes count."""

    def test_denials(self) -> None:
        events = [event(i, outcome="denied") for i in range(3)] + [event(4)] * 5
        (alert,) = scan(DenialBurstRule(2, 60), events)
        assert ("denial_burst", 3) == (alert.rule, alert.events)
        assert "denied requests" in alert.message

    def test_successes_do_not_count(self) -> None:
        assert [] == scan(DenialBurstRule(2, 60), [event(i) for i in range(10)])


class TestOutsideHoursRule:
    """Access outside the allowed hours, in the rule's time zone, wrapping midnight."""

    def test_inside_and_outside(self) -> None:
        rule = OutsideHoursRule(8, 18, "Europe/Berlin")
        # 12:00 UTC is 14:00 in Berlin (summer); 17:00 UTC is 19:00.
        alerts = scan(rule, [event(0), event(5 * 3600)])
        (alert,) = alerts
        assert "outside_hours" == alert.rule
        assert "19:00 CEST" in alert.message
        assert T0 + dt.timedelta(hours=5) == alert.first

    def test_wraps_midnight(self) -> None:
        rule = OutsideHoursRule(22, 6)
        assert rule.allowed(dt.datetime(2024, 5, 1, 23, tzinfo=dt.UTC))
        assert rule.allowed(dt.datetime(2024, 5, 1, 5, tzinfo=dt.UTC))
        assert not rule.allowed(dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC))

    def test_bad_hour(self) -> None:
        with pytest.raises(ValueError, match="hour"):
            OutsideHoursRule(8, 24)


class TestBulkExportRule:
    """Exports, wide reads and many distinct records in a window."""

    def test_export_action(self) -> None:
        (alert,) = scan(BulkExportRule(), [event(action="export"), event()])
        assert "actor 'user-1': export of customer" == alert.message

    def test_many_fields(self) -> None:
        rule = BulkExportRule(max_fields=3)
        alerts = scan(rule, [event(fields=("a", "b", "c")), event(fields=tuple("abcd"))])
        assert ["actor 'user-1': read of 4 fields of customer in one call (limit 3)"] == [
            a.message for a in alerts
        ]

    def test_distinct_records(self) -> None:
        events = [event(i, resource_id=str(i % 4)) for i in range(20)]
        assert [] == scan(BulkExportRule(max_records=4), events)
        (alert,) = scan(BulkExportRule(max_records=3), events)
        assert 4 == alert.events

    def test_records_leave_the_window(self) -> None:
        events = [event(i * 100, resource_id=str(i)) for i in range(10)]
        assert [] == scan(BulkExportRule(max_records=2, window=150), events)
        assert 1 == len(scan(BulkExportRule(max_records=2, window=250), events))


class TestFirstAccessRule:
    """The first time an actor touches a resource type."""

    def test_first_per_actor_and_type(self) -> None:
        events = [
            event(),
            event(),
            event(resource_type="invoice"),
            event(actor="user-2"),
            event(resource_type=None),
        ]
        alerts = scan(FirstAccessRule(), events)
        assert [("user-1", "customer"), ("user-1", "invoice"), ("user-2", "customer")] == [
            (a.actor, a.message.rsplit(" ", 1)[1]) for a in alerts
        ]


class TestAccessMonitor:
    """observe() keeps live state and reports; scan() replays with fresh state."""

    def test_observe_reports_to_callbacks_and_logger(self) -> None:
        seen: list[Alert] = []
        monitor = AccessMonitor(
            [FirstAccessRule()], on_alert=[seen.append], logger=structlog.get_logger()
        )
        with capture_logs() as logs:
            alerts = monitor.observe(event())
            assert [] == monitor.observe(event(1))
        assert alerts == seen
        assert 1 == len(logs)
        assert {
            "event": "audit_alert",
            "log_level": "warning",
            "rule": "first_access",
            "actor": "user-1",
            "message": alerts[0].message,
            "events": 1,
            "first": T0.isoformat(),
            "last": T0.isoformat(),
        } == logs[0]

    def test_failing_callback_does_not_stop_the_others(self) -> None:
        seen: list[Alert] = []

        def broken(alert: Alert) -> None:
            raise RuntimeError("pager down")

        monitor = AccessMonitor([FirstAccessRule()], on_alert=[broken, seen.append])
        with capture_logs() as logs:
            monitor.observe(event())
        assert 1 == len(seen)
        assert ["audit_alert_callback_failed"] == [entry["event"] for entry in logs]
        assert "RuntimeError" == logs[0]["error_type"]

    def test_clock_times_live_events(self) -> None:
        now = [T0.replace(hour=3)]
        monitor = AccessMonitor([OutsideHoursRule(8, 18)], clock=lambda: now[0])
        assert 1 == len(monitor.observe(event()))
        now[0] = T0
        assert [] == monitor.observe(event(timestamp=T0.replace(hour=3)))

    def test_scan_uses_event_times_and_fresh_state(self) -> None:
        monitor = AccessMonitor(
            [FirstAccessRule(), VolumeRule(2, 60)], clock=lambda: T0 + dt.timedelta(days=365)
        )
        for i in range(5):
            monitor.observe(event(i))
        events = [event(i * 10) for i in range(3)]
        alerts = monitor.scan(events)
        assert ["first_access", "volume"] == [a.rule for a in alerts]
        assert T0 + dt.timedelta(seconds=20) == alerts[1].last

    def test_scan_notify(self) -> None:
        seen: list[Alert] = []
        monitor = AccessMonitor([FirstAccessRule()], on_alert=[seen.append])
        monitor.scan([event()])
        assert [] == seen
        monitor.scan([event()], notify=True)
        assert 1 == len(seen)

    def test_messages_never_hold_extra_values(self) -> None:
        rules: list[MonitorRule] = [
            VolumeRule(1, 60),
            DenialBurstRule(1, 60),
            OutsideHoursRule(0, 1),
            BulkExportRule(max_records=1, max_fields=1),
            FirstAccessRule(),
        ]
        secret = "ada@example.com-s3cret"
        events = [
            event(
                i,
                outcome="denied",
                resource_id=str(i),
                extra={"query": secret},
                fields=("a", "b") if i == 3 else (),
            )
            for i in range(4)
        ]
        events.append(event(5, action="export", extra={"query": secret}))
        alerts = AccessMonitor(rules).scan(events)
        assert {"volume", "denial_burst", "outside_hours", "bulk_export", "first_access"} == {
            a.rule for a in alerts
        }
        assert all(secret not in a.message for a in alerts)

    def test_alert_is_frozen(self) -> None:
        alert = Alert("r", None, "m", 1, T0, T0)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            alert.rule = "other"  # type: ignore[misc]
        assert (
            "an unknown actor: first access to customer"
            == scan(FirstAccessRule(), [event(actor=None)])[0].message
        )


class TestTrailFeedsMonitor:
    """AuditTrail(monitor=...) observes each event once it is stored."""

    def test_stored_events_are_observed(self) -> None:
        seen: list[Alert] = []
        monitor = AccessMonitor([FirstAccessRule()], on_alert=[seen.append])
        trail = AuditTrail(MemoryAuditSink(), key=KEY, monitor=monitor, batch_size=2)
        trail.append(event())
        monitor.flush()
        assert [] == seen
        trail.append(event(1, resource_type="invoice"))
        monitor.close()
        assert 2 == len(seen)
        assert trail.verify().ok

    def test_a_failing_monitor_does_not_fail_the_append(self) -> None:
        class Exploding:
            """A rule whose checker fails."""

            def watch(self) -> Any:
                def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
                    raise RuntimeError("boom")

                return check

        monitor = AccessMonitor([Exploding()])
        trail = AuditTrail(MemoryAuditSink(), key=KEY, monitor=monitor)
        with capture_logs() as logs:
            trail.append(event())
            monitor.close()
        assert ["audit_monitor_failed"] == [entry["event"] for entry in logs]
        assert 1 == trail.verify().checked

    def test_scan_over_stored_records(self) -> None:
        sink = MemoryAuditSink()
        trail = AuditTrail(sink, key=KEY)
        for i in range(4):
            trail.append(event(i, outcome="denied"))
        alerts = AccessMonitor([DenialBurstRule(2, 60)]).scan(sink.records())
        assert [3] == [a.events for a in alerts]


class _Counted(dt.datetime):
    """A datetime that counts the comparisons made on it (the monitor's unit of work)."""

    comparisons = 0

    def __le__(self, other: Any) -> bool:
        _Counted.comparisons += 1
        return super().__le__(other)

    def __lt__(self, other: Any) -> bool:
        _Counted.comparisons += 1
        return super().__lt__(other)

    def __ge__(self, other: Any) -> bool:
        _Counted.comparisons += 1
        return super().__ge__(other)

    def __gt__(self, other: Any) -> bool:
        _Counted.comparisons += 1
        return super().__gt__(other)


def _many_actors(start: int, stop: int) -> Iterator[AuditEvent]:
    for n in range(start, stop):
        yield event(n / 100, actor=f"user-{n}", resource_id=str(n), outcome="denied")


class TestBoundedState:
    """The live monitor's state stops growing at its configured bounds (issue 15, item 5)."""

    RULES: tuple[MonitorRule, ...] = (
        VolumeRule(100, dt.timedelta(hours=1)),
        DenialBurstRule(100, dt.timedelta(hours=1)),
        BulkExportRule(),
        FirstAccessRule(),
    )

    def test_memory_stops_growing_with_many_actors(self) -> None:
        monitor = AccessMonitor(self.RULES)
        gc.collect()
        tracemalloc.start()
        try:
            for item in _many_actors(0, 20_000):
                monitor.observe(item)
            gc.collect()
            after_20k, _ = tracemalloc.get_traced_memory()
            for item in _many_actors(20_000, 60_000):
                monitor.observe(item)
            gc.collect()
            after_60k, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # Every actor is new and inside the window: an unbounded monitor holds three times
        # as much after 60k actors as after 20k; the default bound is 10k actors per rule.
        assert after_60k - after_20k < after_20k // 10

    def test_memory_under_the_configured_bound(self) -> None:
        rules: list[MonitorRule] = [
            VolumeRule(10, dt.timedelta(hours=1), max_actors=500),
            DenialBurstRule(10, dt.timedelta(hours=1), max_actors=500),
            BulkExportRule(max_records=10, max_actors=500),
            FirstAccessRule(max_seen=2_000),
        ]
        monitor = AccessMonitor(rules)
        gc.collect()
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            for item in _many_actors(0, 20_000):
                monitor.observe(item)
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        # 3 rules x 500 actors x (a deque or dict, about 1 KiB, plus at most 11 entries of
        # about 200 bytes) and 2,000 (actor, type) pairs: well under 8 MiB.
        assert used < 8 * 2**20

    def test_actors_unseen_for_a_window_are_forgotten(self) -> None:
        rule = VolumeRule(1, 60, max_actors=3)
        # user-0 reaches its limit, then three others push it out: its count starts again.
        events = [event(0, actor="user-0")] + [event(i, actor=f"user-{i}") for i in (1, 2, 3)]
        events.append(event(4, actor="user-0"))
        assert [] == scan(rule, events)
        assert ["user-0"] == [a.actor for a in scan(VolumeRule(1, 60), events)]

    def test_bulk_export_does_linear_work(self) -> None:
        """16k distinct records took 21 s: every event rescanned every record it held."""
        clock = [_Counted(2024, 5, 1, 12, tzinfo=dt.UTC)]
        monitor = AccessMonitor([BulkExportRule(max_records=10_000)], clock=lambda: clock[0])
        n = 2_000
        _Counted.comparisons = 0
        for i in range(n):
            clock[0] += dt.timedelta(milliseconds=10)
            monitor.observe(event(actor="user-1", resource_id=str(i)))
        # A quadratic rule compares about n * n / 2 = 2,000,000 times.
        assert _Counted.comparisons < 20 * n

    def test_state_of_one_actor_is_bounded(self) -> None:
        rule = BulkExportRule(max_records=50, window=dt.timedelta(days=1))
        events = [event(i, resource_id=str(i)) for i in range(5_000)]
        (alert,) = scan(rule, events)
        assert 51 == alert.events


class _Gate:
    """A rule whose checker waits at a gate: the worker is busy while the test holds it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[int] = []

    def watch(self) -> Any:
        def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
            self.threads.append(threading.get_ident())
            self.entered.set()
            assert self.release.wait(30), "the test never opened the gate"
            return None

        return check


class TestOffTheRequestPath:
    """The trail hands events to a bounded queue; a background thread runs the rules."""

    def test_rules_run_on_another_thread(self) -> None:
        gate = _Gate()
        gate.release.set()
        monitor = AccessMonitor([gate])
        trail = AuditTrail(MemoryAuditSink(), key=KEY, monitor=monitor)
        trail.append(event())
        monitor.close()
        assert 1 == len(gate.threads)
        assert threading.get_ident() not in gate.threads

    def test_append_does_not_wait_for_the_rules(self) -> None:
        gate = _Gate()
        seen: list[Alert] = []
        monitor = AccessMonitor([gate], queue_size=4, on_alert=[seen.append])
        trail = AuditTrail(MemoryAuditSink(), key=KEY, monitor=monitor)
        with capture_logs() as logs:
            try:
                trail.append(event())
                assert gate.entered.wait(30)
                for i in range(10):  # the worker is stuck in the gate: these only queue
                    trail.append(event(i + 1))
                assert 11 == trail.verify().checked
                assert 6 == monitor.dropped  # the oldest six, to keep the newest four
                assert [] == seen
            finally:
                gate.release.set()
            monitor.close()
        (overflow,) = seen
        assert ("monitor_overflow", None, 6) == (overflow.rule, overflow.actor, overflow.events)
        assert "6 events dropped" in overflow.message
        assert ["audit_monitor_overflow"] == [entry["event"] for entry in logs]
        assert 11 - 6 == len(gate.threads)

    def test_close_drains_the_queue_and_submit_restarts(self) -> None:
        seen: list[Alert] = []
        monitor = AccessMonitor([FirstAccessRule()], on_alert=[seen.append])
        for i in range(100):
            monitor.submit(event(i, actor=f"user-{i}"))
        monitor.close()
        assert 100 == len(seen)
        monitor.submit(event(actor="user-x").to_dict())  # a mapping, as audited builds
        monitor.close()
        assert "user-x" == seen[-1].actor
        assert 0 == monitor.dropped

    def test_bad_queue_size(self) -> None:
        with pytest.raises(ValueError, match="queue_size"):
            AccessMonitor([], queue_size=0)


class TestBulkAccessScenarios:
    """The bulk accesses of issue 15 item 6: each raised no alert before."""

    def test_list_endpoint_reading_10000_customers(self) -> None:
        seen: list[Alert] = []
        monitor = AccessMonitor([BulkExportRule()], on_alert=[seen.append])
        trail = AuditTrail(MemoryAuditSink(), key=KEY, monitor=monitor)

        @audited("list", resource="customer", subject_count="return", trail=trail)
        def list_customers() -> list[int]:
            return list(range(10_000))

        with actor("user-1"):
            list_customers()
        monitor.close()
        (alert,) = seen
        assert ("bulk_export", "user-1", 10_000) == (alert.rule, alert.actor, alert.events)
        assert "list of 10000 subjects of customer in one call (limit 100)" in alert.message
        assert trail.verify().ok

    def test_500_subject_exports(self) -> None:
        events = [event(i, action="subject.export", subject=f"ps_{i}") for i in range(500)]
        (alert,) = scan(BulkExportRule(), events)
        assert ("bulk_export", "user-1", 11) == (alert.rule, alert.actor, alert.events)
        assert "11 exports within 1:00:00 (limit 10)" in alert.message

    def test_case_variants_of_one_user_name(self) -> None:
        names = [
            "alice",
            "Alice",
            "ALICE",
            " alice ",
            "\uff41\uff4c\uff49\uff43\uff45",
            "al\u200bice",
            "aLiCe",
        ]
        events = [event(i, actor=names[i % len(names)]) for i in range(101)]
        (alert,) = scan(VolumeRule(100, 3600), events)
        assert ("volume", "alice", 101) == (alert.rule, alert.actor, alert.events)
        assert "actor 'alice': 101 events" in alert.message

    def test_spraying_over_many_user_names(self) -> None:
        events = [event(i / 10, actor=f"user-{i % 500}", resource_id=str(i)) for i in range(5_000)]
        per_actor: list[MonitorRule] = [VolumeRule(100, 3600), BulkExportRule()]
        assert [] == AccessMonitor(per_actor).scan(events)
        (alert,) = AccessMonitor([*per_actor, TotalVolumeRule(1_000, 3600)]).scan(events)
        assert ("total_volume", None, 1_001) == (alert.rule, alert.actor, alert.events)
        assert "all actors together: 1001 subjects" in alert.message
