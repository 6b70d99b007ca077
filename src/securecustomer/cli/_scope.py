"""``securecustomer audit scope``: what an incident touched, read from the audit trail."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from securecustomer.cli._audit import _key_options, _source_options, _when, read_checkpoints
from securecustomer.exceptions import ConfigurationError

__all__ = ["add_scope_parser", "run_scope"]


def add_scope_parser(actions: Any) -> None:
    from securecustomer.cli._emergency import _key_id
    from securecustomer.cli._privacy_options import id_type_option, resource_type_option

    scope = actions.add_parser(
        "scope",
        help="the subjects, fields and counts an incident touched, and when to notify",
        description="Select the events of an incident (by actor, key, period) and report the "
        "data subjects (as pseudonyms), fields and record counts they touched, with the "
        "GDPR article 33 notification deadline. With the trail key, the trail is verified "
        "first and --candidates ids can be identified behind the pseudonyms.",
    )
    _source_options(scope)
    _key_options(scope, required=False)
    scope.add_argument("--actor", help="events by this actor")
    scope.add_argument(
        "--key-id", type=_key_id, metavar="KEY_ID", help="events under this data key (0x...)"
    )
    scope.add_argument("--since", type=_when, help="ISO date or datetime (UTC if naive)")
    scope.add_argument(
        "--until",
        type=_until,
        help="ISO date or datetime (UTC if naive), inclusive: a date covers that whole day",
    )
    scope.add_argument(
        "--action", action="append", dest="actions", metavar="ACTION", help="repeatable"
    )
    scope.add_argument(
        "--outcome",
        action="append",
        dest="outcomes",
        metavar="OUTCOME",
        help="event outcomes counted; repeatable (default: success)",
    )
    scope.add_argument(
        "--discovered-at",
        type=_when,
        help="when the incident was discovered (default: now); notify 72 hours later",
    )
    scope.add_argument(
        "--candidates",
        metavar="FILE",
        help="subject ids to identify behind the pseudonyms, one per line (needs the key); "
        "the ids found are printed: keep such a report to yourself",
    )
    scope.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="a saved checkpoint (JSON) the trail must still reach: without one, a trail cut "
        "at its tail verifies; repeatable",
    )
    scope.add_argument(
        "--subject-prefix",
        default="subject:",
        metavar="PREFIX",
        help="with --key-id: the prefix of subject key scopes (encrypt_rows' subject_prefix), "
        "so that a subject's key is matched and shown by pseudonym (default: %(default)s)",
    )
    resource_type_option(
        scope,
        "with --key-id: the resource type the trail's events give a table (default: the "
        "table name), so that events on the key's table are found; repeatable",
    )
    id_type_option(scope)
    scope.add_argument("--format", choices=("markdown", "json"), default="markdown")
    keys = scope.add_argument_group(
        "keyring", "with --key-id: the keys that tell which scope the key encrypts"
    )
    master = keys.add_mutually_exclusive_group()
    master.add_argument("--master-key-file", metavar="PATH", help="the local master key file")
    master.add_argument(
        "--master-key-env", metavar="VARIABLE", help="environment variable holding the master key"
    )
    store = keys.add_mutually_exclusive_group()
    store.add_argument("--key-store-url", metavar="URL", help="database URL of the SQL key store")
    store.add_argument("--key-store-file", metavar="PATH", help="a JSON key store file")
    keys.add_argument(
        "--key-table",
        default="securecustomer_keys",
        metavar="NAME",
        help="table of the SQL key store (default: %(default)s)",
    )


def _records(sink: Any) -> Iterator[Any]:
    """The sink's records, opened only once they are read (not on a refused command)."""
    yield from sink.records()


def _until(text: str) -> dt.datetime:
    """The end of the period: a date alone means the last instant of that day (UTC)."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return _when(text)
    start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return start - dt.timedelta(microseconds=1)


def run_scope(args: argparse.Namespace, sink: Any, key: bytes | None) -> int:
    """Run ``audit scope`` over *sink*; returns the exit status."""
    from securecustomer.audit import AuditTrail
    from securecustomer.cli._keys import _engine, _keyring
    from securecustomer.cli._privacy_options import resource_types, subject_id
    from securecustomer.privacy import breach_scope

    candidates = []
    if args.candidates is not None:
        if key is None:
            raise ConfigurationError("--candidates needs the trail key (--key-env or --key-file)")
        try:
            lines = Path(args.candidates).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"--candidates {args.candidates!r}: cannot read it: {exc}"
            ) from None
        candidates = [subject_id(line.strip(), args.id_type) for line in lines if line.strip()]
    if args.checkpoint and key is None:
        raise ConfigurationError("--checkpoint needs the trail key (--key-env or --key-file)")
    source: Any
    if key is not None:
        source = AuditTrail(sink, key=key)
    else:
        print("warning: no --key-env/--key-file: the trail is read unverified", file=sys.stderr)
        source = _records(sink)  # read once, record by record: never held in memory
    with ExitStack() as stack:
        keyring = None
        if args.master_key_file is not None or args.master_key_env is not None:
            engine = None
            if args.key_store_url is not None:
                engine = stack.enter_context(_engine(args.key_store_url))
            elif args.key_store_file is None:
                raise ConfigurationError("the keyring needs --key-store-url or --key-store-file")
            keys = argparse.Namespace(
                key_file=args.master_key_file,
                key_env=args.master_key_env,
                key_store_file=args.key_store_file,
                key_table=args.key_table,
            )
            keyring = _keyring(keys, engine)
        elif args.key_store_url is not None or args.key_store_file is not None:
            raise ConfigurationError("the key store needs --master-key-file or --master-key-env")
        scope = breach_scope(
            source,
            actor=args.actor,
            key_id=args.key_id,
            keyring=keyring,
            since=args.since,
            until=args.until,
            actions=args.actions,
            outcomes=tuple(args.outcomes or ("success",)),
            discovered_at=args.discovered_at,
            candidates=candidates,
            checkpoints=read_checkpoints(args.checkpoint),
            subject_prefix=args.subject_prefix,
            resource_types=resource_types(args.resource_type),
        )
    if scope.inferred_events or scope.unnamed_events:
        print(
            f"note: {scope.inferred_events} events were counted by inference and "
            f"{scope.unnamed_events} touched subjects they do not name: see the report",
            file=sys.stderr,
        )
    if scope.trail_verified is False:
        problems = "; ".join(scope.trail_problems) or "it does not verify"
        print(f"warning: the audit trail was tampered with: {problems}", file=sys.stderr)
    named = bool(candidates)  # asked for: the responder's own list, to notify (article 34)
    if args.format == "markdown":
        print(scope.to_markdown(include_identified=named))
    else:
        print(scope.to_json(include_identified=named))
    return 0
