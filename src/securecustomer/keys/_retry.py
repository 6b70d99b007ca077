"""Retries with exponential backoff and full jitter, for calls to key providers.

Providers translate their client's errors into `KeyProviderError` subclasses at one
boundary (a *classify* function); this module decides what to do with them:
`KeyProviderUnavailable` is retried until the attempts or the deadline run out, every
other error is raised at once (a permission error does not get better by asking again).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

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
        deadline: seconds after which no new attempt starts, whatever *attempts* says.
        timeout: seconds one call may take; providers pass it to their client.

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
    ) -> _T:
        """Call *operation*, retrying what *classify* calls `KeyProviderUnavailable`.

        *classify* turns any exception of the client into the library's error; the
        original is chained as its cause. *what* names the call in the final message.
        """
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return operation()
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
            backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
            wait = min(self.jitter() * backoff, max(0.0, self.deadline - (self.clock() - started)))
            self.sleep(wait)
