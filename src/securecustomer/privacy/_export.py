"""Subject access and portability: every row about a subject, decrypted, as JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from sqlalchemy.orm import Session

from securecustomer.audit import AuditTrail, default_trail
from securecustomer.privacy._holds import utc_now
from securecustomer.privacy._rows import open_value, select_rows
from securecustomer.privacy._subjects import (
    chosen_models,
    jsonable,
    model_shape,
    subject_event,
    subject_keys,
    subject_rows,
)

__all__ = ["SubjectExport", "export_subject"]


@attrs.frozen
class SubjectExport:
    """Everything held about one subject, decrypted, as JSON-ready values.

    ``records`` maps a model's name to its rows (attribute -> value: dates and datetimes
    as ISO 8601, Decimal as a string, bytes as base64, UUID as a string, an erased value
    as None and its attribute listed in ``erased``). ``consents`` is the subject's
    consent history, oldest first. The repr shows no values.
    """

    subject_id: str = attrs.field(repr=False)
    generated_at: dt.datetime
    records: Mapping[str, tuple[Mapping[str, Any], ...]] = attrs.field(repr=False)
    erased: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    consents: tuple[Mapping[str, Any], ...] = attrs.field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject_id,
            "generated_at": self.generated_at.isoformat(),
            "records": {name: [dict(r) for r in rows] for name, rows in self.records.items()},
            "erased": {name: list(keys) for name, keys in self.erased.items()},
            "consents": [dict(c) for c in self.consents],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def export_subject(
    session: Session,
    subject_id: object,
    *,
    trail: AuditTrail | None = None,
    models: Iterable[type[Any]] | None = None,
    consents: Any = None,
    reason: str | None = None,
    deliver: Callable[[SubjectExport], None] | None = None,
) -> SubjectExport:
    """Every row about *subject_id* across the registered models, decrypted.

    Writes one ``subject.export`` audit event (the subject as the trail's pseudonym, the
    exported field names, the row counts) to *trail* (default: `default_trail`; an unbound
    slot raises `ConfigurationError` before anything is read). *consents* is a
    `ConsentLedger` whose history is included. *models* restricts the export to those
    registered models (a model registered ``via=`` a relationship path: the rows that path
    leads from to the subject). Reads only; a value whose subject key was destroyed is exported
    as None and its attribute listed in ``erased``.

    *deliver*, when given, is called with the export before the audit event is written
    (to write it to a file, send it): when it raises, no event is written and the error
    propagates. The export's ``subject_id``, the consent history and the audit pseudonym
    use the subject's canonical key (`canonical_subject_key`) as the subject columns hold
    it: consents recorded as ``42`` are found for ``"42"``.

    Example:
        ```python
        with Session(engine) as session:
            print(export_subject(session, 42, trail=trail).to_json())
        ```
    """
    target = trail if trail is not None else default_trail.get()
    chosen = chosen_models(models)
    records: dict[str, tuple[Mapping[str, Any], ...]] = {}
    erased: dict[str, tuple[str, ...]] = {}
    fields: list[str] = []
    plan = []
    for registered in chosen:
        shape = model_shape(registered.model)
        keys = registered.export
        if keys is None:
            keys = tuple(p.key for p in shape.mapper.column_attrs if p.key not in shape.indexes)
        fields += [f"{registered.name}.{k}" for k in keys]
        plan.append((registered, shape))
        where, match = subject_rows(session, registered, shape, subject_id)
        gone: set[str] = set()
        rows = []
        for raw in select_rows(session, shape, (*keys, *shape.context_keys), where, match):
            row = {}
            for key in keys:
                if key in shape.encrypted:
                    value, lost = open_value(shape, key, raw)
                    if lost:
                        gone.add(key)
                else:
                    value = raw[key]
                row[key] = jsonable(value)
            rows.append(row)
        records[registered.name] = tuple(rows)
        if gone:
            erased[registered.name] = tuple(k for k in keys if k in gone)
    names = subject_keys(plan, subject_id)
    found = [] if consents is None else [r for key in names for r in consents.history(key)]
    found.sort(key=lambda r: r.recorded_at)  # stable: each key's history stays in order
    history = tuple(r.to_dict() for r in found)
    export = SubjectExport(str(names[0]), utc_now(), records, erased, history)
    if deliver is not None:
        deliver(export)
    target.append(
        subject_event(
            "subject.export",
            target.pseudonym(names[0]),
            reason,
            fields=fields,
            extra={
                "rows": {name: len(rows) for name, rows in records.items()},
                "consents": len(history),
            },
        )
    )
    target.flush()
    return export
