"""`@audited`: one decorator that leaves an event for every call, sync or async.

The event is written after the call, with its outcome: ``success``, ``denied`` (an
`AuthorizationError` such as the policy engine's `AccessDenied`, re-raised) or ``error``
(the exception's type only: a message may hold data). Argument and return values are never
recorded unless named in ``record``. The data subject is stored as the trail's keyed
pseudonym, never as the id given.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

from securecustomer.audit._context import current_actor
from securecustomer.audit._event import AuditEvent
from securecustomer.audit._trail import AuditTrail
from securecustomer.exceptions import AuthorizationError, ConfigurationError

__all__ = ["TrailSlot", "audited", "default_trail"]

P = ParamSpec("P")
R = TypeVar("R")

Spec = str | Callable[..., Any] | None


class TrailSlot:
    """The trail `audited` writes to when it is given none: bind one at start-up."""

    def __init__(self) -> None:
        self._trail: AuditTrail | None = None

    def bind(self, trail: AuditTrail | None) -> None:
        self._trail = trail

    def get(self) -> AuditTrail:
        if self._trail is None:
            raise ConfigurationError(
                "no audit trail: pass trail= to @audited or call "
                "securecustomer.audit.default_trail.bind(trail) at start-up"
            )
        return self._trail


default_trail = TrailSlot()


def _check_spec(spec: Spec, names: Iterable[str], what: str, fn: Callable[..., Any]) -> None:
    if isinstance(spec, str) and spec not in names:
        raise TypeError(f"@audited on {fn.__qualname__}: no parameter {spec!r} for {what}")


def _value(spec: Spec, arguments: Mapping[str, Any]) -> Any:
    if spec is None:
        return None
    if callable(spec):
        return spec(**arguments)
    return arguments[spec]


def audited(
    action: str,
    *,
    resource: str | Callable[..., str] | None = None,
    resource_id: Spec = None,
    subject: Spec = None,
    fields: Iterable[str] | Spec = None,
    record: Iterable[str] = (),
    trail: AuditTrail | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record an `AuditEvent` for every call of the decorated function.

    *resource* is the resource type (or a callable over the call's arguments by name);
    *resource_id*, *subject* and *fields* name a parameter or are such callables (*fields*
    may also be a list of names). *record* lists parameters whose values go into the
    event's ``extra`` (``"return"`` records the return value). *trail* defaults to
    `default_trail`.

    Example:
        ```python
        @audited("read", resource="customer", resource_id="customer_id",
                 subject="customer_id", fields=["name", "email"])
        def show_customer(customer_id: int) -> dict: ...
        ```
    """
    wanted = tuple(record)
    fixed_fields = None
    if fields is not None and not isinstance(fields, str) and not callable(fields):
        fixed_fields = tuple(fields)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        names = list(signature.parameters)
        _check_spec(resource_id, names, "resource_id", fn)
        _check_spec(subject, names, "subject", fn)
        if fixed_fields is None:
            _check_spec(fields, names, "fields", fn)  # type: ignore[arg-type]
        for name in wanted:
            if name != "return" and name not in names:
                raise TypeError(f"@audited on {fn.__qualname__}: no parameter {name!r} to record")

        def emit(
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            started: float,
            outcome: str,
            exc: BaseException | None,
            result: Any,
        ) -> None:
            target = trail if trail is not None else default_trail.get()
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            who = current_actor()
            subject_id = _value(subject, arguments)
            touched: tuple[str, ...] = ()
            if fixed_fields is not None:
                touched = fixed_fields
            elif fields is not None:
                touched = tuple(_value(fields, arguments) or ())  # type: ignore[arg-type]
            extra = {name: arguments[name] for name in wanted if name != "return"}
            if "return" in wanted and outcome == "success":
                extra["return"] = result
            reason = None
            decision = getattr(exc, "decision", None)
            if decision is not None:
                reason = getattr(decision, "reason", None)
            identity = _value(resource_id, arguments)
            target.append(
                AuditEvent(
                    action=action,
                    actor=None if who is None else who.id,
                    actor_attributes={} if who is None else who.attributes,
                    request_id=None if who is None else who.request_id,
                    resource_type=resource(**arguments) if callable(resource) else resource,
                    resource_id=None if identity is None else str(identity),
                    subject=None if subject_id is None else target.pseudonym(subject_id),
                    fields=touched,
                    outcome=outcome,
                    error_type=None if exc is None else type(exc).__name__,
                    reason=reason,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    extra=extra,
                )
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_audited(*args: P.args, **kwargs: P.kwargs) -> Any:
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)  # type: ignore[misc,unused-ignore]
                except AuthorizationError as exc:
                    emit(args, kwargs, started, "denied", exc, None)
                    raise
                except Exception as exc:
                    emit(args, kwargs, started, "error", exc, None)
                    raise
                emit(args, kwargs, started, "success", None, result)
                return result

            return async_audited  # type: ignore[return-value,unused-ignore]

        @functools.wraps(fn)
        def sync_audited(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except AuthorizationError as exc:
                emit(args, kwargs, started, "denied", exc, None)
                raise
            except Exception as exc:
                emit(args, kwargs, started, "error", exc, None)
                raise
            emit(args, kwargs, started, "success", None, result)
            return result

        return sync_audited

    return decorate
