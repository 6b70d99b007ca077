"""`AccessMonitor`: rules over the audit stream that flag suspicious access.

A rule is a small configuration object whose ``watch()`` returns a fresh checker: a plain
callable ``(event, at) -> Alert | None`` holding that run's state. `AccessMonitor.observe`
feeds the live stream (``AuditTrail(..., monitor=monitor)``) through long-lived checkers;
`AccessMonitor.scan` replays a stored trail through new ones, using the events' own
timestamps, so a scan never depends on the wall clock or on what the live monitor saw.

Alert messages name the rule, the actor, the action and resource type, and counts; never
the values an event recorded in ``extra``.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

import attrs
import structlog

from securecustomer.audit._chain import Record
from securecustomer.audit._event import AuditEvent
from securecustomer.exceptions import ConfigurationError

__all__ = [
    "AccessMonitor",
    "Alert",
    "BulkExportRule",
    "Checker",
    "DenialBurstRule",
    "FirstAccessRule",
    "MonitorRule",
    "OutsideHoursRule",
    "VolumeRule",
]

_log = structlog.get_logger("securecustomer.audit")


@attrs.frozen(slots=True)
class Alert:
    """One finding: which rule, whose access, how many events, between which times."""

    rule: str
    actor: str | None
    message: str
    events: int
    first: dt.datetime
    last: dt.datetime


Checker = Callable[[AuditEvent, dt.datetime], Alert | None]


@runtime_checkable
class MonitorRule(Protocol):
    """What `AccessMonitor` needs from a rule: a fresh checker per run."""

    def watch(self) -> Checker: ...


def _window(value: dt.timedelta | float) -> dt.timedelta:
    window = value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=value)
    if window <= dt.timedelta(0):
        raise ConfigurationError("a monitor window must be positive")
    return window


def _positive(instance: Any, attribute: Any, value: int) -> None:
    if value < 1:
        raise ConfigurationError(f"{attribute.name} must be at least 1")


def _who(actor: str | None) -> str:
    return "an unknown actor" if actor is None else f"actor {actor!r}"


class _Burst:
    """Events per actor in a sliding window; alerts once each time the count goes over."""

    def __init__(self, rule: str, limit: int, window: dt.timedelta, what: str) -> None:
        self.rule, self.limit, self.window, self.what = rule, limit, window, what
        self.seen: dict[str | None, collections.deque[dt.datetime]] = {}
        self.alerted: set[str | None] = set()

    def count(self, actor: str | None, at: dt.datetime) -> Alert | None:
        times = self.seen.setdefault(actor, collections.deque())
        times.append(at)
        while times and times[0] <= at - self.window:
            times.popleft()
        if len(times) <= self.limit:
            self.alerted.discard(actor)
            return None
        if actor in self.alerted:
            return None
        self.alerted.add(actor)
        return Alert(
            self.rule,
            actor,
            f"{_who(actor)}: {len(times)} {self.what} within {self.window} (limit {self.limit})",
            len(times),
            times[0],
            at,
        )


@attrs.frozen(slots=True)
class VolumeRule:
    """More than *max_events* events by one actor within *window* (a timedelta or seconds)."""

    max_events: int = attrs.field(validator=_positive)
    window: dt.timedelta = attrs.field(converter=_window)

    def watch(self) -> Checker:
        burst = _Burst("volume", self.max_events, self.window, "events")
        return lambda event, at: burst.count(event.actor, at)


@attrs.frozen(slots=True)
class DenialBurstRule:
    """More than *max_denials* denied requests by one actor within *window*."""

    max_denials: int = attrs.field(validator=_positive)
    window: dt.timedelta = attrs.field(converter=_window)

    def watch(self) -> Checker:
        burst = _Burst("denial_burst", self.max_denials, self.window, "denied requests")

        def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
            return burst.count(event.actor, at) if event.outcome == "denied" else None

        return check


def _zone(value: str | dt.tzinfo) -> dt.tzinfo:
    return ZoneInfo(value) if isinstance(value, str) else value


def _hour(instance: Any, attribute: Any, value: int) -> None:
    if not 0 <= value <= 23:
        raise ConfigurationError(f"{attribute.name} must be an hour from 0 to 23")


@attrs.frozen(slots=True)
class OutsideHoursRule:
    """Access outside ``start_hour`` (inclusive) to ``end_hour`` (exclusive) in *tz*.

    ``OutsideHoursRule(22, 6)`` allows the night shift: the window may wrap midnight.
    """

    start_hour: int = attrs.field(validator=_hour)
    end_hour: int = attrs.field(validator=_hour)
    tz: dt.tzinfo = attrs.field(default=dt.UTC, converter=_zone)

    def allowed(self, at: dt.datetime) -> bool:
        hour = at.astimezone(self.tz).hour
        if self.start_hour <= self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour

    def watch(self) -> Checker:
        def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
            if self.allowed(at):
                return None
            local = at.astimezone(self.tz)
            return Alert(
                "outside_hours",
                event.actor,
                f"{_who(event.actor)}: {event.action} on {event.resource_type or 'a resource'} "
                f"at {local:%H:%M} {local.tzname()}, outside "
                f"{self.start_hour:02d}:00-{self.end_hour:02d}:00",
                1,
                at,
                at,
            )

        return check


@attrs.frozen(slots=True)
class BulkExportRule:
    """Bulk access: an action in *actions* (an export), an event touching more than
    *max_fields* fields, or more than *max_records* distinct records read by one actor
    within *window*."""

    max_records: int = attrs.field(default=100, validator=_positive)
    window: dt.timedelta = attrs.field(default=dt.timedelta(hours=1), converter=_window)
    actions: frozenset[str] = attrs.field(default=frozenset({"export"}), converter=frozenset)
    max_fields: int | None = None

    def watch(self) -> Checker:
        seen: dict[str | None, dict[tuple[str | None, str], dt.datetime]] = {}
        alerted: set[str | None] = set()

        def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
            who = _who(event.actor)
            what = event.resource_type or "a resource"
            if event.action in self.actions:
                return Alert(
                    "bulk_export", event.actor, f"{who}: {event.action} of {what}", 1, at, at
                )
            if self.max_fields is not None and len(event.fields) > self.max_fields:
                return Alert(
                    "bulk_export",
                    event.actor,
                    f"{who}: {event.action} of {len(event.fields)} fields of {what} "
                    f"in one call (limit {self.max_fields})",
                    1,
                    at,
                    at,
                )
            if event.resource_id is None:
                return None
            records = seen.setdefault(event.actor, {})
            records[(event.resource_type, event.resource_id)] = at
            for key, when in list(records.items()):
                if when <= at - self.window:
                    del records[key]
            if len(records) <= self.max_records:
                alerted.discard(event.actor)
                return None
            if event.actor in alerted:
                return None
            alerted.add(event.actor)
            return Alert(
                "bulk_export",
                event.actor,
                f"{who}: {len(records)} distinct records within {self.window} "
                f"(limit {self.max_records})",
                len(records),
                min(records.values()),
                at,
            )

        return check


@attrs.frozen(slots=True)
class FirstAccessRule:
    """The first time an actor touches a resource type (in this run)."""

    def watch(self) -> Checker:
        seen: set[tuple[str | None, str]] = set()

        def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
            if event.resource_type is None or (event.actor, event.resource_type) in seen:
                return None
            seen.add((event.actor, event.resource_type))
            return Alert(
                "first_access",
                event.actor,
                f"{_who(event.actor)}: first access to {event.resource_type}",
                1,
                at,
                at,
            )

        return check


class AccessMonitor:
    """Runs *rules* over audit events and reports `Alert`s.

    Each alert goes to every callable in *on_alert* and, with a structlog *logger*, to
    ``logger.warning("audit_alert", ...)``. A callback that raises is logged and skipped.
    *clock* times live events in `observe` (default: the event's own timestamp).

    Example:
        ```python
        monitor = AccessMonitor([VolumeRule(100, dt.timedelta(minutes=5)), FirstAccessRule()],
                                on_alert=[page_security_team], logger=structlog.get_logger())
        trail = AuditTrail(sink, key=secret, monitor=monitor)
        ```
    """

    def __init__(
        self,
        rules: Iterable[MonitorRule],
        *,
        on_alert: Iterable[Callable[[Alert], object]] = (),
        logger: Any = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.rules: tuple[MonitorRule, ...] = tuple(rules)
        self.on_alert = tuple(on_alert)
        self.logger = logger
        self._clock = clock
        self._lock = threading.Lock()
        self._live = [rule.watch() for rule in self.rules]

    def __repr__(self) -> str:
        return f"<AccessMonitor rules={len(self.rules)} callbacks={len(self.on_alert)}>"

    def observe(self, event: AuditEvent) -> list[Alert]:
        """Check one live event; report and return the alerts it raises."""
        at = event.timestamp if self._clock is None else self._clock()
        with self._lock:
            alerts = _run(self._live, event, at)
        for alert in alerts:
            self._report(alert)
        return alerts

    def scan(self, items: Iterable[Record | AuditEvent], *, notify: bool = False) -> list[Alert]:
        """Replay a stored trail (records or events, in order) through fresh checkers.

        Times come from the events. Alerts are returned; with ``notify=True`` they are also
        reported like live ones.
        """
        checkers = [rule.watch() for rule in self.rules]
        alerts: list[Alert] = []
        for item in items:
            event = item.audit_event() if isinstance(item, Record) else item
            alerts.extend(_run(checkers, event, event.timestamp))
        if notify:
            for alert in alerts:
                self._report(alert)
        return alerts

    def _report(self, alert: Alert) -> None:
        for callback in self.on_alert:
            try:
                callback(alert)
            except Exception as exc:
                _log.error(
                    "audit_alert_callback_failed", rule=alert.rule, error_type=type(exc).__name__
                )
        if self.logger is not None:
            self.logger.warning(
                "audit_alert",
                rule=alert.rule,
                actor=alert.actor,
                message=alert.message,
                events=alert.events,
                first=alert.first.isoformat(),
                last=alert.last.isoformat(),
            )


def _run(checkers: Sequence[Checker], event: AuditEvent, at: dt.datetime) -> list[Alert]:
    return [alert for check in checkers if (alert := check(event, at)) is not None]
