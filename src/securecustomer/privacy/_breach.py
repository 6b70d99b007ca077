"""`breach_scope`: what an incident touched, read from the audit trail.

The trail is read once, record by record, into counters: a trail of millions of events
needs memory for the distinct subjects, resources and actors it touched, not for its
records. A trail that does not verify is still read (the responder needs the scope
anyway), and the scope says so loudly in every form it is rendered in.

Under a column key (``key_id`` of scope ``"table.column"``) an event counts when it could
have decrypted the column, and the scope says how it knows: *exactly* when the event names
the column in its ``fields`` (or the key in ``extra["key_ids"]``); *by inference* when it
touched the column's resource type without recording fields (the whole record was read,
as `audited` records a read without ``fields=``), when it is a list or search of that
resource type (an action with a word such as ``list`` or ``search``, or an event naming
its subjects in ``extra["subjects"]``), or when it is a ``subject.export`` (which decrypts
every registered column of the subject) that is not known to have left the column out.
A notification may not under-count: an inference errs towards more subjects, and the
subjects and events counted only by inference are reported apart from the exact ones.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from securecustomer.audit import AuditEvent, AuditTrail, Checkpoint, Record
from securecustomer.exceptions import AuditError, ConfigurationError, KeyNotFoundError
from securecustomer.keys import Keyring
from securecustomer.privacy._assess import markdown_cell
from securecustomer.privacy._holds import aware, utc_now
from securecustomer.privacy._subjects import model_shape, registered_subject_models
from securecustomer.sqlalchemy._orm import _registry

__all__ = ["NOTIFICATION_WINDOW", "BreachScope", "breach_scope", "subject_prefix_of"]

#: GDPR article 33: notify the supervisory authority within 72 hours of becoming aware.
NOTIFICATION_WINDOW = dt.timedelta(hours=72)

#: How an event was counted: exactly, or by one of the inferences (see the module docstring).
EXACT = "exact"
NO_FIELDS = "no fields recorded"
LISTED = "list or search"
EXPORTED = "subject export"

#: Words of an action name that make an event a list or a search over many records.
_LIST_WORDS = frozenset({"list", "search", "find", "query", "browse", "lookup", "scan"})
#: What `AuditTrail.pseudonym` returns: only such names are read from ``extra["subjects"]``.
_PSEUDONYM = re.compile(r"ps_[a-z2-7]{26}")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


@attrs.frozen
class BreachScope:
    """The data subjects, fields and record counts an incident touched.

    - ``subjects``: pseudonyms (as the trail writes them) of the subjects touched;
      ``identified``: pseudonym -> subject id for those among the candidate ids given.
    - ``fields``: ``"resource_type.field"`` -> number of events that touched it.
    - ``resources``: resource type -> number of distinct resource ids.
    - ``events``: matching events; ``actors``: who acted; ``first_seen`` / ``last_seen``.
    - ``trail_verified``: whether the trail's chain verified when it was read (a scope
      read from a trail that does not verify is reported with ``trail_problems``);
      None when the records came from elsewhere and were not verified.
    - ``notify_by``: ``discovered_at`` + 72 hours (GDPR article 33).
    - ``inferred_subjects``: those of ``subjects`` that only events counted by inference
      name; ``inferred_events``: how many of ``events`` were counted by inference, and
      ``inferred`` how many per reason (``"no fields recorded"``, ``"list or search"``,
      ``"subject export"``); ``inferred_fields``: the key's column, per event counted by
      inference (``fields`` holds what the events recorded); ``unnamed_events``: events
      that touched subjects they do not name (a search recording no subject): the
      subjects concerned may be more than ``subjects``.

    `to_dict`, `to_json` and `to_markdown` leave ``identified`` out unless asked
    (``include_identified=True``): those are raw subject ids, the responder's own data
    for notifying the subjects (article 34), not for a report sent elsewhere.
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
    inferred_subjects: frozenset[str] = frozenset()
    inferred_events: int = 0
    inferred: Mapping[str, int] = attrs.field(factory=dict)
    inferred_fields: Mapping[str, int] = attrs.field(factory=dict)
    unnamed_events: int = 0

    def to_dict(self, *, include_identified: bool = False) -> dict[str, Any]:
        """JSON-ready values, sorted so that equal scopes give equal JSON."""
        data: dict[str, Any] = {
            "criteria": dict(sorted(self.criteria.items())),
            "events": self.events,
            "subject_count": len(self.subjects),
            "subjects": sorted(self.subjects),
            "exact_subject_count": len(self.subjects - self.inferred_subjects),
            "inferred_subject_count": len(self.inferred_subjects),
            "inferred_subjects": sorted(self.inferred_subjects),
            "inferred_events": self.inferred_events,
            "inferred": dict(sorted(self.inferred.items())),
            "inferred_fields": dict(sorted(self.inferred_fields.items())),
            "unnamed_events": self.unnamed_events,
            "fields": dict(sorted(self.fields.items())),
            "resources": dict(sorted(self.resources.items())),
            "actors": sorted(self.actors),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "discovered_at": _iso(self.discovered_at),
            "notify_by": _iso(self.notify_by),
            "trail_verified": self.trail_verified,
            "trail_problems": list(self.trail_problems),
        }
        if include_identified:
            data["identified"] = dict(sorted(self.identified.items()))
        return data

    def to_json(self, *, indent: int | None = 2, include_identified: bool = False) -> str:
        return json.dumps(
            self.to_dict(include_identified=include_identified), indent=indent, sort_keys=True
        )

    def hours_left(self, now: dt.datetime | None = None) -> float:
        """Hours until ``notify_by`` (negative once it has passed)."""
        return ((self.notify_by - (now or utc_now())).total_seconds()) / 3600

    def to_markdown(
        self, *, now: dt.datetime | None = None, include_identified: bool = False
    ) -> str:
        """A notification-ready summary: integrity of the source, the deadline, the window,
        and the approximate numbers and categories of subjects and records concerned."""
        lines = ["# Personal data breach: scope", ""]
        if self.trail_verified is False:
            lines += [
                "> **WARNING: THE AUDIT TRAIL DID NOT VERIFY.** It was altered, cut or "
                "damaged; the scope below may be incomplete or wrong.",
                *(f"> - {problem}" for problem in self.trail_problems),
                "",
            ]
        elif self.trail_verified is None:
            lines += ["> **Note:** the records were not verified against the trail's chain.", ""]
        left = self.hours_left(now)
        status = f"{left:.0f} hours left" if left >= 0 else f"OVERDUE by {-left:.0f} hours"
        lines += [
            f"- **Notify the supervisory authority by:** {_iso(self.notify_by)} ({status})",
            f"- **Discovered at:** {_iso(self.discovered_at)}",
            f"- **Activity seen:** {_iso(self.first_seen) or 'none'} to "
            f"{_iso(self.last_seen) or 'none'}",
            "- **Criteria:** "
            + _one_line("; ".join(f"{k} = {v}" for k, v in sorted(self.criteria.items()))),
            f"- **Events:** {self.events}{_split(self.events, self.inferred_events)}",
            f"- **Data subjects concerned:** {len(self.subjects)}"
            + _split(len(self.subjects), len(self.inferred_subjects)),
            f"- **Actors:** {_one_line(', '.join(sorted(self.actors))) or 'none recorded'}",
            "",
            "## Records concerned",
            "",
            "| resource type | distinct records |",
            "|---|---|",
            *(
                f"| {markdown_cell(kind)} | {count} |"
                for kind, count in sorted(self.resources.items())
            ),
            "",
            "## Categories of data (fields)",
            "",
            "| field | events |",
            "|---|---|",
            *(
                f"| {markdown_cell(name)} | {count} |"
                for name, count in sorted(self.fields.items())
            ),
        ]
        lines += self._inference_markdown()
        if include_identified and self.identified:
            lines += ["", "## Identified subjects", ""]
            for ps, sid in sorted(self.identified.items()):
                how = ", by inference" if ps in self.inferred_subjects else ""
                lines.append(f"- {_one_line(sid)} ({ps}{how})")
        return "\n".join(lines) + "\n"

    def _inference_markdown(self) -> list[str]:
        if not (self.inferred_events or self.unnamed_events):
            return []
        lines = ["", "## Counted by inference", ""]
        if self.inferred_events:
            lines += [
                f"{self.inferred_events} events did not record which fields they read and "
                "could have decrypted the key's column; they are counted, and the "
                f"{len(self.inferred_subjects)} subjects only they name are counted by "
                "inference.",
                "",
                "| reason | events |",
                "|---|---|",
                *(f"| {markdown_cell(why)} | {n} |" for why, n in sorted(self.inferred.items())),
                "",
                "| field | events |",
                "|---|---|",
                *(
                    f"| {markdown_cell(name)} | {n} |"
                    for name, n in sorted(self.inferred_fields.items())
                ),
            ]
        if self.unnamed_events:
            lines += [
                "",
                f"**{self.unnamed_events} events touched subjects they do not name** (a list "
                "or search that recorded no subjects): the subjects concerned may be more "
                "than counted above.",
            ]
        return lines


def _split(total: int, inferred: int) -> str:
    """`` (n exact, m by inference)`` when some of *total* were counted by inference."""
    return f" ({total - inferred} exact, {inferred} by inference)" if inferred else ""


def subject_prefix_of(scope: str, prefix: str) -> str | None:
    """The subject prefix *scope* starts with: *prefix*, or the ``subject_prefix`` of a
    model registered with `encrypt_rows` (so that its subject ids are never shown)."""
    prefixes = {prefix, *(c.subject_prefix for c in _registry.values() if c.subject)}
    return next((p for p in sorted(prefixes, key=len, reverse=True) if scope.startswith(p)), None)


def _one_line(text: str) -> str:
    """*text* on one line: names read from the trail cannot add lines to the report."""
    return " ".join(text.splitlines())


def _aware(name: str, value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else aware(value, name)


@attrs.define
class _Tally:
    events: int = 0
    subjects: set[str] = attrs.Factory(set)
    fields: Counter[str] = attrs.Factory(Counter)
    resources: dict[str, set[str]] = attrs.Factory(dict)
    actors: set[str] = attrs.Factory(set)
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    unreadable: int = 0
    exact: set[str] = attrs.Factory(set)
    inferred: Counter[str] = attrs.Factory(Counter)
    inferred_fields: Counter[str] = attrs.Factory(Counter)
    unnamed: int = 0

    def add(
        self,
        event: Mapping[str, Any],
        at: dt.datetime,
        how: str,
        column: str | None,
        only: str | None,
    ) -> None:
        self.events += 1
        kind = event.get("resource_type")
        named, unnamed = _named(event)
        if only is not None:  # a subject key: the other subjects a list names are not its
            named, unnamed = named & {only}, False
        self.subjects.update(named)
        if how == EXACT:
            self.exact.update(named)
        else:
            self.inferred[how] += 1
            if column is not None:
                self.inferred_fields[column] += 1
        if unnamed or (not named and column is not None and how != EXPORTED):
            self.unnamed += 1
        for name in event.get("fields") or ():
            name = str(name)
            self.fields[f"{kind}.{name}" if kind and "." not in name else name] += 1
        if kind and event.get("resource_id") is not None:
            self.resources.setdefault(str(kind), set()).add(str(event["resource_id"]))
        if event.get("actor"):
            self.actors.add(str(event["actor"]))
        self.first = at if self.first is None else min(self.first, at)
        self.last = at if self.last is None else max(self.last, at)


@attrs.frozen
class _Filter:
    actor: str | None
    since: dt.datetime | None
    until: dt.datetime | None
    actions: frozenset[str] | None
    outcomes: frozenset[str]
    key_id: int | None
    key_table: str | None
    key_column: str | None
    key_subject: str | None
    export_models: frozenset[str] = frozenset()
    export_fields: frozenset[str] = frozenset()

    @property
    def column(self) -> str | None:
        """The key's column as ``"resource_type.column"``, for a column key."""
        return None if self.key_table is None else f"{self.key_table}.{self.key_column}"

    def matches(self, event: Mapping[str, Any], at: dt.datetime) -> str | None:
        """How the event counts (`EXACT` or an inference), None when it does not."""
        if self.actor is not None and event.get("actor") != self.actor:
            return None
        if (self.since is not None and at < self.since) or (
            self.until is not None and at > self.until
        ):
            return None
        if self.actions is not None and event.get("action") not in self.actions:
            return None
        if event.get("outcome") not in self.outcomes:
            return None
        return EXACT if self.key_id is None else self._under_key(event)

    def _under_key(self, event: Mapping[str, Any]) -> str | None:
        extra = event.get("extra") or {}
        listed = extra.get("key_ids") if isinstance(extra, Mapping) else None
        if isinstance(listed, list | tuple) and self.key_id in listed:
            return EXACT
        if self.key_subject is not None:
            return EXACT if self.key_subject in _named(event)[0] else None
        if self.key_table is None:
            return None
        fields = [str(f) for f in event.get("fields") or ()]
        if event.get("resource_type") == self.key_table:
            if fields:
                return EXACT if self.key_column in fields else None
            return LISTED if _listing(event) else NO_FIELDS
        if event.get("action") == "subject.export":
            if self.export_models and fields:  # the export says which models it read
                if not self.export_fields.isdisjoint(fields):
                    return EXACT
                if any(f.partition(".")[0] in self.export_models for f in fields):
                    return None  # the model was exported without the column
            return EXPORTED
        return None


def _named(event: Mapping[str, Any]) -> tuple[set[str], bool]:
    """The pseudonyms *event* names (its subject, and ``extra["subjects"]``), and whether
    it names others in another form (never shown: it may be a raw id)."""
    named = {str(event["subject"])} if event.get("subject") else set()
    extra = event.get("extra")
    listed = extra.get("subjects") if isinstance(extra, Mapping) else None
    unnamed = False
    if isinstance(listed, list | tuple):
        for item in listed:
            if isinstance(item, str) and _PSEUDONYM.fullmatch(item):
                named.add(item)
            else:
                unnamed = True
    elif listed is not None:
        unnamed = True
    if not named and _listing(event):
        unnamed = True
    return named, unnamed


def _listing(event: Mapping[str, Any]) -> bool:
    """Whether *event* is a list or search: an action with such a word, or subjects listed."""
    extra = event.get("extra")
    if isinstance(extra, Mapping) and "subjects" in extra:
        return True
    words = re.split(r"[^a-z]+", str(event.get("action") or "").lower())
    return not _LIST_WORDS.isdisjoint(words)


def _exported(table: str, column: str) -> tuple[frozenset[str], frozenset[str]]:
    """The names of the registered models on *table*, and their ``"Name.attribute"``
    export field of *column* (what `export_subject` records)."""
    models: set[str] = set()
    fields: set[str] = set()
    for registered in registered_subject_models():
        shape = model_shape(registered.model)
        if shape.table.name != table:
            continue
        models.add(registered.name)
        for prop in shape.mapper.column_attrs:
            if prop.columns[0].name == column:
                fields.add(f"{registered.name}.{prop.key}")
    return frozenset(models), frozenset(fields)


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
    resource_types: Mapping[str, str] | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    checkpoints: Sequence[Checkpoint] = (),
) -> BreachScope:
    """The scope of an incident: events by *actor*, under *key_id*, between *since* and
    *until* (timezone-aware, both inclusive), with *outcomes* (default: only those that
    succeeded), and with one of *actions* when given. Criteria combine with AND.

    *source* is the trail (verified first; a trail that does not verify is still read,
    and the scope reports ``trail_verified=False`` with the problem) or records/events
    read from elsewhere (``trail_verified=None``). A trail cut at its tail still verifies
    unless *checkpoints* (saved `AuditTrail.checkpoint` values) are given: give them.
    *key_id* needs *keyring* to find the
    key's scope: a column scope ``"table.column"`` matches events on resource type
    ``table`` (or ``resource_types[table]``) that name ``column`` in their fields; a
    subject scope (``subject_prefix`` + id) matches events about that subject; an event
    whose ``extra["key_ids"]`` lists the key matches too. *candidates* are subject ids to
    identify behind the pseudonyms (needs the trail's key: *source* or *trail*).
    *discovered_at* defaults to *clock*\\ () (now). Raises `ConfigurationError` when no
    criterion is given, a datetime is naive, *actions* or *outcomes* is one bare string, or
    a trail's key is needed and missing; `KeyNotFoundError` for an unknown *key_id*.

    Example:
        ```python
        scope = breach_scope(trail, actor="svc-export", since=start, candidates=ids)
        print(scope.to_markdown())    # subjects, fields, counts, notify by
        ```
    """
    for name, given in (("actions", actions), ("outcomes", outcomes)):
        if isinstance(given, str):
            raise ConfigurationError(f"{name} must be a list of names, not one string: {given!r}")
    since, until = _aware("since", since), _aware("until", until)
    found_at = _aware("discovered_at", discovered_at) or _aware("clock()", clock()) or utc_now()
    chosen_actions = frozenset(actions) if actions is not None else None
    if (
        actor is None
        and key_id is None
        and since is None
        and until is None
        and not (chosen_actions)
    ):
        raise ConfigurationError(
            "breach_scope needs at least one criterion: actor, key_id, since, until or actions"
        )
    if isinstance(source, AuditTrail):
        trail = trail or source
    criteria: dict[str, str] = {"outcomes": ", ".join(sorted(set(outcomes)))}
    if actor is not None:
        criteria["actor"] = actor
    if since is not None:
        criteria["since"] = since.isoformat(timespec="seconds")
    if until is not None:
        criteria["until"] = until.isoformat(timespec="seconds")
    if chosen_actions is not None:
        criteria["actions"] = ", ".join(sorted(chosen_actions))
    table = column = subject = None
    exports: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
    if key_id is not None:
        if keyring is None:
            raise ConfigurationError("key_id needs keyring= to find the key's scope")
        record = keyring.store.data_key(key_id)
        if record is None:
            raise KeyNotFoundError(f"no data key with id {key_id:#010x}", key_id=key_id)
        criteria["key_id"] = f"{key_id:#010x}"
        prefix = subject_prefix_of(record.scope, subject_prefix)
        if prefix is not None:
            if trail is None:
                raise ConfigurationError("a subject key scope needs the trail's key: pass trail=")
            subject = trail.pseudonym(record.scope[len(prefix) :])
            criteria["key_scope"] = f"{prefix}{subject}"  # never the raw subject id
        else:
            criteria["key_scope"] = record.scope
            if "." in record.scope:
                table, column = record.scope.rsplit(".", 1)
                exports = _exported(table, column)
                table = (resource_types or {}).get(table, table)
    where = _Filter(
        actor,
        since,
        until,
        chosen_actions,
        frozenset(outcomes),
        key_id,
        table,
        column,
        subject,
        *exports,
    )
    verified: bool | None = None
    problems: list[str] = []
    if isinstance(source, AuditTrail):
        report = source.verify(checkpoints)
        verified = report.ok
        if not report.ok:
            problems.append(f"record {report.first_bad}: {report.problem}")
        items: Iterable[Record | AuditEvent] = source.sink.records()
    else:
        items = source
    tally = _read(items, where)
    if tally.unreadable:
        problems.append(f"{tally.unreadable} records could not be read and were skipped")
    identified: dict[str, str] = {}
    for candidate in candidates:
        if trail is None:
            raise ConfigurationError("candidates need the trail's key: pass the trail as trail=")
        pseudonym = trail.pseudonym(candidate)
        if pseudonym in tally.subjects:
            identified[pseudonym] = str(candidate)
    return BreachScope(
        criteria=criteria,
        events=tally.events,
        subjects=frozenset(tally.subjects),
        identified=identified,
        fields=dict(tally.fields),
        resources={kind: len(ids) for kind, ids in tally.resources.items()},
        actors=frozenset(tally.actors),
        first_seen=tally.first,
        last_seen=tally.last,
        discovered_at=found_at,
        notify_by=found_at + NOTIFICATION_WINDOW,
        trail_verified=verified,
        trail_problems=tuple(problems),
        inferred_subjects=frozenset(tally.subjects - tally.exact),
        inferred_events=sum(tally.inferred.values()),
        inferred=dict(tally.inferred),
        inferred_fields=dict(tally.inferred_fields),
        unnamed_events=tally.unnamed,
    )


def _read(items: Iterable[Record | AuditEvent], where: _Filter) -> _Tally:
    """Count the matching events of *items*, one at a time."""
    tally = _Tally()
    for item in items:
        event: Mapping[str, Any]
        if isinstance(item, AuditEvent):
            event, at = item.to_dict(), item.timestamp
        else:
            try:  # checked: a damaged or rewritten record is counted, never read
                at = item.audit_event().timestamp
            except AuditError:
                tally.unreadable += 1
                continue
            event = item.event
        how = where.matches(event, at)
        if how is not None:
            tally.add(event, at, how, where.column if how != EXACT else None, where.key_subject)
    return tally
