"""Retries with exponential backoff and full jitter, and a deadline, for calls to key providers.

Providers translate their client's errors into `KeyProviderError` subclasses at one
boundary (a *classify* function); this module decides what to do with them:
`KeyProviderUnavailable` is retried until the attempts or the deadline run out, every
other error is raised at once (a permission error does not get better by asking again).

The deadline bounds the whole call, slow answers included. A socket timeout bounds one
read, so a server that sends its answer a byte at a time would hold a call for as long
as it likes; each attempt therefore runs in a worker thread, and the caller waits for it
no longer than the time left. An attempt still running at the deadline is abandoned:
the provider's *abandon* callback closes its connection where the client lets it (the
Vault provider does; botocore gives no handle on a request in flight, so an abandoned
KMS attempt ends when its server answers, closes or stalls past the read timeout). The
worker is a daemon thread, and it runs in a copy of the caller's `contextvars` context.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from securecustomer.exceptions import (
    ConfigurationError,
    KeyProviderError,
    KeyProviderUnavailable,
)

__all__ = ["RetryPolicy"]

_T = TypeVar("_T")


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"RetryPolicy.{attribute.name} must be positive")


@attrs.frozen
class RetryPolicy:
    """How a provider retries transient failures.

    Attributes:
        attempts: calls in all, the first included (1 means no retry).
        base_delay: the first backoff, in seconds; it doubles on each retry ...
        max_delay: ... up to this cap. Each wait is drawn uniformly from ``[0, backoff]``
            ("full jitter"), so that many clients do not retry in step.
        deadline: seconds the whole call may take, retries, waits and slow answers
            included: no attempt starts after it, and an attempt still running at it is
            abandoned (`KeyProviderUnavailable` naming the deadline).
        timeout: seconds one connect or one read may take; providers pass it to their
            client. It bounds a silent server; the deadline bounds a slow one.

    Example:
        ```python
        policy = RetryPolicy(attempts=5, deadline=20.0)
        provider = VaultTransitKeyProvider(client, key="customers", retry=policy)
        ```
    """

    attempts: int = attrs.field(default=4)
    base_delay: float = attrs.field(default=0.1, validator=_positive)
    max_delay: float = attrs.field(default=2.0, validator=_positive)
    deadline: float = attrs.field(default=15.0, validator=_positive)
    timeout: float = attrs.field(default=5.0, validator=_positive)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, repr=False, eq=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False, eq=False)
    jitter: Callable[[], float] = attrs.field(default=random.random, repr=False, eq=False)

    @attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or value < 1:
            raise ConfigurationError("RetryPolicy.attempts must be an int of at least 1")

    def run(
        self,
        operation: Callable[[], _T],
        *,
        classify: Callable[[BaseException], KeyProviderError],
        what: str,
        where: str = "the key provider",
        abandon: Callable[[], None] | None = None,
    ) -> _T:
        """Call *operation*, retrying what *classify* calls `KeyProviderUnavailable`.

        *classify* turns any exception of the client into the library's error; the
        original is chained as its cause. *what* names the call and *where* the server
        in the final message. *abandon* is called (from the caller's thread) when an
        attempt is still running at the deadline: it should close that attempt's
        connection, so that its worker thread ends.
        """
        started = self.clock()
        attempt = 0
        last: KeyProviderError | None = None
        while True:
            attempt += 1
            left = self.deadline - (self.clock() - started)
            if left <= 0 and last is not None:  # the backoff ate the time that was left
                raise last
            try:
                return _within(operation, left, abandon)
            except _Overdue:
                plural = "s" if attempt > 1 else ""
                raise KeyProviderUnavailable(
                    f"{where} did not answer {what} within the {self.deadline:g} s deadline "
                    f"of its RetryPolicy ({attempt} attempt{plural}): it answers too slowly "
                    "or not at all; the call was abandoned"
                ) from None
            except KeyProviderError:
                raise
            except Exception as exc:
                error = classify(exc)
                retry = (
                    isinstance(error, KeyProviderUnavailable)
                    and attempt < self.attempts
                    and self.clock() - started < self.deadline
                )
                if not retry:
                    if isinstance(error, KeyProviderUnavailable) and attempt > 1:
                        error = KeyProviderUnavailable(f"{error} ({what}: {attempt} attempts)")
                    raise error from exc
                plural = "s" if attempt > 1 else ""
                last = KeyProviderUnavailable(f"{error} ({what}: {attempt} attempt{plural})")
                last.__cause__ = exc
            backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
            wait = min(self.jitter() * backoff, max(0.0, self.deadline - (self.clock() - started)))
            self.sleep(wait)


class _Overdue(KeyProviderUnavailable):
    """An attempt did not finish before the deadline."""


def _within(operation: Callable[[], _T], seconds: float, abandon: Callable[[], None] | None) -> _T:
    """*operation*'s result, run in a worker thread; `_Overdue` after *seconds*."""
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            outcome.append((True, context.run(operation)))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))
        finally:
            done.set()

    worker = threading.Thread(target=work, name="securecustomer-provider-call", daemon=True)
    worker.start()
    try:
        finished = done.wait(max(seconds, 0.0))
    except BaseException:  # interrupted (KeyboardInterrupt): the attempt is left behind
        if abandon is not None:
            abandon()
        raise
    if not finished:
        if abandon is not None:
            abandon()
        raise _Overdue
    ok, value = outcome.pop()
    if ok:
        result: _T = value
        return result
    try:
        raise value
    finally:
        del value
