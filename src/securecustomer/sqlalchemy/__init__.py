"""Encrypted SQLAlchemy columns, blind indexes, row and subject binding, the SQL key store.

Example:
    ```python
    from securecustomer.sqlalchemy import EncryptedString, default_keyring

    class Customer(Base):
        __tablename__ = "customers"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(EncryptedString())

    default_keyring.bind(keyring)        # at application start
    ```
"""

from securecustomer.sqlalchemy._alembic import render_item
from securecustomer.sqlalchemy._keystore import SqlKeyStore
from securecustomer.sqlalchemy._orm import ERASED, RowEncryption, encrypt_rows
from securecustomer.sqlalchemy._types import (
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
    KeyringSlot,
    Sealed,
    default_keyring,
)

__all__ = [
    "ERASED",
    "Encrypted",
    "EncryptedBytes",
    "EncryptedDate",
    "EncryptedDateTime",
    "EncryptedInteger",
    "EncryptedJSON",
    "EncryptedNumeric",
    "EncryptedString",
    "EncryptedText",
    "EncryptedUUID",
    "KeyringSlot",
    "RowEncryption",
    "Sealed",
    "SqlKeyStore",
    "default_keyring",
    "encrypt_rows",
    "render_item",
]
