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
- ``overlapping-masks``: two allows that can grant one field to the same role (or subject
  id) for the same action and resource type, one masking it differently from the other
  (another mask, or in clear). The strictest mask applies; a clear grant does not lift a
  mask unless its rule lists the field in ``unmask`` (such an explicit lift is not
  reported). Conditions, tenants and purposes are not compared: the rules *can* overlap.
  Subjects holding two unrelated roles combine masks the same way; that is not reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from securecustomer.policy._expr import EvaluationError, Request, attributes, compile_expr
from securecustomer.policy._masks import strictest

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


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    return a is None or b is None or not a.isdisjoint(b)


def _same_principal(closures: list[frozenset[str]], a: Rule, b: Rule) -> bool:
    """Whether one role (through inheritance, or ``*``) or one subject id reaches both."""
    if not a.subjects.isdisjoint(b.subjects):
        return True
    if "*" in a.roles or "*" in b.roles:
        return bool(a.roles or a.subjects) and bool(b.roles or b.subjects)
    return any(
        not closure.isdisjoint(a.roles) and not closure.isdisjoint(b.roles) for closure in closures
    )


def _overlapping_masks(
    closures: list[frozenset[str]], rule: Rule, earlier: list[Rule]
) -> list[Finding]:
    """*rule* against every earlier allow that can grant one of its fields another way."""
    findings = []
    for other in earlier:
        if not (other.masks or rule.masks) or not (
            _meet(rule.actions, other.actions)
            and _meet(rule.resources, other.resources)
            and _meet(rule.tenants, other.tenants)
            and _meet(rule.purposes, other.purposes)
            and _same_principal(closures, rule, other)
        ):
            continue
        for field in sorted({*rule.masks, *other.masks}):
            mine, theirs = rule.masks.get(field), other.masks.get(field)
            if (
                mine == theirs
                or field in rule.unmask
                or field in other.unmask
                or (rule.fields is not None and field not in rule.fields)
                or (other.fields is not None and field not in other.fields)
            ):
                continue
            if mine is None:
                message = (
                    f"field {field!r}: grants it in clear where rule {other.id!r} masks it "
                    f"({theirs!r}); the mask applies (list the field in unmask to lift it)"
                )
            elif theirs is None:
                message = (
                    f"field {field!r}: masks it ({mine!r}) where rule {other.id!r} grants it "
                    f"in clear; the mask applies"
                )
            else:
                message = (
                    f"field {field!r}: masks it ({mine!r}) where rule {other.id!r} masks it "
                    f"({theirs!r}); the strictest, {strictest((mine, theirs))!r}, applies"
                )
            findings.append(Finding("overlapping-masks", message, rule.id))
    return findings


def lint(policy: Policy) -> list[Finding]:
    """Every finding, in rule order, then role findings."""
    findings: list[Finding] = []
    declared = set(policy.roles)
    named: set[str] = set()
    denies = [rule for rule in policy.rules if not rule.allow and _unconditional(rule)]
    allows: list[Rule] = []
    named_roles = {role for rule in policy.rules for role in rule.roles} - {"*"}
    closures = [policy.effective_roles([role]) for role in sorted({*declared, *named_roles})]
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
        if rule.allow:
            findings += _overlapping_masks(closures, rule, allows)
            allows.append(rule)
    inherited = {parent for parents in policy.roles.values() for parent in parents}
    for role in sorted(declared - named - inherited):
        if policy.roles[role]:
            continue  # a role that only bundles others is fine
        findings.append(Finding("unused-role", f"role {role!r} is declared but grants nothing"))
    return findings
