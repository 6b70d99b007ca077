"""Argument parsing for the ``securecustomer`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from securecustomer import __version__
from securecustomer.cli._anonymize import add_anonymize_parser, run_anonymize
from securecustomer.cli._audit import add_audit_parser, run_audit
from securecustomer.cli._errors import DEBUG_VARIABLE, in_debug_mode, report
from securecustomer.cli._keys import add_keys_parser, run_keys
from securecustomer.cli._policy import add_policy_parser, run_policy
from securecustomer.cli._privacy import add_privacy_parsers, run_privacy

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="securecustomer", description="Keep your customers' data safe."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"print the traceback of an error (also: {DEBUG_VARIABLE}=1)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the end-to-end demo (SQLite and a local key file in a temporary directory)",
    )
    demo.add_argument(
        "--dir",
        metavar="DIR",
        help="keep the demo's files (keys, database, trail) in DIR (default: a temp dir)",
    )
    add_keys_parser(commands)
    add_policy_parser(commands)
    add_audit_parser(commands)
    add_privacy_parsers(commands)
    add_anonymize_parser(commands)
    return parser


def _command(args: argparse.Namespace) -> str:
    """The command's name as the user typed it: "anonymize", "keys rotate", ..."""
    action = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {action}" if action else str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status.

    Every error of a command is reported here, in one line (see `_errors`): exit 2 for bad
    usage or input, 1 when the command ran and found something (a finding, a trail that
    does not verify), 0 otherwise.
    """
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        return _run(args)
    except (Exception, KeyboardInterrupt) as exc:  # the one place errors are reported
        return report(_command(args), exc, debug=in_debug_mode(args.debug))


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from securecustomer.cli._demo import run_demo

        return run_demo(args.dir)
    if args.command == "keys":
        return run_keys(args)
    if args.command == "audit":
        return run_audit(args)
    if args.command == "anonymize":
        return run_anonymize(args)
    if args.command == "policy":
        return run_policy(args)
    if args.command in ("inventory", "assess", "subject", "retention"):
        return run_privacy(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
