"""`StructlogAuditSink`: the trail written through the host application's structlog pipeline.

Each record becomes one log call, ``logger.info(event_name, seq=..., prev=..., hash=...,
<the event's keys>)``, rendered and shipped wherever the application sends its logs. The
library never calls ``structlog.configure``: pass the logger the application built.

A log pipeline cannot be read back, so the sink keeps its head in memory and ``records()``
yields only what it emitted in this process. To verify a structlog trail, read the log store
back (rendered with ``structlog.processors.JSONRenderer``), turn the lines into records with
`records_from_lines`, and verify them with the trail's key::

    sink = MemoryAuditSink()
    sink.stored.extend(records_from_lines(open("audit.log")))
    report = AuditTrail(sink, key=secret).verify(checkpoints)

The keys ``seq``, ``prev``, ``hash`` and the event's keys (``timestamp``, ``actor``, ...) must
reach the store unchanged: a processor that rewrites one of them (a ``TimeStamper`` writing to
``timestamp``, a redactor masking ``extra``) makes those records fail verification. Put such
processors before the audit keys are bound, or give them another key.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from securecustomer.audit._chain import GENESIS, Record
from securecustomer.audit._trail import EventLike, Linker
from securecustomer.exceptions import ConfigurationError

__all__ = ["EVENT_KEYS", "StructlogAuditSink", "records_from_lines"]

EVENT_KEYS: Final = (
    "schema",
    "id",
    "timestamp",
    "action",
    "actor",
    "actor_attributes",
    "resource_type",
    "resource_id",
    "subject",
    "fields",
    "outcome",
    "error_type",
    "reason",
    "duration_ms",
    "request_id",
    "extra",
)
_OPTIONAL_KEYS: Final = ("subject_count",)  # only in the events that set them
_CHAIN_KEYS: Final = ("seq", "prev", "hash")
_MAX_SEQ: Final = 2**63 - 1


class StructlogAuditSink:
    """Emits each record through *logger* (``logger.info(event_name, **keys)``). Thread-safe.

    Example:
        ```python
        logger = structlog.get_logger("audit")     # configured by the application
        trail = AuditTrail(StructlogAuditSink(logger), key=secret)
        ```
    """

    def __init__(self, logger: Any, *, event_name: str = "audit") -> None:
        if not event_name:
            raise ConfigurationError("event_name must not be empty")
        self.logger = logger
        self.event_name = event_name
        self._records: list[Record] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<StructlogAuditSink event_name={self.event_name!r}>"

    def append(self, events: Sequence[EventLike], link: Linker) -> list[Record]:
        """Link *events* after the last record emitted and log them, one call each.

        If the logger raises part-way, the records already logged stay the head (so the
        chain in the log store does not fork) and the error propagates.
        """
        with self._lock:
            new = link(self._records[-1] if self._records else None, events)
            for record in new:
                self.logger.info(self.event_name, **_fields(record))
                self._records.append(record)
            return new

    def records(self) -> Iterator[Record]:
        """The records this sink emitted in this process (not the whole log store)."""
        with self._lock:
            return iter(list(self._records))


def _fields(record: Record) -> dict[str, Any]:
    return {"seq": record.seq, "prev": record.prev, "hash": record.hash, **record.event}


def records_from_lines(lines: Iterable[str], *, event_name: str = "audit") -> Iterator[Record]:
    """The audit records in JSON log lines written through a `StructlogAuditSink`.

    Lines that are not JSON objects, or whose ``event`` is not *event_name*, or that lack
    ``seq``/``prev``/``hash``, are other log output and skipped. Keys the pipeline added
    (``level``, ``logger``, ...) are dropped; an event key that is missing stays missing, so
    that record fails verification instead of being silently repaired. An audit line whose
    ``seq``, ``prev`` or ``hash`` has the wrong type, or that repeats a key (readers disagree
    on which one counts), becomes a record with a ``problem``, which the verifier reports at
    its position. Nothing a line holds makes this raise.
    """
    last: Record | None = None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text.startswith("{"):
            continue
        repeated: list[str] = []
        try:
            data = json.loads(text, object_pairs_hook=functools.partial(_pairs, repeated))
        except (ValueError, RecursionError):
            continue
        if not isinstance(data, dict) or data.get("event") != event_name:
            continue
        if not all(key in data for key in _CHAIN_KEYS):
            continue
        event = {key: data[key] for key in (*EVENT_KEYS, *_OPTIONAL_KEYS) if key in data}
        seq, prev, digest = data["seq"], data["prev"], data["hash"]
        position = 1 if last is None else last.seq + 1
        after = GENESIS if last is None else last.hash
        if type(seq) is not int or not 0 < seq <= _MAX_SEQ:
            record = Record.unreadable(position, after, f"line {number}: seq is not a number")
        elif not isinstance(prev, str) or not isinstance(digest, str):
            record = Record.unreadable(position, after, f"line {number}: prev or hash not text")
        elif repeated:
            record = Record(seq, prev, digest, event, problem=f"line {number}: a key is repeated")
        else:
            record = Record(seq, prev, digest, event)
        last = record
        yield record


def _pairs(repeated: list[str], pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        repeated.append("")
    return data
