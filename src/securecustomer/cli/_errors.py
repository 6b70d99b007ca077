"""How the ``securecustomer`` command reports an error: one line, one exit status.

Every command's error ends here (`report`, called once, by `main`)::

    securecustomer <command>: error: <what was wrong and where>

on stderr, and exit status 2 (`EXIT_ERROR`). The line says what the user can act on:
the library's own errors already name the file, option or key id; the standard
library's are reduced to a safe summary (``OSError``: the file and the system's
reason; ``UnicodeDecodeError``: "not UTF-8 text", never the bytes). An exception the
command did not expect is named by its type only: its message could hold a value read
from the input. No traceback is printed, except with ``--debug`` or the environment
variable ``SECURECUSTOMER_DEBUG`` set (to anything but "", "0"), for a bug report.

Exit statuses: 0 ok; 1 the command ran and its answer is "no" (a finding at or above
``--fail-on``, a trail that does not verify, a re-encryption with errors, a policy that
does not load in ``policy lint``); 2 bad usage or input, or any other error (argparse
exits 2 for usage errors too); 130 interrupted.
"""

from __future__ import annotations

import csv
import os
import sys
import traceback
from typing import TextIO

from securecustomer.exceptions import SecureCustomerError

__all__ = [
    "DEBUG_VARIABLE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "describe",
    "in_debug_mode",
    "report",
]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
DEBUG_VARIABLE = "SECURECUSTOMER_DEBUG"


def in_debug_mode(flag: bool) -> bool:
    """True with ``--debug`` or ``SECURECUSTOMER_DEBUG`` set to a true-ish value."""
    return flag or os.environ.get(DEBUG_VARIABLE, "").strip() not in ("", "0")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0].strip()


def _database_error(exc: BaseException) -> str | None:
    """A SQLAlchemy error, as the driver's error's first line (without its parameters)."""
    errors = sys.modules.get("sqlalchemy.exc")  # loaded by any command that used it
    if errors is None or not isinstance(exc, errors.SQLAlchemyError):
        return None
    cause = getattr(exc, "orig", None) or exc
    return f"database: {type(cause).__name__}: {_first_line(str(cause))}"


def describe(exc: BaseException) -> str:
    """What went wrong, in one line that holds no value read from the input."""
    if isinstance(exc, SecureCustomerError):
        return _one_line(str(exc)) or type(exc).__name__
    database = _database_error(exc)
    if database is not None:
        return _one_line(database)
    if isinstance(exc, UnicodeDecodeError):
        return "the input is not UTF-8 text"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply"
    if isinstance(exc, csv.Error):
        return _one_line(f"malformed CSV: {exc}")
    if isinstance(exc, ImportError):  # an optional dependency (pyarrow for Parquet, ...)
        return _one_line(_first_line(str(exc)) or f"cannot import {exc.name}")
    if isinstance(exc, OSError):
        names = [repr(name) for name in (exc.filename, exc.filename2) if name is not None]
        reason = exc.strerror or type(exc).__name__
        return _one_line(": ".join([" -> ".join(names), reason] if names else [reason]))
    if isinstance(exc, MemoryError):
        return "out of memory: the input is too large"
    return (
        f"unexpected {type(exc).__name__} (please report it; --debug or "
        f"{DEBUG_VARIABLE}=1 shows the traceback)"
    )


def report(command: str, exc: BaseException, *, debug: bool, stream: TextIO | None = None) -> int:
    """Print *exc* as the command's one error line; returns the exit status."""
    out = sys.stderr if stream is None else stream
    if debug:
        traceback.print_exception(exc, file=out)
    if isinstance(exc, KeyboardInterrupt):
        print(f"\nsecurecustomer {command}: interrupted", file=out)
        return EXIT_INTERRUPTED
    print(f"securecustomer {command}: error: {describe(exc)}", file=out)
    return EXIT_ERROR
