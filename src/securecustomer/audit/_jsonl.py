"""`JsonlAuditSink`: the trail as JSON lines in a file, shared safely by several processes.

Every append happens under an exclusive ``fcntl.flock`` on a sidecar ``<file>.lock`` (and a
thread lock), so any number of threads and processes can write one trail:

1. take the lock;
2. find the head: the last complete line of the current file (cached, but the file's
   identity and size are checked again under the lock, so other processes' appends are
   seen), or of the newest rotated file when the current one is empty or missing;
3. **torn line recovery**: if the file does not end with a newline, a writer died in the
   middle of a write. Its append never returned, so its events were never acknowledged:
   the partial line is truncated away before anything is linked after it;
4. write the new lines in one ``write`` to a file opened with ``O_APPEND``; fsync as the
   ``fsync`` policy says;
5. rotate when the file has reached ``max_bytes``: it is renamed to
   ``<file>.<first seq>-<last seq>`` (20 digits each, so names sort in order) and the
   chain continues in a new ``<file>``.

Readers (`records`) take a shared lock only while they open the files, then read without
it; a trailing line that has no newline yet (an append in flight) is not read. A line that
is not a valid record (edited by hand, planted) is returned as a placeholder `Record` at its
position, with a ``problem`` naming the file and line; a line that is a record but not
exactly its canonical encoding comes back with a ``problem`` too (`parse_line`). The
verifier reports either as tampering where it is; reading never raises on a line's content.

Files are created with mode ``0600``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Final, Literal

import attrs

from securecustomer.audit._chain import GENESIS, Record, parse_line
from securecustomer.audit._trail import EventLike, Linker
from securecustomer.exceptions import AuditError, ConfigurationError

__all__ = ["JsonlAuditSink"]

FsyncPolicy = Literal["always", "batch", "never"]
_FSYNC: Final = ("always", "batch", "never")
_MODE: Final = 0o600
_TAIL_BLOCK: Final = 8192


class JsonlAuditSink:
    """An `AuditSink` writing one JSON object (`Record.to_dict`) per line to *path*.

    *fsync*: ``"always"`` (the default) makes every append durable before it returns;
    ``"batch"`` fsyncs at most every *sync_interval* seconds (and on rotation and
    `sync`), so a crash of the machine may lose the last second of events; ``"never"``
    leaves it to the operating system. *max_bytes* rotates the file once it has reached
    that size (``None``: never).

    Example:
        ```python
        sink = JsonlAuditSink("/var/log/app/audit.jsonl", max_bytes=64 * 2**20)
        trail = AuditTrail(sink, key=audit_key)
        ```
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "always",
        max_bytes: int | None = None,
        sync_interval: float = 1.0,
    ) -> None:
        if fsync not in _FSYNC:
            raise ConfigurationError(f"fsync must be one of {', '.join(_FSYNC)}, not {fsync!r}")
        if max_bytes is not None and max_bytes < 1:
            raise ConfigurationError("max_bytes must be positive (or None: never rotate)")
        self.path = Path(path)
        self.fsync: FsyncPolicy = fsync
        self.max_bytes = max_bytes
        self.sync_interval = sync_interval
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._rotated = re.compile(re.escape(self.path.name) + r"\.(\d{20})-(\d{20})")
        self._thread_lock = threading.Lock()
        self._cached: tuple[int, int, int, Record | None] | None = None  # dev, ino, size, head
        self._last_sync = time.monotonic()
        self._unsynced = False

    def __repr__(self) -> str:
        return f"<JsonlAuditSink {str(self.path)!r} fsync={self.fsync!r}>"

    # -- locking ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, kind: int) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE)
        try:
            fcntl.flock(fd, kind)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # -- files -----------------------------------------------------------------------------

    def rotated_files(self) -> list[Path]:
        """The rotated files of this trail, oldest first."""
        directory = self.path.parent
        if not directory.is_dir():
            return []
        names = [n for n in os.listdir(directory) if self._rotated.fullmatch(n)]
        return [directory / n for n in sorted(names)]

    def files(self) -> list[Path]:
        """Every file of this trail in order: the rotated ones, then the current one."""
        current = [self.path] if self.path.exists() else []
        return [*self.rotated_files(), *current]

    # -- appending -------------------------------------------------------------------------

    def append(self, events: Sequence[EventLike], link: Linker) -> list[Record]:
        """Link *events* after the trail's head and write them, as one locked step."""
        try:
            with self._thread_lock, self._locked(fcntl.LOCK_EX):
                return self._append_locked(events, link)
        except OSError as exc:
            raise AuditError(
                f"audit file {str(self.path)!r}: {type(exc).__name__} ({exc.strerror})"
            ) from exc

    def _append_locked(self, events: Sequence[EventLike], link: Linker) -> list[Record]:
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:  # the first file, or the first after a rotation
            fd = os.open(self.path, flags | os.O_CREAT, _MODE)
            if self.fsync != "never":
                _sync_directory(self.path.parent)  # the new name survives a crash too
        try:
            stat = os.fstat(fd)
            cached = self._cached
            if cached is not None and cached[:3] == (stat.st_dev, stat.st_ino, stat.st_size):
                head = cached[3]
            else:
                head = self._head(fd, stat.st_size)
            new = link(head, events)
            if not new:
                return new
            data = b"".join(r.line() + b"\n" for r in new)
            _write_all(fd, data)
            self._sync(fd)
            size = os.fstat(fd).st_size
            self._cached = (stat.st_dev, stat.st_ino, size, new[-1])
            if self.max_bytes is not None and size >= self.max_bytes:
                self._rotate(fd, new[-1].seq)
            return new
        finally:
            os.close(fd)

    def head(self) -> Record | None:
        """The last complete record (what a checkpoint signs), read from the end of the
        current file under the lock, without reading the rest."""
        try:
            with self._thread_lock, self._locked(fcntl.LOCK_EX):
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
                except FileNotFoundError:
                    rotated = self.rotated_files()
                    if not rotated:
                        return None
                    fd = os.open(rotated[-1], os.O_RDWR | os.O_CLOEXEC)
                try:
                    return self._head(fd, os.fstat(fd).st_size)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise AuditError(
                f"audit file {str(self.path)!r}: {type(exc).__name__} ({exc.strerror})"
            ) from exc

    def _head(self, fd: int, size: int) -> Record | None:
        """The last complete record of the current file (truncating a torn last line),
        or of the newest rotated file when the current one is empty."""
        end = _complete_end(fd, size)
        if end < size:
            os.ftruncate(fd, end)  # a writer died mid-line: drop its unacknowledged part
            os.fsync(fd)
        if end > 0:
            return _parse_line(_last_line(fd, end), self.path)
        rotated = self.rotated_files()
        if not rotated:
            return None
        with open(rotated[-1], "rb") as f:
            last = os.fstat(f.fileno()).st_size
            return _parse_line(_last_line(f.fileno(), _complete_end(f.fileno(), last)), rotated[-1])

    def _sync(self, fd: int) -> None:
        if self.fsync == "always":
            os.fsync(fd)
        elif self.fsync == "batch":
            self._unsynced = True
            now = time.monotonic()
            if now - self._last_sync >= self.sync_interval:
                os.fsync(fd)
                self._last_sync, self._unsynced = now, False

    def _rotate(self, fd: int, last_seq: int) -> None:
        first = _parse_line(_first_line(fd), self.path).seq
        if self.fsync != "never":
            os.fsync(fd)
            self._last_sync, self._unsynced = time.monotonic(), False
        target = self.path.with_name(f"{self.path.name}.{first:020d}-{last_seq:020d}")
        os.rename(self.path, target)
        self._cached = None
        if self.fsync != "never":
            _sync_directory(self.path.parent)

    def sync(self) -> None:
        """Fsync the current file now (with ``fsync="batch"``: before a planned shutdown)."""
        with self._thread_lock, self._locked(fcntl.LOCK_EX):
            if self.path.exists():
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._last_sync, self._unsynced = time.monotonic(), False

    # -- reading ---------------------------------------------------------------------------

    def records(self) -> Iterator[Record]:
        """Every stored record in order: rotated files first, then the current file."""
        opened: list[tuple[IO[bytes], Path, int]] = []
        try:
            with self._locked(fcntl.LOCK_SH):
                for path in self.files():
                    try:
                        handle = open(path, "rb")  # noqa: SIM115 - closed after reading
                    except FileNotFoundError:
                        continue
                    opened.append((handle, path, os.fstat(handle.fileno()).st_size))
        except OSError as exc:
            for f, _, _ in opened:
                f.close()
            raise AuditError(f"audit file {str(self.path)!r}: {type(exc).__name__}") from exc
        return self._read(opened)

    def _read(self, opened: list[tuple[IO[bytes], Path, int]]) -> Iterator[Record]:
        last: Record | None = None
        try:
            for f, path, size in opened:
                remaining = size
                for number, line in enumerate(f, 1):
                    if remaining <= 0 or not line.endswith(b"\n") or len(line) > remaining:
                        break  # an append in flight, or a torn last line
                    remaining -= len(line)
                    try:
                        record = parse_line(line[:-1])
                    except ValueError as exc:
                        seq = 1 if last is None else last.seq + 1
                        prev = GENESIS if last is None else last.hash
                        where = f"line {number} of {path.name}:"
                        record = Record.unreadable(seq, prev, f"{where} {exc}")
                    else:
                        if record.problem is not None:
                            where = f"line {number} of {path.name}"
                            record = attrs.evolve(record, problem=f"{where} {record.problem}")
                    last = record
                    yield record
        finally:
            for f, _, _ in opened:
                f.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _complete_end(fd: int, size: int) -> int:
    """The offset just after the last newline before *size* (0 if there is none)."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_BLOCK)
        block = os.pread(fd, end - start, start)
        if start + len(block) == size and block.endswith(b"\n"):
            return size
        found = block.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _last_line(fd: int, end: int) -> bytes:
    """The line that ends at *end* (which is just after a newline)."""
    chunks: list[bytes] = []
    stop = end - 1  # the newline itself
    while stop > 0:
        start = max(0, stop - _TAIL_BLOCK)
        block = os.pread(fd, stop - start, start)
        found = block.rfind(b"\n")
        if found >= 0:
            chunks.append(block[found + 1 :])
            break
        chunks.append(block)
        stop = start
    return b"".join(reversed(chunks))


def _first_line(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        block = os.pread(fd, _TAIL_BLOCK, offset)
        if not block:
            return b"".join(chunks)
        found = block.find(b"\n")
        if found >= 0:
            chunks.append(block[:found])
            return b"".join(chunks)
        chunks.append(block)
        offset += len(block)


def _parse_line(line: bytes, path: Path) -> Record:
    try:
        return parse_line(line)
    except ValueError as exc:
        raise AuditError(f"audit file {str(path)!r}: a line is {exc}") from None
