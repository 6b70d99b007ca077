"""What a framework plugin author writes, checked by ``mypy --strict`` (nox -s typing).

Every column type is a real class: it can be subclassed, named in annotations, and its
value type is its ``TypeEngine[...]`` parameter. `FieldCipher.decrypt_as` and ``decrypt_many_as``
return the type they are given, not the union of every value type.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from securecustomer import Context, FieldCipher
from securecustomer.crypto import Value
from securecustomer.sqlalchemy import (
    Encrypted,
    EncryptedBytes,
    EncryptedDate,
    EncryptedDateTime,
    EncryptedInteger,
    EncryptedJSON,
    EncryptedNumeric,
    EncryptedString,
    EncryptedText,
    EncryptedUUID,
)

# -- a plugin's own column types: one subclass of each ----------------------------------


class PluginString(EncryptedString):
    """A plugin's string column, with one more option."""

    cache_ok = True

    def __init__(self, *, label: str = "", deterministic: bool = False) -> None:
        super().__init__(deterministic=deterministic)
        self.label = label


class PluginText(EncryptedText):
    cache_ok = True


class PluginBytes(EncryptedBytes):
    cache_ok = True


class PluginInteger(EncryptedInteger):
    cache_ok = True


class PluginNumeric(EncryptedNumeric):
    cache_ok = True


class PluginDate(EncryptedDate):
    cache_ok = True


class PluginDateTime(EncryptedDateTime):
    cache_ok = True


class PluginJSON(EncryptedJSON):
    cache_ok = True


class PluginUUID(EncryptedUUID):
    cache_ok = True


class PluginEncrypted(Encrypted[str]):
    """A subclass of the generic base, naming its value type."""

    cache_ok = True
    python_types = (str,)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "plugin_customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(PluginString(label="name"))
    notes: Mapped[str | None] = mapped_column(PluginText())
    photo: Mapped[bytes] = mapped_column(PluginBytes())
    visits: Mapped[int] = mapped_column(PluginInteger())
    balance: Mapped[Decimal] = mapped_column(PluginNumeric())
    born: Mapped[dt.date] = mapped_column(PluginDate())
    seen: Mapped[dt.datetime] = mapped_column(PluginDateTime())
    prefs: Mapped[dict[str, Any]] = mapped_column(PluginJSON())
    ref: Mapped[uuid.UUID] = mapped_column(PluginUUID())
    alias: Mapped[str] = mapped_column(PluginEncrypted())
    email: Mapped[str] = mapped_column(EncryptedString(deterministic=True))


# Each column type is a TypeEngine of its value type (what SQLAlchemy's typing reads).
name_type: TypeEngine[str] = PluginString()
notes_type: TypeEngine[str] = EncryptedText()
photo_type: TypeEngine[bytes] = EncryptedBytes()
visits_type: TypeEngine[int] = EncryptedInteger()
balance_type: TypeEngine[Decimal] = EncryptedNumeric()
born_type: TypeEngine[dt.date] = EncryptedDate()
seen_type: TypeEngine[dt.datetime] = EncryptedDateTime()
prefs_type: TypeEngine[dict[str, Any] | list[Any]] = EncryptedJSON()
ref_type: TypeEngine[uuid.UUID] = EncryptedUUID()
decimal_type: TypeEngine[Decimal] = Encrypted(Decimal)
alias_type: Encrypted[str] = PluginEncrypted()
name_column: sa.Column[str] = sa.Column("name", PluginString())


def column_types(column: sa.Column[Any]) -> EncryptedString | None:
    """The column types can be named in annotations and narrowed by isinstance."""
    column_type = column.type
    if isinstance(column_type, EncryptedString):
        return column_type
    return None


# -- typed decryption -------------------------------------------------------------------


def decrypt_typed(cipher: FieldCipher, token: bytes, context: Context) -> None:
    name: str = cipher.decrypt_as(token, str, context=context)
    visits: int = cipher.decrypt_as(token, int, context=context)
    balance: Decimal = cipher.decrypt_as(token, Decimal, context=context)
    born: dt.date = cipher.decrypt_as(token, dt.date, context=context)
    ref: uuid.UUID = cipher.decrypt_as(token, uuid.UUID, context=context)
    raw: bytes = cipher.decrypt_as(bytearray(token), bytes, context=context)
    prefs: dict[str, Any] = cipher.decrypt_as(token, dict, context=context)
    names: list[str] = cipher.decrypt_many_as([token, token], str, context=context)
    dates: list[dt.datetime] = cipher.decrypt_many_as([token], dt.datetime, context=[context])
    print(name, visits, balance, born, ref, raw, prefs, names, dates)


def decrypt_untyped(cipher: FieldCipher, token: bytes, context: Context) -> None:
    """Without ``type=``: the union of every value type, as before."""
    value: Value = cipher.decrypt(token, context=context)
    values: list[Value] = cipher.decrypt_many([token], context=context)
    print(value, values)
