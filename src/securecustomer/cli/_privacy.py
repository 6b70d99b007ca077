"""``securecustomer inventory``, ``assess`` and ``retention``.

The commands import the application module (so its models, ``classify`` infos and
``register_subject`` calls exist), then only parse, load and print: the work is
`DataInventory.from_metadata`, `assess` and `apply_retention`. The audit trail's key comes
from an environment variable or a file, never from the command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from securecustomer.cli._files import load_policy
from securecustomer.cli._keys import (
    _engine,
    _import,
    _key_options,
    _positive_int,
)
from securecustomer.cli._privacy_options import (
    bind_slots,
    hold_options,
    legal_holds,
    load_metadata,
    model_options,
    open_trail,
    optional_keyring,
    require_trail,
    resource_type_option,
    resource_types,
    trail_options,
    trail_records,
)
from securecustomer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from securecustomer.privacy import RiskFinding

__all__ = ["add_privacy_parsers", "run_privacy"]

_SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3}


def add_privacy_parsers(commands: Any) -> None:
    """Add ``inventory``, ``assess``, ``subject`` and ``retention`` to *commands*."""
    from securecustomer.cli._subject import add_subject_parser

    inventory = commands.add_parser(
        "inventory",
        help="list the classified columns of an application's models, with risk findings",
        description="Import the application's models and print the record of processing "
        "(article 30 GDPR) built from their classify() infos, with risk findings: "
        "unencrypted sensitive columns, unclassified personal data, old keys.",
    )
    _inventory_options(inventory)
    _report_options(inventory)

    assess = commands.add_parser(
        "assess",
        help="a security risk report over the inventory, a policy, the keys and the trail",
        description="Everything inventory finds, plus who can read restricted columns under "
        "--policy, grants the audit trail shows unused or stale, and old keys.",
    )
    _inventory_options(assess)
    assess.add_argument("--policy", metavar="FILE", help="a policy file (.toml, .json, .yaml)")
    resource_type_option(
        assess, "the policy's resource type of a table (default: the table name); repeatable"
    )
    assess.add_argument(
        "--stale-after",
        type=_positive_int,
        default=90,
        metavar="DAYS",
        help="a grant no event used for this long is stale (default: %(default)s)",
    )
    trail_options(assess, key_required=False)
    _report_options(assess)

    add_subject_parser(commands)

    retention = commands.add_parser(
        "retention",
        help="delete or anonymize rows older than their retention, in batches",
        description="Apply a list of RetentionRule objects: each batch of expired rows is "
        "changed in its own transaction with one audit event; rows of subjects under a "
        "legal hold are kept.",
    )
    retention.add_argument(
        "--rules",
        required=True,
        metavar="MODULE:ATTR",
        help="a list of RetentionRule in the application, e.g. myapp.retention:RULES",
    )
    retention.add_argument("--url", required=True, help="database URL of the application")
    retention.add_argument(
        "--app-dir", default=".", metavar="DIR", help="directory to import MODULE from"
    )
    retention.add_argument(
        "--dry-run", action="store_true", help="count expired rows, change nothing"
    )
    retention.add_argument(
        "--yes",
        action="store_true",
        help="really delete or anonymize the expired rows (refused without it, except with "
        "--dry-run; add it to scheduled runs)",
    )
    retention.add_argument(
        "--batch-size",
        type=_positive_int,
        default=500,
        metavar="N",
        help="rows per transaction (default: %(default)s)",
    )
    retention.add_argument("--format", choices=("markdown", "json"), default="markdown")
    hold_options(retention)
    trail_options(retention, key_required=True)
    _key_options(retention, store_required=False, master_required=False)


def _inventory_options(parser: argparse.ArgumentParser) -> None:
    model_options(parser)
    parser.add_argument(
        "--url", help="database URL: sample unclassified columns for personal data (read-only)"
    )
    parser.add_argument(
        "--sample-size",
        type=_positive_int,
        default=200,
        metavar="N",
        help="values sampled per unclassified column with --url (default: %(default)s)",
    )
    parser.add_argument(
        "--max-key-age",
        type=_positive_int,
        default=365,
        metavar="DAYS",
        help="with key options: active keys older than this are findings (default: %(default)s)",
    )
    parser.add_argument("--controller", metavar="NAME", help="the controller named in the report")
    _key_options(parser, store_required=False, master_required=False)


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument(
        "--fail-on",
        choices=("high", "medium", "low"),
        help="exit 1 when a finding of this severity or higher is found",
    )


def _failed(findings: Iterable[RiskFinding], fail_on: str | None) -> bool:
    if fail_on is None:
        return False
    threshold = _SEVERITY_RANK[fail_on]
    return any(_SEVERITY_RANK.get(f.severity, 0) >= threshold for f in findings)


@contextmanager
def _optional_engine(url: str | None) -> Iterator[Engine | None]:
    if url is None:
        yield None
    else:
        with _engine(url) as engine:
            yield engine


# -- commands -------------------------------------------------------------------------------


def run_privacy(args: argparse.Namespace) -> int:
    """Run ``inventory``, ``assess``, ``subject`` or ``retention``; returns the exit status."""
    if args.command == "subject":
        from securecustomer.cli._subject import run_subject

        return run_subject(args)
    if args.command == "retention":
        return _retention(args)
    return _inventory(args)


def _inventory(args: argparse.Namespace) -> int:
    from securecustomer.policy import PolicyEngine
    from securecustomer.privacy import DataInventory, assess

    metadata = load_metadata(args)
    max_key_age = dt.timedelta(days=args.max_key_age)
    with ExitStack() as stack:
        engine = stack.enter_context(_optional_engine(args.url))
        keyring = optional_keyring(args, engine)
        bind_slots(stack, metadata.sorted_tables, keyring)
        inventory = DataInventory.from_metadata(
            metadata,
            bind=engine,
            keyring=keyring,
            sample_size=args.sample_size,
            max_key_age=max_key_age,
            controller=args.controller,
        )
        if args.command == "inventory":
            print(inventory.to_markdown() if args.format == "markdown" else inventory.to_json())
            return 1 if _failed(inventory.findings, args.fail_on) else 0
        policy = PolicyEngine(load_policy(args.policy, "--policy")) if args.policy else None
        report = assess(
            inventory,
            policy=policy,
            keyring=keyring,
            trail=trail_records(args, stack),
            resource_types=resource_types(args.resource_type),
            stale_after=dt.timedelta(days=args.stale_after),
            max_key_age=max_key_age,
        )
    print(report.to_markdown() if args.format == "markdown" else report.to_json())
    return 1 if _failed(report.findings, args.fail_on) else 0


def _retention(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from securecustomer.privacy import RetentionRule, apply_retention

    if not args.dry_run and not args.yes:
        raise ConfigurationError(
            "retention deletes or anonymizes rows for good: add --yes to apply it (or "
            "--dry-run to count them)"
        )
    rules = _import(args.rules, args.app_dir, option="--rules")
    if isinstance(rules, RetentionRule):
        rules = [rules]
    if not isinstance(rules, (list, tuple)) or not all(
        isinstance(rule, RetentionRule) for rule in rules
    ):
        raise ConfigurationError(f"--rules {args.rules!r}: not a list of RetentionRule")
    with ExitStack() as stack:
        engine = stack.enter_context(_engine(args.url))
        trail = open_trail(args, stack)
        if not args.dry_run:
            require_trail(trail)
        keyring = optional_keyring(args, engine)
        bind_slots(stack, (rule.model for rule in rules), keyring)
        holds = legal_holds(args, engine)
        with Session(engine) as session:
            report = apply_retention(
                session,
                rules,
                batch_size=args.batch_size,
                dry_run=args.dry_run,
                holds=holds,
                trail=trail,
            )
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(report.to_markdown())
    return 0
