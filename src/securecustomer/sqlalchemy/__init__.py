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

from typing import TYPE_CHECKING, Any

from securecustomer.sqlalchemy import _statements as _statements  # registers the SQL checks
from securecustomer.sqlalchemy._alembic import render_item
from securecustomer.sqlalchemy._blind import BlindIndex, reindex
from securecustomer.sqlalchemy._keystore import SqlKeyStore
from securecustomer.sqlalchemy._normalizers import (
    Normalizer,
    casefold,
    compose,
    digits_only,
    nfkc,
    normalize_email,
    normalize_phone,
    strip,
)
from securecustomer.sqlalchemy._orm import ERASED, RowEncryption, encrypt_rows
from securecustomer.sqlalchemy._planner import IndexPlan, plan_blind_index
from securecustomer.sqlalchemy._reencrypt import (
    EncryptColumnReport,
    FailedValue,
    ReencryptReport,
    encrypt_column,
    reencrypt,
    swap_columns,
)
from securecustomer.sqlalchemy._search import asearch, blind_match, confirm_matches, search
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

if TYPE_CHECKING:
    from securecustomer.sqlalchemy._policy import row_resource

__all__ = [
    "BlindIndex",
    "ERASED",
    "EncryptColumnReport",
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
    "FailedValue",
    "IndexPlan",
    "KeyringSlot",
    "Normalizer",
    "ReencryptReport",
    "RowEncryption",
    "Sealed",
    "SqlKeyStore",
    "asearch",
    "blind_match",
    "casefold",
    "compose",
    "confirm_matches",
    "default_keyring",
    "digits_only",
    "encrypt_column",
    "encrypt_rows",
    "nfkc",
    "normalize_email",
    "normalize_phone",
    "plan_blind_index",
    "reencrypt",
    "reindex",
    "render_item",
    "row_resource",
    "search",
    "strip",
    "swap_columns",
]


def __getattr__(name: str) -> Any:
    """`row_resource`, imported when first asked for: it loads the policy engine (10 ms),
    which an application with encrypted columns and no policy does not need."""
    if name == "row_resource":
        from securecustomer.sqlalchemy._policy import row_resource

        globals()[name] = row_resource
        return row_resource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
