"""``securecustomer keys emergency KEY_ID``: the guided response to a compromised data key.

It prints the plan, asks for confirmation (on a terminal; elsewhere ``--yes`` is required),
then runs `respond_to_key_compromise`: revoke and rotate, re-encrypt the models, disable
the key, write the audit event, printing each step as it goes.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from securecustomer.cli._keys import (
    _SHOWN_FAILURES,
    _engine,
    _import,
    _key_options,
    _keyring,
    _positive_int,
    _slots_bound,
)
from securecustomer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from securecustomer.keys import Keyring
    from securecustomer.privacy import KeyCompromiseResponse

__all__ = ["add_emergency_parser", "run_emergency"]


def add_emergency_parser(actions: Any) -> None:
    from securecustomer.cli._privacy_options import trail_options

    emergency = actions.add_parser(
        "emergency",
        help="respond to a compromised data key: revoke, rotate, re-encrypt, disable",
        description="Revoke data key KEY_ID for writes, rotate its scope, re-encrypt every "
        "value under it in the --model tables, disable it once nothing is left under it, "
        "and write a key.compromise audit event. Asks for confirmation first. Give every "
        "model that uses the key's scope: tables not given are not checked. Other processes "
        "keep encrypting with the old key until their keyring's cache_ttl has passed: run "
        "the command again after that (it is safe to repeat).",
    )
    emergency.add_argument(
        "key_id", type=_key_id, metavar="KEY_ID", help="the data key id, e.g. 0x0000002a"
    )
    emergency.add_argument("--url", required=True, help="database URL of the models' tables")
    emergency.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="MODULE:CLASS",
        help="a mapped class (or Table) with values under the key; repeatable",
    )
    emergency.add_argument(
        "--app-dir", default=".", metavar="DIR", help="directory to import MODULE from"
    )
    emergency.add_argument(
        "--batch-size",
        type=_positive_int,
        default=500,
        metavar="N",
        help="rows per transaction (default: %(default)s)",
    )
    emergency.add_argument(
        "--dry-run", action="store_true", help="report what would be moved, change nothing"
    )
    emergency.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed without a TTY)"
    )
    trail_options(emergency, key_required=True)
    _key_options(emergency, store_required=False)


def _key_id(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r} is not a key id (e.g. 0x0000002a or 42)")
    return value


def run_emergency(args: argparse.Namespace) -> int:
    """Run ``keys emergency``; returns the exit status."""
    from securecustomer.cli._privacy_options import open_trail
    from securecustomer.privacy import respond_to_key_compromise

    models = [_import(spec, args.app_dir) for spec in args.model]
    with ExitStack() as stack:
        engine = stack.enter_context(_engine(args.url))
        trail = open_trail(args, stack)
        keyring = _keyring(args, engine)
        _print_plan(args, keyring)
        if not args.dry_run and not _confirmed(args):
            return 1
        for model in models:
            stack.enter_context(_slots_bound(model, keyring))
        response = respond_to_key_compromise(
            keyring,
            args.key_id,
            bind=engine,
            models=models,
            trail=trail,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            progress=lambda line: print(f"  ... {line}", flush=True),
        )
    _print_response(response)
    return 0 if response.dry_run or response.disabled else 1


def _print_plan(args: argparse.Namespace, keyring: Keyring) -> None:
    record = keyring.store.data_key(args.key_id)
    if record is None:
        raise ConfigurationError(f"no data key {args.key_id:#010x} in the key store")
    print(
        f"key {args.key_id:#010x}: scope {record.scope}, version {record.version}, "
        f"state {record.state.value}"
    )
    print("plan" + (" (dry run: nothing is changed)" if args.dry_run else "") + ":")
    print(f"  1. make it decrypt-only and rotate {record.scope} to a new active key")
    print(f"  2. re-encrypt its values in: {', '.join(args.model)}")
    print("  3. disable it once no value is left under it")
    print("  4. write a key.compromise audit event")


def _confirmed(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigurationError("not a terminal: add --yes to run the emergency response")
    try:
        answer = input("proceed? type yes: ")
    except EOFError:
        answer = ""
    if answer.strip().lower() == "yes":
        return True
    print("securecustomer keys emergency: not confirmed: nothing was changed", file=sys.stderr)
    return False


def _print_response(response: KeyCompromiseResponse) -> None:
    print(f"result for key {response.key_id:#010x} ({response.scope}):")
    if response.new_key is not None and response.new_key.key_id is not None:
        print(
            f"  active key of the scope: {response.new_key.key_id:#010x} "
            f"(version {response.new_key.version})"
        )
    for table, count in sorted(response.found.items()):
        print(f"  {table}: {count} values were under the key")
    for report in response.reports:
        print(
            f"  {report.table}: {report.values_reencrypted} re-encrypted, "
            f"{report.errors} errors, {report.conflicts} conflicts"
        )
        for failure in report.failures[:_SHOWN_FAILURES]:
            print(f"    error at primary key {failure.primary_key!r}: {failure.reason}")
    print(f"  values left under the key: {response.remaining}")
    if response.dry_run:
        print("  dry run: nothing was changed")
    elif response.disabled:
        print("  the key is disabled; destroy it once backups that need it have expired")
    else:
        print("  the key is not disabled: data is left under it; run the command again")
