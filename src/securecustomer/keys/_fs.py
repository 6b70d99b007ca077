"""Atomic, private file writes, scrubbing of leftovers, and an inter-process lock (``flock``).

A file is replaced by writing its next content to a temporary file in the same directory
and renaming it over the old one. A process killed between the two leaves the temporary
file behind, holding a full copy of what it was writing (for a key store: every wrapped
key). Writers that hold a lock therefore use one fixed temporary name (`temp_path`), and
`scrub` removes it, and the random names older versions used, before it can outlive a
`destroy()`. Overwriting with zeros before unlinking is best-effort: on SSDs, copy-on-write
and journaling filesystems, and in snapshots, old blocks may survive; use full-disk
encryption for the key store's volume.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "leftovers", "locked", "scrub", "temp_path"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 1 << 16


def temp_path(path: Path) -> Path:
    """The one temporary file a writer holding *path*'s lock writes to: ``.NAME.tmp``."""
    return path.with_name(f".{path.name}.tmp")


def leftovers(path: Path) -> list[Path]:
    """Temporary files of *path* left by killed writers: ``.NAME.tmp``, and ``.NAME.*.tmp``
    (the random names of `tempfile.mkstemp`, used by older versions)."""
    found = [temp_path(path)] if os.path.lexists(temp_path(path)) else []
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return found
    prefix = f".{path.name}."
    return found + [
        path.with_name(n)
        for n in sorted(names)
        if n.startswith(prefix) and n.endswith(".tmp") and len(n) > len(prefix) + 4
    ]


def scrub(paths: list[Path]) -> None:
    """Overwrite each regular file in *paths* with zeros, then unlink it (best-effort)."""
    if not paths:
        return
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            _zero(path)
            os.unlink(path)
    _fsync_directory(paths[0].parent)


def _zero(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | _NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        return  # a symlink or something we cannot open: only unlink it
    try:
        size = os.fstat(fd).st_size
        zeros = bytes(min(size, _CHUNK))
        written = 0
        while written < size:
            written += os.write(fd, zeros[: size - written])
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path, data: bytes, *, exclusive: bool = False, temp: Path | None = None
) -> None:
    """Write *data* to *path* with mode 0600: all of it or nothing, durable on return.

    With *exclusive*, raise `FileExistsError` instead of replacing an existing file.
    With *temp* (a caller holding a lock: see `temp_path`), write through that fixed
    name instead of a random one, so that a crash leaves a file `scrub` can find.
    """
    directory = path.parent
    if temp is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        tmp = Path(name)
    else:
        tmp = temp
        scrub([tmp] if os.path.lexists(tmp) else [])
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # fails with FileExistsError, never replaces
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            scrub([tmp])
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # pragma: no cover
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock on *path* (created with mode 0600)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
