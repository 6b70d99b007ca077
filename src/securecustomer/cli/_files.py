"""The files the commands read and write.

Input files are refused with the option, file and line that are wrong (a directory, a
missing file, text that is not UTF-8, a NUL byte, nesting too deep to parse), never with
the bytes read. Output files are written whole or not at all: `check_output` refuses a
directory or a missing parent directory before any work is done, and `replacing` writes
a temporary file next to the target (created readable by its owner only, by
``tempfile.mkstemp``) and renames it over the target only when the writing succeeded; on
any error the temporary file is removed and the target is left as it was. Without
``overwrite``, an existing target is refused, never replaced.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from securecustomer.exceptions import ConfigurationError, PolicyError

if TYPE_CHECKING:
    from securecustomer.policy import Policy

__all__ = [
    "check_output",
    "input_file",
    "load_policy",
    "read_text",
    "replacing",
    "text_lines",
]


def _named(path: str | os.PathLike[str], option: str | None) -> str:
    name = repr(os.fspath(path))
    return f"{option} {name}" if option else name


def input_file(path: str | os.PathLike[str], option: str | None = None) -> Path:
    """*path* if it is an existing file; else a `ConfigurationError` naming it."""
    source = Path(path)
    if source.is_dir():
        raise ConfigurationError(f"{_named(path, option)}: is a directory, not a file")
    if not source.is_file():
        raise ConfigurationError(f"{_named(path, option)}: no such file")
    return source


def read_text(path: str | os.PathLike[str], option: str) -> str:
    """The UTF-8 text of the file *path*, or a `ConfigurationError` naming *option*."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise ConfigurationError(f"{option}: cannot read {os.fspath(path)!r}: {reason}")


def text_lines(lines: Iterable[bytes], source: str) -> Iterator[str]:
    """The physical lines of a binary file as text, ends kept (as ``open(newline="")``).

    Each line is decoded on its own, so that an error names its line: not UTF-8, or a NUL
    byte (a binary file given by mistake). A UTF-8 byte order mark is dropped.
    """
    number = 0
    for chunk in lines:  # a binary file splits on b"\n"; a bare "\r" ends a line too
        for raw in chunk.splitlines(keepends=True):
            number += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigurationError(f"{source}, line {number}: not UTF-8 text") from None
            if "\0" in line:
                raise ConfigurationError(
                    f"{source}, line {number}: a NUL byte (a binary file, not text)"
                )
            yield line.removeprefix("\ufeff") if number == 1 else line


def load_policy(path: str, option: str | None = None) -> Policy:
    """The policy in the file *path*; every failure to load it is a `PolicyError` (or, for
    a missing file or a directory, a `ConfigurationError`)."""
    from securecustomer.policy import Policy

    input_file(path, option)
    try:
        return Policy.from_file(path)
    except RecursionError:
        raise PolicyError("nested too deeply to be read", source=path) from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"not UTF-8 text (byte {exc.start})", source=path) from None
    except OSError as exc:
        raise PolicyError(f"cannot read it: {exc.strerror}", source=path) from None


def check_output(path: str | os.PathLike[str], option: str, *, overwrite: bool = True) -> Path:
    """*path* as an output file: refused before any work if it is a directory or its
    directory does not exist or cannot be written; without *overwrite*, if it exists."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise ConfigurationError(f"{_named(path, option)}: is a directory, not a file")
    if not folder.is_dir():
        raise ConfigurationError(f"{_named(path, option)}: no such directory {str(folder)!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError(f"{_named(path, option)}: cannot write in {str(folder)!r}")
    if not overwrite and os.path.lexists(target):
        raise ConfigurationError(f"{_named(path, option)}: exists: add --force to overwrite it")
    return target


@contextmanager
def replacing(
    path: str | os.PathLike[str], option: str, *, overwrite: bool = True
) -> Iterator[Path]:
    """A temporary file (mode 0600) to write; renamed to *path* when the block succeeds,
    removed when it raises. Without *overwrite*, an existing *path* is refused, before and
    (by a hard link, which never replaces a file) when the temporary file is moved."""
    target = check_output(path, option, overwrite=overwrite)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise ConfigurationError(
            f"{_named(path, option)}: cannot write: {exc.strerror or type(exc).__name__}"
        ) from None
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        try:
            _move(temporary, target, overwrite=overwrite)
        except FileExistsError:
            raise ConfigurationError(
                f"{_named(path, option)}: exists: add --force to overwrite it"
            ) from None
        except OSError as exc:
            raise ConfigurationError(
                f"{_named(path, option)}: cannot write: {exc.strerror or type(exc).__name__}"
            ) from None
    finally:
        temporary.unlink(missing_ok=True)


def _move(temporary: Path, target: Path, *, overwrite: bool) -> None:
    """Rename *temporary* to *target*; without *overwrite*, never over an existing file
    (`FileExistsError`, also for one created since `check_output`)."""
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.replace(temporary, target)
