"""Who is acting: the current actor and request id, in context variables.

`actor` sets them for a ``with`` block; they follow ``await`` and tasks started inside the
block. A thread started inside it sees them when its target is wrapped with `propagate`
(Python gives a new thread an empty context); ``asyncio.to_thread`` copies the context by
itself.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

import attrs

__all__ = ["Actor", "actor", "current_actor", "propagate"]

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
        raise ValueError("an actor needs an id")
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
