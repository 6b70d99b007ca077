"""`PolicyEngine`: one compiled form of a `Policy` answering checks, filters and reviews.

How a request is decided:

1. A subject holding two roles of one ``constraints.exclusive`` group is denied.
2. A resource whose tenant is not the subject's tenant is denied.
3. The candidate rules for (effective roles, action, resource type) come from a cache; each
   is then checked for tenants, purposes and its condition. A condition that cannot be
   evaluated fails closed: an allow does not match, a deny does.
4. A matching deny without ``fields`` denies; a deny with ``fields`` hides those fields.
5. Matching allows grant their fields. An allow whose ``mfa_max_age`` is not met grants only
   hypothetically: if the request would be allowed with it, the outcome is step-up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, ParamSpec, TypeVar

from securecustomer.exceptions import PolicyError, PolicyUsageError
from securecustomer.policy import _review
from securecustomer.policy._decide import Compiled, outcome
from securecustomer.policy._document import Policy, Rule
from securecustomer.policy._expr import (
    Direct,
    EvaluationError,
    Expr,
    Request,
    compile_direct,
    mfa_fresh,
    reads_roles,
)
from securecustomer.policy._guard import apply, make_guard, raise_unless_allowed
from securecustomer.policy._masks import BUILTIN_MASKS
from securecustomer.policy._model import AccessRequest, Decision, Outcome, Resource, Subject
from securecustomer.policy._review import AccessReview, DecisionChange, Explanation, Grant

__all__ = ["PolicyEngine", "apply"]

P = ParamSpec("P")
R = TypeVar("R")

_NO_CONTEXT: Final[Mapping[str, Any]] = {}
#: Role sets whose `_View` is cached; beyond this the least recently used one is evicted.
_ROLE_SETS: Final = 16_384
#: (role set, action, resource type) plans cached over every view; beyond this the least
#: recently used views are evicted (a plan is shared, so an entry costs one dict slot).
_PLANS: Final = 262_144
#: Plans shared by role sets with the same candidate rules, per (action, resource type).
_SHARED_PER_KEY: Final = 4_096
_DECISIONS_PER_PLAN: Final = 256
#: At load, build the index of every (action, resource type) the rules name when there
#: are at most this many (otherwise each on first use) ...
_EAGER_KEYS: Final = 4_096
#: ... and the plan of each single role for each of them, when keys x roles is at most this.
_EAGER_PLANS: Final = 4_096


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Plan:
    """The candidate rules of one (role set, action, resource type), and decisions made
    from them, by which rules matched (``static`` when none has a condition).

    Role sets with the same candidate rules share one plan, unless a condition of the fast
    path reads ``subject.roles`` (``shared`` is then false)."""

    __slots__ = ("base", "decisions", "fast", "rules", "shared", "static")

    def __init__(
        self,
        rules: tuple[Compiled, ...],
        static: Decision | None,
        roles: frozenset[str],
        direct: Callable[[Expr, frozenset[str]], Direct],
    ) -> None:
        self.rules = rules
        self.static = static
        self.decisions: dict[Any, Decision] = {}
        self.shared = True
        # The fast path, when every rule is simple or limited only by a condition: the
        # bits of the simple rules, and each distinct condition with the bits it sets.
        self.base = 0
        groups: dict[Any, int] = {}
        fast = True
        for index, rule in enumerate(rules):
            bit = 1 << (index + index)
            if rule.simple:
                self.base |= bit
            elif rule.cond is not None and rule.tenants is None and rule.purposes is None:
                fast = fast and rule.mfa is None
                groups[rule.rule.when] = groups.get(rule.rule.when, 0) | bit
                self.shared = self.shared and not rule.reads_roles
            else:
                fast = False
        self.fast = None
        if fast and groups:
            self.fast = tuple((direct(when, roles), bits) for when, bits in groups.items())
        else:
            self.shared = True  # the general path takes the roles from the request


class _View:
    """What a set of assigned roles means: effective roles, any violation, cached plans."""

    __slots__ = ("assigned", "plans", "roles", "violation")

    def __init__(
        self, assigned: frozenset[str], roles: frozenset[str], violation: Decision | None
    ) -> None:
        self.assigned = assigned
        self.roles = roles
        self.violation = violation
        self.plans: dict[tuple[str, str], _Plan] = {}


class _Key:
    """The rules that can apply to one (action, resource type), in policy order, indexed by
    role: bit i of a mask stands for ``rules[i]``.

    ``closures`` holds, per role, the mask of the rules that the role reaches through
    inheritance (a role absent reaches none); a role set's candidates are the union of its
    roles' masks and ``anyone`` (rules for ``*``). Built from *reaching* (role -> the roles
    that reach it), it costs the rules of the key times the roles reaching each.
    ``plans`` shares plans between role sets by mask, unless ``wild`` (an action or type no
    rule names: decisions name the request's own)."""

    __slots__ = ("anyone", "closures", "plans", "rules", "wild")

    def __init__(
        self,
        rules: tuple[Compiled, ...],
        star: tuple[bool, ...],
        wild: bool,
        reaching: Mapping[str, tuple[str, ...]],
    ) -> None:
        self.rules = rules
        self.wild = wild
        self.anyone = 0
        closures: dict[str, int] = {}
        for index, (compiled, anyone) in enumerate(zip(rules, star, strict=True)):
            bit = 1 << index
            if anyone:
                self.anyone |= bit
            for named in compiled.rule.roles:
                for role in reaching.get(named, (named,)):
                    closures[role] = closures.get(role, 0) | bit
        self.closures = closures
        self.plans: OrderedDict[int, _Plan] = OrderedDict()

    def pick(self, mask: int) -> tuple[Compiled, ...]:
        """The rules of *mask*, in policy order."""
        rules = self.rules
        out = []
        while mask:
            low = mask & -mask
            out.append(rules[low.bit_length() - 1])
            mask ^= low
        return tuple(out)


def _evict_oldest(cache: OrderedDict[Any, Any]) -> Any:
    """Remove and return the least recently used value, or None when another thread
    emptied the cache first."""
    try:
        return cache.popitem(last=False)[1]
    except KeyError:
        return None


class PolicyEngine:
    """Decide requests against a `Policy`: pure, synchronous, thread-safe.

    Example:
        ```python
        engine = PolicyEngine(Policy.from_toml("policy.toml"))
        decision = engine.evaluate(agent, "read", Resource("customer", id=42))
        if decision.allowed:
            shown = apply(decision, customer_record)
        ```

    ``masks`` adds mask functions (name -> ``value -> value``) to the built-in ones;
    ``clock`` returns the aware "now" used for MFA freshness when a call gives none.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        masks: Mapping[str, Callable[[Any], Any]] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.policy = policy
        self.masks: Mapping[str, Callable[[Any], Any]] = {**BUILTIN_MASKS, **(masks or {})}
        self._clock = clock
        for rule in policy.rules:
            for field, mask in rule.masks.items():
                if mask not in self.masks:
                    raise PolicyError(
                        f"unknown mask {mask!r} for field {field!r} "
                        f"(known: {', '.join(sorted(self.masks))})",
                        source=policy.source,
                        rule=rule.id,
                        field="masks",
                    )
        conditions: dict[Any, Callable[[Request], bool]] = {}
        self._rules = tuple(Compiled(rule, conditions) for rule in policy.rules)
        self._by_subject: dict[str, tuple[Compiled, ...]] = {}
        for compiled in self._rules:
            for subject_id in compiled.rule.subjects:
                self._by_subject[subject_id] = (*self._by_subject.get(subject_id, ()), compiled)
        self._views: OrderedDict[frozenset[str], _View] = OrderedDict()
        self._touch = self._views.move_to_end
        self._plan_count = 0
        self._tenant_mismatch = Decision(
            Outcome.DENY, "denied: the resource belongs to another tenant than the subject"
        )
        self._direct: dict[Expr, Direct] = {}
        self._index(policy)

    def _index(self, policy: Policy) -> None:
        """The rule index: rule positions by action and by resource type (``None``: rules
        for any), and the `_Key` of every (action, resource type) the rules name, built now
        when there are at most _EAGER_KEYS of them (see the constants)."""
        self._star = tuple("*" in c.rule.roles for c in self._rules)
        self._position = {id(c): n for n, c in enumerate(self._rules)}
        by_action: dict[str | None, list[int]] = {None: []}
        by_type: dict[str | None, list[int]] = {None: []}
        for n, compiled in enumerate(self._rules):
            rule = compiled.rule
            for action in (None,) if rule.actions is None else rule.actions:
                by_action.setdefault(action, []).append(n)
            for kind in (None,) if rule.resources is None else rule.resources:
                by_type.setdefault(kind, []).append(n)
        self._by_action, self._by_type = by_action, by_type
        self._keys: dict[tuple[str | None, str | None], _Key] = {}
        reaching: dict[str, list[str]] = {}  # role -> the declared roles that reach it
        for role in policy.roles:
            for reached in policy.effective_roles((role,)):
                reaching.setdefault(reached, []).append(role)
        self._reaching = {role: tuple(roles) for role, roles in reaching.items()}
        if len(by_action) * len(by_type) > _EAGER_KEYS:
            return
        for action in by_action:
            for kind in by_type:
                self._key(action, kind)
        if len(self._keys) * len(policy.roles) <= _EAGER_PLANS:
            for (action, kind), key in self._keys.items():
                if action is None or kind is None:
                    continue  # decisions name the request's own action and type
                for role in policy.roles:
                    view = _View(frozenset((role,)), policy.effective_roles((role,)), None)
                    mask = key.anyone | key.closures.get(role, 0)
                    self._shared_plan(view, (action, kind), key, mask)

    def _key(self, action: str | None, kind: str | None) -> _Key:
        """The `_Key` of an action and a resource type, each named by a rule or ``None``."""
        by_action, by_type = self._by_action, self._by_type
        these = set(by_action[None])
        if action is not None:
            these.update(by_action[action])
        of_kind = set(by_type[None])
        if kind is not None:
            of_kind.update(by_type[kind])
        picked = sorted(these & of_kind)
        key = _Key(
            tuple(self._rules[n] for n in picked),
            tuple(self._star[n] for n in picked),
            action is None or kind is None,
            self._reaching,
        )
        self._keys[(action, kind)] = key
        return key

    def _compile_direct(self, when: Expr, roles: frozenset[str]) -> Direct:
        """The fast form of a condition; one per condition unless it reads the roles."""
        direct = self._direct.get(when)
        if direct is None:
            direct = compile_direct(when, roles)
            if not reads_roles(when):
                self._direct[when] = direct
        return direct

    def __repr__(self) -> str:
        return f"<PolicyEngine rules={len(self._rules)} roles={len(self.policy.roles)}>"

    # --- deciding ----------------------------------------------------------------------------

    def evaluate(
        self,
        subject: Subject,
        action: str,
        resource: Resource,
        *,
        fields: Iterable[str] | None = None,
        purpose: str | None = None,
        context: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """Decide one request. A request the policy cannot answer is denied, not an error;
        only misuse raises (``fields`` given as one string, a naive ``now``)."""
        view = self._views.get(subject.roles)
        if view is None:
            view = self._view(subject.roles)
        else:
            try:  # noqa: SIM105 - contextlib.suppress costs more on this path
                self._touch(subject.roles)  # least recently used first out
            except KeyError:  # another thread evicted it just now
                pass
        if view.violation is not None:
            return view.violation
        tenant = resource.tenant
        if tenant is not None and tenant != subject.tenant:
            return self._tenant_mismatch
        key = (action, resource.type)
        if self._by_subject and subject.id in self._by_subject:
            rules = self._subject_rules(subject, view, key)
            return self._decide(
                rules, subject, view.roles, key, resource, fields, purpose, context, now
            )
        plan = view.plans.get(key)
        if plan is None:
            plan = self._plan(view, key)
        if fields is None:
            if plan.static is not None:
                return plan.static
            if plan.fast is not None:
                # Which rules match, condition by condition; any error takes the general
                # path below, which records it in the decision.
                mask = plan.base
                try:
                    for cond, bits in plan.fast:
                        if cond(subject, resource, context or _NO_CONTEXT):
                            mask |= bits
                except EvaluationError:
                    pass
                else:
                    decision = plan.decisions.get(mask)
                    if decision is not None:
                        return decision
        return self._decide(
            plan.rules,
            subject,
            view.roles,
            key,
            resource,
            fields,
            purpose,
            context,
            now,
            plan.decisions,
        )

    def evaluate_many(self, requests: Iterable[AccessRequest]) -> list[Decision]:
        """Decide many requests: the same answers as `evaluate`, with less overhead per
        request (the cached paths run inline; anything else goes through `evaluate`)."""
        evaluate = self.evaluate
        views = self._views
        touch = self._touch
        by_subject = self._by_subject
        out: list[Decision] = []
        append = out.append
        for r in requests:
            subject, resource = r.subject, r.resource
            view = views.get(subject.roles)
            if view is not None:
                try:
                    touch(subject.roles)
                except KeyError:
                    view = None
            if (
                r.fields is not None
                or view is None
                or view.violation is not None
                or (resource.tenant is not None and resource.tenant != subject.tenant)
                or subject.id in by_subject
            ):
                append(
                    evaluate(
                        subject,
                        r.action,
                        resource,
                        fields=r.fields,
                        purpose=r.purpose,
                        context=r.context,
                        now=r.now,
                    )
                )
                continue
            plan = view.plans.get((r.action, resource.type))
            if plan is not None:
                if plan.static is not None:
                    append(plan.static)
                    continue
                if plan.fast is not None:
                    mask = plan.base
                    try:
                        for cond, bits in plan.fast:
                            if cond(subject, resource, r.context):
                                mask |= bits
                    except EvaluationError:
                        pass
                    else:
                        decision = plan.decisions.get(mask)
                        if decision is not None:
                            append(decision)
                            continue
            append(
                evaluate(
                    subject, r.action, resource, purpose=r.purpose, context=r.context, now=r.now
                )
            )
        return out

    def require(
        self,
        subject: Subject,
        action: str,
        resource: Resource,
        *,
        fields: Iterable[str] | None = None,
        purpose: str | None = None,
        context: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """Return the allowing decision, or raise `AccessDenied` / `StepUpRequired`."""
        decision = self.evaluate(
            subject, action, resource, fields=fields, purpose=purpose, context=context, now=now
        )
        return raise_unless_allowed(decision, subject, action, resource)

    def guard(
        self,
        action: str,
        resource: Resource | str | Callable[..., Resource],
        *,
        subject: str | Callable[..., Subject] = "subject",
        fields: Iterable[str] | None = None,
        purpose: str | None = None,
        context: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a sync or async function so that it runs only when the request is allowed.

        *resource* is a `Resource`, the name of a parameter holding one, or a callable
        taking the call's arguments by name; *subject* likewise (default: the parameter
        named ``subject``); *context* is a mapping or a callable taking the call's
        arguments by name. A denial raises `AccessDenied`, a step-up `StepUpRequired`,
        before the function runs.

        Example:
            ```python
            def customer(customer_id: int, **_: object) -> Resource:
                return Resource("customer", id=customer_id)

            @engine.guard("read", resource=customer)
            def show(subject: Subject, customer_id: int) -> dict: ...
            ```
        """
        return make_guard(
            self.require, action, resource, subject, fields=fields, purpose=purpose, context=context
        )

    def apply(self, decision: Decision, record: Mapping[str, Any]) -> dict[str, Any]:
        """`apply` with this engine's masks (built-in ones plus those given to the engine)."""
        return apply(decision, record, masks=self.masks)

    # --- questions about the policy ------------------------------------------------------------

    def who_can(self, action: str, resource_type: str, field: str | None = None) -> list[Grant]:
        """Every role and subject id that an allow rule lets do *action* on *resource_type*
        (and *field*), with the role path and any conditions; unconditional denies removed.

        Example:
            ```python
            for grant in engine.who_can("read", "customer", field="ssn"):
                print(grant.principal, grant.rule_id, " -> ".join(grant.via))
            ```
        """
        return _review.who_can(self.policy, action, resource_type, field)

    def review(self, assignments: Mapping[str, Iterable[str]] | Iterable[Subject]) -> AccessReview:
        """Every subject's effective permissions with the role path granting each; render
        with ``.to_csv()`` or ``.to_markdown()``.

        Example:
            ```python
            print(engine.review({"user-7": ["agent"], "user-9": ["admin"]}).to_markdown())
            ```
        """
        return _review.review(self, assignments)

    def explain(
        self,
        subject: Subject,
        action: str,
        resource: Resource,
        *,
        fields: Iterable[str] | None = None,
        purpose: str | None = None,
        context: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Explanation:
        """The decision and, for every rule in order, whether it matched and why (or why not).

        Example:
            ```python
            print(engine.explain(agent, "read", Resource("customer", id=42)))
            ```
        """
        request = AccessRequest(subject, action, resource, fields, purpose, context, now)
        return _review.explain(self, request, now or self._clock())

    def diff(self, other: PolicyEngine, requests: Iterable[AccessRequest]) -> list[DecisionChange]:
        """The requests whose outcome, visible or hidden fields, masks or step-up age differ
        under *other*.

        Example:
            ```python
            for change in current.diff(proposed, sample_requests):
                print(change.request.subject.id, change.before.outcome, change.after.outcome)
            ```
        """
        return _review.diff(self, other, requests)

    def query_filter(
        self,
        subject: Subject,
        action: str,
        model: Any,
        *,
        resource_type: str,
        columns: Mapping[str, Any] | None = None,
        tenant_column: Any = None,
        fields: Iterable[str] | None = None,
        purpose: str | None = None,
        context: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Any:
        """A SQLAlchemy where-clause selecting exactly the rows of *model* that `evaluate`
        would allow, row by row (needs SQLAlchemy; see `securecustomer.sqlalchemy`).

        A row is the resource ``Resource(resource_type, id=<primary key>, attributes=<the
        mapped columns by attribute name>, tenant=<tenant_column>)``; *columns* maps further
        ``resource.NAME`` attributes to column expressions. A condition that cannot be
        translated exactly raises `UnsupportedQueryError` rather than over-returning.

        Example:
            ```python
            stmt = select(Customer).where(
                engine.query_filter(agent, "read", Customer, resource_type="customer")
            )
            ```
        """
        from securecustomer.sqlalchemy._policy import query_filter

        return query_filter(
            self,
            subject,
            action,
            model,
            resource_type=resource_type,
            columns=columns,
            tenant_column=tenant_column,
            fields=fields,
            purpose=purpose,
            context=context,
            now=now or self._clock(),
        )

    def candidate_rules(self, subject: Subject, action: str, resource_type: str) -> list[Rule]:
        """The rules that apply to this subject, action and resource type before tenants,
        purposes, conditions and MFA are checked (what `query_filter` translates)."""
        view = self._views.get(subject.roles) or self._view(subject.roles)
        key = (action, resource_type)
        if subject.id in self._by_subject:
            return [c.rule for c in self._subject_rules(subject, view, key)]
        plan = view.plans.get(key) or self._plan(view, key)
        return [c.rule for c in plan.rules]

    def violation(self, subject: Subject) -> Decision | None:
        """The denial for a subject holding mutually exclusive roles, or ``None``."""
        view = self._views.get(subject.roles) or self._view(subject.roles)
        return view.violation

    # --- compiled plans ----------------------------------------------------------------------

    def _view(self, assigned: frozenset[str]) -> _View:
        roles = self.policy.effective_roles(assigned)
        violation = None
        for group in self.policy.exclusive:
            both = sorted(roles & group)
            if len(both) > 1:
                violation = Decision(
                    Outcome.DENY,
                    f"denied: separation of duties, the subject holds both {both[0]!r} "
                    f"and {both[1]!r}",
                )
                break
        view = _View(assigned, roles, violation)
        views = self._views
        views[assigned] = view
        while len(views) > _ROLE_SETS:
            self._forget(_evict_oldest(views))
        return view

    def _forget(self, view: _View | None) -> None:
        if view is not None:
            self._plan_count -= len(view.plans)
        if not self._views:
            self._plan_count = 0  # (a count raced by threads starts again from nothing)

    def _candidates(self, view: _View, key: tuple[str, str]) -> tuple[_Key, int]:
        """The `_Key` of *key* and the mask of the rules that apply to the view's roles: a
        few dictionary lookups, whatever the size of the policy."""
        index = self._keys.get(key)  # every (action, type) the rules name, once built
        if index is None:
            action, kind = key
            wild = (
                action if action in self._by_action else None,
                kind if kind in self._by_type else None,
            )
            index = self._keys.get(wild) or self._key(*wild)
        mask = index.anyone
        closures = index.closures
        for role in view.assigned:
            mask |= closures.get(role, 0)
        return index, mask

    def _plan(self, view: _View, key: tuple[str, str]) -> _Plan:
        """The plan of *key* for *view*, cached in the view. Past _PLANS plans in all
        views, the least recently used views are evicted."""
        index, mask = self._candidates(view, key)
        plan = None if index.wild else index.plans.get(mask)
        if plan is None:
            plan = self._shared_plan(view, key, index, mask)
        view.plans[key] = plan
        self._plan_count += 1
        if self._plan_count > _PLANS:
            views = self._views
            while self._plan_count > _PLANS and views:
                self._forget(_evict_oldest(views))
        return plan

    def _shared_plan(self, view: _View, key: tuple[str, str], index: _Key, mask: int) -> _Plan:
        """The plan of the rules of *mask*: shared by the role sets with those candidates."""
        plans = index.plans
        plan = None if index.wild else plans.get(mask)
        if plan is None:
            rules = index.pick(mask)
            static = None
            if all(rule.simple for rule in rules):
                static = self._decide(rules, None, view.roles, key, None, None, None, None, None)
            plan = _Plan(rules, static, view.roles, self._compile_direct)
            if plan.shared and not index.wild:
                plans[mask] = plan
                while len(plans) > _SHARED_PER_KEY:
                    _evict_oldest(plans)
        return plan

    def _subject_rules(
        self, subject: Subject, view: _View, key: tuple[str, str]
    ) -> tuple[Compiled, ...]:
        action, resource_type = key
        index, mask = self._candidates(view, key)
        position = self._position
        chosen = {position[id(c)]: c for c in index.pick(mask)}
        for c in self._by_subject[subject.id]:
            if (c.rule.actions is None or action in c.rule.actions) and (
                c.rule.resources is None or resource_type in c.rule.resources
            ):
                chosen[position[id(c)]] = c
        return tuple(chosen[n] for n in sorted(chosen))

    # --- the decision ------------------------------------------------------------------------

    def _decide(
        self,
        rules: tuple[Compiled, ...],
        subject: Subject | None,
        roles: frozenset[str],
        key: tuple[str, str],
        resource: Resource | None,
        fields: Iterable[str] | None,
        purpose: str | None,
        context: Mapping[str, Any] | None,
        now: datetime | None,
        cache: dict[Any, Decision] | None = None,
    ) -> Decision:
        requested = None
        if fields is not None:
            if isinstance(fields, str):
                raise PolicyUsageError("fields must be a collection of field names, not one string")
            requested = frozenset(fields)
        mask, errors = self._match(rules, subject, roles, resource, purpose, context, now)
        if cache is None or errors:
            return outcome(rules, mask, tuple(errors), key, requested)
        # The decision depends only on which rules matched (and the fields asked for).
        cache_key = mask if requested is None else (mask, requested)
        decision = cache.get(cache_key)
        if decision is None:
            decision = outcome(rules, mask, (), key, requested)
            if len(cache) >= _DECISIONS_PER_PLAN:
                cache.clear()
            cache[cache_key] = decision
        return decision

    def _match(
        self,
        rules: tuple[Compiled, ...],
        subject: Subject | None,
        roles: frozenset[str],
        resource: Resource | None,
        purpose: str | None,
        context: Mapping[str, Any] | None,
        now: datetime | None,
    ) -> tuple[int, list[tuple[str, str]]]:
        """Which rules match: bit 2i for rule i matching, bit 2i+1 for it waiting on MFA."""
        tenant = None
        if resource is not None:
            tenant = resource.tenant if resource.tenant is not None else subject.tenant  # type: ignore[union-attr]
        mask = 0
        errors: list[tuple[str, str]] = []
        request: Request | None = None
        for index, rule in enumerate(rules):
            if not rule.simple:
                if rule.tenants is not None and tenant not in rule.tenants:
                    continue
                if rule.purposes is not None and purpose not in rule.purposes:
                    continue
                cond = rule.cond
                if cond is not None:
                    # Rules sharing a condition share one closure: evaluate it once.
                    if request is None:
                        request = Request(subject, roles, resource, context or _NO_CONTEXT)
                        seen: dict[Any, bool | str] = {}
                    result = seen.get(cond)
                    if result is None:
                        try:
                            result = cond(request)
                        except EvaluationError as exc:
                            result = str(exc)
                        seen[cond] = result
                    if result is False:
                        continue
                    if result is not True:
                        errors.append((rule.id, result))
                        if rule.allow:
                            continue  # fail closed: an allow that errs does not allow
                if rule.mfa is not None:
                    if now is None:
                        now = self._clock()
                    if now.tzinfo is None:
                        raise PolicyUsageError("now must be timezone-aware (datetime.now(UTC))")
                    if not mfa_fresh(subject.mfa_at, rule.mfa, now):  # type: ignore[union-attr]
                        mask |= 2 << (index + index)
                        continue
            mask |= 1 << (index + index)
        return mask, errors
