"""The part of CloudWatch Logs Insights' query language the dashboard's log widgets use,
evaluated over captured log events, so `mls-sync report` answers the same questions from a
local run (moto keeps the events but does not run such queries).

Supported: ``SOURCE '<group>'`` (one or more, leading), ``fields``, ``filter`` (``=``,
``!=``, ``<``, ``<=``, ``>``, ``>=``, ``like /re/``, ``in [...]``, joined by ``and`` / ``or``;
``and`` binds tighter), ``stats`` (``count(*)``, ``count(f)``, ``count_distinct(f)``,
``sum``, ``avg``, ``min``, ``max``, ``latest``, each ``as alias``, ``by f1, f2``),
``sort f [asc|desc]``, ``limit n``, ``display``. Anything else raises ``QueryError``: a
widget that cannot be rendered locally is an error, not a silently empty table (a unit test
runs every widget's query of template.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


class QueryError(ValueError):
    """A query (or a part of one) this evaluator does not understand."""


@dataclass(frozen=True)
class Aggregate:
    function: str
    argument: str  # "*" for count(*)
    alias: str


@dataclass
class Query:
    sources: list[str] = field(default_factory=list)
    steps: list[tuple[str, Any]] = field(default_factory=list)


_SOURCE = re.compile(r"^\s*SOURCE\s+'([^']*)'\s*$", re.IGNORECASE)
_AGG = re.compile(r"^(\w+)\(\s*(\*|[\w.@]+)\s*\)(?:\s+as\s+(\w+))?$", re.IGNORECASE)
_COMPARE = re.compile(r"^([\w.@]+)\s*(=|!=|<=|>=|<|>)\s*(.+)$")
_LIKE = re.compile(r"^([\w.@]+)\s+(not\s+)?like\s+/(.*)/$", re.IGNORECASE)
_IN = re.compile(r"^([\w.@]+)\s+(not\s+)?in\s+\[(.*)\]$", re.IGNORECASE)
_AGGREGATES = {"count", "count_distinct", "sum", "avg", "min", "max", "latest"}


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes, regexes and brackets."""
    parts, current, quote, depth = [], "", "", 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"/":
            quote = ch
            current += ch
        elif ch in "([":
            depth += 1
            current += ch
        elif ch in ")]":
            depth -= 1
            current += ch
        elif depth == 0 and text.startswith(sep, i):
            parts.append(current)
            current = ""
            i += len(sep)
            continue
        else:
            current += ch
        i += 1
    parts.append(current)
    return [p.strip() for p in parts]


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise QueryError(f"not a literal: {text!r}") from None


Predicate = Callable[[Row], bool]


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return op == "!="
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    try:
        a, b = float(left), float(right)
    except (TypeError, ValueError):
        a, b = str(left), str(right)  # type: ignore[assignment]
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _condition(text: str) -> Predicate:
    text = text.strip()
    if m := _LIKE.match(text):
        name, negated, pattern = m.group(1), bool(m.group(2)), re.compile(m.group(3))
        return lambda row: bool(pattern.search(str(row.get(name, "")))) != negated
    if m := _IN.match(text):
        name, negated = m.group(1), bool(m.group(2))
        values = [_literal(v) for v in _split(m.group(3), ",") if v]
        return lambda row: (row.get(name) in values) != negated
    if m := _COMPARE.match(text):
        name, op, value = m.group(1), m.group(2), _literal(m.group(3))
        return lambda row: _compare(op, row.get(name), value)
    raise QueryError(f"filter condition not understood: {text!r}")


def _all_of(terms: list[Predicate]) -> Predicate:
    return lambda row: all(t(row) for t in terms)


def _filter(text: str) -> Predicate:
    alternatives = [
        _all_of([_condition(t) for t in _split(part, " and ")]) for part in _split(text, " or ")
    ]
    return lambda row: any(a(row) for a in alternatives)


def _stats(text: str) -> tuple[list[Aggregate], list[str]]:
    by: list[str] = []
    head = text
    parts = re.split(r"\s+by\s+", text, maxsplit=1, flags=re.IGNORECASE)
    if len(parts) == 2:
        head, by = parts[0], [b for b in _split(parts[1], ",") if b]
    aggregates = []
    for item in _split(head, ","):
        m = _AGG.match(item)
        if not m or m.group(1).lower() not in _AGGREGATES:
            raise QueryError(f"stats function not understood: {item!r}")
        function, argument = m.group(1).lower(), m.group(2)
        alias = m.group(3) or f"{function}({argument})"
        aggregates.append(Aggregate(function, argument, alias))
    return aggregates, by


def parse(query: str) -> Query:
    parsed = Query()
    commands = _split(query.replace("\n", " "), "|")
    while commands and _SOURCE.match(commands[0]):
        m = _SOURCE.match(commands.pop(0))
        assert m is not None
        parsed.sources.append(m.group(1))
    for command in commands:
        if not command:
            continue
        word, _, rest = command.partition(" ")
        word = word.lower()
        if word in ("fields", "display"):
            parsed.steps.append((word, [f for f in _split(rest, ",") if f]))
        elif word == "filter":
            parsed.steps.append(("filter", _filter(rest)))
        elif word == "stats":
            parsed.steps.append(("stats", _stats(rest)))
        elif word == "sort":
            tokens = rest.split()
            if (
                not tokens
                or len(tokens) > 2
                or (len(tokens) == 2 and tokens[1] not in ("asc", "desc"))
            ):
                raise QueryError(f"sort not understood: {rest!r}")
            parsed.steps.append(("sort", (tokens[0], len(tokens) == 1 or tokens[1] == "desc")))
        elif word == "limit":
            try:
                parsed.steps.append(("limit", int(rest)))
            except ValueError:
                raise QueryError(f"limit not understood: {rest!r}") from None
        else:
            raise QueryError(f"command not supported locally: {word!r}")
    return parsed


def _aggregate(function: str, argument: str, rows: list[Row]) -> Any:
    if function == "count":
        return len(rows) if argument == "*" else sum(1 for r in rows if r.get(argument) is not None)
    values = [r.get(argument) for r in rows if r.get(argument) is not None]
    if function == "count_distinct":
        return len({str(v) for v in values})
    if function == "latest":
        return values[-1] if values else None
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    if not numbers:
        return None
    result = {
        "sum": sum(numbers),
        "avg": sum(numbers) / len(numbers),
        "min": min(numbers),
        "max": max(numbers),
    }[function]
    return int(result) if result == int(result) else result


def run(query: Query, events: Iterable[Row]) -> list[Row]:
    """The query over ``events`` (decoded log records with ``@timestamp`` in ms), oldest
    first as Logs Insights reads them."""
    rows = sorted(events, key=lambda r: r.get("@timestamp", 0))
    sorted_by_query = False
    for step, argument in query.steps:
        if step == "filter":
            rows = [r for r in rows if argument(r)]
        elif step in ("fields", "display"):
            rows = [{f: r.get(f) for f in argument} for r in rows]
        elif step == "stats":
            aggregates, by = argument
            groups: dict[tuple[str, ...], list[Row]] = {}
            for row in rows:
                groups.setdefault(tuple(str(row.get(b)) for b in by), []).append(row)
            rows = []
            for key, members in groups.items():
                out: Row = dict(zip(by, (members[0].get(b) for b in by), strict=True))
                del key
                for agg in aggregates:
                    out[agg.alias] = _aggregate(agg.function, agg.argument, members)
                rows.append(out)
        elif step == "sort":
            name, descending = argument
            present = [r for r in rows if r.get(name) is not None]
            missing = [r for r in rows if r.get(name) is None]
            present.sort(key=lambda r: _sort_key(r.get(name)), reverse=descending)
            rows = present + missing
            sorted_by_query = True
        elif step == "limit":
            rows = rows[:argument]
    if not sorted_by_query and not any(s == "stats" for s, _ in query.steps):
        rows.reverse()  # newest first, like the console
    return rows


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value))


def columns(query: Query, rows: list[Row]) -> list[str]:
    """The table's columns: the stats' groups and aliases, else the fields named, else
    every key seen."""
    for step, argument in reversed(query.steps):
        if step == "stats":
            aggregates, by = argument
            return [*by, *(a.alias for a in aggregates)]
        if step in ("fields", "display"):
            return list(argument)
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


__all__ = ["Query", "QueryError", "columns", "parse", "run"]
