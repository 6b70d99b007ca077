"""Policy documents: loading TOML / JSON / YAML / dicts into a validated, immutable `Policy`.

Every problem raises `PolicyError` naming the file, the rule (id or ``rules[N]``) and the key;
nothing is partly loaded. Unknown keys are errors: a misspelt ``field`` must not silently
grant every field.

A document nests at most `MAX_DOCUMENT_DEPTH` (32) levels of tables and lists (a valid one
needs four). The parsers of JSON, TOML and YAML recurse on nesting, so the text is measured
before it is parsed (without recursion: a bracket count outside strings for JSON and TOML,
YAML's own event stream), any `RecursionError` a parser still raises becomes a
`PolicyError`, and the parsed structure (or a dict given directly) is measured again,
iteratively, before anything else looks at it. Values shown in messages are abbreviated.
"""

from __future__ import annotations

import json
import os
import re
import reprlib
from collections.abc import Iterable, Iterator, Mapping, Set
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import attrs

from securecustomer.exceptions import PolicyError, PolicyUsageError
from securecustomer.policy._expr import compile_expr
from securecustomer.policy._parse import Expr, ExprSyntaxError, parse, unparse

if TYPE_CHECKING:
    from securecustomer.policy._lint import Finding

__all__ = ["MAX_DOCUMENT_DEPTH", "Policy", "Rule", "parse_duration"]

#: How deeply a policy document may nest tables and lists (the top-level table is one).
MAX_DOCUMENT_DEPTH: Final = 32

_TOP_KEYS: Final = frozenset({"version", "roles", "rules", "constraints", "description"})
_ROLE_KEYS: Final = frozenset({"inherits", "description"})
_RULE_KEYS: Final = frozenset(
    {
        "id",
        "effect",
        "roles",
        "subjects",
        "actions",
        "resources",
        "tenants",
        "fields",
        "masks",
        "unmask",
        "when",
        "mfa_max_age",
        "purposes",
        "description",
    }
)
_CONSTRAINT_KEYS: Final = frozenset({"exclusive"})
_DURATION: Final = re.compile(r"(\d+)([smhd])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """``"15m"``, ``"1h30m"``, ``"90s"``, ``"2d"`` or a number of seconds, as a timedelta.

    Anything else, zero, a negative number or more than `timedelta` holds raises
    `PolicyError` (a `ValueError`).
    """
    if isinstance(value, bool):
        raise PolicyError("a duration is a string such as '15m' or a number of seconds")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and value and _DURATION.sub("", value) == "":
            seconds = float(sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(value)))
        else:
            raise PolicyError(
                f"{_shown(value)} is not a duration (use a number of seconds or e.g. '15m', "
                "'1h30m')"
            )
        if not seconds > 0:  # also NaN
            raise PolicyError("a duration must be positive")
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError) as exc:  # beyond float or timedelta, 4300+ digits
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(f"{_shown(value)} is too long a duration") from None


@attrs.frozen(slots=True)
class Rule:
    """One rule, validated. ``None`` in a set-valued field means "any"."""

    id: str
    index: int
    effect: str
    roles: frozenset[str]
    subjects: frozenset[str]
    actions: frozenset[str] | None
    resources: frozenset[str] | None
    tenants: frozenset[str] | None
    fields: frozenset[str] | None
    masks: Mapping[str, str]
    when: Expr | None
    mfa_max_age: timedelta | None
    purposes: frozenset[str] | None
    description: str | None = None
    #: Fields this rule shows in clear even where other matching rules mask them.
    unmask: frozenset[str] = frozenset()

    @property
    def condition(self) -> str | None:
        """The condition in canonical form, or ``None``."""
        return None if self.when is None else unparse(self.when)

    @property
    def allow(self) -> bool:
        return self.effect == "allow"


@attrs.frozen(slots=True)
class Policy:
    """A validated policy document. Build one with ``from_toml``, ``from_json``,
    ``from_yaml``, ``from_file`` or ``from_dict``.

    Example:
        ```python
        policy = Policy.from_toml('''
        version = 1
        [roles.agent]
        [[rules]]
        id = "agents-read"
        effect = "allow"
        roles = ["agent"]
        actions = ["read"]
        resources = ["customer"]
        ''')
        ```
    """

    roles: Mapping[str, tuple[str, ...]]
    rules: tuple[Rule, ...]
    exclusive: tuple[frozenset[str], ...] = ()
    source: str | None = None
    ancestors: Mapping[str, frozenset[str]] = attrs.field(factory=dict, repr=False, eq=False)

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], *, source: str | None = None) -> Policy:
        """Validate a policy already parsed into Python values."""
        return _load(document, source)

    @classmethod
    def from_toml(cls, text_or_path: str | os.PathLike[str]) -> Policy:
        """Load TOML text, or a ``.toml`` file given as a path."""
        text, source = _read(text_or_path, looks_like_text="=" in str(text_or_path))
        _check_brackets(text, _TOML_SKIP, source)
        import tomllib  # here, not at the top: only TOML documents pay for its import

        try:
            document = tomllib.loads(text)
        except RecursionError:
            _too_deep(source)
        except ValueError as exc:  # TOMLDecodeError, or an integer of 4300+ digits
            message = str(exc)
            if message.endswith("(at end of document)"):  # name the line here too
                message = f"{message[:-1]}, line {max(len(text.splitlines()), 1)})"
            raise PolicyError(f"not valid TOML: {message}", source=source) from None
        return _load(document, source)

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike[str]) -> Policy:
        """Load JSON text, or a ``.json`` file given as a path."""
        looks = str(text_or_path).lstrip().startswith("{")
        text, source = _read(text_or_path, looks_like_text=looks)
        _check_brackets(text, _JSON_SKIP, source)
        try:
            document = json.loads(text)
        except RecursionError:
            _too_deep(source)
        except json.JSONDecodeError as exc:
            raise PolicyError(
                f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                source=source,
            ) from None
        except ValueError as exc:  # an integer of 4300+ digits
            raise PolicyError(f"not valid JSON: {exc}", source=source) from None
        return _load(document, source)

    @classmethod
    def from_yaml(cls, text_or_path: str | os.PathLike[str]) -> Policy:
        """Load YAML text or a file (needs PyYAML; only safe loading is used)."""
        try:
            import yaml  # type: ignore[import-untyped,unused-ignore]
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "Policy.from_yaml needs PyYAML: pip install 'securecustomer[yaml]'"
            ) from None
        looks = "\n" in str(text_or_path) or ":" in str(text_or_path)
        text, source = _read(text_or_path, looks_like_text=looks)
        try:
            # The event stream is produced without recursion; composing nodes recurses.
            depth = 0
            for event in yaml.parse(text, Loader=yaml.SafeLoader):
                if isinstance(event, yaml.CollectionStartEvent):
                    depth += 1
                    if depth > MAX_DOCUMENT_DEPTH:
                        _too_deep(source, line=event.start_mark.line + 1)
                elif isinstance(event, yaml.CollectionEndEvent):
                    depth -= 1
            document = yaml.safe_load(text)
        except RecursionError:
            _too_deep(source)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            if isinstance(exc, PolicyError):
                raise
            # ValueError: an integer of 4300+ digits, a date that does not exist
            raise PolicyError(f"not valid YAML: {exc}", source=source) from None
        return _load(document, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Policy:
        """Load a file by its suffix: ``.toml``, ``.json``, ``.yaml`` / ``.yml``."""
        suffix = Path(path).suffix.lower()
        loaders = {".toml": cls.from_toml, ".json": cls.from_json}
        loaders |= {".yaml": cls.from_yaml, ".yml": cls.from_yaml}
        if suffix not in loaders:
            raise PolicyError(
                f"cannot tell the format of {os.fspath(path)!r}: use .toml, .json or .yaml",
                source=os.fspath(path),
            )
        return loaders[suffix](Path(path))

    # --- queries ---------------------------------------------------------------------------

    def effective_roles(self, roles: Iterable[str]) -> frozenset[str]:
        """*roles* with every role they inherit, transitively."""
        out: set[str] = set()
        for role in roles:
            out |= self.ancestors.get(role, frozenset((role,)))
        return frozenset(out)

    def lint(self) -> list[Finding]:
        """Findings a reviewer should look at: unknown or unused roles, shadowed and
        unreachable rules, wildcards over every field, overlapping masks. See
        `Finding` for the codes."""
        from securecustomer.policy._lint import lint

        return lint(self)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # too long for a file name, or a NUL byte
        return False


def _read(text_or_path: str | os.PathLike[str], *, looks_like_text: bool) -> tuple[str, str | None]:
    """A ``str`` is document text when it has a line break, a path when such a file exists,
    and otherwise whatever *looks_like_text* guesses; a ``PathLike`` is always a path."""
    if not isinstance(text_or_path, str | os.PathLike):
        raise PolicyUsageError(
            f"a policy is loaded from text (str) or a path, not {type(text_or_path).__name__}"
        )
    if isinstance(text_or_path, str):
        if "\n" in text_or_path:
            return text_or_path, None
        if looks_like_text and not _is_file(text_or_path):
            return text_or_path, None
    path = Path(text_or_path)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise PolicyError("no such file", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the file: {exc}", source=str(path)) from None


# --- nesting ------------------------------------------------------------------------------

_SHOW: Final = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 60


def _shown(value: object) -> str:
    """A value for a message: abbreviated, nested values elided (never a RecursionError)."""
    return _SHOW.repr(value)


#: Strings (which may hold brackets) of JSON, and strings and comments of TOML.
_JSON_SKIP: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_TOML_SKIP: Final = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|\'[^\'\n]*\'|#[^\n]*'
)
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


def _too_deep(source: str | None, *, line: int | None = None) -> NoReturn:
    where = "" if line is None else f" (line {line})"
    raise PolicyError(f"nested more than {MAX_DOCUMENT_DEPTH} levels deep{where}", source=source)


def _check_brackets(text: str, skip: re.Pattern[str], source: str | None) -> None:
    """Refuse text whose brackets, outside strings and comments, nest too deeply: the
    parsers recurse once per level. Brackets never nest less than the tables and lists
    they make, so this refuses nothing the measure of the parsed document would accept."""
    brackets = _NOT_BRACKET.sub("", skip.sub("", text))
    depth = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > MAX_DOCUMENT_DEPTH:
                _too_deep(source)
        else:
            depth -= 1


_CONTAINERS: Final = (Mapping, list, tuple, Set)


def _children(value: Any) -> Iterator[tuple[str | int | None, Any]]:
    """(key or index, child) of a table or list; a table's keys are children too."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, _CONTAINERS):
                yield None, key
            yield key, item
    else:
        yield from enumerate(value)


def _measure(document: object, source: str | None) -> None:
    """Refuse a structure nested more than `MAX_DOCUMENT_DEPTH` levels deep or containing
    itself, naming where. Iterative; a value shared by several parents (a YAML alias) is
    measured once, so the cost is linear in the number of distinct tables and lists."""
    if not isinstance(document, _CONTAINERS):
        return
    heights: dict[int, int] = {}  # id -> levels of tables and lists from there down
    stack: list[tuple[Any, Iterator[tuple[str | int | None, Any]], list[int]]] = [
        (document, _children(document), [0])
    ]
    path: list[str | int | None] = []
    on_path = {id(document)}
    while stack:
        value, children, below = stack[-1]
        step = next(children, None)
        if step is None:
            stack.pop()
            on_path.discard(id(value))
            heights[id(value)] = below[0] + 1
            if stack:
                path.pop()
                stack[-1][2][0] = max(stack[-1][2][0], below[0] + 1)
            continue
        key, child = step
        if not isinstance(child, _CONTAINERS):
            continue
        known = heights.get(id(child))
        if known is not None:
            if len(stack) + known > MAX_DOCUMENT_DEPTH:
                _refuse_at(document, [*path, key], source, "nested more than")
            below[0] = max(below[0], known)
            continue
        if id(child) in on_path:
            _refuse_at(document, [*path, key], source, "refers to itself")
        if len(stack) >= MAX_DOCUMENT_DEPTH:
            _refuse_at(document, [*path, key], source, "nested more than")
        path.append(key)
        on_path.add(id(child))
        stack.append((child, _children(child), [0]))


def _refuse_at(
    document: Any, path: list[str | int | None], source: str | None, what: str
) -> NoReturn:
    """A PolicyError for the value at *path*: ``rule`` is the rule's id (or ``rules[N]``)
    when the path is inside one, ``field`` the rest of the path."""
    rule = None
    if len(path) > 1 and path[0] == "rules" and isinstance(path[1], int):
        raw = document["rules"][path[1]]
        rule_id = raw.get("id") if isinstance(raw, Mapping) else None
        rule = rule_id if isinstance(rule_id, str) and rule_id.strip() else f"rules[{path[1]}]"
        path = path[2:]
    field = ""
    for part in path:
        if isinstance(part, int):
            field += f"[{part}]"
        else:  # a key; None stands for a key that is itself a list or table
            field += "." + (str(part)[:60] if isinstance(part, str) else "(a key)")
    message = (
        f"nested more than {MAX_DOCUMENT_DEPTH} levels deep"
        if what == "nested more than"
        else "refers to itself (a value containing itself)"
    )
    raise PolicyError(message, source=source, rule=rule, field=field.lstrip(".") or None)


# --- validation ---------------------------------------------------------------------------


class _Loader:
    def __init__(self, source: str | None) -> None:
        self.source = source

    def error(self, message: str, *, rule: str | None = None, field: str | None = None) -> NoReturn:
        raise PolicyError(message, source=self.source, rule=rule, field=field)

    def names(
        self, value: object, *, rule: str | None, field: str, allow_star: bool = True
    ) -> frozenset[str] | None:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            self.error(
                f"must be a list of strings, not {type(value).__name__}", rule=rule, field=field
            )
        items: list[str] = []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                self.error(
                    f"must hold non-empty strings, found {_shown(item)}", rule=rule, field=field
                )
            items.append(item)
        if not items:
            self.error("must not be empty (leave the key out to mean any)", rule=rule, field=field)
        if "*" in items:
            if not allow_star:
                self.error("'*' is not allowed here", rule=rule, field=field)
            if len(items) > 1:
                self.error("'*' already means any: list nothing else", rule=rule, field=field)
            return None
        return frozenset(items)

    def keys(
        self,
        table: Mapping[str, Any],
        allowed: frozenset[str],
        *,
        rule: str | None = None,
        prefix: str | None = None,
    ) -> None:
        unknown = sorted((key for key in table if key not in allowed), key=str)
        if unknown:
            key = unknown[0]
            import difflib  # only a misspelt key pays for its import

            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            self.error(
                f"unknown key {key!r}{hint} (expected one of {', '.join(sorted(allowed))})",
                rule=rule,
                field=str(key) if prefix is None else f"{prefix}.{key}",
            )

    def roles(self, document: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        raw = document.get("roles", {})
        if not isinstance(raw, Mapping):
            self.error("must be a table of roles", field="roles")
        roles: dict[str, tuple[str, ...]] = {}
        for name, spec in raw.items():
            where = f"roles.{name}"
            if spec is None:
                spec = {}
            if not isinstance(spec, Mapping):
                self.error("must be a table (use [roles.NAME])", field=where)
            self.keys(spec, _ROLE_KEYS, prefix=where)
            inherits = spec.get("inherits", [])
            if inherits == []:
                roles[name] = ()
                continue
            parents = self.names(inherits, rule=None, field=f"{where}.inherits", allow_star=False)
            roles[name] = tuple(sorted(parents or ()))
        for name, declared in roles.items():
            for parent in declared:
                if parent not in roles:
                    self.error(
                        f"inherits undeclared role {parent!r}", field=f"roles.{name}.inherits"
                    )
        return roles

    def ancestors(self, roles: Mapping[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
        """Each role's transitive closure, by an iterative depth-first walk (no recursion
        limit on deep chains); a cycle is reported with its path."""
        done: dict[str, frozenset[str]] = {}
        for start in roles:
            if start in done:
                continue
            path = [start]
            on_path = {start}
            pending: list[Iterator[str]] = [iter(roles[start])]
            while pending:
                parent = next(pending[-1], None)
                if parent is None:
                    pending.pop()
                    name = path.pop()
                    on_path.discard(name)
                    found = {name}
                    for inherited in roles[name]:
                        found |= done[inherited]
                    done[name] = frozenset(found)
                elif parent in on_path:
                    cycle = " -> ".join([*path[path.index(parent) :], parent])
                    self.error(f"role inheritance has a cycle: {cycle}", field="roles")
                elif parent not in done:
                    path.append(parent)
                    on_path.add(parent)
                    pending.append(iter(roles[parent]))
        return done

    def rule(self, raw: object, index: int, seen: set[str]) -> Rule:
        label = f"rules[{index}]"
        if not isinstance(raw, Mapping):
            self.error("must be a table", rule=label)
        rule_id = raw.get("id", label)
        if not isinstance(rule_id, str) or not rule_id.strip():
            self.error("must be a non-empty string", rule=label, field="id")
        if rule_id in seen:
            self.error(
                f"duplicate rule id (also used by an earlier rule, this is {label})",
                rule=rule_id,
                field="id",
            )
        seen.add(rule_id)
        self.keys(raw, _RULE_KEYS, rule=rule_id)
        effect = raw.get("effect")
        if effect not in ("allow", "deny"):
            self.error(
                f"must be 'allow' or 'deny', not {_shown(effect)}", rule=rule_id, field="effect"
            )

        def names(key: str, *, required: bool = False, star: bool = True) -> frozenset[str] | None:
            if key not in raw:
                if required:
                    self.error("is required", rule=rule_id, field=key)
                return None
            return self.names(raw[key], rule=rule_id, field=key, allow_star=star)

        roles = names("roles")
        subjects = names("subjects", star=False)
        if "roles" not in raw and "subjects" not in raw:
            self.error(
                "needs roles or subjects (roles = ['*'] means anyone)", rule=rule_id, field="roles"
            )
        fields = names("fields", star=False)
        masks = raw.get("masks", {})
        if not isinstance(masks, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in masks.items()
        ):
            self.error("must be a table of field = mask name", rule=rule_id, field="masks")
        if masks and effect == "deny":
            self.error("a deny rule cannot mask: it hides its fields", rule=rule_id, field="masks")
        for field_name in masks:
            if fields is not None and field_name not in fields:
                self.error(
                    f"masks field {field_name!r}, which the rule does not list in fields",
                    rule=rule_id,
                    field="masks",
                )
        unmask = names("unmask", star=False) or frozenset()
        if unmask and effect == "deny":
            self.error(
                "a deny rule cannot unmask: it hides its fields", rule=rule_id, field="unmask"
            )
        for field_name in sorted(unmask):
            if fields is not None and field_name not in fields:
                self.error(
                    f"unmasks field {field_name!r}, which the rule does not list in fields",
                    rule=rule_id,
                    field="unmask",
                )
            if field_name in masks:
                self.error(
                    f"both masks and unmasks field {field_name!r}", rule=rule_id, field="unmask"
                )
        when = raw.get("when")
        expr: Expr | None = None
        if when is not None:
            if not isinstance(when, str):
                self.error("must be a string", rule=rule_id, field="when")
            try:
                expr = parse(when)
                compile_expr(expr)
            except ExprSyntaxError as exc:
                self.error(f"cannot parse the condition: {exc}", rule=rule_id, field="when")
        mfa: timedelta | None = None
        if "mfa_max_age" in raw:
            if effect == "deny":
                self.error("only an allow rule can ask for MFA", rule=rule_id, field="mfa_max_age")
            try:
                mfa = parse_duration(raw["mfa_max_age"])
            except ValueError as exc:
                self.error(str(exc), rule=rule_id, field="mfa_max_age")
        description = raw.get("description")
        if description is not None and not isinstance(description, str):
            self.error("must be a string", rule=rule_id, field="description")
        return Rule(
            id=rule_id,
            index=index,
            effect=effect,
            roles=frozenset(("*",)) if "roles" in raw and roles is None else (roles or frozenset()),
            subjects=subjects or frozenset(),
            actions=names("actions", required=True),
            resources=names("resources", required=True),
            tenants=names("tenants", star=False),
            fields=fields,
            masks=dict(masks),
            when=expr,
            mfa_max_age=mfa,
            purposes=names("purposes", star=False),
            description=description,
            unmask=unmask,
        )

    def exclusive(
        self, document: Mapping[str, Any], ancestors: Mapping[str, frozenset[str]]
    ) -> tuple[frozenset[str], ...]:
        raw = document.get("constraints", {})
        if not isinstance(raw, Mapping):
            self.error("must be a table", field="constraints")
        self.keys(raw, _CONSTRAINT_KEYS, prefix="constraints")
        groups = raw.get("exclusive", [])
        if not isinstance(groups, list):
            self.error("must be a list of lists of roles", field="constraints.exclusive")
        out: list[frozenset[str]] = []
        for number, group in enumerate(groups):
            where = f"constraints.exclusive[{number}]"
            names = self.names(group, rule=None, field=where, allow_star=False)
            assert names is not None  # noqa: S101 - allow_star=False
            if len(names) < 2:
                self.error("needs at least two roles", field=where)
            for name in sorted(names):
                if name not in ancestors:
                    self.error(f"names undeclared role {name!r}", field=where)
            for role, closure in sorted(ancestors.items()):
                both = sorted(closure & names)
                if len(both) > 1:
                    self.error(
                        f"role {role!r} inherits mutually exclusive roles "
                        f"{both[0]!r} and {both[1]!r}",
                        field=where,
                    )
            out.append(names)
        return tuple(out)


def _load(document: object, source: str | None) -> Policy:
    _measure(document, source)
    loader = _Loader(source)
    if not isinstance(document, Mapping):
        loader.error("a policy document is a table at the top level")
    loader.keys(document, _TOP_KEYS)
    version = document.get("version")
    if type(version) is not int or version != 1:
        loader.error(f"must be 1 (the only version), not {_shown(version)}", field="version")
    roles = loader.roles(document)
    ancestors = loader.ancestors(roles)
    raw_rules = document.get("rules", [])
    if not isinstance(raw_rules, list):
        loader.error("must be a list of tables (use [[rules]])", field="rules")
    seen: set[str] = set()
    rules = tuple(loader.rule(raw, index, seen) for index, raw in enumerate(raw_rules))
    exclusive = loader.exclusive(document, ancestors)
    return Policy(roles=roles, rules=rules, exclusive=exclusive, source=source, ancestors=ancestors)
