"""``securecustomer audit verify``, ``audit report`` and (in `_scope`) ``audit scope``."""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from securecustomer.exceptions import ConfigurationError

__all__ = ["add_audit_parser", "run_audit"]


def add_audit_parser(commands: Any) -> None:
    audit = commands.add_parser(
        "audit", help="verify an audit trail, report on its events, scope a breach"
    )
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify", help="check the hash chain (and checkpoints); exit 1 if it was tampered with"
    )
    _source_options(verify)
    _key_options(verify, required=True)
    verify.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint saved as JSON (trail.checkpoint().to_dict()); repeatable",
    )
    report = actions.add_parser("report", help="list the events of an actor, a period")
    _source_options(report)
    _key_options(report, required=False)
    report.add_argument("--actor", help="only this actor's events")
    report.add_argument("--action", help="only this action")
    report.add_argument("--since", type=_when, help="ISO date or datetime (UTC if naive)")
    report.add_argument("--until", type=_when, help="ISO date or datetime (UTC if naive)")
    report.add_argument("--format", choices=("text", "json"), default="text")
    from securecustomer.cli._scope import add_scope_parser

    add_scope_parser(actions)


def _source_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--jsonl", metavar="PATH", help="a JsonlAuditSink file")
    source.add_argument("--sql", metavar="URL", help="a SQLAlchemy URL of a SqlAuditSink")
    parser.add_argument(
        "--table", default="audit_events", help="the SQL table (default: %(default)s)"
    )


def _key_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    key = parser.add_mutually_exclusive_group(required=required)
    key.add_argument("--key-env", metavar="VAR", help="environment variable holding the trail key")
    key.add_argument("--key-file", metavar="PATH", help="file holding the trail key")


def _when(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _key(args: argparse.Namespace) -> bytes | None:
    return read_key(args.key_env, args.key_file)


def read_key(env: str | None, file: str | None) -> bytes | None:
    """The trail key from the environment variable *env* or the file *file*, if given."""
    if env:
        raw = os.environ.get(env)
        if raw is None:
            raise ConfigurationError(f"the environment variable {env!r} is not set")
        where = f"environment variable {env!r}"
    elif file:
        try:
            raw = Path(file).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read the key file {file!r}: {exc}") from None
        where = f"key file {file!r}"
    else:
        return None
    return decode_key(raw, where)


def decode_key(raw: str, where: str) -> bytes:
    """A trail key written as hex or base64 (at least 32 bytes)."""
    text = raw.strip()
    for decode in (bytes.fromhex, lambda s: base64.b64decode(s, validate=True)):
        try:
            key = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(key) >= 32:
            return key
    raise ConfigurationError(
        f"the {where} does not hold a key of 32 bytes or more in hex or base64"
    )


def _sink(args: argparse.Namespace) -> Any:
    from securecustomer import audit

    if args.jsonl:
        sink = audit.JsonlAuditSink(args.jsonl)
        if not sink.files():  # a mistyped (or deleted) trail must not verify as empty
            raise ConfigurationError(f"--jsonl {args.jsonl!r}: no audit trail in this file")
        return sink
    import sqlalchemy as sa

    return audit.SqlAuditSink(sa.create_engine(args.sql), table=args.table)


def run_audit(args: argparse.Namespace) -> int:
    """Run an ``audit`` command; 0: ok, 1: a finding (tampering, a bad record, an empty
    trail, a subject id in clear)."""
    from securecustomer.audit import AuditTrail

    sink = _sink(args)
    key = _key(args)
    if args.audit_command == "scope":
        from securecustomer.cli._scope import run_scope

        return run_scope(args, sink, key)
    if args.audit_command == "verify":
        assert key is not None  # noqa: S101 - the option is required
        checkpoints = read_checkpoints(args.checkpoint)
        report = AuditTrail(sink, key=key).verify(checkpoints=checkpoints)
        if report.ok and report.checked == 0:  # an emptied file or table proves nothing
            print(
                "EMPTY: the trail holds no records: nothing was verified (emptied or "
                "truncated, or the wrong file or table?); verify against a checkpoint"
            )
            return 1
        if report.ok:
            print(f"ok: {report.checked} records verified", end="")
            print(f", {len(checkpoints)} checkpoint(s) reached" if checkpoints else "")
            return 0
        print(
            f"TAMPERED: record {report.first_bad}: {report.problem} "
            f"({report.checked} records verified before it)"
        )
        return 1
    findings = 0
    trail = None
    if key is not None:
        trail = AuditTrail(sink, key=key)
        report = trail.verify()
        if not report.ok:
            findings += 1
            print(
                f"warning: the trail does not verify at record {report.first_bad}: "
                f"{report.problem}",
                file=sys.stderr,
            )
    linked: list[int] = []
    for line, problem in _report(sink, args, trail, linked):
        if problem is not None:
            findings += 1
            print(f"securecustomer: {problem}", file=sys.stderr)
        else:
            print(line)
    if linked:
        findings += 1
        listed = ", ".join(str(seq) for seq in linked[:_LISTED])
        more = f" and {len(linked) - _LISTED} more" if len(linked) > _LISTED else ""
        print(
            f"securecustomer: {len(linked)} events store the data subject's own id in clear "
            f"next to its pseudonym (resource_id): records {listed}{more}",
            file=sys.stderr,
        )
    return 1 if findings else 0


def read_checkpoints(paths: list[str]) -> list[Any]:
    """The checkpoints saved as JSON in the files *paths*."""
    from securecustomer.audit import Checkpoint

    checkpoints = []
    for path in paths:
        try:
            checkpoints.append(Checkpoint.from_dict(json.loads(Path(path).read_text())))
        except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise ConfigurationError(
                f"cannot read the checkpoint {path!r}: {type(exc).__name__}"
            ) from None
    return checkpoints


_LISTED = 20


def _report(
    sink: Any, args: argparse.Namespace, trail: Any, linked: list[int]
) -> Iterator[tuple[str, str | None]]:
    """The report's lines, as ``(line, None)``; a record that is not an event yields
    ``("", problem)`` and the report goes on. With *trail* (the key), the records whose
    resource id is the subject's own id, stored in clear next to its pseudonym, are added to
    *linked* (every record, whatever the filters) and the id is withheld from the output."""
    from securecustomer.exceptions import AuditError

    for record in sink.records():
        try:
            event = record.audit_event()
        except AuditError as exc:
            message = str(exc)
            prefix = f"record {record.seq}: "
            yield "", message if message.startswith(prefix) else prefix + message
            continue
        withheld = (
            trail is not None
            and event.subject is not None
            and event.resource_id is not None
            and event.resource_id != event.subject
            and trail.pseudonym(event.resource_id) == event.subject
        )
        if withheld:
            linked.append(record.seq)
        if args.actor is not None and event.actor != args.actor:
            continue
        if args.action is not None and event.action != args.action:
            continue
        if (args.since is not None and event.timestamp < args.since) or (
            args.until is not None and event.timestamp >= args.until
        ):
            continue
        if args.format == "json":
            data = {"seq": record.seq, **record.event}
            if withheld:
                data["resource_id"], data["resource_id_withheld"] = None, True
            yield json.dumps(data, sort_keys=True), None
            continue
        resource_id = "[withheld]" if withheld else event.resource_id
        target = "/".join(_shown(p) for p in (event.resource_type, resource_id) if p)
        fields = f" fields={_shown(','.join(event.fields))}" if event.fields else ""
        subject = f" subject={_shown(event.subject)}" if event.subject else ""
        error = f" ({_shown(event.error_type)})" if event.error_type else ""
        yield (
            f"{record.seq:>6} {record.event['timestamp']} {_shown(event.actor or '-')} "
            f"{_shown(event.action)} {target or '-'}{subject}{fields} {event.outcome}{error}",
            None,
        )


def _shown(text: str) -> str:
    """*text* as it is when printable ASCII, else JSON-quoted: no terminal escapes, no
    lone surrogates, from a trail anyone with write access may have planted."""
    return text if text.isascii() and text.isprintable() else json.dumps(text)
