"""Acting on decisions: `guard`'s decorator, raising on a denial, `apply` to a record."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

from securecustomer.exceptions import AccessDenied, PolicyError, PolicyUsageError, StepUpRequired
from securecustomer.policy._masks import BUILTIN_MASKS
from securecustomer.policy._model import Decision, Outcome, Resource, Subject

__all__ = ["apply", "make_guard", "raise_unless_allowed"]

P = ParamSpec("P")
R = TypeVar("R")


def make_guard(
    require: Callable[..., Decision],
    action: str,
    resource: Resource | str | Callable[..., Resource],
    subject: str | Callable[..., Subject],
    *,
    fields: Iterable[str] | None,
    purpose: str | None,
    context: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The decorator behind `PolicyEngine.guard`: one check, sync and async shells."""
    wanted = None if fields is None else frozenset(fields)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            who = pick(subject, arguments, "subject", fn)
            what = (
                resource
                if isinstance(resource, Resource)
                else pick(resource, arguments, "resource", fn)
            )
            extra = context(**arguments) if callable(context) else context
            require(who, action, what, fields=wanted, purpose=purpose, context=extra)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
                check(args, kwargs)
                return await fn(*args, **kwargs)  # type: ignore[misc,unused-ignore]

            return async_guarded  # type: ignore[return-value,unused-ignore]

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            check(args, kwargs)
            return fn(*args, **kwargs)

        return guarded

    return decorate


def pick(spec: Any, arguments: Mapping[str, Any], what: str, fn: Callable[..., Any]) -> Any:
    if callable(spec):
        return spec(**arguments)
    if spec not in arguments:
        raise PolicyUsageError(
            f"guard on {fn.__qualname__}: no parameter named {spec!r} for the {what}"
        )
    return arguments[spec]


def raise_unless_allowed(
    decision: Decision, subject: Subject, action: str, resource: Resource
) -> Decision:
    if decision.outcome is Outcome.ALLOW:
        return decision
    what = f"{subject.id!r} may not {action!r} {resource.type!r}"
    if decision.outcome is Outcome.STEP_UP:
        raise StepUpRequired(
            f"{what} without a fresh MFA: {decision.reason}",
            decision=decision,
            max_age=decision.step_up_max_age,
        )
    raise AccessDenied(f"{what}: {decision.reason}", decision=decision)


def apply(
    decision: Decision,
    record: Mapping[str, Any],
    *,
    masks: Mapping[str, Callable[[Any], Any]] | None = None,
) -> dict[str, Any]:
    """A copy of *record* with the fields *decision* hides removed and its masks applied.

    Raises `AccessDenied` unless the decision allows. *masks* defaults to the built-in ones.

    Example:
        ```python
        apply(decision, {"name": "Ada", "email": "ada@example.com", "ssn": "078-05-1120"})
        # {'name': 'Ada', 'email': 'a***@example.com'}
        ```
    """
    if decision.outcome is not Outcome.ALLOW:
        raise AccessDenied(f"cannot show a record: {decision.reason}", decision=decision)
    functions = BUILTIN_MASKS if masks is None else masks
    out: dict[str, Any] = {}
    for field, value in record.items():
        if not decision.visible(field):
            continue
        mask = decision.masks.get(field)
        if mask is None:
            out[field] = value
        elif mask not in functions:
            raise PolicyError(f"unknown mask {mask!r} for field {field!r}")
        else:
            out[field] = functions[mask](value)
    return out
