"""``securecustomer subject export | erase``: data-subject access and erasure requests.

Both import the application module so that its ``register_subject`` calls run, then call
`export_subject` / `erase_subject` on every registered model. An export holds decrypted
personal data: ``--out`` writes it to a file only its owner can read, never over an
existing file without ``--force``, and before its audit event is written (the file
appears once the event is). An erasure runs only with ``--yes``.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from securecustomer.cli._files import check_output, replacing
from securecustomer.cli._keys import _engine, _import, _key_options, _keyring
from securecustomer.cli._privacy_options import (
    bind_slots,
    hold_options,
    id_type_option,
    ledger_key,
    ledger_key_options,
    legal_holds,
    open_trail,
    require_trail,
    subject_id,
    trail_options,
)
from securecustomer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from securecustomer.audit import AuditTrail
    from securecustomer.privacy import ConsentLedger, ErasureReceipt

__all__ = ["add_subject_parser", "run_subject"]


def add_subject_parser(commands: Any) -> None:
    subject = commands.add_parser(
        "subject", help="export or erase everything held about one data subject"
    )
    subject.set_defaults(subject_parser=subject)
    actions = subject.add_subparsers(dest="subject_command", metavar="ACTION")

    export = actions.add_parser(
        "export",
        help="every row about a subject across the registered models, decrypted, as JSON",
        description="Export a data subject's records (GDPR articles 15 and 20) and write a "
        "subject.export audit event.",
    )
    _common(export)
    export.add_argument(
        "--out",
        metavar="FILE",
        help="write the JSON to FILE (created readable by its owner only) instead of stdout; "
        "an existing FILE is refused without --force",
    )
    export.add_argument("--force", action="store_true", help="overwrite --out FILE when it exists")

    erase = actions.add_parser(
        "erase",
        help="erase a subject everywhere (rows, blind indexes, key scopes), with a receipt",
        description="Erase a data subject (GDPR article 17): legal holds are checked first "
        "(--holds-table, or --no-holds: one is required), "
        "then rows are deleted, anonymized or shredded as each model was registered (or as "
        "--mode says), key scopes destroyed and a subject.erase audit receipt written. "
        "Running it again is safe.",
    )
    _common(erase)
    erase.add_argument(
        "--mode",
        choices=("delete", "anonymize", "shred"),
        help="erase every model this way (default: as each model was registered)",
    )
    erase.add_argument("--reason", help="why (recorded in the audit event)")
    erase.add_argument(
        "--yes", action="store_true", help="really erase (the command refuses without it)"
    )
    hold_options(erase)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject_id", metavar="ID", help="the subject's id")
    id_type_option(parser)
    parser.add_argument(
        "--models",
        required=True,
        action="append",
        metavar="MODULE",
        help="an application module whose import registers its subject models (only models "
        "of its top-level package are used); repeatable",
    )
    parser.add_argument(
        "--app-dir", default=".", metavar="DIR", help="directory to import MODULE from"
    )
    parser.add_argument("--url", required=True, help="database URL of the application")
    parser.add_argument(
        "--consents-table",
        default="securecustomer_consents",
        metavar="NAME",
        help="the ConsentLedger table, used when it exists (default: %(default)s)",
    )
    trail_options(parser, key_required=True)
    ledger_key_options(parser)
    _key_options(parser, store_required=False)


def run_subject(args: argparse.Namespace) -> int:
    """Run ``subject export`` or ``subject erase``; returns the exit status."""
    from sqlalchemy.orm import Session

    from securecustomer.privacy import erase_subject, registered_subject_models

    if args.subject_command is None:
        args.subject_parser.print_help()
        return 2
    if args.subject_command == "erase" and not args.yes:
        raise ConfigurationError("erasing a subject cannot be undone: add --yes to erase it")
    ident = subject_id(args.subject_id, args.id_type)
    if args.subject_command == "export" and args.out is not None:
        # refused before anything is read or audited: an export must reach its file
        check_output(args.out, "--out", overwrite=args.force)
    packages = set()
    for spec in args.models:
        _import(spec, args.app_dir, option="--models", attribute_required=False)
        packages.add(spec.partition(":")[0].split(".")[0])
    # Only the application's models: another package imported in the same process may
    # have registered models of its own, in another database.
    models = [
        registered.model
        for registered in registered_subject_models()
        if registered.model.__module__.split(".")[0] in packages
    ]
    if not models:
        raise ConfigurationError(
            f"--models {', '.join(args.models)}: no model of this package is registered "
            "with register_subject()"
        )
    with ExitStack() as stack:
        engine = stack.enter_context(_engine(args.url))
        trail = open_trail(args, stack)
        require_trail(trail)
        # checked before anything is read or changed: a missing holds table is an error
        holds = legal_holds(args, engine) if args.subject_command == "erase" else None
        keyring = _keyring(args, engine)
        bind_slots(stack, models, keyring)
        consents = _consents(args, engine)
        with Session(engine) as session:
            if args.subject_command == "export":
                _export(args, session, ident, trail, models, consents)
                return 0
            receipt = erase_subject(
                session,
                ident,
                mode=args.mode,
                keyring=keyring,
                trail=trail,
                holds=holds,
                consents=consents,
                models=models,
                reason=args.reason,
            )
    _print_receipt(receipt)
    return 0


def _consents(args: argparse.Namespace, engine: Engine) -> ConsentLedger | None:
    from sqlalchemy import inspect

    from securecustomer.privacy import ConsentLedger

    if not inspect(engine).has_table(args.consents_table):
        return None
    return ConsentLedger(engine, key=ledger_key(args), table=args.consents_table)


def _export(
    args: argparse.Namespace,
    session: Session,
    ident: object,
    trail: AuditTrail | None,
    models: list[Any],
    consents: ConsentLedger | None,
) -> None:
    """Export the subject: the JSON is written whole (to a temporary file next to --out)
    before the subject.export event, and shown (stdout, or renamed to --out) only after it,
    so that no export is handed out unaudited and no event records a file never written."""
    from securecustomer.privacy import SubjectExport, export_subject

    if args.out is None:
        rendered: list[str] = []

        def render(export: SubjectExport) -> None:
            rendered.append(export.to_json())

        export_subject(
            session, ident, trail=trail, models=models, consents=consents, deliver=render
        )
        print(rendered[0])
        return
    with replacing(args.out, "--out", overwrite=args.force) as temporary:  # mode 0600

        def write(export: SubjectExport) -> None:
            temporary.write_text(export.to_json() + "\n", encoding="utf-8")

        export_subject(session, ident, trail=trail, models=models, consents=consents, deliver=write)
    print(f"exported to {args.out} (personal data: keep it safe, delete it once sent)")


def _counts(counts: Any) -> str:
    return ", ".join(f"{name}: {n}" for name, n in sorted(counts.items())) or "-"


def _print_receipt(receipt: ErasureReceipt) -> None:
    state = " (already erased: nothing was left)" if receipt.already_erased else ""
    print(f"erased subject {receipt.subject}{state}")
    print(f"  at: {receipt.erased_at.isoformat(timespec='seconds')}")
    print(f"  deleted rows: {_counts(receipt.deleted)}")
    print(f"  anonymized rows: {_counts(receipt.anonymized)}")
    print(f"  shredded rows: {_counts(receipt.shredded)}")
    print(f"  blind index entries purged: {receipt.blind_indexes_purged}")
    destroyed = ", ".join(f"{key_id:#010x}" for key_id in receipt.keys_destroyed) or "-"
    print(f"  keys destroyed: {destroyed}")
    print(f"  audit event: {receipt.event_id}")
