"""Questions about a policy rather than about one request: who can, reviews, explain, diff."""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar, Final

import attrs

from securecustomer.policy._decide import duration_text
from securecustomer.policy._expr import EvaluationError, Request, compile_expr, mfa_fresh
from securecustomer.policy._model import AccessRequest, Decision, Resource, Subject

if TYPE_CHECKING:
    from securecustomer.policy._document import Policy, Rule
    from securecustomer.policy._engine import PolicyEngine

__all__ = ["AccessReview", "DecisionChange", "Explanation", "Grant", "Step"]

_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


def _names(value: frozenset[str] | None) -> str:
    return "*" if value is None else ", ".join(sorted(value))


@attrs.frozen(slots=True)
class Grant:
    """One way a principal gets (or loses) access: the rule, and the role path to it.

    ``principal`` is ``"role:NAME"``, ``"subject:ID"`` or ``"role:*"`` (anyone); ``via`` is
    the inheritance path from the principal's role to the role the rule names.
    ``conditional`` is true when a condition, tenants, purposes or MFA limit the grant;
    ``unmask`` lists the fields the rule shows in clear even where other rules mask them.
    """

    principal: str
    rule_id: str
    effect: str
    actions: frozenset[str] | None
    resources: frozenset[str] | None
    fields: frozenset[str] | None
    masks: Mapping[str, str]
    via: tuple[str, ...]
    condition: str | None
    mfa_max_age: timedelta | None
    purposes: frozenset[str] | None
    tenants: frozenset[str] | None
    unmask: frozenset[str] = frozenset()

    @property
    def conditional(self) -> bool:
        return any(
            part is not None
            for part in (self.condition, self.mfa_max_age, self.purposes, self.tenants)
        )

    @classmethod
    def of(cls, principal: str, rule: Rule, via: tuple[str, ...]) -> Grant:
        return cls(
            principal=principal,
            rule_id=rule.id,
            effect=rule.effect,
            actions=rule.actions,
            resources=rule.resources,
            fields=rule.fields,
            masks=dict(rule.masks),
            via=via,
            condition=rule.condition,
            mfa_max_age=rule.mfa_max_age,
            purposes=rule.purposes,
            tenants=rule.tenants,
            unmask=rule.unmask,
        )


def role_paths(policy: Policy, start: str) -> dict[str, tuple[str, ...]]:
    """The shortest inheritance path from *start* to each role it reaches (both included):
    one breadth-first search, parents in declaration order, so that ties go to the path
    found first."""
    paths: dict[str, tuple[str, ...]] = {start: (start,)}
    queue: deque[tuple[str, ...]] = deque(((start,),))
    while queue:
        path = queue.popleft()
        for parent in policy.roles.get(path[-1], ()):
            if parent not in paths:
                paths[parent] = (*path, parent)
                queue.append((*path, parent))
    return paths


def role_path(policy: Policy, start: str, target: str) -> tuple[str, ...] | None:
    """The shortest inheritance path from *start* to *target* (both included), or None."""
    return role_paths(policy, start).get(target)


class _Paths:
    """`role_paths` of each role asked for, computed once per role."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.cache: dict[str, dict[str, tuple[str, ...]]] = {}

    def of(self, start: str) -> dict[str, tuple[str, ...]]:
        paths = self.cache.get(start)
        if paths is None:
            paths = self.cache[start] = role_paths(self.policy, start)
        return paths

    def via(self, rule: Rule, roles: Iterable[str]) -> tuple[str, ...] | None:
        """The shortest path from one of *roles* to one of the rule's roles (the first in
        name order on a tie), ``("*",)`` for a rule for anyone."""
        if "*" in rule.roles:
            return ("*",)
        best: tuple[str, ...] | None = None
        targets = sorted(rule.roles)
        for start in sorted(roles):
            paths = self.of(start)
            for target in targets:
                path = paths.get(target)
                if path is not None and (best is None or len(path) < len(best)):
                    best = path
        return best


def _matches(rule: Rule, action: str, resource_type: str, field: str | None) -> bool:
    return (
        (rule.actions is None or action in rule.actions)
        and (rule.resources is None or resource_type in rule.resources)
        and (field is None or rule.fields is None or field in rule.fields)
    )


def who_can(policy: Policy, action: str, resource_type: str, field: str | None) -> list[Grant]:
    """Every role (and subject id) that an allow rule lets do *action* on *resource_type*.

    Roles that an unconditional deny always stops are left out; conditional grants are
    included with their conditions, so the answer over-approximates, never hides access.

    Cost: one pass over the rules, one breadth-first search of the inheritance graph per
    role (together, the size of the inheritance closure), then, per matching allow rule,
    only the roles that reach one of its roles: linear in the size of the policy and of
    the answer, not roles x rules.
    """
    denies = [
        rule
        for rule in policy.rules
        if not rule.allow
        and rule.when is None
        and rule.tenants is None
        and rule.purposes is None
        and _matches(rule, action, resource_type, None)
        and (rule.fields is None or (field is not None and field in rule.fields))
    ]
    denied_roles = frozenset(r for d in denies for r in d.roles)
    denied_subjects = frozenset(s for d in denies for s in d.subjects)
    everyone_denied = "*" in denied_roles
    roles = sorted({*policy.roles, *(r for rule in policy.rules for r in rule.roles)})
    allowed = [
        role
        for role in roles
        if not everyone_denied and denied_roles.isdisjoint(policy.effective_roles([role]))
    ]
    paths = _Paths(policy)
    reaching: dict[str, list[str]] = {}  # role -> the allowed roles that reach it
    for role in allowed:
        if role != "*":
            for reached in paths.of(role):
                reaching.setdefault(reached, []).append(role)
    order = {role: n for n, role in enumerate(allowed)}
    by_role: dict[str, list[Grant]] = {}
    for rule in policy.rules:
        if not rule.allow or not _matches(rule, action, resource_type, field):
            continue
        if "*" in rule.roles:
            starts: Iterable[str] = allowed
        else:
            found = {start for target in rule.roles for start in reaching.get(target, ())}
            starts = sorted(found, key=order.__getitem__)
        for role in starts:
            via = ("*",) if "*" in rule.roles else paths.via(rule, [role])
            if via is not None:
                by_role.setdefault(role, []).append(Grant.of(f"role:{role}", rule, via))
    grants = [grant for role in allowed for grant in by_role.get(role, ())]
    for rule in policy.rules:
        if rule.allow and _matches(rule, action, resource_type, field):
            for subject_id in sorted(rule.subjects):
                if not everyone_denied and subject_id not in denied_subjects:
                    grants.append(Grant.of(f"subject:{subject_id}", rule, ()))
    return grants


# --- reviews ------------------------------------------------------------------------------

_COLUMNS: Final = (
    "subject",
    "roles",
    "effect",
    "actions",
    "resources",
    "fields",
    "masks",
    "condition",
    "mfa_max_age",
    "purposes",
    "tenants",
    "rule",
    "via",
)


@attrs.frozen(slots=True)
class AccessReview:
    """Every subject's effective permissions, with the role path that grants each.

    ``rows`` are dicts with the keys of ``COLUMNS``; ``violations`` lists subjects that
    hold mutually exclusive roles. ``to_csv()`` (safe against spreadsheet formulas) and
    ``to_markdown()`` render them for a reviewer.
    """

    rows: tuple[Mapping[str, str], ...]
    violations: tuple[tuple[str, str], ...] = ()
    COLUMNS: ClassVar[tuple[str, ...]] = _COLUMNS

    def to_csv(self) -> str:
        out = io.StringIO()
        # Every cell quoted: with lineterminator "\n" the csv module would leave a lone "\r"
        # unquoted, and a reader would split the row there (and a formula after it would
        # start a row of its own).
        writer = csv.DictWriter(
            out, fieldnames=_COLUMNS, lineterminator="\n", quoting=csv.QUOTE_ALL
        )
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return out.getvalue()

    def to_markdown(self) -> str:
        def esc(value: str) -> str:
            # CommonMark ends a line at "\r" too: a raw one would start a new table row.
            return _LINE_BREAK.sub(" ", value.replace("|", "\\|"))

        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(esc(row[c]) for c in _COLUMNS) + " |" for row in self.rows]
        for subject_id, reason in self.violations:
            lines.append(f"\n**{esc(subject_id)}**: {esc(reason)}")
        return "\n".join(lines) + "\n"


def _cell(value: str) -> str:
    return "'" + value if value.lstrip(" ").startswith(_FORMULA) else value


def review(
    engine: PolicyEngine, assignments: Mapping[str, Iterable[str]] | Iterable[Subject]
) -> AccessReview:
    subjects: list[Subject]
    if isinstance(assignments, Mapping):
        subjects = [Subject(sid, roles) for sid, roles in assignments.items()]
    else:
        subjects = list(assignments)
    policy = engine.policy
    rows: list[dict[str, str]] = []
    violations: list[tuple[str, str]] = []
    # The rules of each role, of anyone and of each subject id, by position: a subject's
    # rows come from its own roles' lists, not from a pass over every rule.
    by_role: dict[str, list[int]] = {}
    by_subject: dict[str, list[int]] = {}
    anyone: list[int] = []
    for n, rule in enumerate(policy.rules):
        if "*" in rule.roles:
            anyone.append(n)
        for role in rule.roles:
            by_role.setdefault(role, []).append(n)
        for subject_id in rule.subjects:
            by_subject.setdefault(subject_id, []).append(n)
    paths = _Paths(policy)
    for subject in sorted(subjects, key=lambda s: s.id):
        probe = engine.evaluate(subject, "\0review", Resource("\0review"))
        if probe.reason.startswith("denied: separation of duties"):
            violations.append((subject.id, probe.reason))
        own = set(by_subject.get(subject.id, ()))
        applying = own.union(anyone)
        for role in policy.effective_roles(subject.roles):
            applying.update(by_role.get(role, ()))
        for n in sorted(applying):
            rule = policy.rules[n]
            if n in own:
                via: tuple[str, ...] | None = (f"subject:{subject.id}",)
            else:
                via = paths.via(rule, subject.roles)
            rows.append(_row(subject, rule, via or ()))
    return AccessReview(tuple(rows), tuple(violations))


def _masks_cell(rule: Rule) -> str:
    """``email=email, phone=phone``; a rule that lifts masks adds ``; unmask: ssn``."""
    cell = ", ".join(f"{k}={v}" for k, v in sorted(rule.masks.items()))
    if rule.unmask:
        cell += ("; " if cell else "") + f"unmask: {_names(rule.unmask)}"
    return cell


def _row(subject: Subject, rule: Rule, via: tuple[str, ...]) -> dict[str, str]:
    return {
        "subject": subject.id,
        "roles": ", ".join(sorted(subject.roles)),
        "effect": rule.effect,
        "actions": _names(rule.actions),
        "resources": _names(rule.resources),
        "fields": _names(rule.fields),
        "masks": _masks_cell(rule),
        "condition": rule.condition or "",
        "mfa_max_age": "" if rule.mfa_max_age is None else duration_text(rule.mfa_max_age),
        "purposes": "" if rule.purposes is None else _names(rule.purposes),
        "tenants": "" if rule.tenants is None else _names(rule.tenants),
        "rule": rule.id,
        "via": " -> ".join(via),
    }


# --- explain and diff ---------------------------------------------------------------------


@attrs.frozen(slots=True)
class Step:
    """How one rule fared for one request: ``matched`` and why (or why not)."""

    rule_id: str
    effect: str
    matched: bool
    why: str


@attrs.frozen(slots=True)
class Explanation:
    """The decision, and every rule of the policy in order with why it matched or not."""

    decision: Decision
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        lines = [f"{self.decision.outcome.value}: {self.decision.reason}"]
        for step in self.steps:
            mark = "+" if step.matched else "-"
            lines.append(f"  {mark} {step.rule_id} ({step.effect}): {step.why}")
        return "\n".join(lines)


def explain(engine: PolicyEngine, request: AccessRequest, now: datetime) -> Explanation:
    subject, resource = request.subject, request.resource
    policy = engine.policy
    decision = engine.evaluate(
        subject,
        request.action,
        resource,
        fields=request.fields,
        purpose=request.purpose,
        context=request.context,
        now=now,
    )
    roles = policy.effective_roles(subject.roles)
    tenant = resource.tenant if resource.tenant is not None else subject.tenant
    steps = [_step(rule, request, roles, tenant, now) for rule in policy.rules]
    return Explanation(decision, tuple(steps))


def _step(
    rule: Rule,
    request: AccessRequest,
    roles: frozenset[str],
    tenant: str | None,
    now: datetime,
) -> Step:
    subject, resource = request.subject, request.resource

    def step(matched: bool, why: str) -> Step:
        return Step(rule.id, rule.effect, matched, why)

    if subject.id not in rule.subjects and "*" not in rule.roles and rule.roles.isdisjoint(roles):
        wanted = _names(rule.roles) if rule.roles else _names(rule.subjects)
        return step(False, f"not for this subject (needs {wanted})")
    if rule.actions is not None and request.action not in rule.actions:
        return step(False, f"action {request.action!r} is not in [{_names(rule.actions)}]")
    if rule.resources is not None and resource.type not in rule.resources:
        return step(False, f"resource type {resource.type!r} is not in [{_names(rule.resources)}]")
    if resource.tenant is not None and resource.tenant != subject.tenant:
        return step(False, "the resource belongs to another tenant")
    if rule.tenants is not None and tenant not in rule.tenants:
        return step(False, f"tenant {tenant!r} is not in [{_names(rule.tenants)}]")
    if rule.purposes is not None and request.purpose not in rule.purposes:
        return step(False, f"purpose {request.purpose!r} is not in [{_names(rule.purposes)}]")
    if rule.when is not None:
        try:
            ok = compile_expr(rule.when)(Request(subject, roles, resource, request.context))
        except EvaluationError as exc:
            if rule.allow:
                return step(False, f"condition failed closed: {exc}")
            return step(True, f"condition failed closed (deny applies): {exc}")
        if not ok:
            return step(False, f"condition is false: {rule.condition}")
    if rule.mfa_max_age is not None and not mfa_fresh(subject.mfa_at, rule.mfa_max_age, now):
        return step(False, f"needs MFA within {duration_text(rule.mfa_max_age)} (step-up)")
    scope = "every field" if rule.fields is None else f"fields [{_names(rule.fields)}]"
    lifts = f", lifts every mask on [{_names(rule.unmask)}] (unmask)" if rule.unmask else ""
    return step(True, f"matched: {'allows' if rule.allow else 'denies'} {scope}{lifts}")


@attrs.frozen(slots=True)
class DecisionChange:
    """A request whose decision differs between two engines."""

    request: AccessRequest
    before: Decision
    after: Decision


def _same(a: Decision, b: Decision) -> bool:
    return (a.outcome, a.fields, a.hidden, dict(a.masks), a.step_up_max_age) == (
        b.outcome,
        b.fields,
        b.hidden,
        dict(b.masks),
        b.step_up_max_age,
    )


def diff(
    engine: PolicyEngine, other: PolicyEngine, requests: Iterable[AccessRequest]
) -> list[DecisionChange]:
    changes = []
    for request in requests:
        before, after = engine.evaluate_many([request])[0], other.evaluate_many([request])[0]
        if not _same(before, after):
            changes.append(DecisionChange(request, before, after))
    return changes
