"""How matched rules become a `Decision` (the semantics, in one place).

`Compiled` is a rule in the shape the engine's hot loop wants. `outcome` turns the set of
rules that matched (a bit mask: bit 2i when rule i matched, bit 2i+1 when it waits on a
fresh MFA) into the decision:

- a matching deny without ``fields`` denies; a deny with ``fields`` hides those fields;
- matching allows grant their fields (all fields when they list none); a request that named
  fields is allowed only when all of them are visible;
- masks override as denies do: a visible field that any granting rule masks is shown with
  the strictest of those masks (`strictest`: an order over mask names, never rule ids),
  also when another rule grants it in clear; only a granting rule that lists the field in
  ``unmask`` shows it in clear, whatever the others mask (`Decision.unmasked` names it);
- an allow waiting on MFA grants only hypothetically: if the request would be allowed with
  it, the outcome is step-up, with the shortest ``mfa_max_age`` among such rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from securecustomer.policy._document import Rule
from securecustomer.policy._expr import Request, compile_expr, reads_roles, unparse
from securecustomer.policy._masks import strictest
from securecustomer.policy._model import Decision, Outcome

__all__ = ["Compiled", "duration_text", "outcome"]


class Compiled:
    """A rule with its condition compiled, in the shape the hot loop wants."""

    __slots__ = (
        "allow",
        "cond",
        "fields",
        "id",
        "masks",
        "mfa",
        "purposes",
        "reads_roles",
        "rule",
        "simple",
        "tenants",
        "unmask",
    )

    def __init__(self, rule: Rule, conditions: dict[Any, Callable[[Request], bool]]) -> None:
        self.rule = rule
        self.id = rule.id
        self.allow = rule.allow
        self.cond = None
        #: The condition reads ``subject.roles``: its fast form is bound to one role set.
        self.reads_roles = rule.when is not None and reads_roles(rule.when)
        if rule.when is not None:
            key = unparse(rule.when)  # one closure per distinct condition
            if key not in conditions:
                conditions[key] = compile_expr(rule.when)
            self.cond = conditions[key]
        self.fields = rule.fields
        self.masks = rule.masks
        self.unmask = rule.unmask
        self.mfa = rule.mfa_max_age
        self.purposes = rule.purposes
        self.tenants = rule.tenants
        self.simple = (
            self.cond is None
            and self.mfa is None
            and self.purposes is None
            and self.tenants is None
        )


def outcome(
    rules: tuple[Compiled, ...],
    mask: int,
    failed: tuple[tuple[str, str], ...],
    key: tuple[str, str],
    requested: frozenset[str] | None,
) -> Decision:
    granting: list[Compiled] = []
    step_up: list[Compiled] = []
    denies: list[Compiled] = []
    hidden: set[str] = set()
    for index, rule in enumerate(rules):
        if mask >> (index + index) & 1:
            if rule.allow:
                granting.append(rule)
            elif rule.fields is None:
                denies.append(rule)
            else:
                hidden |= rule.fields
        elif mask >> (index + index) & 2:
            step_up.append(rule)
    action, resource_type = key
    if denies:
        ids = tuple(sorted(r.id for r in denies))
        return Decision(Outcome.DENY, f"denied by rule {ids[0]!r}", rule_ids=ids, errors=failed)
    visible, complete = _visible(granting, hidden, requested)
    frozen_hidden = frozenset(hidden if requested is None else hidden & requested)
    if granting and complete:
        if visible is not None:
            # The rules that grant a visible field; all of them for a request naming no
            # field (``fields=[]``), where no rule grants anything in particular.
            granting = [
                r for r in granting if r.fields is None or not r.fields.isdisjoint(visible)
            ] or granting
        masks, unmasked = _masks(granting, visible, hidden)
        return Decision(
            Outcome.ALLOW,
            f"allowed by rule {min(r.id for r in granting)!r}",
            rule_ids=tuple(sorted(r.id for r in granting)),
            fields=visible,
            hidden=frozen_hidden,
            masks=masks,
            unmasked=unmasked,
            errors=failed,
        )
    if step_up:
        _, would = _visible(granting + step_up, hidden, requested)
        if would:
            max_age = min(r.mfa for r in step_up if r.mfa is not None)
            return Decision(
                Outcome.STEP_UP,
                f"step-up required: MFA within {duration_text(max_age)} "
                f"(rule {min(r.id for r in step_up)!r})",
                rule_ids=tuple(sorted(r.id for r in step_up)),
                errors=failed,
                step_up_max_age=max_age,
            )
    if granting and requested is not None:
        missing = ", ".join(sorted(requested - (visible or frozenset())))
        reason = f"denied: fields not allowed: {missing}"
    else:
        reason = f"denied: no rule allows {action!r} on {resource_type!r}"
    if failed:
        reason += f" ({len(failed)} rule(s) failed closed)"
    # A request that named fields learns which of them it could see (a subset of them).
    shown = None if requested is None else visible
    return Decision(Outcome.DENY, reason, fields=shown, hidden=frozen_hidden, errors=failed)


def _visible(
    granting: list[Compiled], hidden: set[str], requested: frozenset[str] | None
) -> tuple[frozenset[str] | None, bool]:
    """(visible fields, whether the request is satisfied)."""
    every = False
    granted: set[str] = set()
    for rule in granting:
        if rule.fields is None:
            every = True
        else:
            granted |= rule.fields
    if requested is None:
        if every:
            return None, True
        shown = frozenset(granted - hidden)
        return shown, bool(shown)
    shown = frozenset(f for f in requested if (every or f in granted) and f not in hidden)
    return shown, shown == requested


def _masks(
    granting: list[Compiled], visible: frozenset[str] | None, hidden: set[str]
) -> tuple[dict[str, str], frozenset[str]]:
    """(field -> the strictest mask of the rules granting it, fields whose masks a granting
    rule lifts with ``unmask``). Runs once per set of matching rules: plans cache it."""
    masked: dict[str, str] = {}
    lifted: set[str] = set()
    candidates = {f for rule in granting for f in rule.masks}
    for field in sorted(candidates):
        if field in hidden or (visible is not None and field not in visible):
            continue
        grants = [r for r in granting if r.fields is None or field in r.fields]
        if any(field in r.unmask for r in grants):
            lifted.add(field)
        else:
            masked[field] = strictest(r.masks[field] for r in grants if field in r.masks)
    return masked, frozenset(lifted)


def duration_text(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
