"""`DataInventory`: every classified column of an application's schema and what protects it."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import Any

import attrs
from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table
from sqlalchemy.engine import Connection, Engine

from securecustomer.exceptions import ConfigurationError, RecordNotFoundError
from securecustomer.keys import Keyring
from securecustomer.privacy._assess import (
    RiskFinding,
    Severity,
    aware_now,
    findings_markdown,
    key_findings,
    markdown_cell,
    sorted_findings,
)
from securecustomer.privacy._classify import (
    SPECIAL_CATEGORIES,
    Sensitivity,
    classification_of,
    sample_shares,
    suggest_category,
)
from securecustomer.privacy._subjects import model_shape, registered_subject_models
from securecustomer.sqlalchemy import BlindIndex, Encrypted, RowEncryption
from securecustomer.sqlalchemy._orm import _registry

__all__ = ["ColumnEntry", "DataInventory", "RiskFinding", "Severity"]


def _iso_duration(value: dt.timedelta | None) -> str | None:
    if value is None:
        return None
    if value % dt.timedelta(days=1) == dt.timedelta(0):
        return f"P{value.days}D"
    return f"PT{value.total_seconds():g}S"


@attrs.frozen
class ColumnEntry:
    """One classified column: what it holds and how it is protected.

    ``key_scope`` is the column's own scope (``"customers.email"``) or, for a model that
    `encrypt_rows` scopes per subject, a pattern such as ``"subject:{customer_id}"``.

    Example:
        ```python
        entry = inventory.entry("customers", "email")
        assert entry.encrypted and entry.blind_indexes == ("email_index",)
        ```
    """

    table: str
    column: str
    category: str
    sensitivity: Sensitivity
    purposes: tuple[str, ...]
    retention: dt.timedelta | None
    encrypted: bool
    deterministic: bool
    blind_indexes: tuple[str, ...]
    key_scope: str | None
    description: str | None = None

    @property
    def measures(self) -> str:
        """The technical measures protecting the column, in words."""
        if not self.encrypted:
            return "none (stored in plaintext)"
        algorithm = "AES-256-SIV, deterministic" if self.deterministic else "AES-256-GCM"
        text = f"encrypted ({algorithm}), key scope {self.key_scope}"
        if self.blind_indexes:
            text += f"; blind index {', '.join(self.blind_indexes)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; the retention as an ISO 8601 duration (``"P730D"``)."""
        return {
            "blind_indexes": list(self.blind_indexes),
            "category": self.category,
            "column": self.column,
            "description": self.description,
            "deterministic": self.deterministic,
            "encrypted": self.encrypted,
            "key_scope": self.key_scope,
            "purposes": list(self.purposes),
            "retention": _iso_duration(self.retention),
            "sensitivity": self.sensitivity.value,
            "table": self.table,
        }


def _subject_scopes() -> dict[Table, RowEncryption]:
    found: dict[Table, RowEncryption] = {}
    for config in _registry.values():
        table = config.mapper.local_table
        if config.subject is not None and isinstance(table, Table):
            found[table] = config
    return found


def _key_scope(kind: Encrypted, config: RowEncryption | None) -> str:
    if config is not None and any(t is kind for t in config.columns.values()):
        return f"{config.subject_prefix}{{{config.subject}}}"
    return kind.scope_name()


def _is_string(kind: Any) -> bool:
    """A string type, or an application's TypeDecorator over one (stored as text)."""
    return isinstance(kind, String) or isinstance(getattr(kind, "impl_instance", None), String)


def _sampled_type(column: Column[Any]) -> bool:
    """Whether the values of a plaintext column are sampled: strings, JSON documents (their
    string leaves), and integers that are not keys (their digits: phone numbers, national
    ids); an integer named like a key (``customer_id``) is one unless its name suggests
    personal data (``tax_id``)."""
    kind = column.type
    if _is_string(kind) or isinstance(kind, JSON):
        return True
    if not isinstance(kind, Integer) or isinstance(kind, Boolean):
        return False
    keyed = column.primary_key or bool(column.foreign_keys)
    named_key = re.split(r"[^a-z]+|(?<=[a-z])(?=[A-Z])", column.name)[-1].lower() == "id"
    return not keyed and (not named_key or suggest_category(column.name) is not None)


def _entry_findings(entry: ColumnEntry) -> Iterable[RiskFinding]:
    where = f"{entry.table}.{entry.column}"
    level = entry.sensitivity
    if entry.category in SPECIAL_CATEGORIES and level < Sensitivity.CONFIDENTIAL:
        yield RiskFinding(
            "high" if level is Sensitivity.PUBLIC else "medium",
            "special-category-understated",
            where,
            f"{entry.category} data is a special category of personal data (GDPR article "
            f"9) but is classified {level.value}: classify it restricted (the default) and "
            "store it encrypted",
        )
    if not entry.encrypted and level >= Sensitivity.CONFIDENTIAL:
        restricted = level is Sensitivity.RESTRICTED
        yield RiskFinding(
            "high" if restricted else "medium",
            f"unencrypted-{level.value}",
            where,
            f"{level.value} {entry.category} data is stored in plaintext: declare the column "
            "with an Encrypted type",
        )
    if entry.encrypted and entry.deterministic and level is Sensitivity.RESTRICTED:
        yield RiskFinding(
            "low",
            "deterministic-restricted",
            where,
            "restricted data under deterministic encryption reveals which rows hold equal "
            "values: prefer randomized encryption with a blind index",
        )
    if entry.retention is None and level > Sensitivity.PUBLIC:
        yield RiskFinding(
            "low",
            "no-retention",
            where,
            f"{entry.category} data has no retention period: state how long it is kept",
        )


@attrs.frozen
class DataInventory:
    """The record of processing an article 30 GDPR record is built from.

    Example:
        ```python
        inventory = DataInventory.from_metadata(Base.metadata, bind=engine, keyring=keyring)
        print(inventory.to_markdown())
        for finding in inventory.findings:
            print(finding.severity, finding.where, finding.message)
        ```
    """

    entries: tuple[ColumnEntry, ...]
    findings: tuple[RiskFinding, ...]
    generated_at: dt.datetime
    controller: str | None = None

    @classmethod
    def from_metadata(
        cls,
        metadata: MetaData,
        *,
        bind: Engine | Connection | None = None,
        keyring: Keyring | None = None,
        sample_size: int = 200,
        max_key_age: dt.timedelta = dt.timedelta(days=365),
        controller: str | None = None,
        now: dt.datetime | None = None,
        min_pii_share: float = 0.05,
    ) -> DataInventory:
        """Build the inventory of every table in *metadata* (tables and columns in order).

        Findings: restricted columns stored unencrypted (high), confidential ones (medium);
        special categories (health, biometric, special) classified public (high) or
        internal (medium): ``special-category-understated``;
        deterministic encryption of restricted data (low); classified columns above public
        without retention (low); encrypted columns left unclassified (low); unclassified
        plaintext columns whose name looks like personal data (medium) or, with *bind*,
        whose sampled values do (high): up to *sample_size* non-null values of each
        unclassified plaintext string, JSON or integer column (not a primary or foreign
        key) are read with one ``SELECT ... LIMIT`` each and scanned by
        `securecustomer.anonymize.scan_columns` (a JSON document's string leaves, an
        integer's digits with the column name as context, see `sample_shares`); a column
        is reported when at least *min_pii_share* of them hold PII (the kinds and shares
        are reported, never the values; encrypted columns are never read). With *keyring*:
        active data and root keys older than *max_key_age* (medium; the keys of subject
        scopes are counted per prefix, so that no subject id appears). Tables holding
        personal data that no model registered with `register_subject` reaches, once some
        table of *metadata* is registered (medium, ``unreached-personal-data``). *now*
        (timezone-aware) defaults to the current UTC time.
        """
        now = aware_now(now)
        if type(sample_size) is not int or sample_size < 1:
            raise ConfigurationError(f"sample_size must be a positive integer, got {sample_size!r}")
        if not 0 < min_pii_share <= 1:
            raise ConfigurationError(f"min_pii_share must be in (0, 1], got {min_pii_share!r}")
        subject_scopes = _subject_scopes()
        entries: list[ColumnEntry] = []
        findings: list[RiskFinding] = []
        to_sample: list[Column[Any]] = []
        for table in sorted(metadata.tables.values(), key=lambda t: t.fullname):
            indexes: dict[str, list[str]] = {}
            for column in table.columns:
                if isinstance(column.type, BlindIndex):
                    source = column.type.source_type
                    owner = next((c for c in table.columns if c.type is source), None)
                    if owner is not None:
                        indexes.setdefault(owner.name, []).append(column.name)
            for column in table.columns:
                kind = column.type
                if isinstance(kind, BlindIndex):
                    continue
                where = f"{table.name}.{column.name}"
                found = classification_of(column)
                encrypted = isinstance(kind, Encrypted)
                if found is not None:
                    config = subject_scopes.get(table)
                    entry = ColumnEntry(
                        table=table.name,
                        column=column.name,
                        category=found.category,
                        sensitivity=found.sensitivity,
                        purposes=found.purposes,
                        retention=found.retention,
                        encrypted=encrypted,
                        deterministic=isinstance(kind, Encrypted) and kind.deterministic,
                        blind_indexes=tuple(indexes.get(column.name, ())),
                        key_scope=_key_scope(kind, config) if isinstance(kind, Encrypted) else None,
                        description=found.description,
                    )
                    entries.append(entry)
                    findings.extend(_entry_findings(entry))
                elif encrypted:
                    findings.append(
                        RiskFinding(
                            "low",
                            "unclassified-encrypted",
                            where,
                            "an encrypted column without a classification: classify it so the "
                            "record of processing lists it",
                        )
                    )
                else:
                    if bind is not None and _sampled_type(column):
                        to_sample.append(column)
                    hint = suggest_category(column.name)
                    if hint is not None:
                        findings.append(
                            RiskFinding(
                                "medium",
                                "unclassified-pii",
                                where,
                                f"the name suggests {hint} data but the column is not "
                                "classified: classify it (or mark it "
                                'classify("other", sensitivity="public"))',
                            )
                        )
        if bind is not None and to_sample:
            sampled = _sampled_findings(sample_shares(bind, to_sample, sample_size), min_pii_share)
            flagged = {f.where for f in sampled}
            findings = [
                f for f in findings if not (f.code == "unclassified-pii" and f.where in flagged)
            ]
            findings.extend(sampled)
        findings.extend(_unreached(metadata, entries, findings))
        if keyring is not None:
            prefixes = {"subject:", *(c.subject_prefix for c in subject_scopes.values())}
            findings.extend(
                key_findings(keyring, max_key_age=max_key_age, now=now, subject_prefixes=prefixes)
            )
        return cls(tuple(entries), sorted_findings(findings), now, controller)

    def entry(self, table: str, column: str) -> ColumnEntry:
        """The entry of one column; `KeyError` naming it when it is not classified."""
        for entry in self.entries:
            if entry.table == table and entry.column == column:
                return entry
        raise RecordNotFoundError(f"{table}.{column} is not a classified column of this inventory")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: names, categories and measures, never data values."""
        return {
            "controller": self.controller,
            "entries": [entry.to_dict() for entry in self.entries],
            "findings": [finding.to_dict() for finding in self.findings],
            "generated_at": self.generated_at.isoformat(),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """`to_dict` as JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def to_markdown(self) -> str:
        """An article 30 style record: per purpose, the categories of data, the tables and
        columns, retention and the technical measures (encryption, blind indexes), then
        the findings. Columns without a stated purpose are listed under "No stated
        purpose"; a column with several purposes appears under each."""
        lines = [
            "# Record of processing activities (GDPR article 30)",
            "",
            f"- Controller: {self.controller or 'not stated'}",
            f"- Generated at: {self.generated_at.isoformat()}",
            f"- Classified columns: {len(self.entries)}",
        ]
        by_purpose: dict[str, list[ColumnEntry]] = {}
        for entry in self.entries:
            for purpose in entry.purposes or ("",):
                by_purpose.setdefault(purpose, []).append(entry)
        for purpose in sorted(by_purpose, key=lambda p: (p == "", p)):
            group = by_purpose[purpose]
            categories = sorted({e.category for e in group})
            lines += [
                "",
                f"## Purpose: {purpose}" if purpose else "## No stated purpose",
                "",
                f"Categories of personal data: {', '.join(categories)}",
                "",
                "| Table | Column | Category | Sensitivity | Retention | Measures |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                "| "
                + " | ".join(
                    markdown_cell(cell)
                    for cell in (
                        e.table,
                        e.column,
                        e.category,
                        e.sensitivity.value,
                        _iso_duration(e.retention) or "not stated",
                        e.measures,
                    )
                )
                + " |"
                for e in group
            ]
        lines += ["", "## Findings", ""]
        lines += findings_markdown(self.findings)
        return "\n".join(lines) + "\n"


def _personal(entry: ColumnEntry) -> bool:
    """Whether a classified column holds personal data (not marked other and public)."""
    return entry.category != "other" or entry.sensitivity > Sensitivity.PUBLIC


def _unreached(
    metadata: MetaData, entries: Iterable[ColumnEntry], findings: Iterable[RiskFinding]
) -> list[RiskFinding]:
    """Tables holding personal data (classified, or detected by name or sample) that no
    model registered with `register_subject` reaches: a subject's export and erasure
    miss them. Only when some table of *metadata* is registered (subject requests are
    then handled through the registry)."""
    reached = {model_shape(r.model).table for r in registered_subject_models()}
    tables = {t.name: t for t in metadata.tables.values()}
    if reached.isdisjoint(tables.values()):
        return []
    columns: dict[str, set[str]] = {}
    for entry in entries:
        if _personal(entry):
            columns.setdefault(entry.table, set()).add(entry.column)
    for finding in findings:
        if finding.code == "unclassified-pii":
            table, _, column = finding.where.rpartition(".")
            columns.setdefault(table, set()).add(column)
    return [
        RiskFinding(
            "medium",
            "unreached-personal-data",
            name,
            f"holds personal data ({', '.join(sorted(found))}) but no model registered with "
            "register_subject() reaches it: a subject's export and erasure miss it; register "
            'it (with via="relationship.subject_column" when the subject id is a foreign key '
            "or more away)",
        )
        for name, found in sorted(columns.items())
        if name in tables and tables[name] not in reached
    ]


def _sampled_findings(
    shares: dict[str, tuple[int, dict[str, float]]], min_share: float
) -> list[RiskFinding]:
    findings: list[RiskFinding] = []
    for where, (values, per_kind) in shares.items():
        hits = sorted((kind, share) for kind, share in per_kind.items() if share >= min_share)
        if hits:
            described = ", ".join(f"{kind} in {share:.0%}" for kind, share in hits)
            findings.append(
                RiskFinding(
                    "high",
                    "unclassified-pii",
                    where,
                    f"not classified, but of {values} sampled values it holds {described}: "
                    "classify it and store it encrypted",
                )
            )
    return findings
