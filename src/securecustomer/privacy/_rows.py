"""The row machinery shared by `erase_subject` and `apply_retention`.

`Shape` describes one mapped class; `anonymize_rows`, `delete_rows` and `shred_rows` work
with Core statements on the mapped table, never by loading instances, so rows of erased
subjects (whose key is destroyed) can still be changed; values of row-bound and
subject-scoped models are opened and sealed with the model's `RowEncryption`, exactly as
the ORM events would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import attrs
from sqlalchemy import (
    Column,
    LargeBinary,
    Table,
    Text,
    delete,
    inspect,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql import ColumnElement

from securecustomer.exceptions import ConfigurationError, KeyDestroyedError
from securecustomer.sqlalchemy._blind import BlindIndex
from securecustomer.sqlalchemy._orm import ERASED, RowEncryption, _registry
from securecustomer.sqlalchemy._types import Encrypted, Sealed

__all__ = [
    "Shape",
    "Transform",
    "anonymize_rows",
    "check_anonymize",
    "delete_rows",
    "open_value",
    "select_rows",
    "shape_of",
    "shred_rows",
    "subject_value",
]

Transform = Callable[[Any], Any] | None


@attrs.frozen(eq=False)
class Shape:
    """What the privacy workflows need to know about one mapped class."""

    mapper: Mapper[Any]
    table: Table
    encrypted: Mapping[str, Encrypted]
    indexes: tuple[str, ...]
    rows: RowEncryption | None
    pk: tuple[str, ...]

    @property
    def subject_scoped(self) -> bool:
        return self.rows is not None and self.rows.subject is not None

    @property
    def context_keys(self) -> tuple[str, ...]:
        """The attributes a value's encryption context is made of."""
        if self.rows is None:
            return ()
        return tuple(k for k in (self.rows.row, self.rows.subject) if k is not None)

    def column(self, key: str) -> Column[Any]:
        return cast(Column[Any], self.mapper.column_attrs[key].columns[0])


def shape_of(model: type[Any]) -> Shape:
    """The `Shape` of a mapped class (raises `NoInspectionAvailable` for anything else)."""
    mapper: Mapper[Any] = inspect(model)
    table = mapper.local_table
    if not isinstance(table, Table):
        raise ConfigurationError(f"{model.__name__} is not mapped to a table")
    types = {prop.key: prop.columns[0].type for prop in mapper.column_attrs}
    pk = tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key)
    return Shape(
        mapper=mapper,
        table=table,
        encrypted={k: t for k, t in types.items() if isinstance(t, Encrypted)},
        indexes=tuple(k for k, t in types.items() if isinstance(t, BlindIndex)),
        rows=_registry.get(mapper),
        pk=pk,
    )


def subject_value(shape: Shape, key: str, subject_id: object) -> Any:
    """*subject_id* as the type of the subject column (``"42"`` for an integer column: 42)."""
    try:
        python_type = shape.column(key).type.python_type
    except NotImplementedError:
        return subject_id
    if isinstance(subject_id, python_type) or python_type not in (int, str, uuid.UUID):
        return subject_id
    try:
        return python_type(str(subject_id))
    except ValueError:
        raise ConfigurationError(
            f"the subject id is not a valid {python_type.__name__} for "
            f"{shape.mapper.class_.__name__}.{key}"
        ) from None


def select_rows(
    session: Session, shape: Shape, keys: Iterable[str], where: Sequence[ColumnElement[bool]]
) -> list[dict[str, Any]]:
    """Rows as attribute -> value, encrypted columns as their stored tokens, by primary key."""
    columns = []
    for key in dict.fromkeys((*shape.pk, *keys)):
        column: Any = shape.column(key)
        column_type = shape.encrypted.get(key)
        if column_type is not None:  # the stored token, decrypted by open_value()
            raw = Text() if column_type.storage == "text" else LargeBinary()
            column = type_coerce(column, raw)
        columns.append(column.label(key))
    query = select(*columns).where(*where).order_by(*(shape.column(k) for k in shape.pk))
    return [dict(row) for row in session.execute(query).mappings()]


def open_value(shape: Shape, key: str, row: Mapping[str, Any]) -> tuple[Any, bool]:
    """The plaintext of encrypted attribute *key* of *row*, and whether it was erased
    (its key destroyed: the value is then None)."""
    stored = row[key]
    if stored is None:
        return None, False
    column_type = shape.encrypted[key]
    token = column_type.decode_token(stored)
    try:
        if shape.rows is not None and key in shape.rows.columns:
            value = shape.rows.open(key, Sealed(token), dict(row))
        else:
            value = column_type.cipher().decrypt(token, context=column_type.column_context())
    except KeyDestroyedError:
        return None, True
    return (None, True) if value is ERASED else (value, False)


def _by_pk(shape: Shape, row: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    return [shape.column(k) == row[k] for k in shape.pk]


def anonymize_rows(
    session: Session,
    shape: Shape,
    where: Sequence[ColumnElement[bool]],
    anonymize: Mapping[str, Transform],
    *,
    null_encrypted: bool,
    marker: str | None = None,
) -> tuple[int, int]:
    """Anonymize the rows *where* selects: each attribute of *anonymize* replaced by its
    transform's result (None, or a NULL value: NULL), blind indexes and (with
    *null_encrypted*) every other encrypted column set to NULL, *marker* set to True.
    Returns (rows changed, blind-index values set to NULL); unchanged rows are not written.
    """
    nulled = [k for k in shape.encrypted if null_encrypted and k not in anonymize]
    keys = (*shape.context_keys, *shape.indexes, *nulled, *anonymize, *filter(None, [marker]))
    changed = purged = 0
    for row in select_rows(session, shape, keys, where):
        new: dict[Column[Any], Any] = {}
        for key in shape.indexes:
            if row[key] is not None:
                new[shape.column(key)] = None
                purged += 1
        for key in nulled:
            if row[key] is not None:
                new[shape.column(key)] = None
        for key, transform in anonymize.items():
            encrypted = key in shape.encrypted
            old, _ = open_value(shape, key, row) if encrypted else (row[key], False)
            value = None if old is None or transform is None else transform(old)
            if value is None:
                if row[key] is not None:
                    new[shape.column(key)] = None
            elif value != old:
                if encrypted and shape.rows is not None and key in shape.rows.columns:
                    value = shape.rows.seal(key, value, row)
                new[shape.column(key)] = value
        if marker is not None and row[marker] is not True:
            new[shape.column(marker)] = True
        if new:
            session.execute(update(shape.table).where(*_by_pk(shape, row)).values(new))
            changed += 1
    return changed, purged


def delete_rows(
    session: Session, shape: Shape, where: Sequence[ColumnElement[bool]]
) -> tuple[int, int]:
    """Delete the rows *where* selects; returns (rows deleted, blind-index values deleted)."""
    rows = select_rows(session, shape, shape.indexes, where)
    purged = sum(row[k] is not None for row in rows for k in shape.indexes)
    if not rows:
        return 0, 0
    result = cast(CursorResult[Any], session.execute(delete(shape.table).where(*where)))
    return int(result.rowcount), purged


def shred_rows(
    session: Session, shape: Shape, where: Sequence[ColumnElement[bool]]
) -> tuple[int, int, int]:
    """Keep the rows *where* selects, their blind indexes set to NULL (the caller destroys
    the key). Returns (rows, rows whose indexes were purged, index values set to NULL)."""
    rows = select_rows(session, shape, shape.indexes, where)
    touched = [row for row in rows if any(row[k] is not None for k in shape.indexes)]
    purged = sum(row[k] is not None for row in touched for k in shape.indexes)
    if touched:
        nulls = {shape.column(k): None for k in shape.indexes}
        session.execute(update(shape.table).where(*where).values(nulls))
    return len(rows), len(touched), purged


def check_anonymize(shape: Shape, anonymize: Mapping[str, Transform], what: str) -> None:
    """Refuse an anonymization that cannot be written, naming the attribute."""
    name = shape.mapper.class_.__name__
    for key, transform in anonymize.items():
        if key not in shape.mapper.column_attrs:
            raise ConfigurationError(f"{what}: {name} has no column attribute {key!r}")
        if key in shape.indexes:
            raise ConfigurationError(
                f"{what}: {name}.{key} is a blind index, which is always set to NULL"
            )
        if transform is not None and not callable(transform):
            raise ConfigurationError(f"{what}: the transform of {name}.{key} is not callable")
        if transform is None and not shape.column(key).nullable:
            raise ConfigurationError(
                f"{what}: {name}.{key} is NOT NULL, but a None transform sets it to NULL"
            )
    for key in shape.indexes:
        if not shape.column(key).nullable:
            raise ConfigurationError(
                f"{what}: blind index {name}.{key} is NOT NULL, but anonymizing sets it to NULL"
            )
