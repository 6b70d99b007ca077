"""Invariants of `PolicyEngine` on generated policies and requests (Hypothesis)."""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Mapping
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    POLICY_FIELDS,
    access_requests,
    document_roles,
    policy_documents,
    policy_requests,
    policy_rules,
)

from securecustomer.policy import (
    AccessRequest,
    Decision,
    Outcome,
    Policy,
    PolicyEngine,
    Resource,
    Subject,
)

#: A field no rule names: visible only under a decision that shows every field.
UNNAMED_FIELD = "notes"
#: How permissive an outcome is.
RANK = {Outcome.DENY: 0, Outcome.STEP_UP: 1, Outcome.ALLOW: 2}
#: How much of a field a mask shows (docs/policies.md, "Masks"); ``None`` is in clear.
SHOWS = {"redact": 0, "initial": 1, "email": 2, None: 3}

EXAMPLES = settings(max_examples=150, deadline=None)
#: Monotonicity needs two overlapping allows with field lists, which only some examples have.
MORE_EXAMPLES = settings(max_examples=250, deadline=None)


@st.composite
def documents_and_requests(
    draw: st.DrawFn, *, max_requests: int = 8
) -> tuple[dict[str, Any], list[AccessRequest]]:
    document = draw(policy_documents())
    requests = draw(st.lists(policy_requests(document), min_size=1, max_size=max_requests))
    return document, requests


def requests_around(
    document: Mapping[str, Any], rule: Mapping[str, Any]
) -> st.SearchStrategy[AccessRequest]:
    """Requests against *document*, half of them aimed at *rule*."""
    return policy_requests(document) | access_requests(document_roles(document), aim=rule)


def decide(document: Mapping[str, Any], requests: list[AccessRequest]) -> list[Decision]:
    """Each request's decision under *document*, from a fresh engine."""
    engine = PolicyEngine(Policy.from_dict(document))
    return [
        engine.evaluate(
            r.subject,
            r.action,
            r.resource,
            fields=r.fields,
            purpose=r.purpose,
            context=r.context,
            now=r.now,
        )
        for r in requests
    ]


def visible(decision: Decision) -> set[str]:
    """The fields *decision* lets a caller see, out of every field the generators name."""
    return {f for f in (*POLICY_FIELDS, UNNAMED_FIELD) if decision.visible(f)}


def with_rule(document: Mapping[str, Any], rule: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of *document* with *rule* added last, as rule ``extra``."""
    out = copy.deepcopy(dict(document))
    out["rules"] = [*out["rules"], {"id": "extra", **rule}]
    return out


def sorted_errors(decision: Decision) -> Decision:
    """*decision* with its errors in a canonical order (they follow the rule order)."""
    return attrs.evolve(decision, errors=tuple(sorted(decision.errors)))


def rename_roles(document: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """*document* with every role renamed, in the roles table, rules and conditions."""

    def literal(match: re.Match[str]) -> str:
        name = match.group(1)
        return '"' + mapping.get(name, name).replace("\\", "\\\\").replace('"', '\\"') + '"'

    rules = []
    for rule in document["rules"]:
        rule = dict(rule)
        if "roles" in rule and rule["roles"] != ["*"]:
            rule["roles"] = [mapping[name] for name in rule["roles"]]
        if "when" in rule:
            rule["when"] = re.sub(r'"([^"\\]*)"', literal, rule["when"])
        rules.append(rule)
    roles = {
        mapping[name]: {"inherits": [mapping[p] for p in spec["inherits"]]}
        for name, spec in document["roles"].items()
    }
    return {**document, "roles": roles, "rules": rules}


class TestAddingRules:
    """An allow only ever grants more, a deny only ever takes away."""

    @MORE_EXAMPLES
    @given(data=st.data(), document=policy_documents())
    def test_an_allow_never_takes_away(self, data: st.DataObject, document: dict[str, Any]) -> None:
        extra = data.draw(policy_rules(sorted(document["roles"]), effect="allow"))
        bigger = with_rule(document, extra)
        requests = data.draw(st.lists(requests_around(bigger, extra), min_size=1, max_size=8))
        before = decide(document, requests)
        after = decide(bigger, requests)
        for old, new in zip(before, after, strict=True):
            assert RANK[old.outcome] <= RANK[new.outcome], (old, new)
            assert visible(old) <= visible(new), (old, new)

    @MORE_EXAMPLES
    @given(data=st.data(), document=policy_documents())
    def test_a_deny_never_grants(self, data: st.DataObject, document: dict[str, Any]) -> None:
        extra = data.draw(policy_rules(sorted(document["roles"]), effect="deny"))
        bigger = with_rule(document, extra)
        requests = data.draw(st.lists(requests_around(bigger, extra), min_size=1, max_size=8))
        before = decide(document, requests)
        after = decide(bigger, requests)
        for old, new in zip(before, after, strict=True):
            assert RANK[old.outcome] >= RANK[new.outcome], (old, new)
            assert visible(old) >= visible(new), (old, new)

    def test_the_checks_can_fail(self) -> None:
        """A deny really does turn an allow into a deny under these comparisons."""
        document = {
            "version": 1,
            "roles": {"agent": {}},
            "rules": [
                {
                    "id": "a",
                    "effect": "allow",
                    "roles": ["agent"],
                    "actions": ["read"],
                    "resources": ["customer"],
                },
            ],
        }
        deny = {"effect": "deny", "roles": ["agent"], "actions": ["*"], "resources": ["*"]}
        request = AccessRequest(Subject("alice", roles=["agent"]), "read", Resource("customer"))
        [before] = decide(document, [request])
        [after] = decide(with_rule(document, deny), [request])
        assert (Outcome.ALLOW, Outcome.DENY) == (before.outcome, after.outcome)
        assert ({*POLICY_FIELDS, UNNAMED_FIELD}, set()) == (visible(before), visible(after))


class TestIrrelevantChanges:
    """Rule order, role names and rule ids are not part of what a policy means."""

    @EXAMPLES
    @given(data=st.data(), generated=documents_and_requests())
    def test_rule_and_role_order_do_not_matter(
        self, data: st.DataObject, generated: tuple[dict[str, Any], list[AccessRequest]]
    ) -> None:
        document, requests = generated
        roles = data.draw(st.permutations(list(document["roles"].items())))
        rules = data.draw(st.permutations(document["rules"]))
        shuffled = {**document, "roles": dict(roles), "rules": rules}
        expected = [sorted_errors(d) for d in decide(document, requests)]
        assert expected == [sorted_errors(d) for d in decide(shuffled, requests)]

    @EXAMPLES
    @given(data=st.data(), generated=documents_and_requests())
    def test_renaming_roles_does_not_matter(
        self, data: st.DataObject, generated: tuple[dict[str, Any], list[AccessRequest]]
    ) -> None:
        document, requests = generated
        old = document_roles(document)
        names = st.text(string.ascii_letters + string.digits + "-_. ", min_size=1, max_size=8)
        new = data.draw(
            st.lists(names.filter(str.strip), min_size=len(old), max_size=len(old), unique=True)
        )
        mapping = dict(zip(old, new, strict=True))
        renamed = rename_roles(document, mapping)
        renamed_requests = [
            attrs.evolve(
                r, subject=attrs.evolve(r.subject, roles=[mapping[x] for x in r.subject.roles])
            )
            for r in requests
        ]
        # a role name never reaches a decision (reasons name rules and fields only)
        assert decide(document, requests) == decide(renamed, renamed_requests)

    @EXAMPLES
    @given(data=st.data(), generated=documents_and_requests())
    def test_renaming_rule_ids_does_not_matter(
        self, data: st.DataObject, generated: tuple[dict[str, Any], list[AccessRequest]]
    ) -> None:
        document, requests = generated
        old = [rule["id"] for rule in document["rules"]]
        ids = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=8)
        new = data.draw(st.lists(ids, min_size=len(old), max_size=len(old), unique=True))
        mapping = dict(zip(old, new, strict=True))
        renamed = {
            **document,
            "rules": [{**rule, "id": mapping[rule["id"]]} for rule in document["rules"]],
        }
        for before, after in zip(
            decide(document, requests), decide(renamed, requests), strict=True
        ):
            expected = (
                before.outcome,
                before.fields,
                before.hidden,
                dict(before.masks),  # the strictest mask, chosen by name, never by rule id
                before.unmasked,
                tuple(sorted(mapping[i] for i in before.rule_ids)),
                sorted((mapping[i], message) for i, message in before.errors),
                before.step_up_max_age,
            )
            actual = (
                after.outcome,
                after.fields,
                after.hidden,
                dict(after.masks),
                after.unmasked,
                after.rule_ids,
                sorted(after.errors),
                after.step_up_max_age,
            )
            assert expected == actual


def shows(decision: Decision) -> dict[str, int]:
    """How much of each visible field *decision* shows (`SHOWS`)."""
    return {f: SHOWS[decision.masks.get(f)] for f in visible(decision)}


class TestMasks:
    """Masks override as denies do: the strictest mask of the matching rules that grant a
    field applies; only a matching granting rule's ``unmask`` shows it in clear."""

    @MORE_EXAMPLES
    @given(data=st.data(), document=policy_documents())
    def test_an_allow_without_unmask_never_shows_more_of_a_field(
        self, data: st.DataObject, document: dict[str, Any]
    ) -> None:
        extra = data.draw(policy_rules(sorted(document["roles"]), effect="allow"))
        extra.pop("unmask", None)
        bigger = with_rule(document, extra)
        requests = data.draw(st.lists(requests_around(bigger, extra), min_size=1, max_size=8))
        for old, new in zip(decide(document, requests), decide(bigger, requests), strict=True):
            before, after = shows(old), shows(new)
            for field in before.keys() & after.keys():
                assert after[field] <= before[field], (field, old, new)

    @MORE_EXAMPLES
    @given(data=st.data(), document=policy_documents())
    def test_a_redacting_allow_redacts_what_it_grants(
        self, data: st.DataObject, document: dict[str, Any]
    ) -> None:
        extra = data.draw(policy_rules(sorted(document["roles"]), effect="allow"))
        extra.pop("unmask", None)
        granted = extra.get("fields", POLICY_FIELDS)
        extra["masks"] = dict.fromkeys(granted, "redact")
        bigger = with_rule(document, extra)
        requests = data.draw(st.lists(requests_around(bigger, extra), min_size=1, max_size=8))
        engine = PolicyEngine(Policy.from_dict(bigger))
        for r, decision in zip(requests, decide(bigger, requests), strict=True):
            explanation = engine.explain(
                r.subject,
                r.action,
                r.resource,
                fields=r.fields,
                purpose=r.purpose,
                context=r.context,
                now=r.now,
            )
            if not decision.allowed or not explanation.steps[-1].matched:
                continue
            for field in set(granted) & visible(decision) - decision.unmasked:
                assert "redact" == decision.masks.get(field), (field, decision)

    @EXAMPLES
    @given(generated=documents_and_requests())
    def test_masks_follow_the_matching_rules(
        self, generated: tuple[dict[str, Any], list[AccessRequest]]
    ) -> None:
        """Against explain's rule-by-rule account: per visible field, the strictest mask of
        the matching allows granting it, or in clear when one of them unmasks it."""
        document, requests = generated
        engine = PolicyEngine(Policy.from_dict(document))
        rules = {rule.id: rule for rule in engine.policy.rules}
        for r in requests:
            explanation = engine.explain(
                r.subject,
                r.action,
                r.resource,
                fields=r.fields,
                purpose=r.purpose,
                context=r.context,
                now=r.now,
            )
            decision = explanation.decision
            if not decision.allowed:
                continue
            matched = [rules[s.rule_id] for s in explanation.steps if s.matched]
            expected_masks, expected_unmasked = {}, set()
            for field in visible(decision):
                grants = [
                    rule
                    for rule in matched
                    if rule.allow and (rule.fields is None or field in rule.fields)
                ]
                masks = [rule.masks[field] for rule in grants if field in rule.masks]
                if masks and any(field in rule.unmask for rule in grants):
                    expected_unmasked.add(field)
                elif masks:
                    expected_masks[field] = min(masks, key=SHOWS.__getitem__)
            assert (expected_masks, expected_unmasked) == (
                dict(decision.masks),
                set(decision.unmasked),
            ), (r, decision)


class TestBatchesAndEmptyPolicies:
    """`evaluate_many` is `evaluate` in a loop; a policy without rules denies everything."""

    @EXAMPLES
    @given(generated=documents_and_requests())
    def test_evaluate_many_is_evaluate(
        self, generated: tuple[dict[str, Any], list[AccessRequest]]
    ) -> None:
        document, requests = generated
        engine = PolicyEngine(Policy.from_dict(document))
        many = engine.evaluate_many(requests)
        one_by_one = [
            engine.evaluate(
                r.subject,
                r.action,
                r.resource,
                fields=r.fields,
                purpose=r.purpose,
                context=r.context,
                now=r.now,
            )
            for r in requests
        ]
        assert one_by_one == many
        assert decide(document, requests) == many  # a fresh engine, with nothing cached

    @EXAMPLES
    @given(generated=documents_and_requests())
    def test_no_rules_denies_everything(
        self, generated: tuple[dict[str, Any], list[AccessRequest]]
    ) -> None:
        document, requests = generated
        decisions = decide({**document, "rules": []}, requests)
        expected = [(Outcome.DENY, (), set())] * len(requests)
        assert expected == [(d.outcome, d.rule_ids, visible(d)) for d in decisions]
