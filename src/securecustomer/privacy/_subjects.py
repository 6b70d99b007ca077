"""Data-subject rights: export (access, portability) and erasure across registered models.

Rows are read and changed with Core statements on the mapped tables, never by loading
instances: a row whose subject key was destroyed cannot be loaded through the ORM
(``on_destroyed="raise"``), but its raw tokens can still be read, reported as erased and
updated. Values of row-bound and subject-scoped models are decrypted and sealed with the
model's `RowEncryption`, so they get the same context the ORM events give them.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import QueryableAttribute

from securecustomer.audit import AuditEvent
from securecustomer.exceptions import ConfigurationError
from securecustomer.privacy._holds import actor_event
from securecustomer.privacy._rows import (
    Shape,
    check_anonymize,
    follow_path,
    path_where,
    shape_of,
    subject_key_of,
    subject_value,
    subject_where,
)
from securecustomer.privacy._subject_key import canonical_subject_key
from securecustomer.sqlalchemy._types import Encrypted

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlalchemy.sql import ColumnElement

__all__ = [
    "ErasureMode",
    "SubjectModel",
    "register_subject",
    "registered_subject_models",
    "subject_rows",
]

ErasureMode = Literal["delete", "anonymize", "shred"]
MODES: tuple[str, ...] = ("delete", "anonymize", "shred")


@attrs.frozen(eq=False)
class SubjectModel:
    """How one mapped class holds data about a subject, and how to erase it.

    - ``subject``: the plain (unencrypted) attribute holding the subject id: of the model
      itself, or of the class the relationships ``via`` lead to.
    - ``via``: the relationship attributes from the model to the class holding
      ``subject`` (``("order",)`` for an order item whose order holds ``customer_id``);
      empty when the model holds the subject id itself.
    - ``erase``: ``"delete"`` the rows; ``"anonymize"`` them (each attribute of
      ``anonymize`` is replaced by its transform's result, None sets NULL; every
      encrypted or blind-index column not listed is set to NULL, a plain column not listed
      is kept as it is: list every plain column of personal data); or ``"shred"``: keep
      the rows and destroy the subject's key scope (the model must be subject-scoped with
      `encrypt_rows`), blind indexes set to NULL.
    - ``export``: the attributes an export includes (default: every column attribute
      except blind-index columns).
    """

    model: type[Any]
    subject: str
    erase: ErasureMode
    anonymize: Mapping[str, Callable[[Any], Any] | None]
    export: tuple[str, ...] | None
    name: str
    via: tuple[str, ...] = ()


_registry: dict[type[Any], SubjectModel] = {}


def model_shape(model: type[Any]) -> Shape:
    try:
        return shape_of(model)
    except NoInspectionAvailable:
        raise ConfigurationError(f"{model!r} is not a mapped class") from None


def check_subject_anonymize(
    shape: Shape, anonymize: Mapping[str, Callable[[Any], Any] | None], what: str
) -> None:
    """Refuse an anonymizing erasure that cannot be written, naming the attribute."""
    check_anonymize(shape, anonymize, what)
    name = shape.mapper.class_.__name__
    for key in shape.encrypted:
        if key in anonymize and shape.subject_scoped:
            raise ConfigurationError(
                f"{what}: {name}.{key} is encrypted under the subject's key, which erasure "
                "destroys; leave it out of anonymize (it is set to NULL)"
            )
        if key not in anonymize and not shape.column(key).nullable:
            raise ConfigurationError(
                f"{what}: {name}.{key} is NOT NULL, but anonymizing sets it to NULL; make it "
                "nullable or give it a transform"
            )


def jsonable(value: Any) -> Any:
    """*value* as JSON can hold it (see `SubjectExport`)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    return str(value)  # Decimal, UUID, ...


def _path(model: type[Any], via: str | Sequence[Any], where: str) -> tuple[str, ...]:
    """*via* as attribute names: a dotted string, or mapped attributes from *model* on."""
    if isinstance(via, str):
        return tuple(via.split("."))
    names: list[str] = []
    owner: Any = model
    for attribute in via:
        if not isinstance(attribute, QueryableAttribute):
            raise ConfigurationError(f"{where}: via= takes mapped attributes, not {attribute!r}")
        if not model_shape(owner).mapper.isa(attribute.parent.mapper):
            raise ConfigurationError(
                f"{where}: the path does not start at {model.__name__} or does not chain: "
                f"{attribute} is not an attribute of {owner.__name__}"
            )
        names.append(attribute.key)
        prop = attribute.property
        owner = getattr(getattr(prop, "mapper", None), "class_", owner)
    return tuple(names)


def _subject_path(
    shape: Shape, via: str | Sequence[Any], where: str
) -> tuple[tuple[str, ...], str, Shape]:
    """The relationships of *via*, the subject attribute at its end, and that class's
    `Shape`; `ConfigurationError` naming the step that does not exist."""
    names = _path(shape.mapper.class_, via, where)
    if len(names) < 2 or not all(names):
        raise ConfigurationError(
            f"{where}: via= must follow one or more relationships and end at a column "
            'holding the subject id, such as "order.customer_id"'
        )
    end = shape
    for name in names[:-1]:
        found = end.mapper.relationships.get(name)
        if found is None:
            raise ConfigurationError(
                f"{where}: {end.mapper.class_.__name__} has no relationship {name!r}"
            )
        end = model_shape(found.mapper.class_)
    key = names[-1]
    if key in end.mapper.relationships:
        raise ConfigurationError(
            f"{where}: via= must end at a column holding the subject id, not at the "
            f"relationship {end.mapper.class_.__name__}.{key}"
        )
    return names[:-1], key, end


def register_subject(
    model: type[Any],
    *,
    subject: str | None = None,
    via: str | Sequence[Any] | None = None,
    erase: ErasureMode = "delete",
    anonymize: Mapping[str, Callable[[Any], Any] | None] | None = None,
    export: Iterable[str] | None = None,
    name: str | None = None,
) -> SubjectModel:
    """Register *model* as holding data about the subject named by its *subject* attribute,
    or, with *via*, by the attribute at the end of a relationship path (personal data a
    foreign key or more away from the subject id).

    *via* is a dotted path of relationship attributes ending at a plain column
    (``"order.customer_id"``: the item's ``order`` relationship, then that order's
    ``customer_id``) or the same as mapped attributes (``[OrderItem.order,
    Order.customer_id]``). Export and erasure find the rows with one join along the path;
    erasing the model's rows happens before the rows of the classes the path goes through
    (child tables first), so deleting orders does not hide their items. For ``"shred"`` the
    model must be subject-scoped by a column of its own (``encrypt_rows(OrderItem,
    subject="order_id", subject_prefix="order:")``): the key scopes destroyed are those the
    rows are encrypted under (one per order here), so such a scope must hold only data of
    the subject.

    Raises `ConfigurationError` for an unknown attribute, an encrypted *subject* column, a
    second registration, ``"shred"`` on a model that is not subject-scoped, ``anonymize``
    with another mode, an anonymization that would set a NOT NULL column to NULL, and an
    encrypted column of a subject-scoped model in ``anonymize`` (its value would be
    written under the key that erasure destroys). Transforms should be idempotent
    (``f(f(x)) == f(x)``), so that erasing twice changes nothing the second time. The
    *name* (default: the class name) keys the model's rows in an export.

    Example:
        ```python
        register_subject(Customer, subject="id", erase="anonymize",
                         anonymize={"name": lambda _: "erased", "email": None})
        register_subject(Order, subject="customer_id", erase="shred")
        ```
    """
    shape = model_shape(model)
    where = f"register_subject({model.__name__})"
    if erase not in MODES:
        raise ConfigurationError(f"{where}: erase must be one of {', '.join(MODES)}")
    if model in _registry:
        raise ConfigurationError(f"{where}: {model.__name__} is already registered")
    if (subject is None) == (via is None):
        raise ConfigurationError(
            f"{where}: give either subject= (an attribute of {model.__name__}) or via= "
            "(a relationship path to the subject id), not both or neither"
        )
    steps: tuple[str, ...] = ()
    end = shape
    if via is not None:
        steps, subject, end = _subject_path(shape, via, where)
    subject = str(subject)  # given, or found at the end of the path
    owner = end.mapper.class_.__name__
    if subject not in end.mapper.column_attrs:
        raise ConfigurationError(f"{where}: {owner} has no column attribute {subject!r}")
    if isinstance(end.column(subject).type, Encrypted) or subject in end.indexes:
        raise ConfigurationError(
            f"{where}: {owner}.{subject} must be a plain column: rows are found by it"
        )
    rows = shape.rows
    if not steps and rows is not None and rows.subject is not None and rows.subject != subject:
        raise ConfigurationError(
            f"{where}: encrypt_rows binds {model.__name__} to the subject in {rows.subject!r}, "
            f"not {subject!r}"
        )
    if erase == "shred" and not shape.subject_scoped:
        raise ConfigurationError(
            f'{where}: erase="shred" needs a subject-scoped model '
            f'(encrypt_rows({model.__name__}, subject="{subject if not steps else "..."}"))'
        )
    if anonymize and erase != "anonymize":
        raise ConfigurationError(f'{where}: anonymize= is only used with erase="anonymize"')
    anonymize = dict(anonymize or {})
    if erase == "anonymize":
        check_subject_anonymize(shape, anonymize, where)
    fields: tuple[str, ...] | None = None
    if export is not None:
        if isinstance(export, str):
            raise ConfigurationError(f"{where}: export must be a collection of attribute names")
        fields = tuple(export)
        for key in fields:
            if key not in shape.mapper.column_attrs:
                raise ConfigurationError(f"{where}: {model.__name__} has no attribute {key!r}")
    label = name if name is not None else model.__name__
    registered = SubjectModel(model, subject, erase, anonymize, fields, label, steps)
    _registry[model] = registered
    return registered


def registered_subject_models() -> tuple[SubjectModel, ...]:
    """Every registered model, in registration order."""
    return tuple(_registry.values())


def chosen_models(models: Iterable[type[Any]] | None) -> list[SubjectModel]:
    chosen = []
    for model in _registry if models is None else models:
        found = _registry.get(model)
        if found is None:
            name = getattr(model, "__name__", repr(model))
            raise ConfigurationError(f"{name} is not registered: call register_subject() first")
        chosen.append(found)
    names = [m.name for m in chosen]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigurationError(
            f"two models are named {', '.join(twice)}: pass name= to register_subject()"
        )
    return chosen


def subject_rows(
    session: Session, registered: SubjectModel, shape: Shape, subject_id: object
) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
    """The condition (and exact match) selecting the rows of *registered* about *subject_id*:
    by its subject column, or through its relationship path."""
    if not registered.via:
        value = subject_value(shape, registered.subject, subject_id)
        return subject_where(shape, registered.subject, value)
    end = follow_path(shape, registered.via)
    value = subject_value(end, registered.subject, subject_id)
    return path_where(session, shape, registered.via, registered.subject, value)


def subject_event(action: str, subject: str, reason: str | None, **kwargs: Any) -> AuditEvent:
    return actor_event(action, resource_type="subject", subject=subject, reason=reason, **kwargs)


def subject_keys(models: Iterable[tuple[SubjectModel, Shape]], subject_id: object) -> list[str]:
    """The canonical keys of the subject, as each model's subject column (at the end of its
    ``via=`` path) holds it; the first is the one its audit pseudonym is made of. With no
    model, the id's own key."""
    keys = []
    for registered, shape in models:
        end = follow_path(shape, registered.via)
        value = subject_value(end, registered.subject, subject_id)
        keys.append(subject_key_of(end, registered.subject, value))
    return list(dict.fromkeys(keys)) or [canonical_subject_key(subject_id)]
