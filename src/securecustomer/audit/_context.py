"""Who is acting: the current actor and request id, in context variables.

`actor` sets them for a ``with`` block; they follow ``await`` and tasks started inside the
block. A thread started inside it sees them when its target is wrapped with `propagate`
(Python gives a new thread an empty context), or in every thread and thread pool once
`propagate_to_threads` was called at start-up; ``asyncio.to_thread`` copies the context
by itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

import attrs

from securecustomer.exceptions import ConfigurationError

__all__ = ["Actor", "actor", "current_actor", "propagate", "propagate_to_threads"]

P = ParamSpec("P")
R = TypeVar("R")


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(slots=True)
class Actor:
    """The acting principal: an id, attributes to record with each event, a request id."""

    id: str
    attributes: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)
    request_id: str | None = None
    plain: dict[str, Any] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # The attributes as the dict each event of this actor holds (copied once).
        object.__setattr__(self, "plain", dict(self.attributes))


_CURRENT: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
    "securecustomer_audit_actor", default=None
)


@contextlib.contextmanager
def actor(
    subject_or_id: Any, *, request_id: str | None = None, **attributes: Any
) -> Iterator[Actor]:
    """Act as *subject_or_id* (a `securecustomer.policy.Subject`, or an id) in this block.

    Example:
        ```python
        with actor(current_user, request_id=request.headers["X-Request-Id"], ip=client_ip):
            show_customer(42)      # its audit event names the actor and request id
        ```
    """
    identity = getattr(subject_or_id, "id", subject_or_id)
    if identity is None or (isinstance(identity, str) and not identity):
        raise ConfigurationError("an actor needs an id")
    who = Actor(str(identity), attributes, request_id)
    token = _CURRENT.set(who)
    try:
        yield who
    finally:
        _CURRENT.reset(token)


def current_actor() -> Actor | None:
    """The actor of the current context, or ``None``."""
    return _CURRENT.get()


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """*fn* bound to a copy of the current context, for threads and executors:
    ``Thread(target=propagate(work))``, ``pool.submit(propagate(work), ...)``."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return run


_installed = False
_install_lock = threading.Lock()


def propagate_to_threads() -> None:
    """Opt in, once at start-up: every thread started with `threading.Thread` and every
    task submitted to a `concurrent.futures.ThreadPoolExecutor` afterwards runs in a copy
    of the context that started it, so it sees the current `actor` without `propagate`.

    This wraps ``Thread.start`` and ``ThreadPoolExecutor.submit`` for the whole process (as
    OpenTelemetry's threading instrumentation does); it is never done implicitly.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        original_start = threading.Thread.start
        original_submit = ThreadPoolExecutor.submit

        def start(self: threading.Thread) -> None:
            context = contextvars.copy_context()
            run = self.run
            self.run = lambda: context.run(run)  # type: ignore[method-assign]
            original_start(self)

        def submit(
            self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
        ) -> Future[Any]:
            return original_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

        threading.Thread.start = start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]
        _installed = True
