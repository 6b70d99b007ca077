"""Alembic support: write encrypted column types and blind indexes into migrations that run.

Autogenerate writes each type as a call that a migration can execute, with the ``import``
lines it needs:

- a column type by its public name and its keyword options,
  ``securecustomer.sqlalchemy.EncryptedString(scope='pii', deterministic=True)``; the value
  type of ``Encrypted(T)`` by its module path, ``Encrypted(decimal.Decimal)``;
- a blind index by its source's column name and its normaliser by an importable name,
  ``BlindIndex('email', normalizer=securecustomer.sqlalchemy.normalize_email, size=16)``,
  a `compose` result as ``compose(...)`` of its steps.

A normaliser without an importable name (a lambda, a nested function or closure, a
callable object, a function of ``__main__``) is refused with `ConfigurationError`: a
migration that names it would not run. The keyring is not written: it is the
application's state at run time, not part of the schema.

The rendering reads the types' public attributes (``value_type``, ``scope``, ...), not
their ``repr``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Column
from sqlalchemy.orm import configure_mappers

from securecustomer.exceptions import ConfigurationError
from securecustomer.sqlalchemy._blind import BlindIndex
from securecustomer.sqlalchemy._keystore import ScopeType
from securecustomer.sqlalchemy._normalizers import Normalizer, composed_steps, name_of
from securecustomer.sqlalchemy._types import Encrypted

__all__ = ["render_item"]

_PUBLIC = "securecustomer.sqlalchemy"


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """An Alembic ``render_item`` hook for encrypted columns, blind indexes and the key table.

    Autogenerate then writes ``securecustomer.sqlalchemy.EncryptedString(...)``,
    ``securecustomer.sqlalchemy.BlindIndex(...)`` and the imports they need, so that the
    migration runs as written. Other types are left to Alembic.

    Raises:
        ConfigurationError: a blind index's normaliser has no importable name (a lambda,
            a nested function, a callable object): define it as a module-level function,
            or `compose` the public normalisers.

    Example:
        ```python
        # env.py
        from securecustomer.sqlalchemy import render_item

        context.configure(connection=connection, target_metadata=target_metadata,
                          render_item=render_item)
        ```
    """
    if type_ != "type":
        return False
    imports: set[str] = autogen_context.imports
    if isinstance(obj, Encrypted):
        return _render_encrypted(obj, imports)
    if isinstance(obj, BlindIndex):
        return _render_blind_index(obj, autogen_context)
    if isinstance(obj, ScopeType):  # SqlKeyStore's table: its DDL types
        return obj.render_ddl_type()
    return False


def _render_encrypted(column_type: Encrypted, imports: set[str]) -> str:
    cls = type(column_type)
    args = []
    # The value type, unless the class implies it (EncryptedString: str).
    value_type = column_type.value_type
    if value_type is not None and column_type.python_types != cls.python_types:
        args.append(_path(value_type, imports) or value_type.__name__)  # always a path
    if column_type.scope is not None:
        args.append(f"scope={str(column_type.scope)!r}")
    if column_type.deterministic:
        args.append("deterministic=True")
    if column_type.storage != "binary":
        args.append(f"storage={str(column_type.storage)!r}")
    if column_type.context is not None:
        args.append(f"context={tuple(str(part) for part in column_type.context)!r}")
    path = _path(cls, imports)
    if path is None:
        where = ".".join(column_type._names or ("?", "?"))
        raise ConfigurationError(
            f"{where}: its type {cls.__qualname__} cannot be written into a migration: "
            "define the class at the top level of an importable module"
        )
    return f"{path}({', '.join(args)})"


def _render_blind_index(index: BlindIndex, autogen_context: Any) -> str:
    imports: set[str] = autogen_context.imports
    args = [repr(_source_name(index, autogen_context))]
    if index.normalizer is not None:
        args.append(f"normalizer={_render_normalizer(index.normalizer, index, imports)}")
    args.append(f"size={int(index.size)}")
    return f"{_public('BlindIndex', imports)}({', '.join(args)})"


def _source_name(index: BlindIndex, autogen_context: Any) -> str:
    """The name of the source column in the database (what the migration's table holds)."""
    source = index.source
    if isinstance(source, Column):
        return str(source.name)
    table = index._table  # Alembic renders a copy of the model's table
    if table is None:
        return str(source)
    column = table.c.get(source)
    if column is not None:
        return str(column.name)
    # An attribute name that is not the column's name: the model's mapper knows the column.
    metadata = getattr(autogen_context, "metadata", None)
    for candidate in metadata if isinstance(metadata, Sequence) else [metadata]:
        model_table = getattr(candidate, "tables", {}).get(table.key)
        model_index = None if model_table is None else model_table.c.get(str(index._name))
        if model_index is not None and isinstance(model_index.type, BlindIndex):
            configure_mappers()
            column = model_index.type._source_column
            if column is not None:
                return str(column.name)
    return str(source)


def _render_normalizer(normalizer: Normalizer, index: BlindIndex, imports: set[str]) -> str:
    steps = composed_steps(normalizer)
    if steps is not None:
        rendered = ", ".join(_render_normalizer(step, index, imports) for step in steps)
        return f"{_public('compose', imports)}({rendered})"
    path = _path(normalizer, imports)
    if path is None:
        raise ConfigurationError(
            f"blind index {index._where()}: its normalizer {name_of(normalizer)} cannot be "
            f"written into a migration: {_why_not_importable(normalizer)}; define it as a "
            "module-level function (def) and pass that, or compose the public normalizers, "
            "e.g. compose(strip, nfkc, casefold)"
        )
    return path


def _public(name: str, imports: set[str]) -> str:
    imports.add(f"import {_PUBLIC}")
    return f"{_PUBLIC}.{name}"


def _path(obj: Any, imports: set[str]) -> str | None:
    """``module.qualname`` by which a migration imports *obj* (adding the import), or None.

    Names of this package are written by their public path, builtins without a module.
    """
    public = importlib.import_module(_PUBLIC)
    name = getattr(obj, "__name__", None)
    if isinstance(name, str) and getattr(public, name, None) is obj:
        return _public(name, imports)
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__":
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    if found is not obj and found != obj:  # a static method is itself; a class method equal
        return None
    if module == "builtins":
        return qualname
    imports.add(f"import {module}")
    return f"{module}.{qualname}"


def _why_not_importable(obj: Any) -> str:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return f"a {type(obj).__qualname__} object has no importable name"
    if "<lambda>" in qualname:
        return "a lambda has no importable name"
    if "<locals>" in qualname:
        return "it is defined inside a function (a closure or nested function)"
    if module == "__main__":
        return "it is defined in __main__ (the script being run), which a migration cannot import"
    return f"{module}.{qualname} does not import as that object"
