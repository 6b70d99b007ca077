"""A declarative access-control engine: roles, conditions, field masks, step-up, reviews.

Example:
    ```python
    from securecustomer.policy import Policy, PolicyEngine, Resource, Subject, apply

    engine = PolicyEngine(Policy.from_toml("policy.toml"))
    agent = Subject("user-7", roles=["agent"], tenant="acme")
    decision = engine.evaluate(agent, "read", Resource("customer", id=42, tenant="acme"))
    if decision.allowed:
        shown = apply(decision, {"name": "Ada", "email": "ada@example.com"})
    ```
"""

from securecustomer.policy._document import Policy, Rule, parse_duration
from securecustomer.policy._engine import PolicyEngine, apply
from securecustomer.policy._lint import Finding
from securecustomer.policy._model import AccessRequest, Decision, Outcome, Resource, Subject
from securecustomer.policy._review import (
    AccessReview,
    DecisionChange,
    Explanation,
    Grant,
    Step,
)

__all__ = [
    "AccessRequest",
    "AccessReview",
    "Decision",
    "DecisionChange",
    "Explanation",
    "Finding",
    "Grant",
    "Outcome",
    "Policy",
    "PolicyEngine",
    "Resource",
    "Rule",
    "Step",
    "Subject",
    "apply",
    "parse_duration",
]
