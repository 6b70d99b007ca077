"""`@audited`: one decorator that leaves an event for every call, sync or async.

The event is written after the call, with its outcome: ``success``, ``denied`` (an
`AuthorizationError` such as the policy engine's `AccessDenied`, re-raised) or ``error``
(the exception's type only: a message may hold data). Argument and return values are never
recorded unless named in ``record``. The data subject is stored as the trail's keyed
pseudonym, never as the id given; so is a resource id that names the data subject (the
same value as the subject's id, or any value of a resource id declared with
``resource_id_is_subject=True``): stored in clear next to the pseudonym, it would link the
two for anyone who reads the trail, and keep an erased subject's id in it.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

from securecustomer.audit._context import current_actor
from securecustomer.audit._event import SCHEMA_VERSION, utc_now
from securecustomer.audit._trail import AuditTrail
from securecustomer.crypto._nonces import nonce
from securecustomer.exceptions import AuthorizationError, ConfigurationError, UsageError

__all__ = ["TrailSlot", "audited", "default_trail"]

P = ParamSpec("P")
R = TypeVar("R")

Spec = str | Callable[..., Any] | None
CountSpec = int | str | Callable[[Any], object] | None


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
        raise UsageError(f"@audited on {fn.__qualname__}: no parameter {spec!r} for {what}")


def _counted(value: object, fn: Callable[..., Any]) -> int:
    """A count of subjects: a whole number as it is, a collection by its length."""
    if type(value) is int and value >= 0:
        return value
    if not isinstance(value, str | bytes) and hasattr(value, "__len__"):
        return len(value)
    raise UsageError(
        f"@audited on {fn.__qualname__}: subject_count gave a {type(value).__name__}, "
        "not a number of subjects (0 or more) or a collection to count"
    )


def _value(spec: Spec, arguments: Mapping[str, Any]) -> Any:
    if spec is None:
        return None
    if callable(spec):
        return spec(**arguments)
    return arguments[spec]


class _Arguments:
    """Reads a call's arguments by name without `inspect.Signature.bind` (which costs
    more than the rest of an audit event): positional index, keyword, else default."""

    def __init__(self, signature: inspect.Signature) -> None:
        self.slots: dict[str, tuple[int | None, Any]] = {}
        for index, param in enumerate(signature.parameters.values()):
            positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
            default = None if param.default is param.empty else param.default
            self.slots[param.name] = (index if positional else None, default)

    def view(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
        return _CallArguments(self.slots, args, kwargs)


class _CallArguments(Mapping[str, Any]):
    __slots__ = ("args", "kwargs", "slots")

    def __init__(
        self,
        slots: Mapping[str, tuple[int | None, Any]],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        self.slots, self.args, self.kwargs = slots, args, kwargs

    def __getitem__(self, name: str) -> Any:
        index, default = self.slots[name]
        if index is not None and index < len(self.args):
            return self.args[index]
        return self.kwargs.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.slots)

    def __len__(self) -> int:
        return len(self.slots)


def audited(
    action: str,
    *,
    resource: str | Callable[..., str] | None = None,
    resource_id: Spec = None,
    subject: Spec = None,
    fields: Iterable[str] | Spec = None,
    record: Iterable[str] = (),
    trail: AuditTrail | None = None,
    resource_id_is_subject: bool = False,
    subject_count: CountSpec = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record an `AuditEvent` for every call of the decorated function.

    *resource* is the resource type (or a callable over the call's arguments by name);
    *resource_id*, *subject* and *fields* name a parameter or are such callables (*fields*
    may also be a list of names). *record* lists parameters whose values go into the
    event's ``extra`` (``"return"`` records the return value). *trail* defaults to
    `default_trail`.

    A resource id equal to the subject's id is stored as the subject's pseudonym, never in
    clear; *resource_id_is_subject* ``True`` says that the resource id always names a data
    subject (a customer id without ``subject=``, say) and pseudonymizes every value of it.

    *subject_count* says how many data subjects a successful call touched, for the access
    monitor (a list endpoint, a batch): ``"return"`` counts the return value, a parameter
    name counts that argument (a whole number as it is, a collection by its length), a
    callable is given the return value and returns the number or collection, an int is
    fixed. A count that is neither raises `UsageError`. Failed and denied calls carry none.

    Example:
        ```python
        @audited("read", resource="customer", resource_id="customer_id",
                 subject="customer_id", fields=["name", "email"])
        def show_customer(customer_id: int) -> dict: ...

        @audited("list", resource="customer", subject_count="return")
        def list_customers(page: int) -> list[dict]: ...
        ```
    """
    wanted = tuple(record)
    fixed_fields = None
    if fields is not None and not isinstance(fields, str) and not callable(fields):
        fixed_fields = tuple(fields)

    if resource_id_is_subject and resource_id is None:
        raise ConfigurationError("@audited: resource_id_is_subject needs a resource_id")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        names = list(signature.parameters)
        _check_spec(resource_id, names, "resource_id", fn)
        _check_spec(subject, names, "subject", fn)
        if fixed_fields is None:
            _check_spec(fields, names, "fields", fn)  # type: ignore[arg-type]
        for name in wanted:
            if name != "return" and name not in names:
                raise UsageError(f"@audited on {fn.__qualname__}: no parameter {name!r} to record")
        if isinstance(subject_count, str) and subject_count != "return":
            _check_spec(subject_count, names, "subject_count", fn)
        if isinstance(subject_count, bool) or (
            isinstance(subject_count, int) and subject_count < 0
        ):
            raise UsageError(f"@audited on {fn.__qualname__}: subject_count must be 0 or more")

        def count(arguments: Mapping[str, Any], result: Any) -> int:
            if isinstance(subject_count, int):
                return subject_count
            if subject_count == "return":
                return _counted(result, fn)
            if isinstance(subject_count, str):
                return _counted(arguments[subject_count], fn)
            return _counted(subject_count(result), fn)  # type: ignore[misc]

        getters = _Arguments(signature)
        get_actor = current_actor
        needs_all = any(callable(spec) for spec in (resource, resource_id, subject, fields))

        def emit(
            target: AuditTrail,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            started: float,
            outcome: str,
            exc: BaseException | None,
            result: Any,
        ) -> None:
            if needs_all:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                arguments: Mapping[str, Any] = bound.arguments
            else:
                arguments = getters.view(args, kwargs)
            who = get_actor()
            subject_id = _value(subject, arguments)
            touched: tuple[str, ...] = ()
            if fixed_fields is not None:
                touched = fixed_fields
            elif fields is not None:
                named = _value(fields, arguments) or ()  # type: ignore[arg-type]
                touched = (named,) if isinstance(named, str) else tuple(named)
            extra = {}
            if wanted:
                extra = {name: arguments[name] for name in wanted if name != "return"}
                if "return" in wanted and outcome == "success":
                    extra["return"] = result
            reason = None
            if exc is not None:
                decision = getattr(exc, "decision", None)
                if decision is not None:
                    reason = getattr(decision, "reason", None)
            subject_text = None if subject_id is None else str(subject_id)
            identity = subject_id if resource_id == subject else _value(resource_id, arguments)
            identity_text = None if identity is None else str(identity)
            if identity_text is not None and (
                resource_id_is_subject or identity_text == subject_text
            ):  # an id naming the data subject: never stored in clear (see the docstring)
                identity_text = target.pseudonym(identity_text)
            # The dict of AuditEvent.to_dict, built directly (the hot path of every call).
            data: dict[str, Any] = {
                "schema": SCHEMA_VERSION,
                "id": nonce().hex(),
                "timestamp": utc_now(),
                "action": action,
                "actor": None if who is None else who.id,
                "actor_attributes": {} if who is None else who.plain,
                "resource_type": resource(**arguments) if callable(resource) else resource,
                "resource_id": identity_text,
                "subject": None if subject_text is None else target.pseudonym(subject_text),
                "fields": touched,  # a tuple encodes as the list it reads back as
                "outcome": outcome,
                "error_type": None if exc is None else type(exc).__name__,
                "reason": reason,
                "duration_ms": (time.perf_counter() - started) * 1000,
                "request_id": None if who is None else who.request_id,
                "extra": extra,
            }
            if subject_count is not None and outcome == "success":
                data["subject_count"] = count(arguments, result)
            target.append_data(data)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_audited(*args: P.args, **kwargs: P.kwargs) -> Any:
                target = trail if trail is not None else default_trail.get()
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)  # type: ignore[misc,unused-ignore]
                except AuthorizationError as exc:
                    emit(target, args, kwargs, started, "denied", exc, None)
                    raise
                except Exception as exc:
                    emit(target, args, kwargs, started, "error", exc, None)
                    raise
                emit(target, args, kwargs, started, "success", None, result)
                return result

            return async_audited  # type: ignore[return-value,unused-ignore]

        @functools.wraps(fn)
        def sync_audited(*args: P.args, **kwargs: P.kwargs) -> R:
            target = trail if trail is not None else default_trail.get()
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except AuthorizationError as exc:
                emit(target, args, kwargs, started, "denied", exc, None)
                raise
            except Exception as exc:
                emit(target, args, kwargs, started, "error", exc, None)
                raise
            emit(target, args, kwargs, started, "success", None, result)
            return result

        return sync_audited

    return decorate
