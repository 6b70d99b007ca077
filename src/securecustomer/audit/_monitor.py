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
import functools
import threading
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic, Protocol, TypeVar, runtime_checkable
from zoneinfo import ZoneInfo

import attrs

from securecustomer.audit._chain import Record
from securecustomer.audit._event import AuditEvent
from securecustomer.audit._log import log
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
    "TotalVolumeRule",
    "VolumeRule",
    "normalize_actor",
]

EventLike = AuditEvent | Mapping[str, Any]
S = TypeVar("S", "_Window", "_Counter")


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


@functools.lru_cache(maxsize=4096)
def normalize_actor(actor: str) -> str:
    """The form of an actor name the monitor counts under: Unicode NFKC, case-folded,
    format characters (zero-width spaces and joiners) removed, outer white space stripped.
    ``"ALICE"``, ``" alice "``, full-width ``"alice"`` and ``"al\\u200bice"`` all count as
    ``"alice"``. The stored events keep the name as given."""
    text = unicodedata.normalize("NFKC", actor)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", text.casefold()).strip()


def _touched(event: AuditEvent) -> int:
    """How many subjects *event* touched: its ``subject_count``, else one."""
    return 1 if event.subject_count is None else event.subject_count


class _Window:
    """Weighted entries in a sliding window, trimmed to what deciding ``total > limit``
    needs: entries older than the window go, and so do the oldest ones while the rest
    still exceed the limit. So it never holds more than ``limit + 1`` entries, and each
    event costs O(1) amortized. *key* (a record, for distinct counts) replaces its own
    earlier entry. The reported total is then at least the limit plus one, never more
    than the true count."""

    __slots__ = ("alerted", "entries", "total")

    def __init__(self) -> None:
        self.entries: collections.OrderedDict[Hashable, tuple[dt.datetime, int]] = (
            collections.OrderedDict()
        )
        self.total = 0
        self.alerted = False

    def add(
        self, key: Hashable, at: dt.datetime, weight: int, limit: int, window: dt.timedelta
    ) -> int:
        entries = self.entries
        old = entries.pop(key, None)
        if old is not None:
            self.total -= old[1]
        if weight > 0:
            entries[key] = (at, weight)
            self.total += weight
        edge = at - window
        while entries:
            when, first = next(iter(entries.values()))
            if when > edge and (len(entries) == 1 or self.total - first <= limit):
                break
            entries.popitem(last=False)
            self.total -= first
        return self.total

    def first(self, default: dt.datetime) -> dt.datetime:
        return next(iter(self.entries.values()))[0] if self.entries else default


class _Counter:
    """`_Window` without keys (every event counts): a deque of (time, weight), the same
    trimming, at most ``limit + 1`` entries."""

    __slots__ = ("alerted", "entries", "total")

    def __init__(self) -> None:
        self.entries: collections.deque[tuple[dt.datetime, int]] = collections.deque()
        self.total = 0
        self.alerted = False

    def add(self, at: dt.datetime, weight: int, limit: int, window: dt.timedelta) -> int:
        entries = self.entries
        if weight > 0:
            entries.append((at, weight))
            self.total += weight
        edge = at - window
        while entries:
            when, first = entries[0]
            if when > edge and (len(entries) == 1 or self.total - first <= limit):
                break
            entries.popleft()
            self.total -= first
        return self.total

    def first(self, default: dt.datetime) -> dt.datetime:
        return self.entries[0][0] if self.entries else default


class _PerActor(Generic[S]):
    """A window (`_Window` or `_Counter`) per actor, for at most *max_actors* actors: an
    actor unseen for a whole window is forgotten (its window is empty anyway), and when the
    table is full the one seen least recently goes (it starts from zero if it comes back)."""

    __slots__ = ("factory", "max_actors", "states", "window")

    def __init__(self, factory: Callable[[], S], max_actors: int, window: dt.timedelta) -> None:
        self.factory: Callable[[], S] = factory
        self.max_actors, self.window = max_actors, window
        self.states: collections.OrderedDict[str | None, list[Any]] = collections.OrderedDict()

    def get(self, actor: str | None, at: dt.datetime) -> S:
        states = self.states
        entry = states.get(actor)
        if entry is not None:
            states.move_to_end(actor)
            entry[0] = at
            state: S = entry[1]
            return state
        edge = at - self.window
        while states and (len(states) >= self.max_actors or states[next(iter(states))][0] <= edge):
            states.popitem(last=False)
        state = self.factory()
        states[actor] = [at, state]
        return state


def _crossed(window: _Window | _Counter, total: int, limit: int) -> bool:
    """Whether this event took *window* over *limit* (alert once per crossing)."""
    if total <= limit:
        window.alerted = False
        return False
    if window.alerted:
        return False
    window.alerted = True
    return True


class _Burst:
    """Events (or subjects) per actor in a sliding window; alerts once each time the count
    goes over."""

    def __init__(
        self, rule: str, limit: int, window: dt.timedelta, what: str, max_actors: int
    ) -> None:
        self.rule, self.limit, self.window, self.what = rule, limit, window, what
        self.actors = _PerActor(_Counter, max_actors, window)

    def count(self, actor: str | None, at: dt.datetime, weight: int = 1) -> Alert | None:
        state = self.actors.get(actor, at)
        total = state.add(at, weight, self.limit, self.window)
        if not _crossed(state, total, self.limit):
            return None
        return Alert(
            self.rule,
            actor,
            f"{_who(actor)}: {total} {self.what} within {self.window} (limit {self.limit})",
            total,
            state.first(at),
            at,
        )


_MAX_ACTORS: Final = 10_000


@attrs.frozen(slots=True)
class VolumeRule:
    """More than *max_events* events by one actor within *window* (a timedelta or seconds).

    State is kept for at most *max_actors* actors (see `AccessMonitor` on memory)."""

    max_events: int = attrs.field(validator=_positive)
    window: dt.timedelta = attrs.field(converter=_window)
    max_actors: int = attrs.field(default=_MAX_ACTORS, validator=_positive, kw_only=True)

    def watch(self) -> Checker:
        burst = _Burst("volume", self.max_events, self.window, "events", self.max_actors)
        return lambda event, at: burst.count(event.actor, at)


@attrs.frozen(slots=True)
class DenialBurstRule:
    """More than *max_denials* denied requests by one actor within *window*."""

    max_denials: int = attrs.field(validator=_positive)
    window: dt.timedelta = attrs.field(converter=_window)
    max_actors: int = attrs.field(default=_MAX_ACTORS, validator=_positive, kw_only=True)

    def watch(self) -> Checker:
        burst = _Burst(
            "denial_burst", self.max_denials, self.window, "denied requests", self.max_actors
        )

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
    """Bulk access by one actor. Alerts on:

    - an action in *actions* (an export), each time;
    - more than *max_exports* actions in *export_actions* (``subject.export`` is what
      `export_subject` writes) within *window*;
    - an event touching more than *max_fields* fields;
    - an event touching more than *max_records* subjects (its ``subject_count``: a list
      endpoint);
    - more than *max_records* records within *window*: distinct ``(resource_type,
      resource_id)`` pairs, plus the ``subject_count`` of events that have one.

    State is kept for at most *max_actors* actors, each holding at most ``max_records + 1``
    records and ``max_exports + 1`` exports.
    """

    max_records: int = attrs.field(default=100, validator=_positive)
    window: dt.timedelta = attrs.field(default=dt.timedelta(hours=1), converter=_window)
    actions: frozenset[str] = attrs.field(default=frozenset({"export"}), converter=frozenset)
    max_fields: int | None = None
    max_exports: int = attrs.field(default=10, validator=_positive, kw_only=True)
    export_actions: frozenset[str] = attrs.field(
        default=frozenset({"export", "subject.export"}), converter=frozenset, kw_only=True
    )
    max_actors: int = attrs.field(default=_MAX_ACTORS, validator=_positive, kw_only=True)

    def watch(self) -> Checker:
        exports = _Burst("bulk_export", self.max_exports, self.window, "exports", self.max_actors)
        records = _PerActor(_Window, self.max_actors, self.window)
        limit = self.max_records

        def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
            who = _who(event.actor)
            what = event.resource_type or "a resource"
            export = None
            if event.action in self.export_actions:
                export = exports.count(event.actor, at)
            if event.action in self.actions:
                return Alert(
                    "bulk_export", event.actor, f"{who}: {event.action} of {what}", 1, at, at
                )
            if export is not None:
                return export
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
            count = event.subject_count
            if event.resource_id is not None:
                key: Hashable = (event.resource_type, event.resource_id)
            elif count is not None:
                key = event.id
            else:
                return None
            state = records.get(event.actor, at)
            total = state.add(key, at, 1 if count is None else count, limit, self.window)
            crossed = _crossed(state, total, limit)
            if count is not None and count > limit:
                return Alert(
                    "bulk_export",
                    event.actor,
                    f"{who}: {event.action} of {count} subjects of {what} in one call "
                    f"(limit {limit})",
                    count,
                    at,
                    at,
                )
            if not crossed:
                return None
            return Alert(
                "bulk_export",
                event.actor,
                f"{who}: {total} distinct records within {self.window} (limit {limit})",
                total,
                state.first(at),
                at,
            )

        return check


@attrs.frozen(slots=True)
class TotalVolumeRule:
    """More than *max_subjects* subjects touched by all actors together within *window*:
    bulk access spread over many actor names, each below its own limits. An event counts
    its ``subject_count``, or one. Holds at most ``max_subjects + 1`` entries."""

    max_subjects: int = attrs.field(validator=_positive)
    window: dt.timedelta = attrs.field(converter=_window)

    def watch(self) -> Checker:
        state = _Counter()

        def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
            limit = self.max_subjects
            total = state.add(at, _touched(event), limit, self.window)
            if not _crossed(state, total, limit):
                return None
            return Alert(
                "total_volume",
                None,
                f"all actors together: {total} subjects within {self.window} (limit {limit})",
                total,
                state.first(at),
                at,
            )

        return check


@attrs.frozen(slots=True)
class FirstAccessRule:
    """The first time an actor touches a resource type (in this run).

    Remembers at most *max_seen* (actor, resource type) pairs, the least recently seen
    going first: a pair forgotten that way alerts again when it comes back."""

    max_seen: int = attrs.field(default=_MAX_ACTORS, validator=_positive, kw_only=True)

    def watch(self) -> Checker:
        seen: collections.OrderedDict[tuple[str | None, str], None] = collections.OrderedDict()

        def check(event: AuditEvent, at: dt.datetime) -> Alert | None:
            if event.resource_type is None:
                return None
            pair = (event.actor, event.resource_type)
            if pair in seen:
                seen.move_to_end(pair)
                return None
            while len(seen) >= self.max_seen:
                seen.popitem(last=False)
            seen[pair] = None
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
    *clock* times live events (default: the event's own timestamp). Actor names are
    counted in the form *normalize* gives (default `normalize_actor`; ``None`` counts them
    as given), and alerts name that form.

    `submit` is what `AuditTrail` calls: it puts the event on a queue of at most
    *queue_size* events and returns at once; one background thread (started on demand)
    runs the rules, so alerts reach *on_alert* on that thread. When the queue is full the
    oldest waiting event is dropped, counted in `dropped` and reported as a
    ``monitor_overflow`` alert (and an ``audit_monitor_overflow`` log line). `flush` waits
    until every submitted event is checked, `close` also stops the thread (call it at
    shutdown; a later `submit` starts a new one). `observe` checks one event on the
    caller's thread and returns its alerts.

    Memory is bounded by the rules' settings: each per-actor rule keeps at most
    *max_actors* actors (10,000 by default; an actor unseen for a window is forgotten,
    else the least recently seen), each holding at most its limit plus one entries.

    Example:
        ```python
        monitor = AccessMonitor([VolumeRule(100, dt.timedelta(minutes=5)), FirstAccessRule()],
                                on_alert=[page_security_team], logger=structlog.get_logger())
        trail = AuditTrail(sink, key=secret, monitor=monitor)
        ...
        monitor.close()  # at shutdown
        ```
    """

    def __init__(
        self,
        rules: Iterable[MonitorRule],
        *,
        on_alert: Iterable[Callable[[Alert], object]] = (),
        logger: Any = None,
        clock: Callable[[], dt.datetime] | None = None,
        queue_size: int = 10_000,
        normalize: Callable[[str], str] | None = normalize_actor,
    ) -> None:
        if queue_size < 1:
            raise ConfigurationError("queue_size must be at least 1")
        self.rules: tuple[MonitorRule, ...] = tuple(rules)
        self.on_alert = tuple(on_alert)
        self.logger = logger
        self.queue_size = queue_size
        self.normalize = normalize
        self.dropped = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._live = [rule.watch() for rule in self.rules]
        self._queue: collections.deque[tuple[EventLike, dt.datetime | None]] = collections.deque()
        self._waiting = threading.Condition(threading.Lock())
        self._worker: threading.Thread | None = None
        self._busy = False
        self._stopping = False
        self._overflow: list[dt.datetime] = []  # first and last drop not yet reported
        self._overflowed = 0

    def __repr__(self) -> str:
        return f"<AccessMonitor rules={len(self.rules)} callbacks={len(self.on_alert)}>"

    def __enter__(self) -> AccessMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def observe(self, event: AuditEvent) -> list[Alert]:
        """Check one live event now, on this thread; report and return its alerts."""
        at = event.timestamp if self._clock is None else self._clock()
        return self._check(event, at)

    def submit(self, event: EventLike) -> None:
        """Queue *event* (an `AuditEvent` or its `AuditEvent.to_dict` form) for the
        background thread; never blocks on the rules. See the class docstring."""
        at = None if self._clock is None else self._clock()
        with self._waiting:
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
                self._overflowed += 1
                now = at if at is not None else dt.datetime.now(dt.UTC)
                self._overflow[1:] = [now]
                if len(self._overflow) == 1:
                    self._overflow.insert(0, now)
            self._queue.append((event, at))
            if self._worker is None:
                self._stopping = False
                self._worker = threading.Thread(
                    target=self._work, name="securecustomer-audit-monitor", daemon=True
                )
                self._worker.start()
            self._waiting.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted event is checked and its alerts reported; ``False``
        if *timeout* (seconds) passed first."""
        with self._waiting:
            return self._waiting.wait_for(
                lambda: not self._queue and not self._busy and not self._overflowed, timeout
            )

    def close(self, timeout: float | None = None) -> None:
        """`flush`, then stop the background thread."""
        self.flush(timeout)
        with self._waiting:
            worker, self._stopping = self._worker, True
            self._waiting.notify_all()
        if worker is not None:
            worker.join(timeout)

    def _work(self) -> None:
        while True:
            with self._waiting:
                self._waiting.wait_for(lambda: self._queue or self._stopping or self._overflowed)
                if not self._queue and not self._overflowed:
                    self._worker = None
                    self._waiting.notify_all()
                    return
                batch = list(self._queue)
                self._queue.clear()
                overflowed, self._overflowed = self._overflowed, 0
                times, self._overflow = self._overflow, []
                self._busy = True
            try:
                if overflowed:
                    try:
                        self._report_overflow(overflowed, times)
                    except Exception as exc:  # a logger that fails must not stop the thread
                        log().error("audit_monitor_failed", error_type=type(exc).__name__)
                for item, at in batch:
                    try:
                        event = item if isinstance(item, AuditEvent) else AuditEvent.from_dict(item)
                        self._check(event, event.timestamp if at is None else at)
                    except Exception as exc:
                        log().error("audit_monitor_failed", error_type=type(exc).__name__)
            finally:
                with self._waiting:
                    self._busy = False
                    self._waiting.notify_all()

    def _report_overflow(self, count: int, times: list[dt.datetime]) -> None:
        log().warning("audit_monitor_overflow", dropped=count, queue_size=self.queue_size)
        self._report(
            Alert(
                "monitor_overflow",
                None,
                f"the monitor's queue was full: {count} events dropped unchecked "
                f"(queue_size {self.queue_size}); counts undercount until it catches up",
                count,
                times[0],
                times[-1],
            )
        )

    def _check(self, event: AuditEvent, at: dt.datetime) -> list[Alert]:
        event = self._counted(event)
        with self._lock:
            alerts = _run(self._live, event, at)
        for alert in alerts:
            self._report(alert)
        return alerts

    def _counted(self, event: AuditEvent) -> AuditEvent:
        if self.normalize is None or event.actor is None:
            return event
        name = self.normalize(event.actor)
        return event if name == event.actor else attrs.evolve(event, actor=name)

    def scan(self, items: Iterable[Record | AuditEvent], *, notify: bool = False) -> list[Alert]:
        """Replay a stored trail (records or events, in order) through fresh checkers.

        Times come from the events. Alerts are returned; with ``notify=True`` they are also
        reported like live ones.
        """
        checkers = [rule.watch() for rule in self.rules]
        alerts: list[Alert] = []
        for item in items:
            event = item.audit_event() if isinstance(item, Record) else item
            alerts.extend(_run(checkers, self._counted(event), event.timestamp))
        if notify:
            for alert in alerts:
                self._report(alert)
        return alerts

    def _report(self, alert: Alert) -> None:
        for callback in self.on_alert:
            try:
                callback(alert)
            except Exception as exc:
                log().error(
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
