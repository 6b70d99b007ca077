"""Policy-engine benchmark: decisions per second of securecustomer's `PolicyEngine`, pycasbin
and cedarpy on one generated policy and one random request set, in one process and one run.

Run ``python benchmarks/policy.py`` (or ``nox -s bench``); ``--help`` lists the options.
What is measured and why is explained in ``docs/performance.md`` ("Policy engine").

World: from one seed, 20 roles in an inheritance DAG four levels deep, 300 rules (one role,
one or two actions, one resource type each; one in ten a deny), 1,000 users with one to
three roles, a tenant and a region, 2,000 resources (8 types, 5 tenants, 3 regions) and a
random request set (9 in 10 requests stay in the user's tenant). Two workloads use the
same rules: *role rules* only, and *one condition*, where every allow rule also needs
``resource.region == subject.region``.

Every engine gets the same policy in its own language, built before timing: a
`PolicyEngine` over ``Policy.from_dict``; a ``casbin.Enforcer`` over an in-memory model and
policy (deny overrides allow, role links through ``g``, the request as flat strings), and
once more in casbin's ABAC form (request objects whose attributes the matcher reads); a
cedarpy ``PolicySet`` and ``Entities`` handle (forbid overrides permit, role membership
through entity parents). The tenant rule (a resource of another tenant is denied) is built
into `PolicyEngine`, a matcher clause in casbin and one ``forbid ... unless`` policy in
Cedar. A third securecustomer job times `evaluate` on a new engine, before its caches fill.

Checks before timing: every engine must give the same decisions as `PolicyEngine` on the
request set (``--check all``, the default: every engine on every request), or the run
stops. Timing: a *job* is one (engine, call, workload); a *round* runs every job once in a
freshly shuffled order; the figure is the median over the rounds, in decisions per second,
and ratios are taken between medians of the same run. pycasbin and cedarpy are timed on the
first ``--casbin-requests`` and ``--cedar-requests`` requests of the set (they are slow);
securecustomer's jobs, which are short, run several times per round.

At scale (``--scale-rounds``, 0 to skip): policies of 10, 100, 1,000 and 10,000 rules and
as many roles, 1,000 users; per size a new engine's build time, first and warm pass in µs
per decision, ``who_can`` and ``review`` times; and warm decisions per second with 8,000
distinct role sets.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import importlib.metadata
import io
import json
import math
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import RESULTS, environment, write_docs

import securecustomer
from securecustomer.policy import (
    AccessRequest,
    Decision,
    Outcome,
    Policy,
    PolicyEngine,
    Resource,
    Subject,
)

START = "<!-- policy-results:start -->"
END = "<!-- policy-results:end -->"

#: The targets of the issue.
ROLE_TARGET = 200_000  # decisions per second, role rules only
CONDITION_TARGET = 100_000  # decisions per second, one condition on every allow rule
CASBIN_TARGET = 1_000  # securecustomer's decisions per second over pycasbin's, same call

#: A job faster than this (in the warm-up) runs several times per round, up to MAX_PASSES.
MIN_SAMPLE = 0.05  # seconds
MAX_PASSES = 10

#: The world. Role names say only their level: l0-* are inherited by l1-*, and so on.
LEVELS = (6, 6, 5, 3)  # roles per level of the hierarchy: 20 roles
ACTIONS = ("read", "list", "create", "update", "delete", "export")
RESOURCE_TYPES = (
    "customer",
    "order",
    "invoice",
    "ticket",
    "contract",
    "payment",
    "report",
    "document",
)
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
REGIONS = ("eu", "us", "apac")
RESOURCES_PER_KIND = 50  # per (tenant, resource type): 2,000 resources
DENY_SHARE = 0.1
SAME_TENANT = 0.9  # share of requests on a resource of the user's own tenant
CONDITION = "resource.region == subject.region"
CEDAR_CONDITION = "resource.region == principal.region"
CASBIN_CONDITION = '(p.eft == "deny" || r.sub.region == r.obj.region)'

WORKLOADS = ("roles", "condition")
WORKLOAD_NAMES = {"roles": "role rules", "condition": "one condition"}
#: (engine, mode) in the order of the tables, with what one timed call does.
MODES = (
    ("securecustomer", "single", "`engine.evaluate(subject, action, resource)` per request"),
    ("securecustomer", "batch", "`engine.evaluate_many(requests)` per batch of `AccessRequest`"),
    (
        "securecustomer",
        "cold",
        "`engine.evaluate(...)` per request on a new `PolicyEngine` (no cached plan)",
    ),
    ("pycasbin", "single", "`enforcer.enforce(*request)` per request"),
    ("pycasbin", "batch", "`enforcer.batch_enforce(requests)` per batch"),
    (
        "pycasbin",
        "abac",
        "`enforcer.enforce(subject, resource, action)` per request, ABAC request objects",
    ),
    ("cedarpy", "single", "`cedarpy.is_authorized(request, policy_set, entities)` per request"),
    ("cedarpy", "batch", "`cedarpy.is_authorized_batch(requests, policy_set, entities)` per batch"),
)
MODE_LABELS = {
    ("securecustomer", "single"): "securecustomer evaluate",
    ("securecustomer", "batch"): "securecustomer evaluate_many",
    ("securecustomer", "cold"): "securecustomer evaluate, new engine",
    ("pycasbin", "single"): "pycasbin enforce",
    ("pycasbin", "batch"): "pycasbin batch_enforce",
    ("pycasbin", "abac"): "pycasbin enforce, ABAC request objects",
    ("cedarpy", "single"): "cedarpy is_authorized",
    ("cedarpy", "batch"): "cedarpy is_authorized_batch",
}


# -- the world ------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: str
    roles: tuple[str, ...]
    tenant: str
    region: str


@dataclass(frozen=True)
class Thing:
    """A resource: its type, id, tenant and region."""

    type: str
    id: str
    tenant: str
    region: str


@dataclass(frozen=True)
class RuleSpec:
    id: str
    allow: bool
    role: str
    actions: tuple[str, ...]
    resource_type: str


@dataclass
class World:
    """One generated policy, its users and resources, and the request set."""

    roles: dict[str, tuple[str, ...]]  # role -> the roles it inherits
    rules: list[RuleSpec]
    users: list[User]
    things: list[Thing]
    requests: list[tuple[int, str, int]]  # (user index, action, resource index)


def make_world(
    *, users: int, rules: int, requests: int, seed: int, sizes: Sequence[int] = LEVELS
) -> World:
    """The roles, rules, users, resources and requests of one run, from one seed; *sizes*
    gives the roles per level of the hierarchy."""
    rnd = random.Random(seed)
    levels = [[f"l{level}-{i + 1}" for i in range(size)] for level, size in enumerate(sizes)]
    roles: dict[str, tuple[str, ...]] = {}
    for level, names in enumerate(levels):
        for name in names:
            parents: set[str] = set()
            if level > 0:
                parents.update(rnd.sample(levels[level - 1], rnd.randint(1, 2)))
            if level > 1 and rnd.random() < 0.3:  # a DAG, not a tree: skip a level sometimes
                parents.add(rnd.choice(levels[level - 2]))
            roles[name] = tuple(sorted(parents))
    role_names = [name for names in levels for name in names]

    specs = []
    denies = round(rules * DENY_SHARE)
    for index in range(rules):
        allow = index >= denies
        actions = tuple(sorted(rnd.sample(ACTIONS, 1 if not allow else rnd.randint(1, 2))))
        specs.append(
            RuleSpec(
                id=f"rule-{index + 1:03d}",
                allow=allow,
                role=rnd.choice(role_names),
                actions=actions,
                resource_type=rnd.choice(RESOURCE_TYPES),
            )
        )
    rnd.shuffle(specs)

    people = [
        User(
            id=f"user-{n + 1:04d}",
            roles=tuple(sorted(rnd.sample(role_names, rnd.randint(1, 3)))),
            tenant=rnd.choice(TENANTS),
            region=rnd.choice(REGIONS),
        )
        for n in range(users)
    ]
    things: list[Thing] = []
    pools: dict[tuple[str, str], list[int]] = {}
    for tenant in TENANTS:
        for kind in RESOURCE_TYPES:
            for n in range(RESOURCES_PER_KIND):
                pools.setdefault((tenant, kind), []).append(len(things))
                things.append(Thing(kind, f"{tenant}-{n + 1}", tenant, rnd.choice(REGIONS)))
    asks = []
    for _ in range(requests):
        who = rnd.randrange(users)
        tenant = people[who].tenant
        if rnd.random() >= SAME_TENANT:
            tenant = rnd.choice([t for t in TENANTS if t != tenant])
        what = rnd.choice(pools[(tenant, rnd.choice(RESOURCE_TYPES))])
        asks.append((who, rnd.choice(ACTIONS), what))
    return World(roles, specs, people, things, asks)


# -- the three engines ----------------------------------------------------------------------


def policy_document(world: World, *, condition: bool) -> dict[str, Any]:
    """The policy as a securecustomer document (what a TOML or JSON file would hold)."""
    rules = []
    for spec in world.rules:
        rule: dict[str, Any] = {
            "id": spec.id,
            "effect": "allow" if spec.allow else "deny",
            "roles": [spec.role],
            "actions": list(spec.actions),
            "resources": [spec.resource_type],
        }
        if condition and spec.allow:
            rule["when"] = CONDITION
        rules.append(rule)
    roles = {
        name: {"inherits": list(parents)} if parents else {}
        for name, parents in world.roles.items()
    }
    return {"version": 1, "roles": roles, "rules": rules}


def casbin_model(*, condition: bool, objects: bool = False) -> str:
    """The casbin model: RBAC with role inheritance, deny overrides allow.

    The matcher puts the cheap string comparisons before ``g(...)``, which lets casbin
    skip the role lookup for most policy lines (the ``g`` first order of casbin's examples
    is slower). The condition is one matcher clause shared by every allow line, cheaper
    than a per-line ``eval()``. By default the request is flat strings (user, tenant,
    region, resource type, tenant, region, action), casbin's fastest form; with *objects*
    it is casbin's ABAC form, objects whose attributes the matcher reads (``r.sub.region``).
    """
    if objects:
        request = "r = sub, obj, act"
        matcher = "r.sub.tenant == r.obj.tenant && r.obj.type == p.obj && r.act == p.act"
        if condition:
            matcher += ' && (p.eft == "deny" || r.sub.region == r.obj.region)'
        matcher += " && g(r.sub.name, p.sub)"
    else:
        request = "r = sub, sten, sreg, obj, oten, oreg, act"
        matcher = "r.sten == r.oten && r.obj == p.obj && r.act == p.act"
        if condition:
            matcher += ' && (p.eft == "deny" || r.sreg == r.oreg)'
        matcher += " && g(r.sub, p.sub)"
    return "\n".join(
        [
            "[request_definition]",
            request,
            "[policy_definition]",
            "p = sub, obj, act, eft",
            "[role_definition]",
            "g = _, _",
            "[policy_effect]",
            "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
            "[matchers]",
            f"m = {matcher}",
        ]
    )


def casbin_lines(world: World) -> tuple[list[list[str]], list[list[str]]]:
    """(p lines, g lines): one p line per (rule, action), duplicates removed."""
    p_lines: dict[tuple[str, ...], None] = {}
    for spec in world.rules:
        for action in spec.actions:
            eft = "allow" if spec.allow else "deny"
            p_lines[(spec.role, spec.resource_type, action, eft)] = None
    g_lines = [[role, parent] for role, parents in world.roles.items() for parent in parents]
    g_lines += [[user.id, role] for user in world.users for role in user.roles]
    return [list(line) for line in p_lines], g_lines


def casbin_enforcer(world: World, *, condition: bool, objects: bool = False) -> Any:
    import casbin
    from casbin.model import Model

    model = Model()
    model.load_model_from_text(casbin_model(condition=condition, objects=objects))
    enforcer = casbin.Enforcer(model)  # no adapter: the policy lives in memory
    p_lines, g_lines = casbin_lines(world)
    if not enforcer.add_policies(p_lines) or not enforcer.add_grouping_policies(g_lines):
        raise SystemExit("casbin refused the policy lines")
    return enforcer


class CasbinSubject:
    """What casbin's ABAC matcher reads of the subject."""

    __slots__ = ("name", "region", "tenant")

    def __init__(self, name: str, tenant: str, region: str) -> None:
        self.name, self.tenant, self.region = name, tenant, region


class CasbinObject:
    """What casbin's ABAC matcher reads of the resource."""

    __slots__ = ("region", "tenant", "type")

    def __init__(self, type_: str, tenant: str, region: str) -> None:
        self.type, self.tenant, self.region = type_, tenant, region


def casbin_requests(world: World, *, objects: bool = False) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if objects:
        subjects = [CasbinSubject(u.id, u.tenant, u.region) for u in world.users]
        things = [CasbinObject(t.type, t.tenant, t.region) for t in world.things]
        for who, action, what in world.requests:
            out.append((subjects[who], things[what], action))
    else:
        for who, action, what in world.requests:
            user, thing = world.users[who], world.things[what]
            out.append(
                (user.id, user.tenant, user.region, thing.type, thing.tenant, thing.region, action)
            )
    return out


def _cedar_type(resource_type: str) -> str:
    return resource_type.capitalize()


def cedar_policies(world: World, *, condition: bool) -> str:
    """The policy in Cedar: one permit or forbid per rule, and the tenant rule."""
    lines = []
    for spec in world.rules:
        if len(spec.actions) == 1:
            action = f'action == Action::"{spec.actions[0]}"'
        else:
            action = "action in [" + ", ".join(f'Action::"{a}"' for a in spec.actions) + "]"
        head = (
            f'@id("{spec.id}")\n{"permit" if spec.allow else "forbid"} '
            f'(principal in Role::"{spec.role}", {action}, '
            f"resource is {_cedar_type(spec.resource_type)})"
        )
        when = f" when {{ {CEDAR_CONDITION} }}" if condition and spec.allow else ""
        lines.append(f"{head}{when};")
    lines.append(
        '@id("tenant")\nforbid (principal, action, resource) '
        "unless { principal.tenant == resource.tenant };"
    )
    return "\n".join(lines) + "\n"


def cedar_entities(world: World) -> list[dict[str, Any]]:
    """Roles (parents: the roles they inherit), users (parents: their roles), resources."""
    entities: list[dict[str, Any]] = []
    for role, parents in world.roles.items():
        entities.append(
            {
                "uid": {"type": "Role", "id": role},
                "attrs": {},
                "parents": [{"type": "Role", "id": p} for p in parents],
            }
        )
    for user in world.users:
        entities.append(
            {
                "uid": {"type": "User", "id": user.id},
                "attrs": {"tenant": user.tenant, "region": user.region},
                "parents": [{"type": "Role", "id": r} for r in user.roles],
            }
        )
    for thing in world.things:
        entities.append(
            {
                "uid": {"type": _cedar_type(thing.type), "id": thing.id},
                "attrs": {"tenant": thing.tenant, "region": thing.region},
                "parents": [],
            }
        )
    return entities


def cedar_requests(world: World) -> list[dict[str, str]]:
    out = []
    for who, action, what in world.requests:
        thing = world.things[what]
        out.append(
            {
                "principal": f'User::"{world.users[who].id}"',
                "action": f'Action::"{action}"',
                "resource": f'{_cedar_type(thing.type)}::"{thing.id}"',
            }
        )
    return out


# -- jobs -----------------------------------------------------------------------------------


@dataclass
class Job:
    """One timed (engine, mode, workload) over its first *count* requests.

    *run* returns the engine's own results; *decide* turns them into booleans for the
    checks (outside the timing).
    """

    engine: str
    mode: str
    workload: str
    count: int
    run: Callable[[], Any]
    decide: Callable[[Any], list[bool]]
    prepare: Callable[[], None] = lambda: None
    samples: list[float] = field(default_factory=list)  # seconds per run
    passes: int = 1  # runs per round, each a sample: set from the warm-up for short jobs

    def rate(self) -> float:
        """Decisions per second: the request count over the median time."""
        return self.count / statistics.median(self.samples)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.engine, self.mode, self.workload)


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _ours_decide(results: list[Decision]) -> list[bool]:
    for decision in results:
        if decision.outcome not in (Outcome.ALLOW, Outcome.DENY) or decision.errors:
            raise SystemExit(f"securecustomer: unexpected decision {decision!r}")
    return [d.allowed for d in results]


def _cedar_decide(results: list[Any]) -> list[bool]:
    for result in results:
        if result.diagnostics.errors:
            raise SystemExit(f"cedarpy: evaluation errors {result.diagnostics.errors}")
    return [r.allowed for r in results]


@dataclass
class Built:
    """What each engine was given for one workload, for the report."""

    ours: PolicyEngine
    policy: Policy
    casbin: Any
    casbin_requests: list[tuple[Any, ...]]
    casbin_abac: Any
    casbin_abac_requests: list[tuple[Any, ...]]
    cedar_policy_set: Any
    cedar_entities: Any
    cedar_requests: list[dict[str, str]]


def build(world: World, workload: str) -> Built:
    import cedarpy

    condition = workload == "condition"
    policy = Policy.from_dict(policy_document(world, condition=condition))
    entities = cedarpy.Entities.from_json_str(json.dumps(cedar_entities(world)))
    return Built(
        ours=PolicyEngine(policy),
        policy=policy,
        casbin=casbin_enforcer(world, condition=condition),
        casbin_requests=casbin_requests(world),
        casbin_abac=casbin_enforcer(world, condition=condition, objects=True),
        casbin_abac_requests=casbin_requests(world, objects=True),
        cedar_policy_set=cedarpy.PolicySet.from_str(cedar_policies(world, condition=condition)),
        cedar_entities=entities,
        cedar_requests=cedar_requests(world),
    )


def ours_requests(world: World) -> tuple[list[tuple[Subject, str, Resource]], list[AccessRequest]]:
    """The request set as (subject, action, resource) triples and as `AccessRequest`s."""
    subjects = [
        Subject(u.id, roles=u.roles, attributes={"region": u.region}, tenant=u.tenant)
        for u in world.users
    ]
    resources = [
        Resource(t.type, id=t.id, attributes={"region": t.region}, tenant=t.tenant)
        for t in world.things
    ]
    triples = [(subjects[who], action, resources[what]) for who, action, what in world.requests]
    return triples, [AccessRequest(s, a, r) for s, a, r in triples]


def make_jobs(world: World, workload: str, built: Built, args: argparse.Namespace) -> list[Job]:
    import cedarpy

    triples, access = ours_requests(world)
    n_ours = len(triples)
    n_casbin = min(args.casbin_requests, n_ours)
    n_cedar = min(args.cedar_requests, n_ours)
    jobs: list[Job] = []

    def ours_single(engine: PolicyEngine, triples: list[Any] = triples) -> list[Decision]:
        evaluate = engine.evaluate
        return [evaluate(s, a, r) for s, a, r in triples]

    batches = _chunks(access, args.batch)

    def ours_batch(engine: PolicyEngine = built.ours) -> list[Decision]:
        evaluate_many = engine.evaluate_many
        out: list[Decision] = []
        for batch in batches:
            out += evaluate_many(batch)
        return out

    cold = {"engine": built.ours}

    def cold_prepare() -> None:
        cold["engine"] = PolicyEngine(built.policy)  # untimed: a new engine, empty caches

    jobs += [
        Job("securecustomer", "single", workload, n_ours, lambda: ours_single(built.ours),
            _ours_decide),
        Job("securecustomer", "batch", workload, n_ours, ours_batch, _ours_decide),
        Job("securecustomer", "cold", workload, n_ours, lambda: ours_single(cold["engine"]),
            _ours_decide, prepare=cold_prepare),
    ]  # fmt: skip

    enforcer = built.casbin
    casbin_reqs = built.casbin_requests[:n_casbin]
    casbin_batches = _chunks(casbin_reqs, args.batch)

    def casbin_single() -> list[bool]:
        enforce = enforcer.enforce
        return [enforce(*request) for request in casbin_reqs]

    def casbin_batch() -> list[bool]:
        batch_enforce = enforcer.batch_enforce
        out: list[bool] = []
        for batch in casbin_batches:
            out += batch_enforce(batch)
        return out

    abac = built.casbin_abac
    abac_reqs = built.casbin_abac_requests[:n_casbin]

    def casbin_abac() -> list[bool]:
        enforce = abac.enforce
        return [enforce(*request) for request in abac_reqs]

    jobs += [
        Job("pycasbin", "single", workload, n_casbin, casbin_single, list),
        Job("pycasbin", "batch", workload, n_casbin, casbin_batch, list),
        Job("pycasbin", "abac", workload, n_casbin, casbin_abac, list),
    ]

    policy_set, entities = built.cedar_policy_set, built.cedar_entities
    cedar_reqs = built.cedar_requests[:n_cedar]
    cedar_batches = _chunks(cedar_reqs, args.batch)

    def cedar_single() -> list[Any]:
        is_authorized = cedarpy.is_authorized
        return [is_authorized(request, policy_set, entities) for request in cedar_reqs]

    def cedar_batch() -> list[Any]:
        is_authorized_batch = cedarpy.is_authorized_batch
        out: list[Any] = []
        for batch in cedar_batches:
            out += is_authorized_batch(batch, policy_set, entities)
        return out

    jobs += [
        Job("cedarpy", "single", workload, n_cedar, cedar_single, _cedar_decide),
        Job("cedarpy", "batch", workload, n_cedar, cedar_batch, _cedar_decide),
    ]
    return jobs


# -- checks ---------------------------------------------------------------------------------


def _first_difference(world: World, name: str, got: list[bool], expected: list[bool]) -> str | None:
    if len(got) != len(expected):
        return f"{name}: {len(got)} decisions for {len(expected)} requests"
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        if a != b:
            who, action, what = world.requests[index]
            user, thing = world.users[who], world.things[what]
            return (
                f"{name} differs from securecustomer on request {index}: {user.id} "
                f"(roles {', '.join(user.roles)}; tenant {user.tenant}, region {user.region}) "
                f"{action} {thing.type} {thing.id} (tenant {thing.tenant}, region "
                f"{thing.region}): {'allow' if a else 'deny'} against "
                f"{'allow' if b else 'deny'}"
            )
    return None


def check(world: World, workload: str, built: Built, jobs: list[Job], full: bool) -> dict[str, Any]:
    """Every job's decisions against `PolicyEngine.evaluate` on the same requests; with
    *full*, pycasbin (flat requests) and cedarpy also decide every request of the set.
    Stops the run on any difference. Running every job once is also the warm-up round."""
    import cedarpy

    began = time.monotonic()
    expected = _ours_decide([built.ours.evaluate(s, a, r) for s, a, r in ours_requests(world)[0]])
    problems = []
    checked: dict[str, int] = {}
    for job in jobs:
        job.prepare()
        label = MODE_LABELS[(job.engine, job.mode)]
        start = time.perf_counter()
        result = job.run()
        job.passes = max(1, min(MAX_PASSES, math.ceil(MIN_SAMPLE / (time.perf_counter() - start))))
        problem = _first_difference(world, label, job.decide(result), expected[: job.count])
        if problem:
            problems.append(problem)
        checked[label] = job.count
    if full:
        done = checked["pycasbin enforce"]
        got = expected[:done] + built.casbin.batch_enforce(built.casbin_requests[done:])
        problem = _first_difference(world, "pycasbin (whole set)", got, expected)
        if problem:
            problems.append(problem)
        done = checked["cedarpy is_authorized"]
        results = cedarpy.is_authorized_batch(
            built.cedar_requests[done:], built.cedar_policy_set, built.cedar_entities
        )
        got = expected[:done] + _cedar_decide(results)
        problem = _first_difference(world, "cedarpy (whole set)", got, expected)
        if problem:
            problems.append(problem)
        for (engine, mode), label in MODE_LABELS.items():
            if engine == "cedarpy" or (engine == "pycasbin" and mode != "abac"):
                checked[label] = len(expected)  # the same enforcer or PolicySet as timed
    if problems:
        raise SystemExit(
            f"the engines disagree ({WORKLOAD_NAMES[workload]}); nothing was timed:\n  "
            + "\n  ".join(problems)
        )
    allowed = sum(expected)
    groups: dict[int, list[str]] = {}
    for label, count in checked.items():
        groups.setdefault(count, []).append(label)
    print(
        f"{WORKLOAD_NAMES[workload]}: same decisions as securecustomer evaluate, "
        + "; ".join(
            f"on {count:,} requests: {', '.join(labels)}"
            for count, labels in sorted(groups.items(), reverse=True)
        )
        + f". {allowed:,} of {len(expected):,} allowed ({time.monotonic() - began:.0f} s)"
    )
    return {"checked": checked, "allowed": allowed, "requests": len(expected)}


# -- measuring ------------------------------------------------------------------------------


def measure(jobs: list[Job], rounds: int, seed: int) -> None:
    """Every job in each round, in a new shuffled order each round; in its turn a job first
    runs untimed, once and for at least MIN_SAMPLE (the CPU caches then hold its data,
    whatever ran before it), then, if shorter than MIN_SAMPLE, several times in a row, each
    run a sample. GC off while
    timing (collected before each job); *prepare* (a new engine for the cold job) runs
    before each run, untimed."""
    rnd = random.Random(seed)
    order = list(jobs)
    clock = time.perf_counter_ns
    for number in range(rounds):
        rnd.shuffle(order)
        began = time.monotonic()
        for job in order:
            warmed = time.perf_counter()
            while True:  # untimed runs in its turn, at least one and MIN_SAMPLE long
                job.prepare()
                job.run()
                if time.perf_counter() - warmed >= MIN_SAMPLE:
                    break
            gc.collect()
            gc.disable()
            try:
                for _ in range(job.passes):
                    job.prepare()
                    start = clock()
                    result = job.run()
                    elapsed = clock() - start
                    del result  # released after the clock has stopped
                    job.samples.append(elapsed / 1e9)
            finally:
                gc.enable()
        print(f"round {number + 1}/{rounds}: {time.monotonic() - began:.1f} s")


def profile(world: World, built: dict[str, Built], top: int) -> str:
    """cProfile of `PolicyEngine.evaluate` on the request set, warm caches, per workload."""
    triples = ours_requests(world)[0]
    parts = []
    for workload, b in built.items():
        evaluate = b.ours.evaluate
        for s, a, r in triples:  # warm the caches first, as the timed jobs are
            evaluate(s, a, r)
        profiler = cProfile.Profile()
        profiler.enable()
        for s, a, r in triples:
            evaluate(s, a, r)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        parts.append(f"--- {WORKLOAD_NAMES[workload]}: evaluate, warm ---\n{out.getvalue()}")
    return "\n".join(parts)


# -- policies at scale -----------------------------------------------------------------------

#: Rules (and as many roles) of the scaled policies; 1,000 users each.
SCALE_SIZES = (10, 100, 1_000, 10_000)
SCALE_SHARES = (0.3, 0.3, 0.25, 0.15)  # roles per level of the hierarchy, as shares
SCALE_REQUESTS = 5_000
#: Distinct role sets of the cache workload (1 to 3 of 100 roles each), and its requests.
ROLE_SETS = 8_000
ROLE_SET_ROLES = 100
ROLE_SET_REQUESTS = 40_000
ROLE_SETS_TARGET = 1_000_000  # decisions per second, warm, with ROLE_SETS role sets
WHO_CAN_TARGET = 0.1  # seconds for one who_can at the largest size
SCALE_SLACK = 2.0  # first and warm decisions within this factor of the smallest size


def scaled_sizes(roles: int) -> tuple[int, ...]:
    """Roles per level for *roles* roles, in the proportions of SCALE_SHARES."""
    sizes = [max(1, round(roles * share)) for share in SCALE_SHARES]
    sizes[0] += roles - sum(sizes)
    return tuple(sizes)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def measure_scale(sizes: Sequence[int], rounds: int, seed: int) -> list[dict[str, Any]]:
    """Per size: a new engine's build time, its first pass over SCALE_REQUESTS requests and
    a second (warm) pass, in µs per decision, and one who_can and one review of the 1,000
    users, each the median of *rounds* (sizes interleaved in each round)."""
    worlds = {}
    for n in sizes:
        world = make_world(
            users=1_000, rules=n, requests=SCALE_REQUESTS, seed=seed, sizes=scaled_sizes(n)
        )
        policy = Policy.from_dict(policy_document(world, condition=False))
        asks = sorted({(spec.actions[0], spec.resource_type) for spec in world.rules})[:3]
        assignments = {u.id: u.roles for u in world.users}
        worlds[n] = (world, policy, ours_requests(world)[0], asks, assignments)
    samples: dict[int, dict[str, list[float]]] = {
        n: {"build": [], "first": [], "warm": [], "who_can": [], "review": []} for n in sizes
    }
    clock = time.perf_counter
    for number in range(rounds):
        began = time.monotonic()
        for n in sizes:
            world, policy, triples, asks, assignments = worlds[n]
            got = samples[n]
            gc.collect()
            gc.disable()
            try:
                start = clock()
                engine = PolicyEngine(policy)
                got["build"].append(clock() - start)
                evaluate = engine.evaluate
                start = clock()
                first = [evaluate(s, a, r) for s, a, r in triples]
                got["first"].append((clock() - start) / len(triples))
                start = clock()
                warm = [evaluate(s, a, r) for s, a, r in triples]
                got["warm"].append((clock() - start) / len(triples))
                if first != warm:
                    raise SystemExit(f"scale {n}: the warm pass differs from the first")
                start = clock()
                for action, kind in asks:
                    engine.who_can(action, kind)
                got["who_can"].append((clock() - start) / len(asks))
                start = clock()
                engine.review(assignments)
                got["review"].append(clock() - start)
            finally:
                gc.enable()
        print(f"scale round {number + 1}/{rounds}: {time.monotonic() - began:.1f} s")
    out = []
    for n in sizes:
        got = samples[n]
        out.append(
            {
                "rules": n,
                "roles": n,
                "users": 1_000,
                "requests": SCALE_REQUESTS,
                "build_ms": _median_ms(got["build"]),
                "first_us": statistics.median(got["first"]) * 1e6,
                "warm_us": statistics.median(got["warm"]) * 1e6,
                "who_can_ms": _median_ms(got["who_can"]),
                "review_ms": _median_ms(got["review"]),
                "spread_first": _spread(got["first"]),
                "spread_warm": _spread(got["warm"]),
                "samples": got,
            }
        )
    return out


def role_set_world(seed: int) -> tuple[list[tuple[Subject, str, Resource]], Policy]:
    """ROLE_SETS users, each with its own set of 1 to 3 of ROLE_SET_ROLES roles, and
    ROLE_SET_REQUESTS requests by them, against a policy of 300 rules."""
    world = make_world(
        users=1_000, rules=300, requests=10, seed=seed, sizes=scaled_sizes(ROLE_SET_ROLES)
    )
    rnd = random.Random(seed)
    names = sorted(world.roles)
    sets: set[tuple[str, ...]] = set()
    while len(sets) < ROLE_SETS:
        sets.add(tuple(sorted(rnd.sample(names, rnd.randint(1, 3)))))
    users = [
        User(f"user-{n + 1:05d}", held, rnd.choice(TENANTS), rnd.choice(REGIONS))
        for n, held in enumerate(sorted(sets))
    ]
    world.users = users
    world.requests = [
        (rnd.randrange(len(users)), rnd.choice(ACTIONS), rnd.randrange(len(world.things)))
        for _ in range(ROLE_SET_REQUESTS)
    ]
    policy = Policy.from_dict(policy_document(world, condition=False))
    return ours_requests(world)[0], policy


def measure_role_sets(rounds: int, seed: int) -> dict[str, Any]:
    """Warm decisions per second with ROLE_SETS distinct role sets (one untimed pass
    first), and with the requests of the first 1,000 users only, in the same rounds."""
    triples, policy = role_set_world(seed)
    few = [t for t in triples if int(t[0].id.split("-")[1]) <= 1_000]
    engine = PolicyEngine(policy)
    evaluate = engine.evaluate
    for s, a, r in triples:
        evaluate(s, a, r)
    rates: dict[str, list[float]] = {"many": [], "few": []}
    for _ in range(rounds):
        for label, asks in (("many", triples), ("few", few)):
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                for s, a, r in asks:
                    evaluate(s, a, r)
                rates[label].append(len(asks) / (time.perf_counter() - start))
            finally:
                gc.enable()
    return {
        "role_sets": ROLE_SETS,
        "requests": len(triples),
        "few_requests": len(few),
        "decisions_per_second": statistics.median(rates["many"]),
        "few_decisions_per_second": statistics.median(rates["few"]),
        "samples": rates,
    }


SCALE_HEAD = [
    "rules and roles",
    "new engine: build (ms)",
    "first pass: µs per decision",
    "warm: µs per decision",
    "first ÷ first at 10",
    "warm ÷ warm at 10",
    "who_can (ms)",
    "review of 1,000 users (ms)",
]


def scale_rows(scale: list[dict[str, Any]]) -> list[list[str]]:
    base = scale[0]
    return [
        [
            f"{row['rules']:,}",
            f"{row['build_ms']:,.1f}",
            f"{row['first_us']:.2f}",
            f"{row['warm_us']:.2f}",
            f"{row['first_us'] / base['first_us']:.2f}x",
            f"{row['warm_us'] / base['warm_us']:.2f}x",
            f"{row['who_can_ms']:,.1f}",
            f"{row['review_ms']:,.0f}",
        ]
        for row in scale
    ]


def scale_targets(scale: list[dict[str, Any]], role_sets: dict[str, Any]) -> list[dict[str, Any]]:
    base, top = scale[0], scale[-1]
    first = max(row["first_us"] for row in scale) / base["first_us"]
    warm = max(row["warm_us"] for row in scale) / base["warm_us"]
    rate = role_sets["decisions_per_second"]
    return [
        {
            "target": f"first decisions within {SCALE_SLACK:g}x of {base['rules']:,} rules, "
            f"up to {top['rules']:,}",
            "measured": f"{first:.2f}x",
            "met": first <= SCALE_SLACK,
        },
        {
            "target": f"warm decisions within {SCALE_SLACK:g}x of {base['rules']:,} rules, "
            f"up to {top['rules']:,}",
            "measured": f"{warm:.2f}x",
            "met": warm <= SCALE_SLACK,
        },
        {
            "target": f"{ROLE_SETS:,} distinct role sets: at least {ROLE_SETS_TARGET:,} "
            "decisions/s warm",
            "measured": f"{_rate(rate)}/s",
            "met": rate >= ROLE_SETS_TARGET,
        },
        {
            "target": f"who_can under {WHO_CAN_TARGET * 1000:.0f} ms at {top['rules']:,} rules",
            "measured": f"{top['who_can_ms']:,.1f} ms",
            "met": top["who_can_ms"] <= WHO_CAN_TARGET * 1000,
        },
    ]


def scale_markdown(record: dict[str, Any]) -> list[str]:
    scale, sets = record["scale"], record["role_sets"]
    spread = max(max(row["spread_first"], row["spread_warm"]) for row in scale)
    lines = [
        "",
        f"**At scale.** Policies of 10 to 10,000 rules and as many roles (four levels), "
        f"1,000 users with 1 to 3 roles, {SCALE_REQUESTS:,} random requests, role rules; "
        f"median of {record['scale_rounds']} rounds, sizes interleaved; a new engine each "
        "round (built, then a first pass and a warm pass over the requests); who_can is "
        "the mean of three (action, resource type) questions. The cache row: "
        f"{sets['role_sets']:,} users with distinct role sets (of {ROLE_SET_ROLES} roles), "
        f"{sets['requests']:,} requests, warm.",
        "",
        *_markdown_table(SCALE_HEAD, scale_rows(scale)),
        "",
        f"Warm with {sets['role_sets']:,} distinct role sets: "
        f"{_rate(sets['decisions_per_second'])} decisions/s (the requests of 1,000 of those "
        f"users alone: {_rate(sets['few_decisions_per_second'])}/s). Largest interquartile "
        f"range of a per-decision figure at scale: {spread:.0%} of its median.",
        "",
        "| target | measured | status |",
        "|---|--:|---|",
    ]
    for row in record["scale_targets"]:
        lines.append(f"| {row['target']} | {row['measured']} | {_verdict(row['met'])} |")
    return lines


# -- reporting ------------------------------------------------------------------------------


def _by(jobs: list[Job]) -> dict[tuple[str, str, str], Job]:
    return {job.key: job for job in jobs}


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _times(value: float) -> str:
    return f"{value:,.0f}x" if value >= 100 else f"{value:,.2f}x"


def _baseline(engine: str, mode: str) -> str:
    """The securecustomer mode a row is compared with: the same kind of call."""
    return "batch" if mode == "batch" else "single"


def _spread(samples: list[float]) -> float:
    """Interquartile range relative to the median: how steady the machine was."""
    if len(samples) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return (q3 - q1) / statistics.median(samples)


def _widest(jobs: list[Job]) -> str:
    job = max(jobs, key=lambda j: _spread(j.samples))
    return (
        f"{_spread(job.samples):.0%} of its median ({MODE_LABELS[(job.engine, job.mode)]}, "
        f"{WORKLOAD_NAMES[job.workload]})"
    )


TABLE_HEAD = [
    "engine and call",
    "requests timed",
    "role rules: decisions/s",
    "one condition: decisions/s",
    "role rules: securecustomer ÷ this",
    "one condition: securecustomer ÷ this",
]


def table_rows(jobs: list[Job]) -> list[list[str]]:
    by = _by(jobs)
    out = []
    for engine, mode, _ in MODES:
        row = [MODE_LABELS[(engine, mode)], f"{by[(engine, mode, 'roles')].count:,}"]
        ratios = []
        for workload in WORKLOADS:
            job = by[(engine, mode, workload)]
            ours = by[("securecustomer", _baseline(engine, mode), workload)]
            row.append(_rate(job.rate()))
            ratios.append(_times(ours.rate() / job.rate()))
        out.append(row + ratios)
    return out


def targets(jobs: list[Job]) -> list[dict[str, Any]]:
    """The issue's targets for `evaluate` and for `evaluate_many`, from this run."""
    by = _by(jobs)
    out = []
    for workload, floor in (("roles", ROLE_TARGET), ("condition", CONDITION_TARGET)):
        for mode, call in (("single", "evaluate"), ("batch", "evaluate_many")):
            rate = by[("securecustomer", mode, workload)].rate()
            out.append(
                {
                    "target": f"{WORKLOAD_NAMES[workload]}: at least {floor:,} decisions/s "
                    f"({call})",
                    "measured": f"{_rate(rate)}/s",
                    "met": rate >= floor,
                }
            )
    for workload, floor in (("roles", ROLE_TARGET), ("condition", CONDITION_TARGET)):
        rate = by[("securecustomer", "cold", workload)].rate()
        out.append(
            {
                "target": f"{WORKLOAD_NAMES[workload]}: at least {floor:,} decisions/s "
                "(evaluate, new engine)",
                "measured": f"{_rate(rate)}/s",
                "met": rate >= floor,
            }
        )
    for workload in WORKLOADS:
        for mode, ours_call, casbin_call in (
            ("single", "evaluate", "enforce"),
            ("batch", "evaluate_many", "batch_enforce"),
            ("cold", "evaluate on a new engine", "enforce"),
        ):
            ratio = (
                by[("securecustomer", mode, workload)].rate()
                / by[("pycasbin", "single" if mode == "cold" else mode, workload)].rate()
            )
            out.append(
                {
                    "target": f"{WORKLOAD_NAMES[workload]}: at least {CASBIN_TARGET:,}x "
                    f"pycasbin ({ours_call} against {casbin_call})",
                    "measured": _times(ratio),
                    "met": ratio >= CASBIN_TARGET,
                }
            )
    return out


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["--:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = [f"{{:<{widths[0]}}}"] + [f"{{:>{w}}}" for w in widths[1:]]
    lines = ["  ".join(f.format(h) for f, h in zip(fmt, head, strict=True))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(f.format(c) for f, c in zip(fmt, r, strict=True)) for r in rows]
    return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({part / whole:.0%})"


def setup_line(record: dict[str, Any]) -> str:
    w = record["world"]
    checks = record["checks"]
    return (
        f"{w['roles']} roles ({w['levels']} levels, {w['inherit_links']} inheritance links), "
        f"{w['rules']} rules ({w['deny_rules']} deny), {w['actions']} actions, "
        f"{w['resource_types']} resource types, {w['tenants']} tenants; {w['users']:,} users "
        f"with 1 to 3 roles ({w['role_sets']:,} distinct role sets); {w['resources']:,} "
        f"resources; {w['requests']:,} random requests, "
        f"{_share(checks['roles']['allowed'], w['requests'])} allowed with role rules and "
        f"{_share(checks['condition']['allowed'], w['requests'])} with one condition. "
        f"pycasbin: {w['casbin_p_lines']} `p` lines and {w['casbin_g_lines']:,} `g` lines; "
        f"cedarpy: {w['cedar_policies']} policies and {w['cedar_entities']:,} entities."
    )


def environment_line(record: dict[str, Any]) -> str:
    env = record["environment"]
    checked = record["checks"]["roles"]["checked"]
    everything = record["world"]["requests"]
    if all(n == everything for label, n in checked.items() if "ABAC" not in label):
        scope = (
            "every engine decided every request of the set; the ABAC variant of pycasbin, "
            "the requests it is timed on"
        )
    else:
        scope = "each engine on the requests it is timed on"
    return (
        f"Measured {env['date']} on {env['machine']}; {env['python']}, securecustomer "
        f"{env['securecustomer']}, casbin {env['casbin']}, cedarpy {env['cedarpy']}; "
        f"1-minute load average {env['load']}. Median of {record['rounds']} interleaved "
        f"rounds (in its turn a job first runs untimed, once and for at least "
        f"{MIN_SAMPLE * 1000:.0f} ms, then, if under "
        f"{MIN_SAMPLE * 1000:.0f} ms, up to {MAX_PASSES} times, each run a sample); "
        f"batches of {record['batch']:,} requests; decisions checked equal before timing "
        f"({scope}); seed {record['seed']}."
    )


def markdown(record: dict[str, Any], jobs: list[Job]) -> str:
    lines = [
        environment_line(record),
        "",
        setup_line(record),
        "",
        *_markdown_table(TABLE_HEAD, table_rows(jobs)),
        "",
        "| target | measured | status |",
        "|---|--:|---|",
    ]
    for row in record["targets"]:
        lines.append(f"| {row['target']} | {row['measured']} | {_verdict(row['met'])} |")
    lines += ["", f"Largest interquartile range of a job: {_widest(jobs)}."]
    if record.get("scale"):
        lines += scale_markdown(record)
    return "\n".join(lines) + "\n"


def text_report(record: dict[str, Any], jobs: list[Job]) -> str:
    parts = [setup_line(record), "", _text_table(TABLE_HEAD, table_rows(jobs)), ""]
    parts.append(f"largest interquartile range of a job: {_widest(jobs)}\n")
    width = max(len(row["target"]) for row in record["targets"])
    for row in record["targets"]:
        parts.append(f"{row['target']:<{width}}  {row['measured']:>12}  {_verdict(row['met'])}")
    if record.get("scale"):
        parts += ["", _text_table(SCALE_HEAD, scale_rows(record["scale"])), ""]
        sets = record["role_sets"]
        parts.append(
            f"{sets['role_sets']:,} role sets warm: {_rate(sets['decisions_per_second'])}/s "
            f"(1,000 of them: {_rate(sets['few_decisions_per_second'])}/s)"
        )
        for row in record["scale_targets"]:
            parts.append(f"{row['target']:<60}  {row['measured']:>12}  {_verdict(row['met'])}")
    return "\n".join(parts)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def world_summary(world: World, built: Built) -> dict[str, Any]:
    p_lines, g_lines = casbin_lines(world)
    return {
        "roles": len(world.roles),
        "levels": len(LEVELS),
        "inherit_links": sum(len(p) for p in world.roles.values()),
        "rules": len(world.rules),
        "deny_rules": sum(not r.allow for r in world.rules),
        "actions": len(ACTIONS),
        "resource_types": len(RESOURCE_TYPES),
        "tenants": len(TENANTS),
        "regions": len(REGIONS),
        "users": len(world.users),
        "role_sets": len({u.roles for u in world.users}),
        "resources": len(world.things),
        "requests": len(world.requests),
        "casbin_p_lines": len(p_lines),
        "casbin_g_lines": len(g_lines),
        "cedar_policies": len(world.rules) + 1,
        "cedar_entities": len(built.cedar_entities),
    }


# -- main -----------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--requests", type=_positive, default=20_000, help="requests in the set")
    parser.add_argument("--rounds", type=_positive, default=5, help="interleaved rounds to time")
    parser.add_argument("--seed", type=int, default=2024, help="seed for the world and the order")
    parser.add_argument("--users", type=_positive, default=1_000, help="users")
    parser.add_argument("--rules", type=_positive, default=300, help="rules in the policy")
    parser.add_argument(
        "--casbin-requests",
        type=_positive,
        default=500,
        help="first requests of the set that pycasbin is timed on",
    )
    parser.add_argument(
        "--cedar-requests",
        type=_positive,
        default=2_000,
        help="first requests of the set that cedarpy is timed on",
    )
    parser.add_argument("--batch", type=_positive, default=1_000, help="requests per batch call")
    parser.add_argument(
        "--check",
        choices=("all", "timed"),
        default="all",
        help="before timing, compare every engine on the whole set (all, the default) or "
        "only on the requests it is timed on (timed; pycasbin is slow)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        default=0,
        help="also print the N top functions of a cProfile of PolicyEngine.evaluate",
    )
    parser.add_argument(
        "--scale-rounds",
        type=int,
        default=3,
        help="rounds of the at-scale measures (10 to 10,000 rules, 8,000 role sets); 0 skips",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite the policy tables in docs/performance.md",
    )
    args = parser.parse_args(argv)

    began = time.monotonic()
    load_before = os.getloadavg()[0]
    env = environment()
    if env["securecustomer"] == "not installed":  # run from a checkout: src/ on the path
        env["securecustomer"] = f"{securecustomer.__version__} (source tree)"
    for dist in ("casbin", "cedarpy"):
        env[dist] = _version(dist)
    missing = [dist for dist in ("casbin", "cedarpy") if env[dist] == "not installed"]
    if missing:
        raise SystemExit(f"needs {' and '.join(missing)}: pip install casbin cedarpy")
    print(
        f"{env['machine']}\n{env['python']}; securecustomer {env['securecustomer']}; "
        f"casbin {env['casbin']}; cedarpy {env['cedarpy']}\n"
    )

    world = make_world(users=args.users, rules=args.rules, requests=args.requests, seed=args.seed)
    built = {workload: build(world, workload) for workload in WORKLOADS}
    jobs: list[Job] = []
    checks = {}
    for workload in WORKLOADS:
        own = make_jobs(world, workload, built[workload], args)
        checks[workload] = check(world, workload, built[workload], own, args.check == "all")
        jobs += own
    print(f"timing {args.rounds} rounds of {len(jobs)} jobs")
    measure(jobs, args.rounds, args.seed)

    record: dict[str, Any] = {
        "environment": env,
        "seed": args.seed,
        "rounds": args.rounds,
        "batch": args.batch,
        "statistic": "median of rounds; decisions per second = requests / median seconds",
        "world": world_summary(world, built["roles"]),
        "checks": checks,
        "calls": {f"{engine} {mode}": what for engine, mode, what in MODES},
        "casbin_models": {
            f"{w}{', ABAC objects' if objects else ''}": casbin_model(
                condition=w == "condition", objects=objects
            )
            for w in WORKLOADS
            for objects in (False, True)
        },
        "jobs": [
            {
                "engine": job.engine,
                "mode": job.mode,
                "workload": job.workload,
                "requests": job.count,
                "decisions_per_second": job.rate(),
                "runs_per_round": job.passes,
                "median_seconds": statistics.median(job.samples),
                "samples_seconds": job.samples,
            }
            for job in jobs
        ],
    }
    record["targets"] = targets(jobs)
    if args.scale_rounds:
        print(f"timing {args.scale_rounds} rounds at scale")
        record["scale_rounds"] = args.scale_rounds
        record["scale"] = measure_scale(SCALE_SIZES, args.scale_rounds, args.seed)
        record["role_sets"] = measure_role_sets(max(3, args.scale_rounds), args.seed)
        record["scale_targets"] = scale_targets(record["scale"], record["role_sets"])
    env["load"] = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after timing"
    print()
    print(text_report(record, jobs))
    if args.profile:
        print()
        print(profile(world, built, args.profile))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"policy-{stamp}.json"
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote benchmarks/results/{path.name} in {time.monotonic() - began:.0f} s")
    if args.write_docs:
        write_docs(markdown(record, jobs), START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
