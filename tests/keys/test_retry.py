"""RetryPolicy: the deadline bounds the whole call, slow attempts included."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest
from clock import FakeClock

from securecustomer.exceptions import KeyProviderError, KeyProviderUnavailable
from securecustomer.keys import RetryPolicy

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def transient(_: BaseException) -> KeyProviderError:
    return KeyProviderUnavailable("the server is away")


class TestDeadline:
    """An attempt still running at the deadline is abandoned; the caller is told why."""

    def test_slow_attempt_abandoned(self) -> None:
        release, abandoned = threading.Event(), threading.Event()

        def slow() -> str:
            release.wait(30)
            return "too late"

        policy = RetryPolicy(attempts=3, deadline=0.5)
        started = time.monotonic()
        with pytest.raises(KeyProviderUnavailable, match=r"within the 0\.5 s deadline") as info:
            policy.run(slow, classify=transient, what="x", where="Test", abandon=abandoned.set)
        elapsed = time.monotonic() - started
        release.set()
        assert elapsed < 5.0, elapsed  # the attempt alone would take 30 s
        assert abandoned.is_set()
        assert "Test did not answer x" in str(info.value)
        assert "(1 attempt)" in str(info.value)

    def test_runs_in_the_callers_context(self) -> None:
        WHO.set("alice")
        assert "alice" == RetryPolicy().run(WHO.get, classify=transient, what="x")

    def test_backoff_that_ends_at_the_deadline(self) -> None:
        """No attempt starts with no time left: the last real error is raised."""
        clock = FakeClock()
        policy = RetryPolicy(
            attempts=5,
            deadline=1.0,
            base_delay=1.0,
            max_delay=1.0,
            jitter=lambda: 1.0,
            clock=clock,
            sleep=clock.advance,
        )
        calls: list[int] = []

        def failing() -> None:
            calls.append(1)
            raise ConnectionError("refused")

        with pytest.raises(KeyProviderUnavailable, match=r"away \(x: 1 attempt\)") as info:
            policy.run(failing, classify=transient, what="x")
        assert 1 == len(calls)
        assert isinstance(info.value.__cause__, ConnectionError)
