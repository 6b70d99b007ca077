"""`AuditTrail`: events appended to a sink as a keyed hash chain; checkpoints; verify.

A sink owns the storage *and* the critical section of an append: it finds its current head
and stores the records the trail's ``link`` makes from it, as one atomic step (a lock, a
transaction). That is what keeps concurrent writers from forking the chain.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from securecustomer.audit._chain import (
    ChainKeys,
    Checkpoint,
    Record,
    VerificationReport,
    public_key_hex,
    verify_chain,
)
from securecustomer.audit._event import AuditEvent
from securecustomer.audit._log import log
from securecustomer.exceptions import AuditError, ConfigurationError, UnpicklableError

if TYPE_CHECKING:
    from securecustomer.audit._monitor import AccessMonitor

__all__ = ["AuditSink", "AuditTrail", "EventLike", "Linker", "MemoryAuditSink"]

EventLike = AuditEvent | Mapping[str, Any]
"""An event, or its `AuditEvent.to_dict` form: what sinks pass on to ``link``."""
Linker = Callable[[Record | None, Sequence[EventLike]], list[Record]]


@runtime_checkable
class AuditSink(Protocol):
    """Where records are kept. ``append`` must be atomic with respect to other writers:
    read the head, call ``link(head, events)``, store what it returns, in one step."""

    def append(self, events: Sequence[EventLike], link: Linker) -> list[Record]: ...

    def records(self) -> Iterator[Record]: ...


class MemoryAuditSink:
    """Records in a list (tests and demos). Thread-safe."""

    def __init__(self) -> None:
        self._records: list[Record] = []
        self._lock = threading.Lock()

    def append(self, events: Sequence[EventLike], link: Linker) -> list[Record]:
        with self._lock:
            new = link(self._records[-1] if self._records else None, events)
            self._records.extend(new)
            return new

    def records(self) -> Iterator[Record]:
        with self._lock:
            return iter(list(self._records))

    @property
    def stored(self) -> list[Record]:
        """The records themselves, to inspect or tamper with in tests."""
        return self._records


class AuditTrail:
    """Appends `AuditEvent`s to *sink* as a keyed hash chain.

    *key* is a secret of at least 32 bytes (keep it like a database password); the chain
    MAC key, the Ed25519 checkpoint key and the pseudonym key are derived from it.
    ``on_failure="raise"`` (the default) makes an audited call fail when its event cannot
    be stored (no audit, no access); ``"log"`` logs the failure and lets the call through.
    ``batch_size`` > 1 buffers events and stores them together (call `flush`, or use the
    trail as a context manager); buffered events are lost if the process dies.
    *monitor* (an `AccessMonitor`) is handed each event once it is stored (`submit`: a
    bounded queue, never waiting for the rules); a monitor that fails is logged and never
    fails the audited call.

    Example:
        ```python
        trail = AuditTrail(MemoryAuditSink(), key=secrets.token_bytes(32))
        trail.append(AuditEvent(action="read", actor="user-7", resource_type="customer"))
        checkpoint = trail.checkpoint()          # store it elsewhere
        assert trail.verify(checkpoints=[checkpoint]).ok
        ```
    """

    def __init__(
        self,
        sink: AuditSink,
        *,
        key: bytes,
        on_failure: Literal["raise", "log"] = "raise",
        batch_size: int = 1,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monitor: AccessMonitor | None = None,
    ) -> None:
        if on_failure not in ("raise", "log"):
            raise ConfigurationError("on_failure must be 'raise' or 'log'")
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.sink = sink
        self.on_failure = on_failure
        self.batch_size = batch_size
        self._keys = ChainKeys(key)
        self._clock = clock
        self.monitor = monitor
        self._buffer: list[EventLike] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<AuditTrail sink={type(self.sink).__name__} on_failure={self.on_failure!r}>"

    def __getstate__(self) -> None:
        raise UnpicklableError("an AuditTrail holds keys and cannot be pickled")

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    @property
    def public_key(self) -> str:
        """The checkpoint verification key (hex), safe to publish."""
        return public_key_hex(self._keys.public_key)

    def pseudonym(self, subject_id: object) -> str:
        """The keyed pseudonym under which events refer to a data subject."""
        return self._keys.pseudonym(subject_id)

    def append(self, event: AuditEvent) -> None:
        """Store *event* (or buffer it, with ``batch_size`` > 1). Raises `AuditError` when
        the sink fails and ``on_failure="raise"``."""
        self.append_data(event)

    def append_data(self, data: EventLike) -> None:
        """`append` that also takes an event already in its `AuditEvent.to_dict` form
        (what `audited` builds, to spare an object per call)."""
        with self._lock:
            self._buffer.append(data)
            if len(self._buffer) < self.batch_size:
                return
            pending, self._buffer = self._buffer, []
        self._store(pending)

    def flush(self) -> None:
        """Store every buffered event now."""
        with self._lock:
            pending, self._buffer = self._buffer, []
        if pending:
            self._store(pending)

    def _store(self, events: list[EventLike]) -> None:
        try:
            self.sink.append(events, self._keys.link)
        except Exception as exc:
            if self.on_failure == "raise":
                raise AuditError(
                    f"the audit sink {type(self.sink).__name__} could not store "
                    f"{len(events)} event(s): {type(exc).__name__}"
                ) from exc
            log().error(
                "audit_sink_failed",
                sink=type(self.sink).__name__,
                lost=len(events),
                error_type=type(exc).__name__,
            )
            return
        if self.monitor is not None:  # queued: the rules run on the monitor's own thread
            for event in events:
                try:
                    self.monitor.submit(event)
                except Exception as exc:  # no thread to start, say: never fail the call
                    log().error("audit_monitor_failed", error_type=type(exc).__name__)

    def checkpoint(self) -> Checkpoint:
        """Flush, then sign the trail's current head (the last record in the sink)."""
        self.flush()
        find_head = getattr(self.sink, "head", None)
        if callable(find_head):  # a sink that can find its head cheaply (SQL, JSON lines)
            head: Record | None = find_head()
        else:
            head = None
            for head in self.sink.records():  # noqa: B007 - the last one is the head
                pass
        if head is None:
            raise AuditError("an empty trail has no checkpoint")
        return self._keys.sign(head.seq, head.hash, self._clock())

    def verify(self, checkpoints: Sequence[Checkpoint] = ()) -> VerificationReport:
        """Check every record of the sink, and that it still reaches each checkpoint."""
        self.flush()
        return verify_chain(self._keys, self.sink.records(), checkpoints)
