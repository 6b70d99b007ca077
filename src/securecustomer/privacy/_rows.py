"""The row machinery shared by `erase_subject` and `apply_retention`.

`Shape` describes one mapped class; `anonymize_rows`, `delete_rows` and `shred_rows` work
with Core statements on the mapped table, never by loading instances, so rows of erased
subjects (whose key is destroyed) can still be changed; values of row-bound and
subject-scoped models are opened and sealed with the model's `RowEncryption`, exactly as
the ORM events would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import attrs
from sqlalchemy import (
    Column,
    LargeBinary,
    Table,
    Text,
    delete,
    false,
    inspect,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql import ColumnElement

from securecustomer.exceptions import ConfigurationError, KeyDestroyedError
from securecustomer.privacy._subject_key import (
    canonical_subject_key,
    subject_type_of,
    typed_subject_id,
)
from securecustomer.sqlalchemy._blind import BlindIndex
from securecustomer.sqlalchemy._orm import ERASED, RowEncryption, _registry
from securecustomer.sqlalchemy._types import Encrypted, Sealed

__all__ = [
    "Shape",
    "Transform",
    "anonymize_rows",
    "check_anonymize",
    "delete_rows",
    "follow_path",
    "lock_rows",
    "open_value",
    "path_where",
    "select_rows",
    "shape_of",
    "shred_rows",
    "subject_key_of",
    "subject_value",
    "subject_where",
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
    """*subject_id* as the type of the subject column (``"42"`` for an integer column: 42).

    Only the canonical spelling converts (see `canonical_subject_key`): ``"042"``,
    ``" 42"``, ``"4_2"`` or ``"+42"`` for an integer column raise `ConfigurationError`
    rather than find subject 42 while its key scope, legal holds and consents are looked up
    under another name. A UUID is read in any case, with or without hyphens, and used in
    its canonical form; a string with white space at its ends is refused.
    """
    name = f"{shape.mapper.class_.__name__}.{key}"
    subject_type = subject_type_of(shape.column(key).type)
    if subject_type is None:
        if subject_id is None or isinstance(subject_id, bool):
            raise ConfigurationError(f"the subject id for {name} must not be None or a bool")
        return subject_id
    return typed_subject_id(subject_id, subject_type, name)


def subject_key_of(shape: Shape, key: str, value: object) -> str:
    """The canonical key (`canonical_subject_key`) of the subject column *key*'s *value*."""
    name = f"{shape.mapper.class_.__name__}.{key}"
    return canonical_subject_key(value, subject_type_of(shape.column(key).type), where=name)


def subject_where(
    shape: Shape, key: str, value: object
) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
    """The condition selecting the rows whose *key* is *value*, and the exact match that
    `select_rows` checks again in Python: a case- or accent-insensitive collation (MariaDB's
    default, SQLite's NOCASE) or PAD SPACE comparison would otherwise match ``"A"`` or
    ``"a "`` for ``"a"``, another subject's rows."""
    return [shape.column(key) == value], {key: value}


def follow_path(shape: Shape, via: Sequence[str]) -> Shape:
    """The `Shape` of the class the relationships *via* lead to from *shape*'s class."""
    for name in via:
        shape = shape_of(shape.mapper.relationships[name].mapper.class_)
    return shape


def path_where(
    session: Session, shape: Shape, via: Sequence[str], key: str, value: object
) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
    """The condition selecting the rows of *shape* whose relationships *via* lead to a row
    whose *key* is *value* (an order item whose order's ``customer_id`` is 42).

    The rows are found with one join query and selected by primary key; the value at
    the end of the path is compared again in Python, as `subject_where` does, so that a
    collation never makes another subject's value match."""
    model = shape.mapper.class_
    query = select(*(getattr(model, k) for k in shape.pk))
    end = shape
    for name in via:
        query = query.join(getattr(end.mapper.class_, name))
        end = shape_of(end.mapper.relationships[name].mapper.class_)
    column = getattr(end.mapper.class_, key)
    query = query.add_columns(column).where(column == value)
    found = sorted({tuple(row[:-1]) for row in session.execute(query) if _same(row[-1], value)})
    columns = [shape.column(k) for k in shape.pk]
    if len(columns) == 1:
        return [columns[0].in_([pk[0] for pk in found])], {}
    return [tuple_(*columns).in_(found)], {}


def select_rows(
    session: Session,
    shape: Shape,
    keys: Iterable[str],
    where: Sequence[ColumnElement[bool]],
    match: Mapping[str, Any] | None = None,
    *,
    lock: bool = False,
) -> list[dict[str, Any]]:
    """Rows as attribute -> value, encrypted columns as their stored tokens, by primary key;
    with *match*, only the rows whose attributes equal its values exactly (in Python). With
    *lock*, a locking read (``FOR UPDATE``): it reads the latest committed rows, even under
    MariaDB's REPEATABLE READ snapshot."""
    match = match or {}
    columns = []
    for key in dict.fromkeys((*shape.pk, *keys, *match)):
        column: Any = shape.column(key)
        column_type = shape.encrypted.get(key)
        if column_type is not None:  # the stored token, decrypted by open_value()
            raw = Text() if column_type.storage == "text" else LargeBinary()
            column = type_coerce(column, raw)
        columns.append(column.label(key))
    query = select(*columns).where(*where).order_by(*(shape.column(k) for k in shape.pk))
    if lock:
        query = query.with_for_update()
    rows = [dict(row) for row in session.execute(query).mappings()]
    return [r for r in rows if all(_same(r[k], v) for k, v in match.items())]


def lock_rows(session: Session, shape: Shape, where: Sequence[ColumnElement[bool]]) -> None:
    """Lock the rows *where* selects until the transaction ends, so that no other
    connection writes them meanwhile: ``SELECT ... FOR UPDATE`` on PostgreSQL and MariaDB.
    SQLite has no row locks and a read takes none: there an UPDATE that matches no row
    takes the database's write lock (every other writer waits until the commit)."""
    pk = [shape.column(k) for k in shape.pk]
    if session.get_bind(mapper=shape.mapper).dialect.name == "sqlite":
        session.execute(update(shape.table).where(false()).values({pk[0]: pk[0]}))
        return
    session.execute(select(*pk).where(*where).order_by(*pk).with_for_update()).all()


def _same(stored: Any, wanted: Any) -> bool:
    """Whether the database's match is exact: strings compared code point by code point,
    anything else as the database compared it."""
    if isinstance(stored, str) and isinstance(wanted, str):
        return stored == wanted
    return True


def _pk_chunks(shape: Shape, rows: Sequence[Mapping[str, Any]]) -> list[ColumnElement[bool]]:
    """Conditions selecting exactly *rows* by primary key, 500 rows each."""
    columns = [shape.column(k) for k in shape.pk]
    found: list[ColumnElement[bool]] = []
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        if len(columns) == 1:
            found.append(columns[0].in_([r[shape.pk[0]] for r in chunk]))
        else:
            found.append(tuple_(*columns).in_([tuple(r[k] for k in shape.pk) for r in chunk]))
    return found


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
    match: Mapping[str, Any] | None = None,
    lock: bool = False,
) -> tuple[int, int]:
    """Anonymize the rows *where* selects: each attribute of *anonymize* replaced by its
    transform's result (None, or a NULL value: NULL), blind indexes and (with
    *null_encrypted*) every other encrypted column set to NULL, *marker* set to True.
    Returns (rows changed, blind-index values set to NULL); unchanged rows are not written.
    """
    nulled = [k for k in shape.encrypted if null_encrypted and k not in anonymize]
    keys = (*shape.context_keys, *shape.indexes, *nulled, *anonymize, *filter(None, [marker]))
    changed = purged = 0
    for row in select_rows(session, shape, keys, where, match, lock=lock):
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
    session: Session,
    shape: Shape,
    where: Sequence[ColumnElement[bool]],
    match: Mapping[str, Any] | None = None,
    *,
    lock: bool = False,
) -> tuple[int, int]:
    """Delete the rows *where* (and *match*) select, by primary key; returns (rows deleted,
    blind-index values deleted)."""
    rows = select_rows(session, shape, shape.indexes, where, match, lock=lock)
    purged = sum(row[k] is not None for row in rows for k in shape.indexes)
    done = 0
    for chunk in _pk_chunks(shape, rows):
        result = cast(CursorResult[Any], session.execute(delete(shape.table).where(chunk)))
        done += int(result.rowcount)
    return done, purged


def shred_rows(
    session: Session,
    shape: Shape,
    where: Sequence[ColumnElement[bool]],
    match: Mapping[str, Any] | None = None,
    *,
    lock: bool = False,
) -> tuple[int, int, int]:
    """Keep the rows *where* (and *match*) select, their blind indexes set to NULL (the
    caller destroys the key). Returns (rows, rows whose indexes were purged, index values
    set to NULL)."""
    rows = select_rows(session, shape, shape.indexes, where, match, lock=lock)
    touched = [row for row in rows if any(row[k] is not None for k in shape.indexes)]
    purged = sum(row[k] is not None for row in touched for k in shape.indexes)
    nulls = {shape.column(k): None for k in shape.indexes}
    for chunk in _pk_chunks(shape, touched):
        session.execute(update(shape.table).where(chunk).values(nulls))
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
