"""A small OData v4 ``$filter`` / ``$orderby`` reader for the MLS simulator.

Supports what RESO clients send: eq/ne/gt/ge/lt/le, and/or/not, parentheses, ``in``, string
literals (``'O''Neil'``), unquoted DateTimeOffset and date literals, numbers, true/false/null,
and enum literals (``Namespace.StandardStatus'Active'``). DateTimeOffsets compare as
instants (nanoseconds), never as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mls_sync.timeutil import Instant, TimestampError

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<enum>[A-Za-z_][\w.]*'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<name>[A-Za-z_][\w./]*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)

COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_KEYWORDS = COMPARISONS | {"and", "or", "not", "in", "true", "false", "null"}


class ODataError(ValueError):
    """A query the simulator cannot read; answered with 400."""


@dataclass(frozen=True, slots=True)
class Lit:
    kind: str  # string | datetime | date | number | bool | null
    value: Any
    text: str = ""
    """The literal as written (DateTimeOffsets: what a text-comparing server compares)."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str


Operand = Lit | Field


@dataclass(frozen=True, slots=True)
class Cmp:
    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class In:
    operand: Operand
    values: tuple[Lit, ...]


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    inner: Node


Node = Cmp | In | BoolOp | Not


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ODataError(f"cannot read $filter at {pos}: {text[pos : pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind == "ws":
            continue
        value = match.group()
        if kind == "name" and value.lower() in _KEYWORDS:
            kind = "kw"
            value = value.lower()
        tokens.append((kind, value))
    return tokens


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    pos: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ODataError("$filter ends too early")
        self.pos += 1
        return tok

    def expect(self, kind: str, value: str) -> None:
        tok = self.take()
        if tok != (kind, value):
            raise ODataError(f"expected {value!r}, got {tok[1]!r}")

    def at(self, kind: str, value: str) -> bool:
        return self.peek() == (kind, value)

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek() is not None:
            raise ODataError(f"unexpected {self.peek()[1]!r} in $filter")  # type: ignore[index]
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at("kw", "or"):
            self.take()
            node = BoolOp("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.unary()
        while self.at("kw", "and"):
            self.take()
            node = BoolOp("and", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.at("kw", "not"):
            self.take()
            return Not(self.unary())
        if self.at("punct", "("):
            self.take()
            node = self.or_expr()
            self.expect("punct", ")")
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        tok = self.take()
        if tok == ("kw", "in"):
            self.expect("punct", "(")
            values: list[Lit] = []
            while True:
                item = self.operand()
                if not isinstance(item, Lit):
                    raise ODataError("'in' takes literals only")
                values.append(item)
                if self.at("punct", ","):
                    self.take()
                    continue
                self.expect("punct", ")")
                break
            return In(left, tuple(values))
        if tok[0] != "kw" or tok[1] not in COMPARISONS:
            raise ODataError(f"expected a comparison operator, got {tok[1]!r}")
        return Cmp(tok[1], left, self.operand())

    def operand(self) -> Operand:
        kind, value = self.take()
        if kind == "name":
            return Field(value)
        if kind == "string":
            return Lit("string", value[1:-1].replace("''", "'"))
        if kind == "enum":
            inner = value[value.index("'") + 1 : -1]
            return Lit("string", inner.replace("''", "'"))
        if kind == "datetime":
            try:
                return Lit("datetime", Instant.parse(value).epoch_ns, value)
            except TimestampError as exc:
                raise ODataError(str(exc)) from None
        if kind == "date":
            return Lit("date", value)
        if kind == "number":
            return Lit("number", float(value))
        if kind == "kw" and value in ("true", "false"):
            return Lit("bool", value == "true")
        if kind == "kw" and value == "null":
            return Lit("null", None)
        raise ODataError(f"expected a field or literal, got {value!r}")


def _side(operand: Operand, record: Mapping[str, Any], kind: str | None, text: bool = False) -> Any:
    """A literal's own value, or a record's field value in the literal's terms. With
    ``text``, DateTimeOffsets are compared as the strings written and served (SQLite)."""
    if text and kind == "datetime":
        if isinstance(operand, Lit):
            return operand.text
        value = record.get(operand.name)
        if value is not None and not isinstance(value, str):
            raise TypeError("not a timestamp")
        return value
    if isinstance(operand, Lit):
        return operand.value
    return _coerce(record.get(operand.name), kind)


def _kind(operand: Operand) -> str | None:
    return operand.kind if isinstance(operand, Lit) else None


def _coerce(value: Any, kind: str | None) -> Any:
    """A record's value in the literal's terms, or raise TypeError if incomparable."""
    if value is None:
        return None
    if kind == "datetime":
        if isinstance(value, str):
            try:
                return Instant.parse(value).epoch_ns
            except TimestampError:
                raise TypeError("not a timestamp") from None
        raise TypeError("not a timestamp")
    if kind == "number" and not isinstance(value, bool):
        return float(value)
    if kind == "date" and isinstance(value, str):
        return value[:10]
    return value


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        if op == "eq":
            return a is None and b is None
        if op == "ne":
            return not (a is None and b is None)
        return False
    try:
        if op == "eq":
            return bool(a == b)
        if op == "ne":
            return bool(a != b)
        if op == "gt":
            return bool(a > b)
        if op == "ge":
            return bool(a >= b)
        if op == "lt":
            return bool(a < b)
        return bool(a <= b)
    except TypeError:
        return False


def evaluate(node: Node, record: Mapping[str, Any], *, text_timestamps: bool = False) -> bool:
    """Whether ``record`` matches. ``text_timestamps``: DateTimeOffset literals compare with
    the served strings as text, as a server storing them in SQLite TEXT columns does
    (``…:03Z`` sorts after ``…:03.698Z``)."""
    text = text_timestamps
    if isinstance(node, BoolOp):
        if node.op == "and":
            return evaluate(node.left, record, text_timestamps=text) and evaluate(
                node.right, record, text_timestamps=text
            )
        return evaluate(node.left, record, text_timestamps=text) or evaluate(
            node.right, record, text_timestamps=text
        )
    if isinstance(node, Not):
        return not evaluate(node.inner, record, text_timestamps=text)
    if isinstance(node, In):
        for lit in node.values:
            try:
                if _compare("eq", _side(node.operand, record, lit.kind), lit.value):
                    return True
            except TypeError:
                continue
        return False
    kind = _kind(node.right) or _kind(node.left)
    try:
        left = _side(node.left, record, kind, text)
        right = _side(node.right, record, kind, text)
    except TypeError:
        return False
    return _compare(node.op, left, right)


@dataclass
class FilterInfo:
    """What a filter mentions: the simulator's vendor quirks refuse some shapes."""

    fields: set[str] = field(default_factory=set)
    or_count: int = 0
    equalities: list[tuple[str, Any]] = field(default_factory=list)


def describe(node: Node, info: FilterInfo | None = None) -> FilterInfo:
    info = info or FilterInfo()
    if isinstance(node, BoolOp):
        if node.op == "or":
            info.or_count += 1
        describe(node.left, info)
        describe(node.right, info)
    elif isinstance(node, Not):
        describe(node.inner, info)
    elif isinstance(node, In):
        if isinstance(node.operand, Field):
            info.fields.add(node.operand.name)
    else:
        for side in (node.left, node.right):
            if isinstance(side, Field):
                info.fields.add(side.name)
        if node.op == "eq" and isinstance(node.left, Field) and isinstance(node.right, Lit):
            info.equalities.append((node.left.name, node.right.value))
    return info


def parse_filter(text: str) -> Node:
    tokens = tokenize(text)
    if not tokens:
        raise ODataError("empty $filter")
    return _Parser(tokens).parse()


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """``"A asc, B desc"`` → ``[("A", False), ("B", True)]`` (True = descending)."""
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ODataError(f"cannot read $orderby item {part.strip()!r}")
        keys.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    if not keys:
        raise ODataError("empty $orderby")
    return keys


@dataclass
class Hint:
    """What any matching record must satisfy, for an index to narrow the candidates:
    a lower bound on a timestamp field (nanoseconds), or a set of values of one field."""

    ts_min: int | None = None
    values: tuple[str, frozenset[Any]] | None = None


def hint(node: Node, ts_fields: tuple[str, ...], key_fields: tuple[str, ...]) -> Hint:
    """A necessary condition of ``node`` (never narrower than the filter itself)."""
    if isinstance(node, Cmp):
        if (
            isinstance(node.left, Field)
            and isinstance(node.right, Lit)
            and node.right.kind == "datetime"
            and node.left.name in ts_fields
            and node.op in ("gt", "ge", "eq")
        ):
            return Hint(ts_min=int(node.right.value))
        if (
            node.op == "eq"
            and isinstance(node.left, Field)
            and isinstance(node.right, Lit)
            and node.left.name in key_fields
        ):
            return Hint(values=(node.left.name, frozenset([node.right.value])))
        return Hint()
    if isinstance(node, In):
        if isinstance(node.operand, Field) and node.operand.name in key_fields:
            return Hint(values=(node.operand.name, frozenset(v.value for v in node.values)))
        return Hint()
    if isinstance(node, BoolOp):
        a = hint(node.left, ts_fields, key_fields)
        b = hint(node.right, ts_fields, key_fields)
        if node.op == "and":
            return Hint(
                ts_min=max((x for x in (a.ts_min, b.ts_min) if x is not None), default=None),
                values=a.values or b.values,
            )
        if a.ts_min is not None and b.ts_min is not None:
            return Hint(ts_min=min(a.ts_min, b.ts_min))
        return Hint()
    return Hint()
