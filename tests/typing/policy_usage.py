"""Typed usage of securecustomer.policy, checked by ``mypy --strict`` (nox -s typing)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from securecustomer.exceptions import AccessDenied, StepUpRequired
from securecustomer.policy import (
    AccessRequest,
    AccessReview,
    Decision,
    DecisionChange,
    Explanation,
    Finding,
    Grant,
    Outcome,
    Policy,
    PolicyEngine,
    Resource,
    Subject,
    apply,
)

POLICY = """
version = 1
[roles.agent]
[[rules]]
id = "agents-read"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
masks = { email = "email" }
"""


def use() -> None:
    policy: Policy = Policy.from_toml(POLICY)
    findings: list[Finding] = policy.lint()
    engine = PolicyEngine(policy, masks={"upper": lambda value: str(value).upper()})
    agent = Subject("user-7", roles=["agent"], attributes={"region": "eu"}, tenant="acme")
    row = Resource("customer", id=42, attributes={"region": "eu"}, tenant="acme")
    now = dt.datetime.now(dt.UTC)
    decision: Decision = engine.evaluate(agent, "read", row, fields=["email"], now=now)
    outcome: Outcome = decision.outcome
    allowed: bool = decision.allowed
    lifted: frozenset[str] = decision.unmasked
    shown: dict[str, Any] = apply(decision, {"email": "ada@example.com"})
    also: dict[str, Any] = engine.apply(decision, {"email": "ada@example.com"})
    try:
        engine.require(agent, "delete", row)
    except StepUpRequired as exc:
        print(exc.max_age)
    except AccessDenied as exc:
        print(exc.decision)
    many: list[Decision] = engine.evaluate_many([AccessRequest(agent, "read", row)])
    grants: list[Grant] = engine.who_can("read", "customer", field="email")
    review: AccessReview = engine.review({"user-7": ["agent"]})
    text: str = review.to_csv() + review.to_markdown()
    why: Explanation = engine.explain(agent, "read", row)
    changes: list[DecisionChange] = engine.diff(engine, [AccessRequest(agent, "read", row)])
    unmask: frozenset[str] = engine.who_can("read", "customer")[0].unmask
    del findings, outcome, allowed, lifted, unmask, shown, also, many, grants, text, why, changes


def guarded(engine: PolicyEngine) -> None:
    @engine.guard("read", resource=Resource("customer"))
    def show(subject: Subject, customer_id: int) -> str:
        return str(customer_id)

    @engine.guard("read", resource="row")
    async def ashow(subject: Subject, row: Resource) -> int:
        return 1

    text: str = show(Subject("u", roles=["agent"]), 42)
    del text, ashow
