"""``securecustomer audit scope``: what an incident touched, read from the audit trail."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from securecustomer.cli._audit import _key_options, _source_options, _when
from securecustomer.exceptions import ConfigurationError

__all__ = ["add_scope_parser", "run_scope"]


def add_scope_parser(actions: Any) -> None:
    from securecustomer.cli._emergency import _key_id
    from securecustomer.cli._privacy_options import id_type_option

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
    scope.add_argument("--until", type=_when, help="ISO date or datetime (UTC if naive)")
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
        help="subject ids to identify behind the pseudonyms, one per line (needs the key)",
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


def run_scope(args: argparse.Namespace, sink: Any, key: bytes | None) -> int:
    """Run ``audit scope`` over *sink*; returns the exit status."""
    from securecustomer.audit import AuditTrail
    from securecustomer.cli._keys import _engine, _keyring
    from securecustomer.cli._privacy_options import subject_id
    from securecustomer.privacy import breach_scope

    candidates = []
    if args.candidates is not None:
        if key is None:
            raise ConfigurationError("--candidates needs the trail key (--key-env or --key-file)")
        try:
            lines = Path(args.candidates).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read {args.candidates!r}: {exc}") from None
        candidates = [subject_id(line.strip(), args.id_type) for line in lines if line.strip()]
    source: Any
    if key is not None:
        source = AuditTrail(sink, key=key)
    else:
        print("warning: no --key-env/--key-file: the trail is read unverified", file=sys.stderr)
        source = list(sink.records())
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
        )
    if scope.trail_verified is False:
        problems = "; ".join(scope.trail_problems) or "it does not verify"
        print(f"warning: the audit trail was tampered with: {problems}", file=sys.stderr)
    print(scope.to_markdown() if args.format == "markdown" else scope.to_json())
    return 0
