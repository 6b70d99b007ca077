"""Value format v1: header layout, associated data and the encryption context.

A token is::

    version(1) | algorithm(1) | key id(4, big-endian) | [nonce(12)] | ciphertext | tag(16)

The algorithm byte packs the AEAD (low nibble) and the plaintext type (high nibble).
Associated data is the 6 header bytes followed by length-prefixed context parts
(``u32be(len) || utf-8 bytes``): ``"securecustomer"``, [schema], table, column, row
identity (empty when absent) and key scope. The context is never stored in the token.

The schema part is present only when the context has a schema. Every part is
length-prefixed, so the number of parts is part of the associated data: a context with
a schema (six parts) never gives the associated data of one without (five parts), and
the tokens of a table without a schema mean what they meant before schemas existed.
Writing the schema into the table part (``"tenant_a.customers"``) would not do: a table
may be named ``"tenant_a.customers"``.
"""

from __future__ import annotations

import uuid
from typing import Final

import attrs

from securecustomer.exceptions import ContextError

__all__ = [
    "AES_256_GCM",
    "AES_256_SIV",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "Context",
    "header",
    "length_prefixed",
]

FORMAT_VERSION: Final = 1
AES_256_GCM: Final = 0x1
AES_256_SIV: Final = 0x2
HEADER_SIZE: Final = 6
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
LABEL: Final = b"securecustomer"
_MAX_PART: Final = 0xFFFF


def length_prefixed(part: bytes) -> bytes:
    """Encode one context part as ``u32be(len(part)) || part``."""
    return len(part).to_bytes(4, "big") + part


def header(algorithm: int, type_code: int, key_id: int) -> bytes:
    """Return the 6 header bytes for *algorithm*, plaintext *type_code* and *key_id*."""
    return bytes((FORMAT_VERSION, type_code << 4 | algorithm)) + key_id.to_bytes(4, "big")


def _part(name: str, value: str) -> bytes:
    if type(value) is not str:
        raise ContextError(f"context {name} must be a str, got {type(value).__qualname__}")
    if not value:
        raise ContextError(f"context {name} must not be empty")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ContextError(f"context {name} is not valid Unicode text") from None
    if len(data) > _MAX_PART:
        raise ContextError(f"context {name} is longer than {_MAX_PART} bytes")
    return data


def _row(value: str | int | uuid.UUID | None) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is int or isinstance(value, uuid.UUID):  # asyncpg has its own UUID class
        return str(value)
    raise ContextError(f"context row must be a str, int or UUID, got {type(value).__qualname__}")


@attrs.frozen(cache_hash=True)
class Context:
    """Where a value lives: bound into the ciphertext, never stored in it.

    A token decrypts only with the same schema, table, column and row (and the same key
    scope), so a value copied to another column, table, schema or row fails to decrypt.
    *schema* is the database schema (PostgreSQL schema, MySQL/MariaDB database, SQLite
    attached database) that holds the table, None for a table named without one.

    Example:
        ```python
        ctx = Context("customers", "email", row=42)
        token = cipher.encrypt("ada@example.com", context=ctx)
        tenant = Context("customers", "email", row=42, schema="tenant_a")
        ```
    """

    table: str
    column: str
    row: str | None = attrs.field(default=None, converter=_row)
    schema: str | None = attrs.field(default=None, kw_only=True)
    #: Pre-encoded associated-data parts (label, [schema], table, column, row), computed once.
    aad_parts: bytes = attrs.field(init=False, repr=False, eq=False)

    @aad_parts.default
    def _aad_parts(self) -> bytes:
        row = b"" if self.row is None else _part("row", self.row)
        schema = () if self.schema is None else (_part("schema", self.schema),)
        return b"".join(
            length_prefixed(p)
            for p in (
                LABEL,
                *schema,
                _part("table", self.table),
                _part("column", self.column),
                row,
            )
        )

    @property
    def index_parts(self) -> bytes:
        """The context's part of a blind-index input: ``LP(table) || LP(column)``, and
        with a schema ``LP("") || LP(schema) || LP(table) || LP(column)``.

        A table name is never empty, so the leading empty part of the schema form never
        begins an input of a context without a schema.
        """
        names = length_prefixed(_part("table", self.table)) + length_prefixed(
            _part("column", self.column)
        )
        if self.schema is None:
            return names
        return length_prefixed(b"") + length_prefixed(_part("schema", self.schema)) + names
