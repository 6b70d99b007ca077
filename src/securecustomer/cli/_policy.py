"""``securecustomer policy lint | explain | review``: check a policy file before it ships.

``lint`` loads the file as `PolicyEngine` would (a document that does not load, or names an
unknown mask, is an error: exit 1; a missing file is bad usage: exit 2) and prints
`Policy.lint` findings as warnings (exit 1 with ``--strict``). ``explain`` prints one
request's decision and every rule's part in it; ``review`` the effective permissions of a
set of role assignments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Any

from securecustomer.cli._files import input_file, load_policy, read_text
from securecustomer.exceptions import ConfigurationError, PolicyError

if TYPE_CHECKING:
    from securecustomer.policy import PolicyEngine, Resource, Subject

__all__ = ["add_policy_parser", "run_policy"]


def add_policy_parser(commands: Any) -> None:
    policy = commands.add_parser("policy", help="lint a policy, explain a decision, review access")
    policy.set_defaults(policy_parser=policy)
    actions = policy.add_subparsers(dest="policy_command", metavar="ACTION")

    lint = actions.add_parser(
        "lint",
        help="check a policy file; exit 1 if it does not load",
        description="Load FILE (.toml, .json, .yaml) and print what a reviewer should look "
        "at: unknown or unused roles, shadowed and unreachable rules, wildcard grants. A "
        "document that does not load is an error (exit 1); findings are warnings.",
    )
    lint.add_argument("file", metavar="FILE", help="the policy file")
    lint.add_argument("--strict", action="store_true", help="exit 1 on warnings too")

    explain = actions.add_parser(
        "explain",
        help="the decision on one request, and why each rule matched or not",
        description="Evaluate one request against FILE and print the decision and, for "
        "every rule in order, whether it matched and why.",
    )
    explain.add_argument("file", metavar="FILE", help="the policy file")
    explain.add_argument(
        "--subject",
        required=True,
        metavar="JSON",
        help='e.g. \'{"id": "user-7", "roles": ["agent"], "tenant": "acme", '
        '"attributes": {}, "mfa_at": "2026-11-01T09:00:00+00:00"}\'',
    )
    explain.add_argument("--action", required=True, help='the action, e.g. "read"')
    explain.add_argument(
        "--resource",
        required=True,
        metavar="JSON",
        help='e.g. \'{"type": "customer", "id": 42, "tenant": "acme", "attributes": {}}\'',
    )
    explain.add_argument("--fields", metavar="F1,F2", help="the fields asked for")
    explain.add_argument("--purpose", help="the purpose of the access")
    explain.add_argument("--context", metavar="JSON", help="a JSON object of request context")
    explain.add_argument(
        "--now", metavar="ISO", help="evaluate at this time (default: now; UTC if naive)"
    )

    review = actions.add_parser(
        "review",
        help="every subject's effective permissions, with the role path granting each",
        description="Print an access review of the role assignments under FILE.",
    )
    review.add_argument("file", metavar="FILE", help="the policy file")
    review.add_argument(
        "--assignments",
        required=True,
        metavar="JSON_OR_FILE",
        help='subject id -> roles, as JSON text or a JSON file: {"user-7": ["agent"]}',
    )
    review.add_argument("--format", choices=("markdown", "csv"), default="markdown")


def run_policy(args: argparse.Namespace) -> int:
    """Run one ``policy`` action; returns the exit status."""
    if args.policy_command is None:
        args.policy_parser.print_help()
        return 2
    if args.policy_command == "lint":
        return _lint(args)
    engine = _engine(args.file)
    if args.policy_command == "explain":
        return _explain(engine, args)
    return _review(engine, args)


def _engine(path: str) -> PolicyEngine:
    from securecustomer.policy import PolicyEngine

    return PolicyEngine(load_policy(path))


def _lint(args: argparse.Namespace) -> int:
    input_file(args.file)  # nothing to lint: bad usage (exit 2), not a finding
    try:
        engine = _engine(args.file)
    except PolicyError as exc:
        where = ", ".join(
            f"{name} {value!r}"
            for name, value in (("rule", exc.rule), ("field", exc.field))
            if value
        )
        print(f"{args.file}: error: {exc}")
        if where:
            print(f"  at {where}")
        return 1
    findings = engine.policy.lint()
    for finding in findings:
        where = f" (rule {finding.rule!r})" if finding.rule else ""
        print(f"{args.file}: warning: {finding.code}{where}: {finding.message}")
    rules = len(engine.policy.rules)
    print(f"{args.file}: {rules} rule(s), {len(findings)} warning(s), 0 errors")
    return 1 if findings and args.strict else 0


def _json(text: str, option: str, *, may_be_file: bool = False) -> Any:
    if may_be_file and not text.lstrip().startswith(("{", "[")):
        text = read_text(text, option)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{option}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise ConfigurationError(f"{option}: nested too deeply") from None


def _object(text: str | None, option: str, keys: set[str]) -> dict[str, Any]:
    value = {} if text is None else _json(text, option)
    if not isinstance(value, dict):
        raise ConfigurationError(f"{option}: expected a JSON object")
    unknown = set(value) - keys if keys else set()
    if unknown:
        raise ConfigurationError(
            f"{option}: unknown key(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(keys))})"
        )
    return value


def _when(text: str, option: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{option}: not an ISO datetime: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _subject(text: str) -> Subject:
    from securecustomer.policy import Subject

    raw = _object(text, "--subject", {"id", "roles", "attributes", "tenant", "mfa_at"})
    if not isinstance(raw.get("id"), str):
        raise ConfigurationError('--subject: "id" must be a string')
    roles = raw.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ConfigurationError('--subject: "roles" must be a list of role names')
    mfa_at = raw.get("mfa_at")
    return Subject(
        raw["id"],
        roles=roles,
        attributes=_mapping(raw.get("attributes"), "--subject", "attributes"),
        tenant=raw.get("tenant"),
        mfa_at=None if mfa_at is None else _when(str(mfa_at), "--subject mfa_at"),
    )


def _resource(text: str) -> Resource:
    from securecustomer.policy import Resource

    raw = _object(text, "--resource", {"type", "id", "attributes", "tenant"})
    if not isinstance(raw.get("type"), str):
        raise ConfigurationError('--resource: "type" must be a string')
    return Resource(
        raw["type"],
        id=raw.get("id"),
        attributes=_mapping(raw.get("attributes"), "--resource", "attributes"),
        tenant=raw.get("tenant"),
    )


def _mapping(value: object, option: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(f'{option}: "{key}" must be a JSON object')
    return value


def _explain(engine: PolicyEngine, args: argparse.Namespace) -> int:
    fields = None
    if args.fields is not None:
        fields = [f.strip() for f in args.fields.split(",") if f.strip()]
    explanation = engine.explain(
        _subject(args.subject),
        args.action,
        _resource(args.resource),
        fields=fields,
        purpose=args.purpose,
        context=_object(args.context, "--context", set()),
        now=None if args.now is None else _when(args.now, "--now"),
    )
    print(explanation)
    decision = explanation.decision
    if decision.allowed:
        shown = "every field" if decision.fields is None else ", ".join(sorted(decision.fields))
        print(f"visible fields: {shown or '-'}")
        if decision.hidden:
            print(f"hidden fields: {', '.join(sorted(decision.hidden))}")
        for field, mask in sorted(decision.masks.items()):
            print(f"masked: {field} ({mask})")
        for field in sorted(decision.unmasked):
            print(f"unmasked: {field} (a matching rule lifts its masks with unmask)")
    for rule_id, message in decision.errors:
        print(f"condition error in rule {rule_id!r}: {message}")
    return 0


def _review(engine: PolicyEngine, args: argparse.Namespace) -> int:
    raw = _json(args.assignments, "--assignments", may_be_file=True)
    if not isinstance(raw, dict) or not all(
        isinstance(roles, list) and all(isinstance(r, str) for r in roles) for roles in raw.values()
    ):
        raise ConfigurationError(
            "--assignments: expected a JSON object of subject id -> list of roles, e.g. "
            '{"user-7": ["agent"]}'
        )
    review = engine.review(raw)
    if args.format == "csv":
        sys.stdout.write(review.to_csv())
        for subject_id, reason in review.violations:
            print(f"warning: {subject_id}: {reason}", file=sys.stderr)
    else:
        sys.stdout.write(review.to_markdown())
    return 0
