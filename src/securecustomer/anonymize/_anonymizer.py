"""A per-field anonymisation plan, applied to records, pandas frames and Arrow tables.

A plan maps each field to a rule:

- a callable ``transform(value) -> value`` replaces the value (``None`` values are kept as
  ``None``; the transform is never called on them, nor on pandas' NA markers);
- ``None`` keeps the value unchanged;
- ``"drop"`` removes the field.

Fields the plan does not list are dropped unless ``keep_unlisted=True``: a new column
added upstream never leaks by default.

Plans can also be read from TOML (or a dict of the same shape) with
:meth:`Anonymizer.from_plan`::

    key_env = "SC_ANON_KEY"          # environment variable holding the hex key, if any
    keep_unlisted = false

    [fields]
    email = "mask_email"
    name = "drop"
    city = "keep"
    customer_id = { pseudonymize = { domain = "customer" } }

Named transforms (resolved lazily from the sibling modules; parameters are keyword
arguments of the function, a keyed transform also gets ``key=<bytes>``):

============================  =============================================
``keep`` / ``drop``           keep the value / remove the field
``redact``                    ``redact(value, **params)``
``mask``                      ``mask(value, **params)``
``mask_email``                ``mask_email(value, **params)``
``mask_phone``                ``mask_phone(value, **params)``
``mask_card``                 ``mask_card(value, **params)``
``generalize_number``         ``generalize_number(value, **params)``
``generalize_date``           ``generalize_date(value, **params)``
``age_band``                  ``age_band(value, **params)``
``truncate_postcode``         ``truncate_postcode(value, **params)``
``pseudonymize`` (keyed)      ``Pseudonymizer(key=key, **params)`` (``domain`` required)
============================  =============================================

The key of a keyed transform never sits in the plan: the plan names an environment
variable (``key_env`` at the top, or per field inside the parameters) holding it in hex.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import importlib
import inspect
import os
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal, TypeAlias

from securecustomer.exceptions import AnonymizationError, ConfigurationError

__all__ = ["DROP", "Anonymizer", "Rule"]

DROP: Final = "drop"

#: A callable transform, ``None`` (keep unchanged) or ``"drop"`` (remove the field).
Rule: TypeAlias = Callable[[Any], Any] | Literal["drop"] | None

# name -> (sibling module, attribute, keyed). A plain transform is called per value as
# ``attribute(value, **params)``; a keyed one is a factory called once, at load, as
# ``attribute(key=key, **params)`` and returns the per-value callable.
_NAMED: Final[dict[str, tuple[str, str, bool]]] = {
    "redact": ("_mask", "redact", False),
    "mask": ("_mask", "mask", False),
    "mask_email": ("_mask", "mask_email", False),
    "mask_phone": ("_mask", "mask_phone", False),
    "mask_card": ("_mask", "mask_card", False),
    "generalize_number": ("_generalize", "generalize_number", False),
    "generalize_date": ("_generalize", "generalize_date", False),
    "age_band": ("_generalize", "age_band", False),
    "truncate_postcode": ("_generalize", "truncate_postcode", False),
    "pseudonymize": ("_pseudonym", "Pseudonymizer", True),
}

_MIN_KEY_BYTES: Final = 16


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _date(text: str) -> dt.date | dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value.date() if len(text) <= 10 else value


# Plans also read CSV files, whose cells are text: these transforms parse a string first
# (a cell that does not parse raises, naming the field, never the value).
_TEXT_PARSERS: Final[dict[str, Callable[[str], Any]]] = {
    "generalize_number": _number,
    "age_band": _number,
    "generalize_date": _date,
}


def _parsed(transform: Callable[[Any], Any], parse: Callable[[str], Any], value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = parse(value.strip())
        except ValueError:
            raise AnonymizationError("a text value does not parse for this transform") from None
    return transform(value)


def _optional(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{extra} support needs the {module!r} package: pip install {module}"
        ) from exc


def _is_missing(value: Any) -> bool:
    # None, float NaN, NaT and pandas.NA, without importing pandas: a missing value is the
    # one that differs from itself, and pandas.NA answers every comparison with itself.
    if value is None:
        return True
    try:
        different = value != value
        return different is value or bool(different)
    except Exception:  # an array's ambiguous truth, a __ne__ that raises: a real value
        return False


class Anonymizer:
    """Apply a per-field plan of transforms (see the module docstring for the rules)."""

    def __init__(self, rules: Mapping[str, Rule], *, keep_unlisted: bool = False) -> None:
        for field, rule in rules.items():
            if not (rule is None or rule == DROP or callable(rule)):
                raise ConfigurationError(
                    f"the rule for {field!r} must be a callable, None or 'drop', not {rule!r}"
                )
        self._rules: dict[str, Rule] = dict(rules)
        self.keep_unlisted = keep_unlisted

    def __repr__(self) -> str:
        return f"Anonymizer(fields={sorted(self._rules)!r}, keep_unlisted={self.keep_unlisted})"

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the plan lists, in plan order."""
        return tuple(self._rules)

    def output_fields(self, names: Iterable[str]) -> list[str]:
        """The fields a record with fields ``names`` has after :meth:`apply`, in order."""
        return [name for name, _ in self._plan(names)]

    def _plan(self, names: Iterable[str]) -> list[tuple[str, Callable[[Any], Any] | None]]:
        """The output fields of ``names``, in input order, with their transform."""
        plan: list[tuple[str, Callable[[Any], Any] | None]] = []
        for name in names:
            if name in self._rules:
                rule = self._rules[name]
                if rule == DROP:
                    continue
                plan.append((name, rule if callable(rule) else None))
            elif self.keep_unlisted:
                plan.append((name, None))
        return plan

    @staticmethod
    def _call(transform: Callable[[Any], Any], value: Any, field: str, where: str) -> Any:
        if _is_missing(value):
            return value
        try:
            return transform(value)
        except Exception as exc:
            # The value may be personal data: name the field and the error type only.
            raise AnonymizationError(
                f"{where}field {field!r}: the transform failed with {type(exc).__name__}"
            ) from exc

    def apply(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Return a new dict: ``record`` with the plan applied."""
        return self._apply(record, "")

    def _apply(self, record: Mapping[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, transform in self._plan(record):
            value = record[name]
            out[name] = value if transform is None else self._call(transform, value, name, where)
        return out

    def apply_many(self, records: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """Lazily apply the plan to each record; errors name the record's index."""
        for index, record in enumerate(records):
            yield self._apply(record, f"record {index}: ")

    def apply_frame(self, frame: Any) -> Any:
        """Return a new ``pandas.DataFrame`` with the plan applied column by column."""
        pandas = _optional("pandas", "DataFrame")
        columns: dict[str, Any] = {}
        for name, transform in self._plan(str(column) for column in frame.columns):
            series = frame[name]
            if transform is not None:
                bound = functools.partial(self._call, transform, field=name, where="")
                series = series.map(bound, na_action="ignore")
            columns[name] = series
        return pandas.DataFrame(columns, index=frame.index)

    def apply_table(self, table: Any) -> Any:
        """Return a new ``pyarrow.Table`` (or a Table from a ``RecordBatch``), column-wise."""
        pa = _optional("pyarrow", "Arrow")
        names: list[str] = []
        arrays: list[Any] = []
        for name, transform in self._plan(table.column_names):
            column = table.column(name)
            if transform is not None:
                values = [self._call(transform, value, name, "") for value in column.to_pylist()]
                try:
                    # All nulls keep the input type, so batches of one file share a schema.
                    if all(value is None for value in values):
                        column = pa.nulls(len(values), column.type)
                    else:
                        column = pa.array(values)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise AnonymizationError(
                        f"field {name!r}: the transformed values do not form one Arrow type"
                    ) from exc
            names.append(name)
            arrays.append(column)
        return pa.Table.from_arrays(arrays, names=names)

    @classmethod
    def from_plan(
        cls,
        plan: str | os.PathLike[str] | Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Anonymizer:
        """Build an anonymizer from a TOML plan file (a path) or a dict of the same shape.

        ``environ`` (default ``os.environ``) is where key variables are looked up.
        Raises :class:`ConfigurationError` naming the file and field for a bad plan, an
        unknown transform or a missing key variable.
        """
        source: str | None = None
        if isinstance(plan, Mapping):
            document: Mapping[str, Any] = plan
        else:
            source = os.fspath(plan)
            try:
                document = tomllib.loads(Path(source).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigurationError(f"{source}: cannot read the plan: {exc}") from None
        return _Loader(source, os.environ if environ is None else environ).load(document)


class _Loader:
    def __init__(self, source: str | None, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ

    def error(self, message: str, field: str | None = None) -> ConfigurationError:
        where = [part for part in (self.source, f"field {field!r}" if field else None) if part]
        return ConfigurationError(": ".join([*where, message]))

    def load(self, document: Mapping[str, Any]) -> Anonymizer:
        unknown = sorted(set(document) - {"fields", "key_env", "keep_unlisted"})
        if unknown:
            raise self.error(f"unknown top-level keys {unknown}")
        fields = document.get("fields")
        if not isinstance(fields, Mapping) or not fields:
            raise self.error("the plan needs a non-empty [fields] table")
        keep_unlisted = document.get("keep_unlisted", False)
        if not isinstance(keep_unlisted, bool):
            raise self.error("keep_unlisted must be true or false")
        key_env = document.get("key_env")
        if key_env is not None and not isinstance(key_env, str):
            raise self.error("key_env must be the name of an environment variable")
        rules = {str(name): self.rule(str(name), spec, key_env) for name, spec in fields.items()}
        return Anonymizer(rules, keep_unlisted=keep_unlisted)

    def rule(self, field: str, spec: Any, key_env: str | None) -> Rule:
        params: dict[str, Any]
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, Mapping) and len(spec) == 1:
            ((name, table),) = spec.items()
            if not isinstance(table, Mapping):
                raise self.error(f"the parameters of {name!r} must be a table", field)
            params = dict(table)
        else:
            raise self.error(
                "a rule is a transform name or a one-entry table {name = {...}}", field
            )
        if name == "keep" and not params:
            return None
        if name == DROP and not params:
            return DROP
        if name in ("keep", DROP):
            raise self.error(f"{name!r} takes no parameters", field)
        if name not in _NAMED:
            known = sorted([*_NAMED, "drop", "keep"])
            raise self.error(f"unknown transform {name!r} (known: {', '.join(known)})", field)
        module_name, function_name, keyed = _NAMED[name]
        if "key" in params:
            raise self.error("a key never sits in the plan: name its variable in key_env", field)
        field_key_env = params.pop("key_env", None)
        if keyed:
            params["key"] = self.key(field, key_env if field_key_env is None else field_key_env)
        elif field_key_env is not None:
            raise self.error(f"key_env is only for keyed transforms, not {name!r}", field)
        try:
            module = importlib.import_module(f"securecustomer.anonymize.{module_name}")
            function = getattr(module, function_name)
        except (ImportError, AttributeError):
            raise self.error(f"the transform {name!r} is not available", field) from None
        try:
            if keyed:
                transform: Callable[[Any], Any] = function(**params)
                return transform
            inspect.signature(function).bind(None, **params)  # unknown parameters fail here
        except (TypeError, ValueError) as exc:
            # Ours and argument binding's messages name parameters, never the key.
            safe = isinstance(exc, ConfigurationError | TypeError)
            message = str(exc) if safe else type(exc).__name__
            raise self.error(f"bad parameters for {name!r}: {message}", field) from None
        bound = functools.partial(function, **params) if params else function
        parse = _TEXT_PARSERS.get(name)
        return bound if parse is None else functools.partial(_parsed, bound, parse)

    def key(self, field: str, key_env: Any) -> bytes:
        if not isinstance(key_env, str) or not key_env:
            raise self.error(
                "a keyed transform needs key_env naming an environment variable", field
            )
        raw = self.environ.get(key_env)
        if raw is None:
            raise self.error(f"the environment variable {key_env!r} is not set", field)
        try:
            key = bytes.fromhex(raw.strip())
        except (ValueError, binascii.Error):
            raise self.error(f"the environment variable {key_env!r} is not hex", field) from None
        if len(key) < _MIN_KEY_BYTES:
            raise self.error(
                f"the key in {key_env!r} is shorter than {_MIN_KEY_BYTES} bytes", field
            )
        return key
