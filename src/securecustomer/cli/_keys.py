"""``securecustomer keys``: key status, rotation, re-encryption and (in `_emergency`) the
response to a compromised key.

The commands only parse, load and print: the work is `Keyring.status`, `Keyring.rotate`
and `securecustomer.sqlalchemy.reencrypt`. They never create a key store or a root key:
a key store without a root key is refused (a mistyped path or URL must not start a new
key hierarchy). SQLAlchemy is imported only when a ``keys`` command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from securecustomer.keys import Keyring
    from securecustomer.sqlalchemy._reencrypt import ReencryptReport

__all__ = ["add_keys_parser", "run_keys"]

_SHOWN_FAILURES = 10


def add_keys_parser(commands: Any) -> None:
    """Add ``keys status``, ``rotate``, ``reencrypt`` and ``emergency`` to *commands*."""
    from securecustomer.cli._emergency import add_emergency_parser

    keys = commands.add_parser(
        "keys", help="show and rotate keys, re-encrypt stored values, respond to a compromised key"
    )
    keys.set_defaults(keys_parser=keys)
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION")

    status = actions.add_parser("status", help="list root and data keys with their states")
    _key_options(status, store_required=True)

    rotate = actions.add_parser("rotate", help="create a new data key version for a scope")
    rotate.add_argument("scope", metavar="SCOPE", help='the key scope, e.g. "customers.email"')
    _key_options(rotate, store_required=True)

    reencrypt = actions.add_parser(
        "reencrypt", help="move every value of a model to the current data keys"
    )
    reencrypt.add_argument("--url", required=True, help="database URL of the model's table")
    reencrypt.add_argument(
        "--model",
        required=True,
        metavar="MODULE:CLASS",
        help="the mapped class (or Table) to re-encrypt, e.g. myapp.models:Customer",
    )
    reencrypt.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory to import MODULE from (default: the current directory)",
    )
    reencrypt.add_argument(
        "--batch-size",
        type=_positive_int,
        default=500,
        metavar="N",
        help="rows per transaction (default: %(default)s)",
    )
    reencrypt.add_argument(
        "--dry-run", action="store_true", help="count what would change, write nothing"
    )
    reencrypt.add_argument(
        "--checkpoint-table",
        default="securecustomer_reencrypt_progress",
        metavar="NAME",
        help="table that remembers progress for a resumed run (default: %(default)s)",
    )
    reencrypt.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default when not a TTY)"
    )
    _key_options(reencrypt, store_required=False)
    add_emergency_parser(actions)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _key_options(
    parser: argparse.ArgumentParser, *, store_required: bool, master_required: bool = True
) -> None:
    master = parser.add_mutually_exclusive_group(required=master_required)
    master.add_argument("--key-file", metavar="PATH", help="the local master key file")
    master.add_argument(
        "--key-env", metavar="VARIABLE", help="environment variable holding the master key"
    )
    file_help = "a JSON key store file"
    if store_required:
        store = parser.add_mutually_exclusive_group(required=True)
        store.add_argument("--url", help="database URL of the SQL key store")
        store.add_argument("--key-store-file", metavar="PATH", help=file_help)
    else:
        file_help += " (default: the SQL key store in the --url database)"
        parser.add_argument("--key-store-file", metavar="PATH", help=file_help)
    parser.add_argument(
        "--key-table",
        default="securecustomer_keys",
        metavar="NAME",
        help="table of the SQL key store (default: %(default)s)",
    )


def run_keys(args: argparse.Namespace) -> int:
    """Run one ``keys`` action; returns the exit status."""
    if args.keys_command is None:
        args.keys_parser.print_help()
        return 2
    try:
        action: Callable[[argparse.Namespace], int] = _ACTIONS[args.keys_command]
        return action(args)
    except KeyboardInterrupt:
        if args.keys_command != "reencrypt":
            raise
        print(
            "\nsecurecustomer keys reencrypt: interrupted: committed batches are kept, the "
            "batch in flight was rolled back; run the command again to resume",
            file=sys.stderr,
        )
        return 130


# -- actions --------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    with _store_engine(args) as engine:
        rows = [
            (
                s.kind,
                s.scope or "-",
                str(s.version),
                f"{s.key_id:#010x}" if s.key_id is not None else "-",
                s.state.value,
                str(s.root_version) if s.root_version is not None else "-",
                s.created_at.isoformat(timespec="seconds"),
            )
            for s in _keyring(args, engine).status()
        ]
    header = ("KIND", "SCOPE", "VERSION", "KEY ID", "STATE", "ROOT", "CREATED")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    with _store_engine(args) as engine:
        status = _keyring(args, engine).rotate(args.scope)
    key_id = f"{status.key_id:#010x}" if status.key_id is not None else "-"
    print(
        f"rotated {args.scope}: key {key_id} (version {status.version}) encrypts new values; "
        "older versions are decrypt-only"
    )
    print("re-encrypt stored values with: securecustomer keys reencrypt --url ... --model ...")
    return 0


def _reencrypt(args: argparse.Namespace) -> int:
    from securecustomer.sqlalchemy._reencrypt import reencrypt

    target = _import(args.model, args.app_dir)
    with _engine(args.url) as engine:
        keyring = _keyring(args, engine)
        show = not args.no_progress and sys.stderr.isatty()
        bar = _Bar(sys.stderr) if show else None
        with _slots_bound(target, keyring):
            try:
                report = reencrypt(
                    engine,
                    target,
                    batch_size=args.batch_size,
                    checkpoint=args.checkpoint_table,
                    dry_run=args.dry_run,
                    progress=bar,
                )
            finally:
                if bar is not None:
                    bar.close()
    _print_report(report)
    return 0 if report.ok else 1


def _emergency(args: argparse.Namespace) -> int:
    from securecustomer.cli._emergency import run_emergency

    return run_emergency(args)


_ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": _status,
    "rotate": _rotate,
    "reencrypt": _reencrypt,
    "emergency": _emergency,
}


# -- loading --------------------------------------------------------------------------------


def _store_engine(args: argparse.Namespace) -> AbstractContextManager[Engine | None]:
    """An engine on --url for the SQL key store, or None with --key-store-file."""
    return _engine(args.url) if args.url is not None else nullcontext(None)


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _keyring(args: argparse.Namespace, engine: Engine | None) -> Keyring:
    from securecustomer.exceptions import ConfigurationError
    from securecustomer.keys import FileKeyStore, Keyring, KeyStore, LocalKeyProvider
    from securecustomer.sqlalchemy import SqlKeyStore

    if args.key_file is not None:
        provider = LocalKeyProvider.from_file(args.key_file)
    else:
        provider = LocalKeyProvider.from_env(args.key_env)
    store: KeyStore
    if args.key_store_file is not None:
        store, where = FileKeyStore(args.key_store_file), f"key store file {args.key_store_file}"
    elif engine is None:  # pragma: no cover - argparse requires --url or --key-store-file
        raise ConfigurationError("--url or --key-store-file is required")
    else:
        store, where = SqlKeyStore(engine, table_name=args.key_table), f"table {args.key_table}"
    if not store.roots():
        raise ConfigurationError(
            f"{where} holds no root key: wrong --url or --key-store-file? (these commands never "
            "create a key store)"
        )
    return Keyring(provider, store).load()


def _import(
    spec: str, app_dir: str, *, option: str = "--model", attribute_required: bool = True
) -> Any:
    """The object *spec* (``MODULE:ATTR``) names; the module itself when ATTR is left out
    and not *attribute_required*."""
    from securecustomer.exceptions import ConfigurationError

    module_name, _, path = spec.partition(":")
    if not module_name or (attribute_required and not path):
        raise ConfigurationError(
            f"{option} {spec!r}: expected MODULE:CLASS, e.g. myapp.models:Customer"
        )
    sys.path.insert(0, app_dir)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # the application's own module: any error it raises
        first_line = (str(exc).splitlines() or [""])[0]
        raise ConfigurationError(
            f"{option} {spec!r}: cannot import {module_name}: {type(exc).__name__}: {first_line}"
        ) from None
    finally:
        sys.path.remove(app_dir)
    for part in path.split(".") if path else ():
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(f"{option} {spec!r}: {module_name} has no {path}") from None
    return target


@contextmanager
def _slots_bound(target: Any, keyring: Keyring) -> Iterator[None]:
    """Bind *keyring* to every keyring slot the target's encrypted columns use, then restore."""
    from sqlalchemy import Table, inspect

    from securecustomer.exceptions import ConfigurationError
    from securecustomer.sqlalchemy import Encrypted, KeyringSlot, default_keyring

    table = (
        target
        if isinstance(target, Table)
        else getattr(inspect(target, False), "local_table", None)
    )
    if not isinstance(table, Table):
        raise ConfigurationError(f"{target!r} is neither a mapped class nor a Table")
    slots: dict[int, KeyringSlot] = {}
    for column in table.columns:
        if isinstance(column.type, Encrypted):
            source = column.type.keyring if column.type.keyring is not None else default_keyring
            if isinstance(source, KeyringSlot):  # a Keyring object: the model brings its own
                slots[id(source)] = source
    previous: list[tuple[KeyringSlot, Keyring | None]] = []
    for slot in slots.values():
        try:
            previous.append((slot, slot.get()))
        except ConfigurationError:
            previous.append((slot, None))
        slot.bind(keyring)
    try:
        yield
    finally:
        for slot, old in previous:
            if old is None:
                slot.unbind()
            else:
                slot.bind(old)


# -- output ---------------------------------------------------------------------------------


class _Bar:
    """A one-line progress bar: ``[#####     ] 1234/5000 rows``, redrawn in place."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * min(done, total) // total if total else self.width
        bar = "#" * filled + " " * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} rows")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _ids(counts: dict[int, int] | Any) -> str:
    return ", ".join(f"{key_id:#010x}: {count}" for key_id, count in counts.items()) or "-"


def _print_report(report: ReencryptReport) -> None:
    verb = "would re-encrypt" if report.dry_run else "re-encrypted"
    start = (
        f" (resumed after primary key {report.resumed_from!r})"
        if report.resumed_from is not None
        else ""
    )
    print(
        f"{report.table}: {report.rows_scanned} rows scanned{start}{' (dry run)' * report.dry_run}"
    )
    print(f"  {verb}: {report.values_reencrypted} values in {report.rows_changed} rows")
    print(f"  already current: {report.values_current} values")
    print(f"  destroyed keys: {report.values_destroyed} values (erased, left as they are)")
    print(
        f"  blind indexes {'to update' if report.dry_run else 'updated'}: {report.indexes_updated}"
    )
    print(f"  conflicts: {report.conflicts} rows (changed meanwhile; the next run checks them)")
    print(f"  errors: {report.errors} values")
    print(f"  key ids before: {_ids(report.key_ids_before)}")
    print(f"  key ids after: {_ids(report.key_ids_after)}")
    for failure in report.failures[:_SHOWN_FAILURES]:
        print(f"  error: {failure.column} at primary key {failure.primary_key!r}: {failure.reason}")
    if report.errors > _SHOWN_FAILURES:
        print(f"  ... and {report.errors - _SHOWN_FAILURES} more errors")
    if not report.dry_run and report.ok:
        print(
            "done. Once a --dry-run finds nothing to re-encrypt, key versions no value uses "
            "can be disabled: Keyring.set_state(key_id, KeyState.DISABLED)"
        )
