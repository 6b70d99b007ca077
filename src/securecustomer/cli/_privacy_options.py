"""The options the privacy commands share, and how they are loaded: the application's
models, the audit trail (its key from an environment variable or a file, never from the
command line), legal holds and subject ids."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securecustomer.cli._keys import _engine, _import, _keyring, _slots_bound
from securecustomer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine, MetaData

    from securecustomer.audit import AuditTrail, Record
    from securecustomer.keys import Keyring
    from securecustomer.privacy import LegalHolds

__all__ = [
    "bind_slots",
    "hold_options",
    "id_type_option",
    "legal_holds",
    "load_metadata",
    "model_options",
    "open_trail",
    "optional_keyring",
    "require_trail",
    "resource_type_option",
    "resource_types",
    "subject_id",
    "trail_options",
    "trail_records",
]

_ID_TYPES = ("int", "str", "uuid")

# -- options -------------------------------------------------------------------------


def model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        required=True,
        metavar="MODULE[:ATTR]",
        help="the application module defining the models (imported, so its classify() and "
        "register_subject() calls run); ATTR is its MetaData or declarative Base "
        "(default: the module's Base, else its metadata)",
    )
    parser.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory to import MODULE from (default: the current directory)",
    )


def trail_options(parser: argparse.ArgumentParser, *, key_required: bool) -> None:
    group = parser.add_argument_group(
        "audit trail",
        "where audit events are read or written (default: the trail the application binds "
        "to securecustomer.audit.default_trail on import, if any)",
    )
    source = group.add_mutually_exclusive_group()
    source.add_argument("--audit-jsonl", metavar="PATH", help="a JsonlAuditSink file")
    source.add_argument("--audit-sql", metavar="URL", help="a SQLAlchemy URL of a SqlAuditSink")
    group.add_argument(
        "--audit-table", default="audit_events", help="the SQL audit table (default: %(default)s)"
    )
    key = group.add_mutually_exclusive_group()
    needed = "required with --audit-jsonl/--audit-sql" if key_required else "verifies it"
    key.add_argument(
        "--audit-key-env", metavar="VAR", help=f"variable holding the trail key ({needed})"
    )
    key.add_argument(
        "--audit-key-file", metavar="PATH", help=f"file holding the trail key ({needed})"
    )


def hold_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--holds-table",
        default="securecustomer_legal_holds",
        metavar="NAME",
        help="the LegalHolds table in the --url database, checked when it exists "
        "(default: %(default)s)",
    )


def id_type_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--id-type",
        choices=_ID_TYPES,
        default="int",
        help="the Python type of subject ids, as the models' subject columns hold them "
        "(default: %(default)s)",
    )


def resource_type_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--resource-type",
        action="append",
        default=[],
        metavar="TABLE=TYPE",
        help=help_text,
    )


# -- loading -------------------------------------------------------------------------


def resource_types(pairs: list[str]) -> dict[str, str] | None:
    """``--resource-type TABLE=TYPE`` pairs as a dict (None when there are none)."""
    out: dict[str, str] = {}
    for pair in pairs:
        table, sep, kind = pair.partition("=")
        if not sep or not table or not kind:
            raise ConfigurationError(f"--resource-type {pair!r}: expected TABLE=TYPE")
        out[table] = kind
    return out or None


def subject_id(text: str, id_type: str) -> object:
    """A subject id typed on the command line, as *id_type*."""
    try:
        if id_type == "int":
            return int(text)
        if id_type == "uuid":
            return uuid.UUID(text)
    except ValueError:
        raise ConfigurationError(
            f"subject id {text!r} is not {'an int' if id_type == 'int' else 'a UUID'} "
            "(see --id-type)"
        ) from None
    return text


def load_metadata(args: argparse.Namespace) -> MetaData:
    """Import ``--models`` and find its MetaData."""
    from sqlalchemy import MetaData

    target = _import(args.models, args.app_dir, option="--models", attribute_required=False)
    if ":" not in args.models:
        for name in ("Base", "metadata"):
            found = getattr(target, name, None)
            if isinstance(found, MetaData) or isinstance(
                getattr(found, "metadata", None), MetaData
            ):
                target = found
                break
    if isinstance(target, MetaData):
        return target
    metadata = getattr(target, "metadata", None)
    if isinstance(metadata, MetaData):
        return metadata
    raise ConfigurationError(
        f"--models {args.models!r}: no MetaData found; name it as MODULE:ATTR, e.g. "
        "myapp.models:Base"
    )


def optional_keyring(args: argparse.Namespace, engine: Engine | None) -> Keyring | None:
    """The keyring of the key options, or None when no master key option is given."""
    if args.key_file is None and args.key_env is None:
        if args.key_store_file is not None:
            raise ConfigurationError("--key-store-file needs --key-file or --key-env")
        return None
    if args.key_store_file is None and engine is None:
        raise ConfigurationError("the key options need --url (SQL key store) or --key-store-file")
    return _keyring(args, engine)


def bind_slots(stack: ExitStack, targets: Iterable[Any], keyring: Keyring | None) -> None:
    """Bind *keyring* to the keyring slots of *targets* until *stack* closes."""
    if keyring is not None:
        for target in targets:
            stack.enter_context(_slots_bound(target, keyring))


def _trail_key(args: argparse.Namespace) -> bytes | None:
    from securecustomer.cli._audit import read_key

    return read_key(args.audit_key_env, args.audit_key_file)


def _trail_sink(args: argparse.Namespace, stack: ExitStack) -> Any:
    from securecustomer import audit

    if args.audit_jsonl:
        if not Path(args.audit_jsonl).parent.is_dir():
            raise ConfigurationError(f"--audit-jsonl {args.audit_jsonl!r}: no such directory")
        return audit.JsonlAuditSink(args.audit_jsonl)
    if args.audit_sql:
        from sqlalchemy import inspect

        engine = stack.enter_context(_engine(args.audit_sql))
        # Checked before anything changes: an erasure must not run when its receipt could
        # not be written, and a mistyped URL must not start a new trail.
        if not inspect(engine).has_table(args.audit_table):
            raise ConfigurationError(
                f"no audit table {args.audit_table!r} in the --audit-sql database "
                "(these commands never create one: SqlAuditSink(engine).create())"
            )
        return audit.SqlAuditSink(engine, table=args.audit_table)
    return None


def open_trail(args: argparse.Namespace, stack: ExitStack) -> AuditTrail | None:
    """The trail of the ``--audit-*`` options, or None (the library's default trail)."""
    from securecustomer.audit import AuditTrail

    sink = _trail_sink(args, stack)
    key = _trail_key(args)
    if sink is None:
        if key is not None:
            raise ConfigurationError(
                "--audit-key-env/--audit-key-file need --audit-jsonl or --audit-sql"
            )
        return None
    if key is None:
        raise ConfigurationError(
            "the audit trail needs its key: --audit-key-env VAR or --audit-key-file PATH"
        )
    return AuditTrail(sink, key=key)


def trail_records(
    args: argparse.Namespace, stack: ExitStack
) -> AuditTrail | Iterable[Record] | None:
    """The trail (verified by the library) with a key, else its records unverified."""
    from securecustomer.audit import AuditTrail

    key = _trail_key(args)
    sink = _trail_sink(args, stack)
    if sink is None:
        return open_trail(args, stack)  # refuses a key without a trail
    if key is not None:
        return AuditTrail(sink, key=key)
    print(
        "warning: no --audit-key-*: the audit trail is read without verifying it", file=sys.stderr
    )
    return _records(sink)  # read once, record by record: never held in memory


def _records(sink: Any) -> Iterator[Record]:
    """The sink's records, opened only once they are read (not on a refused command)."""
    yield from sink.records()


def require_trail(trail: AuditTrail | None) -> None:
    """Refuse early when neither the options nor the application give an audit trail."""
    from securecustomer.audit import default_trail

    if trail is None:
        try:
            default_trail.get()
        except ConfigurationError:
            raise ConfigurationError(
                "no audit trail: give --audit-jsonl PATH or --audit-sql URL with "
                "--audit-key-env VAR or --audit-key-file PATH"
            ) from None


def legal_holds(args: argparse.Namespace, engine: Engine) -> LegalHolds | None:
    """The legal holds table of the database, or None (with a note) when it is absent."""
    from sqlalchemy import inspect

    from securecustomer.privacy import LegalHolds

    if not inspect(engine).has_table(args.holds_table):
        print(
            f"note: no table {args.holds_table!r} in the database: no legal hold is checked",
            file=sys.stderr,
        )
        return None
    return LegalHolds(engine, table=args.holds_table)
