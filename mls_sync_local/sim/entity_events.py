"""The simulator's RESO EntityEvent log (RCP-027) and its ``$metadata`` document.

One event per write of any resource, as the RESO reference server does (domain.md,
"EntityEvent"): the event does not say what the write was, only which record. The log is
append-only and its sequence only grows, except where a variant scripts a server that breaks
the rules (``reset``) or forgets (``expire``). Variants a real server may choose:

- ``compaction``: only the newest event per (resource, key) is served, so sequences have
  gaps (RCP-027 lets a server hide an event when a later one names the same record);
- ``step``: sequences grow by more than 1 (sparse, as a shared sequence across tables is);
- ``short_pages``: a page cut by ``$top`` ends without a nextLink although more exist (the
  reference server does this: a client must ask again after the last sequence it saw).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode
from xml.sax.saxutils import quoteattr

from mls_sync_local.sim.odata import (
    BoolOp,
    Cmp,
    Field,
    Lit,
    Node,
    ODataError,
    evaluate,
    parse_filter,
    parse_orderby,
)

SEQUENCE = "EntityEventSequence"
EVENT_FIELDS = (SEQUENCE, "ResourceName", "ResourceRecordKey")


@dataclass(frozen=True, slots=True)
class SimEvent:
    sequence: int
    resource: str
    key: str

    def record(self) -> dict[str, Any]:
        return {
            SEQUENCE: self.sequence,
            "ResourceName": self.resource,
            "ResourceRecordKey": self.key,
        }


@dataclass(frozen=True)
class PageShape:
    """How the hosting simulator writes pages (its own options, shared with Property)."""

    page_cap: int
    default_top: int
    odata_prefix: bool
    link_base: str
    """Absolute URL of the EntityEvent resource (nextLinks are written against it)."""


def _lower_bound(node: Node | None) -> int | None:
    """A sequence every match is at least (``gt``/``ge``/``eq`` on the sequence, through
    ``and``): lets a query start with a bisect instead of a scan of the whole log."""
    if isinstance(node, Cmp):
        if (
            isinstance(node.left, Field)
            and node.left.name == SEQUENCE
            and isinstance(node.right, Lit)
            and node.right.kind == "number"
        ):
            value = float(node.right.value)
            if node.op == "gt":
                return int(value) + 1
            if node.op in ("ge", "eq"):
                return int(-(-value // 1))
        return None
    if isinstance(node, BoolOp) and node.op == "and":
        bounds = [b for b in (_lower_bound(node.left), _lower_bound(node.right)) if b is not None]
        return max(bounds) if bounds else None
    return None


class EventLog:
    """The log itself; thread-safe on its own lock (the simulator also holds its own while it
    scripts writes, so events are appended in the order the writes happen)."""

    def __init__(
        self, *, compaction: bool = False, step: int = 1, short_pages: bool = False
    ) -> None:
        if step < 1:
            raise ValueError("step must be at least 1")
        self.compaction = compaction
        self.step = step
        self.short_pages = short_pages
        self._events: list[SimEvent] = []
        self._sequences: list[int] = []
        self._newest: dict[tuple[str, str], int] = {}
        self._next = 1
        self._lock = threading.Lock()
        self.listeners: list[Callable[[list[SimEvent]], None]] = []
        """Called (outside the lock) with each batch of appended events (push)."""

    # ------------------------------------------------------------------ writes

    def append(self, resource: str, keys: list[str]) -> list[SimEvent]:
        with self._lock:
            added: list[SimEvent] = []
            for key in keys:
                event = SimEvent(self._next, resource, key)
                self._next += self.step
                self._events.append(event)
                self._sequences.append(event.sequence)
                self._newest[(resource, key)] = event.sequence
                added.append(event)
        for listener in list(self.listeners):
            listener(added)
        return added

    def reset(self) -> None:
        """The log is emptied and the sequence restarts at 1: a server rebuilt or restored
        from a backup. RCP-027 forbids it (a sequence must always name the same record);
        real servers still do it, and a consumer must notice."""
        with self._lock:
            self._events.clear()
            self._sequences.clear()
            self._newest.clear()
            self._next = 1

    def expire(self, before: int) -> int:
        """Drops every event with a sequence below ``before`` (retention ran out); returns
        how many went."""
        with self._lock:
            cut = bisect.bisect_left(self._sequences, before)
            gone = self._events[:cut]
            del self._events[:cut]
            del self._sequences[:cut]
            for event in gone:
                if self._newest.get((event.resource, event.key)) == event.sequence:
                    del self._newest[(event.resource, event.key)]
            return cut

    # ------------------------------------------------------------------ reads

    def events(self) -> list[SimEvent]:
        """Every event served now (after compaction), oldest first."""
        with self._lock:
            return [e for e in self._events if self._served(e)]

    @property
    def last_sequence(self) -> int:
        with self._lock:
            return self._sequences[-1] if self._sequences else 0

    def _served(self, event: SimEvent) -> bool:
        return (
            not self.compaction or self._newest.get((event.resource, event.key)) == event.sequence
        )

    def query(
        self, params: Mapping[str, str], shape: PageShape, *, max_page_size: int | None
    ) -> tuple[int, dict[str, Any]]:
        """Answers one EntityEvent query: (status, body)."""
        try:
            node = parse_filter(params["$filter"]) if params.get("$filter") else None
            orderby = parse_orderby(params["$orderby"]) if params.get("$orderby") else []
            top = int(params.get("$top", shape.default_top))
            skip = int(params.get("$skip", "0"))
        except (ODataError, ValueError) as exc:
            return 400, {"error": {"code": "400", "message": str(exc)}}
        if top < 0 or skip < 0:
            return 400, {"error": {"code": "400", "message": "negative $top or $skip"}}
        if any(name not in EVENT_FIELDS for name, _ in orderby) or len(orderby) > 1:
            return 400, {"error": {"code": "400", "message": "EntityEvent orders by one field"}}
        descending = bool(orderby) and orderby[0][1]
        if orderby and orderby[0][0] != SEQUENCE:
            return 400, {"error": {"code": "400", "message": f"order by {SEQUENCE} only"}}
        cap = shape.page_cap if max_page_size is None else min(shape.page_cap, max_page_size)
        size = min(top, cap)
        # One match beyond the page says whether more remain.
        wanted = skip + size + 1
        with self._lock:
            start = 0
            bound = _lower_bound(node)
            if bound is not None:
                start = bisect.bisect_left(self._sequences, bound)
            span = self._events[start:]
            matches: list[SimEvent] = []
            for event in reversed(span) if descending else span:
                if not self._served(event):
                    continue
                if node is not None and not evaluate(node, event.record()):
                    continue
                matches.append(event)
                if len(matches) >= wanted:
                    break
        page = matches[skip : skip + size]
        more = len(matches) > skip + size
        prefix = "@odata." if shape.odata_prefix else "@"
        body: dict[str, Any] = {
            f"{prefix}context": f"{shape.link_base.rsplit('/', 1)[0]}/$metadata#EntityEvent",
            "value": [e.record() for e in page],
        }
        cut_by_top = top <= cap
        if more and not (self.short_pages and cut_by_top):
            rest = {k: v for k, v in params.items() if k != "$skip"}
            rest["$skip"] = str(skip + len(page))
            body[f"{prefix}nextLink"] = f"{shape.link_base}?{urlencode(rest, quote_via=quote)}"
        return 200, body


# ---------------------------------------------------------------------------- $metadata

_PROPERTY_FIELDS = (
    ("ListingKey", "Edm.String"),
    ("ListingId", "Edm.String"),
    ("StandardStatus", "Edm.String"),
    ("MlsStatus", "Edm.String"),
    ("ModificationTimestamp", "Edm.DateTimeOffset"),
    ("StatusChangeTimestamp", "Edm.DateTimeOffset"),
    ("CloseDate", "Edm.Date"),
    ("OriginatingSystemName", "Edm.String"),
)
_EVENT_TYPES = (
    (SEQUENCE, "Edm.Int64"),
    ("ResourceName", "Edm.String"),
    ("ResourceRecordKey", "Edm.String"),
)


def _entity_type(name: str, key: str, fields: tuple[tuple[str, str], ...]) -> str:
    props = "".join(
        f"<Property Name={quoteattr(n)} Type={quoteattr(t)}"
        + (' Nullable="false"' if n == key else "")
        + "/>"
        for n, t in fields
    )
    return (
        f"<EntityType Name={quoteattr(name)}><Key><PropertyRef Name={quoteattr(key)}/></Key>"
        f"{props}</EntityType>"
    )


def metadata_xml(*, extra_fields: tuple[tuple[str, str], ...], entity_events: bool) -> str:
    """A CSDL XML document (OData 4.0 CSDL, the form RESO Web API Core requires) with the
    Property entity set, and the EntityEvent set with its three fields when offered."""
    types = [_entity_type("Property", "ListingKey", _PROPERTY_FIELDS + extra_fields)]
    sets = ['<EntitySet Name="Property" EntityType="org.reso.metadata.Property"/>']
    if entity_events:
        types.append(_entity_type("EntityEvent", SEQUENCE, _EVENT_TYPES))
        sets.append('<EntitySet Name="EntityEvent" EntityType="org.reso.metadata.EntityEvent"/>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">'
        "<edmx:DataServices>"
        '<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="org.reso.metadata">'
        + "".join(types)
        + '<EntityContainer Name="Default">'
        + "".join(sets)
        + "</EntityContainer></Schema>"
        "</edmx:DataServices></edmx:Edmx>"
    )
