"""`Policy.lint()`: findings a reviewer should look at before a policy ships.

Codes:

- ``unknown-role``: a rule or grant names a role that ``[roles]`` does not declare; nobody
  can hold it through inheritance, and a typo here silently grants nothing.
- ``unused-role``: a declared role that no rule names, no role inherits, and that inherits
  nothing itself.
- ``shadowed``: an allow rule that an unconditional deny always overrides.
- ``unreachable``: a rule whose condition can never be true: a constant false, or for an
  allow a condition that always fails to evaluate (a deny whose condition always fails
  closed applies to every request it covers, so it is not reported).
- ``wildcard-fields``: an allow over every action or every resource type, with no ``fields``:
  it grants every field, including ones added to the schema later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from securecustomer.policy._expr import EvaluationError, Request, attributes, compile_expr

if TYPE_CHECKING:
    from securecustomer.policy._document import Policy, Rule

__all__ = ["Finding", "lint"]


@attrs.frozen(slots=True)
class Finding:
    """One lint finding: a stable ``code``, a sentence, and the rule it is about (if any)."""

    code: str
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        where = f"rule {self.rule!r}: " if self.rule else ""
        return f"{self.code}: {where}{self.message}"


def _unconditional(rule: Rule) -> bool:
    return (
        rule.when is None
        and rule.tenants is None
        and rule.purposes is None
        and rule.mfa_max_age is None
        and rule.fields is None
    )


def _covers(outer: frozenset[str] | None, inner: frozenset[str] | None) -> bool:
    return outer is None or (inner is not None and inner <= outer)


def _always_denied(policy: Policy, allow: Rule, deny: Rule) -> bool:
    if not (_covers(deny.actions, allow.actions) and _covers(deny.resources, allow.resources)):
        return False
    if "*" in deny.roles:
        return True
    if "*" in allow.roles:
        return False
    for role in allow.roles:
        if deny.roles.isdisjoint(policy.effective_roles([role])):
            return False
    return allow.subjects <= deny.subjects


def _never_true(rule: Rule) -> bool:
    if rule.when is None or attributes(rule.when):
        return False
    try:
        return not compile_expr(rule.when)(Request(None, frozenset(), None, {}))
    except EvaluationError:
        # Failing closed, an allow never applies but a deny always does: not unreachable.
        return rule.allow


def lint(policy: Policy) -> list[Finding]:
    """Every finding, in rule order, then role findings."""
    findings: list[Finding] = []
    declared = set(policy.roles)
    named: set[str] = set()
    denies = [rule for rule in policy.rules if not rule.allow and _unconditional(rule)]
    for rule in policy.rules:
        named |= rule.roles
        for role in sorted(rule.roles - declared - {"*"}):
            findings.append(
                Finding("unknown-role", f"role {role!r} is not declared under [roles]", rule.id)
            )
        if rule.allow:
            for deny in denies:
                if _always_denied(policy, rule, deny):
                    findings.append(
                        Finding("shadowed", f"always overridden by deny rule {deny.id!r}", rule.id)
                    )
                    break
            if rule.fields is None and (rule.actions is None or rule.resources is None):
                findings.append(
                    Finding(
                        "wildcard-fields",
                        "allows every field of every action or resource type; list fields",
                        rule.id,
                    )
                )
        if _never_true(rule):
            findings.append(Finding("unreachable", "its condition is never true", rule.id))
    inherited = {parent for parents in policy.roles.values() for parent in parents}
    for role in sorted(declared - named - inherited):
        if policy.roles[role]:
            continue  # a role that only bundles others is fine
        findings.append(Finding("unused-role", f"role {role!r} is declared but grants nothing"))
    return findings
