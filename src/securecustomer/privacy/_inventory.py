"""`DataInventory`: every classified column of an application's schema and what protects it."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import attrs
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine

from securecustomer.keys import Keyring
from securecustomer.privacy._classify import Sensitivity

__all__ = ["ColumnEntry", "DataInventory", "RiskFinding", "Severity"]

Severity = Literal["high", "medium", "low"]


@attrs.frozen
class RiskFinding:
    """One thing a reviewer should look at. Holds names and counts, never data values.

    ``code`` is stable (for filtering and suppression): ``unencrypted-restricted``,
    ``unclassified-pii``, ``key-rotation-overdue``, ``root-rotation-overdue``,
    ``restricted-field-access``, ``unused-grant``, ``stale-grant``, ``local-master-key``,
    ``deterministic-restricted``, ``no-retention``, ...
    ``where`` names the place: ``"customers.ssn"``, ``"rule agent-read"``, ``"key 0x0000002a"``.
    """

    severity: Severity
    code: str
    where: str
    message: str

    def to_dict(self) -> dict[str, str]:
        raise NotImplementedError


@attrs.frozen
class ColumnEntry:
    """One classified column: what it holds and how it is protected."""

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

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


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
    ) -> DataInventory:
        """Build the inventory of every table in *metadata*.

        Findings: restricted columns stored unencrypted (high), confidential ones (medium);
        deterministic encryption of restricted data (low); unclassified columns whose name
        or, with *bind*, whose sampled values (*sample_size* rows, read-only, through the PII
        detectors of `securecustomer.anonymize`) look like personal data; with *keyring*,
        active data and root keys older than *max_key_age*; classified columns without
        retention (low).
        """
        raise NotImplementedError

    def entry(self, table: str, column: str) -> ColumnEntry:
        """The entry of one column; `KeyError` naming it when it is not classified."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, *, indent: int | None = 2) -> str:
        raise NotImplementedError

    def to_markdown(self) -> str:
        """An article 30 style record: per purpose, the categories of data and of data
        subjects, retention and the technical measures (encryption, blind indexes), then
        the findings."""
        raise NotImplementedError
