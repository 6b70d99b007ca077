"""The condition language's syntax: tokenizer, parser, syntax tree, canonical text.

Grammar (lowest precedence first)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand)?
    operand    := literal | list | path | "(" expr ")"
    path       := ("subject" | "resource" | "context") ("." NAME)+
    list       := "[" (literal ("," literal)*)? "]"
    literal    := STRING | NUMBER | "true" | "false" | "null"

A condition nests at most `MAX_CONDITION_DEPTH` (32) levels: each ``(`` and each ``not``
counts one. The parser refuses anything deeper with `ExprSyntaxError` before it recurses
further, so that parsing, compiling, evaluating and translating to SQL (all recursive over
the tree, whose depth is at most three nodes per level) stay far below Python's recursion
limit. Lists hold literals only and do not nest.

Evaluation is strict: ``and``/``or``/``not`` need booleans, ordering needs two numbers or
two strings, ``in`` needs a list or set on the right, equality between different kinds of
value (a string and a number, a boolean and a number) is false. A missing attribute or a
type mismatch raises `EvaluationError`, which the engine turns into a fail-closed rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

import attrs

from securecustomer.exceptions import PolicyError

__all__ = [
    "MAX_CONDITION_DEPTH",
    "And",
    "Attr",
    "Compare",
    "EvaluationError",
    "Expr",
    "ExprSyntaxError",
    "Literal",
    "Not",
    "Or",
    "attributes",
    "kind",
    "parse",
    "unparse",
]

ROOTS: Final = frozenset({"subject", "resource", "context"})
COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})
#: How deeply a condition may nest: parentheses and ``not`` operators, counted together.
MAX_CONDITION_DEPTH: Final = 32


class ExprSyntaxError(PolicyError):
    """A condition that does not parse; ``position`` is the 0-based offset in the text.

    A `PolicyError` (and a ``ValueError``); the loader re-raises it naming the rule."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at column {position + 1}")
        self.position = position


class EvaluationError(PolicyError):
    """A condition could not be evaluated for one request (missing attribute, type error).

    An internal signal: the engine catches it and fails closed; it never reaches callers."""


# --- syntax tree --------------------------------------------------------------------------


def _literal_key(value: Any) -> Any:
    # Literals compare by the language's kinds: ``true`` is not ``1`` (Python says it is).
    if isinstance(value, tuple):
        return ("list", tuple(_literal_key(item) for item in value))
    return (kind(value), value)


@attrs.frozen
class Literal:
    value: Any = attrs.field(eq=_literal_key)


@attrs.frozen
class Attr:
    root: str
    path: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join((self.root, *self.path))


@attrs.frozen
class Compare:
    op: str
    left: Expr
    right: Expr


@attrs.frozen
class And:
    items: tuple[Expr, ...]


@attrs.frozen
class Or:
    items: tuple[Expr, ...]


@attrs.frozen
class Not:
    item: Expr


Expr = Literal | Attr | Compare | And | Or | Not


# --- tokenizer ----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_ESCAPES: Final = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}


def _unquote(text: str, position: int) -> str:
    out: list[str] = []
    chars = iter(enumerate(text[1:-1], start=position + 1))
    for _, ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        index, escaped = next(chars)
        if escaped not in _ESCAPES:
            raise ExprSyntaxError(f"unknown escape \\{escaped}", index)
        out.append(_ESCAPES[escaped])
    return "".join(out)


def _tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExprSyntaxError(f"unexpected character {text[pos]!r}", pos)
        kind_ = match.lastgroup
        raw = match.group()
        if kind_ == "number":
            try:
                value: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
            except ValueError:  # more digits than int() accepts
                raise ExprSyntaxError("number too long", pos) from None
            if isinstance(value, float) and not math.isfinite(value):
                raise ExprSyntaxError("number out of range", pos)
            tokens.append(("lit", value, pos))
        elif kind_ == "string":
            tokens.append(("lit", _unquote(raw, pos), pos))
        elif kind_ == "op":
            tokens.append(("op", raw, pos))
        elif kind_ == "name":
            keyword = {"true": True, "false": False, "null": None}
            if raw in keyword:
                tokens.append(("lit", keyword[raw], pos))
            elif raw in {"and", "or", "not", "in"}:
                tokens.append(("op", raw, pos))
            else:
                tokens.append(("name", raw, pos))
        pos = match.end()
    tokens.append(("end", None, len(text)))
    return tokens


# --- parser -------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def enter(self, pos: int) -> None:
        """One level deeper (a ``(`` or a ``not`` at *pos*); refuse past the limit."""
        self.depth += 1
        if self.depth > MAX_CONDITION_DEPTH:
            raise ExprSyntaxError(
                f"condition nested more than {MAX_CONDITION_DEPTH} levels deep "
                "(parentheses and 'not' count)",
                pos,
            )

    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, Any, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, op: str) -> bool:
        kind_, value, _ = self.peek()
        if kind_ == "op" and value == op:
            self.index += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            _, value, pos = self.peek()
            found = "end of condition" if value is None else repr(value)
            raise ExprSyntaxError(f"expected {op!r}, found {found}", pos)

    def parse(self) -> Expr:
        expr = self.parse_or()
        kind_, value, pos = self.peek()
        if kind_ != "end":
            raise ExprSyntaxError(f"unexpected {value!r}", pos)
        return expr

    def parse_or(self) -> Expr:
        items = [self.parse_and()]
        while self.accept("or"):
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Expr:
        items = [self.parse_not()]
        while self.accept("and"):
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_not(self) -> Expr:
        kind_, value, pos = self.peek()
        if kind_ == "op" and value == "not":
            nxt = self.tokens[self.index + 1]  # "not" is never the last token ("end" is)
            if not (nxt[0] == "op" and nxt[1] == "in"):
                self.index += 1
                self.enter(pos)
                item = self.parse_not()
                self.depth -= 1
                return Not(item)
        return self.parse_comparison()

    def parse_comparison(self) -> Expr:
        left = self.parse_operand()
        kind_, value, _ = self.peek()
        if kind_ != "op":
            return left
        if value == "not":
            self.index += 1
            self.expect("in")
            op = "not in"
        elif value in COMPARISONS:
            self.index += 1
            op = value
        else:
            return left
        right = self.parse_operand()
        kind_, value, pos = self.peek()
        if kind_ == "op" and (value in COMPARISONS or value == "not"):
            raise ExprSyntaxError("chained comparisons need parentheses", pos)
        return Compare(op, left, right)

    def parse_operand(self) -> Expr:
        kind_, value, pos = self.take()
        if kind_ == "lit":
            return Literal(value)
        if kind_ == "op" and value == "(":
            self.enter(pos)
            expr = self.parse_or()
            self.expect(")")
            self.depth -= 1
            return expr
        if kind_ == "op" and value == "[":
            items: list[Any] = []
            if not self.accept("]"):
                while True:
                    item_kind, item, item_pos = self.take()
                    if item_kind != "lit":
                        raise ExprSyntaxError("list items must be literals", item_pos)
                    items.append(item)
                    if self.accept("]"):
                        break
                    self.expect(",")
            return Literal(tuple(items))
        if kind_ == "name":
            if value not in ROOTS:
                raise ExprSyntaxError(
                    f"unknown name {value!r} (attributes start with subject., resource. "
                    "or context.)",
                    pos,
                )
            path: list[str] = []
            while self.accept("."):
                name_kind, name, name_pos = self.take()
                if name_kind != "name":
                    raise ExprSyntaxError("expected an attribute name after '.'", name_pos)
                path.append(name)
            if not path:
                raise ExprSyntaxError(f"{value!r} needs an attribute, as in {value}.id", pos)
            return Attr(value, tuple(path))
        found = "end of condition" if kind_ == "end" else repr(value)
        raise ExprSyntaxError(f"expected a value, found {found}", pos)


def parse(text: str) -> Expr:
    """Parse one condition; raise `ExprSyntaxError` with the column of the first problem."""
    return _Parser(text).parse()


# --- kinds of values ----------------------------------------------------------------------


def kind(value: object) -> str:
    """The kind of a value for the language's strict comparisons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, list | tuple | set | frozenset):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return type(value).__name__


def attributes(expr: Expr) -> list[Attr]:
    """Every attribute path the condition reads, in order of appearance."""
    if isinstance(expr, Attr):
        return [expr]
    if isinstance(expr, Literal):
        return []
    if isinstance(expr, Not):
        return attributes(expr.item)
    if isinstance(expr, And | Or):
        return [attr for item in expr.items for attr in attributes(item)]
    return attributes(expr.left) + attributes(expr.right)


def unparse(expr: Expr) -> str:
    """Canonical text of a condition (used by explanations and diffs)."""
    if isinstance(expr, Literal):
        return _literal_text(expr.value)
    if isinstance(expr, Attr):
        return str(expr)
    if isinstance(expr, Not):
        return f"not ({unparse(expr.item)})"
    if isinstance(expr, And | Or):
        word = " and " if isinstance(expr, And) else " or "
        return word.join(f"({unparse(item)})" for item in expr.items)
    return f"{_operand_text(expr.left)} {expr.op} {_operand_text(expr.right)}"


def _operand_text(expr: Expr) -> str:
    # An operand that is itself an operation needs parentheses: "(a and b) == true".
    text = unparse(expr)
    return text if isinstance(expr, Literal | Attr) else f"({text})"


def _literal_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = escaped.replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal_text(item) for item in value) + "]"
    return repr(value)
