"""`breach_scope`: what an incident touched, read from the audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from securecustomer.audit import AuditEvent, AuditTrail, Record
from securecustomer.keys import Keyring

__all__ = ["NOTIFICATION_WINDOW", "BreachScope", "breach_scope"]

#: GDPR article 33: notify the supervisory authority within 72 hours of becoming aware.
NOTIFICATION_WINDOW = dt.timedelta(hours=72)


@attrs.frozen
class BreachScope:
    """The data subjects, fields and record counts an incident touched.

    - ``subjects``: pseudonyms (as the trail writes them) of the subjects touched;
      ``identified``: pseudonym -> subject id for those among the candidate ids given.
    - ``fields``: ``"resource_type.field"`` -> number of events that touched it.
    - ``resources``: resource type -> number of distinct resource ids.
    - ``events``: matching events; ``actors``: who acted; ``first_seen`` / ``last_seen``.
    - ``trail_verified``: whether the trail's chain verified when it was read (a scope
      read from a trail that does not verify is reported with ``trail_problems``).
    - ``notify_by``: ``discovered_at`` + 72 hours (GDPR article 33).
    """

    criteria: Mapping[str, str]
    events: int
    subjects: frozenset[str]
    identified: Mapping[str, str]
    fields: Mapping[str, int]
    resources: Mapping[str, int]
    actors: frozenset[str]
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    discovered_at: dt.datetime
    notify_by: dt.datetime
    trail_verified: bool | None
    trail_problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, *, indent: int | None = 2) -> str:
        raise NotImplementedError

    def to_markdown(self) -> str:
        raise NotImplementedError


def breach_scope(
    source: AuditTrail | Iterable[Record | AuditEvent],
    *,
    actor: str | None = None,
    key_id: int | None = None,
    keyring: Keyring | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    actions: Iterable[str] | None = None,
    outcomes: Iterable[str] = ("success",),
    discovered_at: dt.datetime | None = None,
    candidates: Iterable[object] = (),
    trail: AuditTrail | None = None,
    subject_prefix: str = "subject:",
) -> BreachScope:
    """The scope of an incident: events by *actor*, under *key_id*, between *since* and
    *until* (timezone-aware), with *outcomes* (default: only those that succeeded).

    *source* is the trail (verified first) or records/events read from elsewhere.
    *key_id* needs *keyring* to find the key's scope: a column scope ``"table.column"``
    matches events on resource type ``table`` that name ``column`` in their fields; a
    subject scope (``subject_prefix`` + id) matches events about that subject; an event
    whose ``extra["key_ids"]`` lists the key matches too. *candidates* are subject ids
    to identify behind the pseudonyms (needs the trail's key: *source* or *trail*).
    Raises `ConfigurationError` when no criterion is given or a datetime is naive.

    Example:
        ```python
        scope = breach_scope(trail, actor="svc-export", since=start, candidates=ids)
        print(scope.to_markdown())    # subjects, fields, counts, notify by
        ```
    """
    raise NotImplementedError
