"""Random 96-bit nonces from the OS, fetched in blocks: one system call per 256 nonces.

Safety argument, for reviewers:

- Every nonce is 12 bytes of ``os.urandom`` output, the same source a per-call
  ``os.urandom(12)`` would use; fetching 3 KiB at once changes only the cost.
- Each thread has its own block (`threading.local`), and a nonce is removed from the
  block (``list.pop``) before it is used, so no two encryptions in one process share one.
- A forked child must never reuse what its parent drew. ``os.register_at_fork`` replaces
  the whole pool in the child before any Python code runs there (CPython runs these hooks
  for ``os.fork`` and for C code that honours ``PyOS_AfterFork_Child``, as the C API
  requires of anything that keeps running Python after ``fork()``).
- Nonces are public (they are written into every token), so a block in memory reveals
  nothing that the tokens will not.
"""

from __future__ import annotations

import os
import threading
from typing import Final

__all__ = ["BLOCK", "nonce"]

NONCE_SIZE: Final = 12
BLOCK: Final = 256  # nonces per system call

_pool = threading.local()


def _forget_pool_after_fork() -> None:
    global _pool
    _pool = threading.local()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def refill() -> bytes:
    """Fetch a new block for this thread and return its first nonce."""
    data = os.urandom(NONCE_SIZE * BLOCK)
    nonces = [data[i : i + NONCE_SIZE] for i in range(0, len(data), NONCE_SIZE)]
    pool = _pool
    pool.nonces = nonces
    return nonces.pop()


def nonce() -> bytes:
    """One fresh 12-byte nonce, never returned twice in this process or its children."""
    try:
        return _pool.nonces.pop()  # type: ignore[no-any-return]
    except (AttributeError, IndexError):  # first use in this thread, or block used up
        return refill()
