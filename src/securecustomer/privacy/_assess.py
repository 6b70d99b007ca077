"""`assess`: a security risk report over the inventory, the policy and the keyring.

Also home of `RiskFinding`, which the inventory's findings use too, and of the key-age
check both share.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from securecustomer.audit import AuditEvent, AuditTrail, Record
from securecustomer.crypto import KeyState
from securecustomer.exceptions import AuditError, ConfigurationError
from securecustomer.keys import Keyring, LocalKeyProvider
from securecustomer.policy import PolicyEngine
from securecustomer.privacy._classify import Sensitivity

if TYPE_CHECKING:
    from securecustomer.privacy._inventory import DataInventory

__all__ = ["RiskFinding", "RiskReport", "Severity", "assess"]

Severity = Literal["high", "medium", "low"]


@attrs.frozen
class RiskFinding:
    """One thing a reviewer should look at. Holds names and counts, never data values.

    ``code`` is stable (for filtering and suppression): ``unencrypted-restricted``,
    ``unencrypted-confidential``, ``deterministic-restricted``, ``no-retention``,
    ``unclassified-pii``, ``unclassified-encrypted``, ``special-category-understated``,
    ``unreached-personal-data``, ``key-rotation-overdue``,
    ``root-rotation-overdue``, ``restricted-field-access``, ``unused-grant``,
    ``stale-grant``, ``local-master-key``.
    ``where`` names the place: ``"customers.ssn"``, ``"rule agent-read"``, ``"key 0x0000002a"``.

    Example:
        ```python
        RiskFinding("high", "unencrypted-restricted", "customers.ssn", "... stored in plaintext")
        ```
    """

    severity: Severity
    code: str
    where: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return attrs.asdict(self)


def findings_markdown(findings: Iterable[RiskFinding]) -> list[str]:
    """The lines of a Markdown table of *findings* (or a line saying there are none)."""
    rows = [
        "| " + " | ".join(markdown_cell(c) for c in (f.severity, f.code, f.where, f.message)) + " |"
        for f in findings
    ]
    if not rows:
        return ["No findings."]
    return ["| Severity | Code | Where | Message |", "|---|---|---|---|", *rows]


def _duration(value: dt.timedelta) -> str:
    return f"{value.days} days" if value % dt.timedelta(days=1) == dt.timedelta(0) else str(value)


def aware_now(now: dt.datetime | None) -> dt.datetime:
    """*now*, checked to be timezone-aware; the current UTC time when None."""
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigurationError("now must be a timezone-aware datetime")
    return now


_SEVERITY_RANK: dict[str, int] = {"high": 0, "medium": 1, "low": 2}


def sorted_findings(findings: Iterable[RiskFinding]) -> tuple[RiskFinding, ...]:
    """*findings* without duplicates, high before medium before low, then by code and place."""
    order = lambda f: (_SEVERITY_RANK[f.severity], f.code, f.where, f.message)  # noqa: E731
    return tuple(sorted(set(findings), key=order))


def markdown_cell(value: str) -> str:
    """*value* made safe for one cell of a Markdown table."""
    return " ".join(value.replace("\\", "\\\\").replace("|", "\\|").splitlines())


def key_findings(
    keyring: Keyring,
    *,
    max_key_age: dt.timedelta,
    now: dt.datetime,
    subject_prefixes: Iterable[str] = ("subject:",),
) -> list[RiskFinding]:
    """Active root and data keys older than *max_key_age* at *now*. The data keys of
    subject scopes are counted per prefix (one finding), so that no subject id appears."""
    findings: list[RiskFinding] = []
    prefixes = sorted(set(subject_prefixes), key=len, reverse=True)
    subject_keys: dict[str, int] = {}
    limit = _duration(max_key_age)
    for status in keyring.status():
        created = status.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        age = now - created
        if status.state is not KeyState.ACTIVE or age <= max_key_age:
            continue
        if status.kind == "root":
            findings.append(
                RiskFinding(
                    "medium",
                    "root-rotation-overdue",
                    f"root v{status.version}",
                    f"the active root key is {age.days} days old (limit {limit}): "
                    "rotate it with Keyring.rotate_root()",
                )
            )
            continue
        scope = status.scope or ""
        prefix = next((p for p in prefixes if scope.startswith(p)), None)
        if prefix is not None:
            subject_keys[prefix] = subject_keys.get(prefix, 0) + 1
            continue
        findings.append(
            RiskFinding(
                "medium",
                "key-rotation-overdue",
                f"key 0x{status.key_id or 0:08x}",
                f"the active data key of scope {scope!r} (v{status.version}) is {age.days} "
                f"days old (limit {limit}): rotate it with Keyring.rotate({scope!r}) and "
                "re-encrypt the old rows",
            )
        )
    for prefix, count in sorted(subject_keys.items()):
        findings.append(
            RiskFinding(
                "medium",
                "key-rotation-overdue",
                f"scopes {prefix}*",
                f"{count} active subject data keys under {prefix!r} are older than {limit}: "
                "rotate them (Keyring.rotate per scope) and re-encrypt the subjects' rows",
            )
        )
    return findings


@attrs.frozen
class RiskReport:
    """Findings ordered high, medium, low (then by code and place); ``counts`` per severity.

    Example:
        ```python
        report = assess(inventory, policy=engine)
        if report.counts["high"]:
            print(report.to_markdown())
        ```
    """

    generated_at: dt.datetime
    findings: tuple[RiskFinding, ...]

    @property
    def counts(self) -> Mapping[str, int]:
        """The number of findings per severity, each severity present (0 when none)."""
        counts = dict.fromkeys(_SEVERITY_RANK, 0)
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "findings": [finding.to_dict() for finding in self.findings],
            "generated_at": self.generated_at.isoformat(),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """`to_dict` as JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def to_markdown(self) -> str:
        counts = self.counts
        lines = [
            "# Security risk report",
            "",
            f"- Generated at: {self.generated_at.isoformat()}",
            "- Findings: " + ", ".join(f"{counts[s]} {s}" for s in _SEVERITY_RANK),
            "",
            "## Findings",
            "",
            *findings_markdown(self.findings),
        ]
        return "\n".join(lines) + "\n"


@attrs.define
class _Access:
    """What one rule (or principal) lets read among the restricted columns."""

    principals: set[str] = attrs.field(factory=set)
    columns: set[str] = attrs.field(factory=set)
    rules: set[str] = attrs.field(factory=set)
    open_columns: set[str] = attrs.field(factory=set)  # unconditional and unmasked
    anyone: bool = False


def _roles(event: AuditEvent, assignments: Mapping[str, Iterable[str]]) -> set[str]:
    """The event's ``actor_attributes["roles"]`` (or ``"role"``) and the actor's assignments."""
    roles: set[str] = set()
    assigned = assignments.get(event.actor, ()) if event.actor is not None else ()
    attributes = event.actor_attributes
    for value in (attributes.get("roles"), attributes.get("role"), assigned):
        if isinstance(value, str):  # one role, not a set of letters
            roles.add(value)
        elif isinstance(value, Iterable):
            roles.update(str(role) for role in value)
    return roles


def _last_reads(
    trail: AuditTrail | Iterable[Record | AuditEvent],
    resource_types: set[str],
    assignments: Mapping[str, Iterable[str]],
) -> dict[tuple[str, str], dt.datetime]:
    """(resource type, principal) -> the time of its latest successful read."""
    seen: dict[tuple[str, str], dt.datetime] = {}
    if isinstance(trail, AuditTrail):
        trail.flush()
        trail = trail.sink.records()
    for item in trail:
        try:
            event = item.audit_event() if isinstance(item, Record) else item
        except (AuditError, KeyError, TypeError, ValueError):
            continue  # a damaged record: skipped, as breach_scope does
        rtype = event.resource_type
        if event.action != "read" or event.outcome != "success" or rtype not in resource_types:
            continue
        principals = {"role:*", *(f"role:{role}" for role in _roles(event, assignments))}
        if event.actor is not None:
            principals.add(f"subject:{event.actor}")
        for principal in principals:
            key = (rtype, principal)
            if key not in seen or seen[key] < event.timestamp:
                seen[key] = event.timestamp
    return seen


def _rule_finding(rule_id: str, access: _Access) -> RiskFinding:
    guarded = sorted(access.columns - access.open_columns)
    parts: list[str] = []
    severity: Severity = "low"
    if access.open_columns:
        parts.append(f"{', '.join(sorted(access.open_columns))} unconditionally and unmasked")
        severity = "high" if access.anyone else "medium"
    if guarded:
        parts.append(f"{', '.join(guarded)} only under conditions or masked")
    return RiskFinding(
        severity,
        "restricted-field-access",
        f"rule {rule_id}",
        f"{', '.join(sorted(access.principals))} can read restricted {'; '.join(parts)}",
    )


def _policy_findings(
    inventory: DataInventory,
    policy: PolicyEngine,
    trail: AuditTrail | Iterable[Record | AuditEvent] | None,
    resource_types: Mapping[str, str],
    assignments: Mapping[str, Iterable[str]],
    stale_after: dt.timedelta,
    now: dt.datetime,
) -> list[RiskFinding]:
    by_rule: dict[str, _Access] = {}
    by_principal: dict[tuple[str, str], _Access] = {}
    for entry in inventory.entries:
        if entry.sensitivity is not Sensitivity.RESTRICTED:
            continue
        rtype = resource_types.get(entry.table, entry.table)
        where = f"{entry.table}.{entry.column}"
        for grant in policy.who_can("read", rtype, entry.column):
            opened = not grant.conditional and entry.column not in grant.masks
            for access in (
                by_rule.setdefault(grant.rule_id, _Access()),
                by_principal.setdefault((rtype, grant.principal), _Access()),
            ):
                access.principals.add(grant.principal)
                access.columns.add(where)
                access.rules.add(grant.rule_id)
                if opened:
                    access.open_columns.add(where)
                    access.anyone = access.anyone or grant.principal == "role:*"
    findings = [_rule_finding(rule_id, access) for rule_id, access in by_rule.items()]
    if trail is None:
        return findings
    seen = _last_reads(trail, {rtype for rtype, _ in by_principal}, assignments)
    for (rtype, principal), access in by_principal.items():
        last = seen.get((rtype, principal))
        if last is not None and now - last <= stale_after:
            continue
        what = (
            f"{principal} can read restricted {', '.join(sorted(access.columns))} "
            f"(rule {', '.join(sorted(access.rules))})"
        )
        if last is None:
            code, used = "unused-grant", f"no successful read of {rtype!r} by it is in the trail"
        else:
            code = "stale-grant"
            used = f"its last read of {rtype!r} was {(now - last).days} days ago"
        findings.append(
            RiskFinding(
                "low",
                code,
                f"{principal} on {rtype}",
                f"{what}, but {used}: remove the grant if it is not needed",
            )
        )
    return findings


def assess(
    inventory: DataInventory,
    *,
    policy: PolicyEngine | None = None,
    keyring: Keyring | None = None,
    trail: AuditTrail | Iterable[Record | AuditEvent] | None = None,
    resource_types: Mapping[str, str] | None = None,
    stale_after: dt.timedelta = dt.timedelta(days=90),
    max_key_age: dt.timedelta = dt.timedelta(days=365),
    now: dt.datetime | None = None,
    assignments: Mapping[str, Iterable[str]] | None = None,
) -> RiskReport:
    """A risk report: the inventory's findings, and

    - with *policy*: for each rule that lets anyone read a restricted column (through
      `PolicyEngine.who_can`, action ``"read"``, the column name as the field;
      ``resource_types`` maps table names to the policy's resource types, default: the
      same name), a ``restricted-field-access`` finding listing who and which columns:
      high when the rule grants anyone (``role:*``) unconditional and unmasked access,
      medium for other unconditional unmasked access, low when every such grant is
      conditional (condition, tenants, purposes, MFA) or masks the field;
    - with *policy* and *trail* (an `AuditTrail`, or its records or events): each
      principal granted a restricted column whose resource type no successful ``read``
      event ever touched (``unused-grant``, low) or none within *stale_after* before *now*
      (``stale-grant``, low). An event counts for ``subject:<actor>``, for ``role:*``, and
      for ``role:<r>`` for each role in its ``actor_attributes["roles"]`` (or ``"role"``;
      record them with ``actor(user, roles=[...])``) and in ``assignments[actor]``;
    - with *keyring*: active keys older than *max_key_age* (as `DataInventory` reports
      them) and ``local-master-key`` (medium) when the master key is a `LocalKeyProvider`.

    *now* must be timezone-aware; default: the current UTC time.

    Example:
        ```python
        report = assess(inventory, policy=engine, keyring=keyring, trail=trail)
        print(report.to_markdown())
        ```
    """
    now = aware_now(now)
    if stale_after <= dt.timedelta(0) or max_key_age <= dt.timedelta(0):
        raise ConfigurationError("stale_after and max_key_age must be positive")
    findings = list(inventory.findings)
    if policy is not None:
        findings += _policy_findings(
            inventory,
            policy,
            trail,
            dict(resource_types or {}),
            dict(assignments or {}),
            stale_after,
            now,
        )
    if keyring is not None:
        prefixes = {"subject:"} | {
            e.key_scope.partition("{")[0]
            for e in inventory.entries
            if e.key_scope is not None and "{" in e.key_scope
        }
        findings += key_findings(
            keyring, max_key_age=max_key_age, now=now, subject_prefixes=prefixes
        )
        if isinstance(keyring.provider, LocalKeyProvider):
            findings.append(
                RiskFinding(
                    "medium",
                    "local-master-key",
                    "keyring provider",
                    "the master key is held by a LocalKeyProvider (a key file, environment "
                    "variable or memory): prefer Vault Transit or a cloud KMS in production",
                )
            )
    return RiskReport(now, sorted_findings(findings))
