"""Alembic support: render encrypted column types with their import in migrations."""

from __future__ import annotations

from typing import Any

from securecustomer.sqlalchemy._keystore import ScopeType
from securecustomer.sqlalchemy._types import Encrypted

__all__ = ["render_item"]


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """An Alembic ``render_item`` hook for encrypted column types (and the key table's scope).

    Autogenerate writes ``securecustomer.sqlalchemy.EncryptedString(...)`` and adds
    ``import securecustomer.sqlalchemy`` to the migration, so that it runs as written.

    Example:
        ```python
        # env.py
        from securecustomer.sqlalchemy import render_item

        context.configure(connection=connection, target_metadata=target_metadata,
                          render_item=render_item)
        ```
    """
    if type_ == "type" and isinstance(obj, Encrypted):
        autogen_context.imports.add("import securecustomer.sqlalchemy")
        return f"securecustomer.sqlalchemy.{obj!r}"
    if type_ == "type" and isinstance(obj, ScopeType):  # SqlKeyStore's table: its DDL
        return obj.render_ddl_type()
    return False
