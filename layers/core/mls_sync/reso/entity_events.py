"""Reading the RESO EntityEvent log (RCP-027): where a connection stands, and what happened
after that.

The point of it: the anchor (the last event a connection applied) never moves past an event
not yet handed out, and a broken log is never silent. RCP-027 promises that a sequence always
names the same record and that an event is hidden only when a later one names the same
record; so the anchor's own event is asked again with each read (``ge``), and

- the same sequence naming another record, or nothing at all at or after the anchor, means
  the log was reset or expired: :class:`EventLogBroken`;
- the anchor's sequence missing is fine only if a later event names the anchor's record
  (compaction hid it): the pages are held back until that event is seen.

Pages are asked by keyset (``gt <last sequence>``), never by following an offset nextLink:
an offset over a log that is compacted between two pages skips events. A nextLink, or a page
exactly ``$top`` long, only says "more may remain". See docs/replication.md "EntityEvent
reading".
"""

from __future__ import annotations

import json
import xml.parsers.expat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mls_sync.reso.errors import MlsError, MlsMalformedPage, MlsProtocolError, MlsQueryRefused
from mls_sync.reso.odata import control, resolve_link

SEQUENCE = "EntityEventSequence"
PROPERTY = "Property"
MAX_KEY_LENGTH = 255
"""Longest ResourceRecordKey taken (RESO keys are String(255)); a longer one is skipped."""
MAX_SEQUENCE = 2**63 - 1
"""EntityEventSequence is the positive part of Int64 (RCP-027)."""
HEAD_TRIES = 5
"""Requests ``head`` makes past unreadable or foreign newest events before giving up."""
MAX_HELD_PAGES = 50
"""Pages held back while looking for a hidden anchor's record before the log is called
expired: past that, a full pass (re-anchor and read every tracked listing by key) is cheaper
than reading on, and a search that outlasts every invocation's deadline would never yield."""

GetJson = Callable[
    [str, dict[str, str] | None, float | None, dict[str, str] | None], tuple[dict[str, Any], str]
]
"""(url, params, deadline, headers) → (body, the URL asked): the client's ``_get``."""
GetText = Callable[[str, float | None], str]


class EventAnchor(BaseModel):
    """Where a connection stands in the log."""

    model_config = ConfigDict(frozen=True)

    sequence: int = Field(ge=0)
    key: str | None
    """ResourceRecordKey of the event at ``sequence``; None: the log was empty when anchored
    (sequence 0), so there is no event to verify."""


class EventPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    keys: list[str]
    """ResourceRecordKeys of this page's Property events, in order, deduplicated, the anchor's
    own event excluded."""
    anchor: EventAnchor
    """The last Property event of this page: where the connection stands once it is applied."""
    complete: bool
    """No more events after this page."""
    skipped: int = 0
    """Events of this page that could not be read (sequence not an integer, key missing or
    longer than 255 characters): counted, never fatal."""


class EventLogBroken(MlsError):  # noqa: N818 - the name the worker catches (issue 17)
    """The log no longer holds the anchor: it was reset (the sequence restarted) or expired
    (events were dropped). The only safe recovery is a full pass."""

    def __init__(self, reason: Literal["reset", "expired"], message: str) -> None:
        super().__init__(message)
        self.reason: Literal["reset", "expired"] = reason


# ---------------------------------------------------------------------------- pure parts


@dataclass(frozen=True, slots=True)
class Event:
    sequence: int
    resource: str
    key: str | None
    """None: a Property event whose key cannot be read (it still holds its place)."""


@dataclass
class ParsedEvents:
    events: list[Event] = field(default_factory=list)
    """Every event whose sequence can be read, any resource, in the order served."""
    skipped: int = 0

    @property
    def last_sequence(self) -> int | None:
        return self.events[-1].sequence if self.events else None


def _sequence(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_SEQUENCE else None


def parse_events(values: list[Any]) -> ParsedEvents:
    """Events from a page's ``value`` array. Unreadable ones are counted, never raised."""
    out = ParsedEvents()
    for raw in values:
        sequence = _sequence(raw.get(SEQUENCE)) if isinstance(raw, dict) else None
        if sequence is None:
            out.skipped += 1
            continue
        resource = raw.get("ResourceName")
        resource = resource if isinstance(resource, str) else ""
        key = raw.get("ResourceRecordKey")
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
            key = None
            if resource == PROPERTY:
                out.skipped += 1
        out.events.append(Event(sequence, resource, key))
    return out


def check_order(events: list[Event], after: int, *, inclusive: bool, host: str) -> None:
    """Sequences must increase within a page and from the last one seen (``after``; equal
    allowed for the first answer's ``ge``): a server serving out of order would make the
    anchor skip events, so it is refused, never worked around."""
    previous, allowed_equal = after, inclusive
    for event in events:
        if event.sequence < previous or (event.sequence == previous and not allowed_equal):
            raise MlsProtocolError(
                f"{host}: EntityEvent {event.sequence} came after {previous} "
                f"({SEQUENCE} out of order); anchor not advanced"
            )
        previous, allowed_equal = event.sequence, False


Verdict = Literal["found", "search"]


def verify_anchor(anchor: EventAnchor, first: Event) -> Verdict:
    """The first readable event of an ``ge anchor`` answer against the anchor: ``found`` (the
    same event: drop it), ``search`` (the anchor's event is hidden: legitimate only if a later
    event names its record), or :class:`EventLogBroken` (another record at that sequence)."""
    if first.sequence == anchor.sequence:
        if first.resource == PROPERTY and first.key == anchor.key:
            return "found"
        raise EventLogBroken(
            "reset",
            f"event {anchor.sequence} now names {first.resource or '?'} {first.key or '?'}, "
            f"not Property {anchor.key}: the log was reset",
        )
    return "search"


def more_remain(count: int, link: str | None, top: int) -> bool:
    """After a page of ``count`` values: a nextLink, or a page as long as ``$top`` (a server
    may end a page at ``$top`` without a link although more exist), means ask again; a short
    or empty page without one is the end."""
    return count > 0 and (link is not None or count >= top)


def property_keys(events: list[Event], drop: int | None = None) -> list[str]:
    """Keys of the readable Property events, first occurrence order, without the event at
    sequence ``drop`` (the anchor's own)."""
    keys = (e.key for e in events if e.resource == PROPERTY and e.key and e.sequence != drop)
    return list(dict.fromkeys(keys))


def last_property(events: list[Event], default: EventAnchor) -> EventAnchor:
    for event in reversed(events):
        if event.resource == PROPERTY and event.key:
            return EventAnchor(sequence=event.sequence, key=event.key)
    return default


def entity_sets(document: str) -> set[str]:
    """Entity set names in a ``$metadata`` document: CSDL XML (what RESO Web API Core
    requires) or CSDL JSON (OData 4.01). A DOCTYPE is refused outright: CSDL has none, and
    entity expansion is how hostile XML exhausts memory."""
    text = document.lstrip()
    if text.startswith("{"):
        return _json_entity_sets(text)
    names: set[str] = set()

    def start(name: str, attrs: dict[str, str]) -> None:
        if name.rsplit("|", 1)[-1] == "EntitySet" and attrs.get("Name"):
            names.add(attrs["Name"])

    def refuse(*_: object) -> None:
        raise MlsMalformedPage("$metadata has a DOCTYPE; not read")

    parser = xml.parsers.expat.ParserCreate(namespace_separator="|")
    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(text.encode(), True)
    except xml.parsers.expat.ExpatError as exc:
        raise MlsMalformedPage(f"$metadata is not readable XML ({exc})") from None
    return names


def _json_entity_sets(text: str) -> set[str]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise MlsMalformedPage(f"$metadata is not readable JSON ({exc})") from None
    names: set[str] = set()
    schemas = body.values() if isinstance(body, dict) else ()
    for schema in schemas:
        if not isinstance(schema, dict):
            continue
        for element in schema.values():
            if isinstance(element, dict) and element.get("$Kind") == "EntityContainer":
                names.update(
                    name
                    for name, member in element.items()
                    if isinstance(member, dict) and member.get("$Collection") is True
                )
    return names


# ---------------------------------------------------------------------------- the reader


@dataclass(kw_only=True)
class EventReader:
    """The EntityEvent half of one connection's client; every request goes through the
    client's transport (budgets, rate limits, retries, deadline, auth, request counter)."""

    get_json: GetJson
    get_text: GetText
    events_url: str
    metadata_url: str
    page_size: int
    host: str
    requests_made: Callable[[], int]
    """The transport's MLS request count so far."""
    requests: int = field(default=0, init=False)
    """EntityEvent and ``$metadata`` requests sent (retries included)."""
    skipped: int = field(default=0, init=False)
    """Unreadable events met so far."""

    def _fetch(
        self, url: str, params: dict[str, str] | None, deadline: float | None
    ) -> tuple[list[Any], ParsedEvents, str | None]:
        before = self.requests_made()
        try:
            headers = {"Prefer": f"odata.maxpagesize={self.page_size}"}
            body, asked = self.get_json(url, params, deadline, headers)
        finally:
            self.requests += self.requests_made() - before
        values = body.get("value")
        if not isinstance(values, list):
            raise MlsMalformedPage(f"{self.host}: EntityEvent page has no 'value' array")
        link = control(body, "nextLink")
        resolved = None
        if isinstance(link, str) and link.strip():
            resolved = resolve_link(
                link.strip(), request_url=asked, context=control(body, "context")
            )
        parsed = parse_events(values)
        self.skipped += parsed.skipped
        return values, parsed, resolved

    def supports(self, deadline: float | None) -> bool:
        """One GET of ``$metadata``: does the server offer an ``EntityEvent`` entity set? A
        server without ``$metadata`` (404) offers nothing to read."""
        before = self.requests_made()
        try:
            document = self.get_text(self.metadata_url, deadline)
        except MlsQueryRefused as exc:
            if exc.status == 404:
                return False
            raise
        finally:
            self.requests += self.requests_made() - before
        return "EntityEvent" in entity_sets(document)

    def head(self, deadline: float | None) -> EventAnchor:
        """The newest Property event (``$orderby`` desc, ``$top`` 1); ``EventAnchor(0, None)``
        when there is none. Newest events that cannot be read, or that name another resource
        (a server ignoring the ResourceName filter), are stepped past a few times."""
        condition = f"ResourceName eq '{PROPERTY}'"
        for _ in range(HEAD_TRIES):
            params = {"$filter": condition, "$orderby": f"{SEQUENCE} desc", "$top": "1"}
            values, parsed, _ = self._fetch(self.events_url, params, deadline)
            found = last_property(parsed.events[:1], EventAnchor(sequence=0, key=None))
            if found.key is not None:
                return found
            if not values:
                return found
            if parsed.last_sequence is None:
                break
            condition = f"{SEQUENCE} lt {parsed.last_sequence} and ResourceName eq '{PROPERTY}'"
        raise MlsProtocolError(f"{self.host}: the newest EntityEvent cannot be read")

    def after(self, anchor: EventAnchor, deadline: float | None) -> Iterator[EventPage]:
        """Pages of Property events after ``anchor``, oldest first (see the module doc)."""
        verify = anchor.key is not None
        op = "ge" if verify else "gt"
        after = anchor.sequence
        current = anchor
        searching = False
        first = True
        held: list[EventPage] = []
        next_link: str | None = None
        followed: set[str] = set()
        while True:
            if next_link is not None:
                values, parsed, link = self._fetch(next_link, None, deadline)
            else:
                params = {
                    "$filter": f"{SEQUENCE} {op} {after} and ResourceName eq '{PROPERTY}'",
                    "$orderby": f"{SEQUENCE} asc",
                    "$top": str(self.page_size),
                }
                values, parsed, link = self._fetch(self.events_url, params, deadline)
            events = parsed.events
            check_order(events, after, inclusive=first and verify, host=self.host)
            drop: int | None = None
            if first and verify:
                if not values:
                    raise self._broken(anchor, deadline)
                # Nothing readable to check the anchor against: search, as for a hidden one.
                verdict = verify_anchor(anchor, events[0]) if events else "search"
                drop = anchor.sequence if verdict == "found" else None
                searching = verdict == "search"
            first = False
            keys = property_keys(events, drop)
            if searching and anchor.key in keys:
                searching = False  # compaction hid the anchor's event: a later one names it
            more = more_remain(len(values), link, self.page_size)
            current = last_property(events, current)
            page = EventPage(keys=keys, anchor=current, complete=not more, skipped=parsed.skipped)
            next_link = None
            if parsed.last_sequence is not None:
                after, op = parsed.last_sequence, "gt"
            elif more:
                if link is None or link in followed:
                    raise MlsProtocolError(
                        f"{self.host}: a full EntityEvent page without one readable "
                        f"{SEQUENCE}; cannot go on"
                    )
                followed.add(link)
                next_link = link
            if searching:
                held.append(page)
                if not more:
                    raise EventLogBroken(
                        "expired",
                        f"event {anchor.sequence} (Property {anchor.key}) is gone and no later "
                        "event names that record: the log expired past the anchor",
                    )
                if len(held) >= MAX_HELD_PAGES:
                    raise EventLogBroken(
                        "expired",
                        f"event {anchor.sequence} (Property {anchor.key}) is gone and no event "
                        f"in the next {len(held)} pages names that record: treated as expired",
                    )
                continue
            yield from held
            held.clear()
            yield page
            if not more:
                return

    def _broken(self, anchor: EventAnchor, deadline: float | None) -> EventLogBroken:
        """Nothing at or after the anchor (impossible on a healthy log): reset if the newest
        event is older than the anchor, expired if the log holds nothing at all."""
        newest = self.head(deadline)
        if newest.key is not None and newest.sequence < anchor.sequence:
            return EventLogBroken(
                "reset",
                f"the newest event is {newest.sequence}, before the anchor {anchor.sequence}: "
                "the log was reset",
            )
        seen = "no Property event at all" if newest.key is None else f"newest {newest.sequence}"
        return EventLogBroken(
            "expired",
            f"no event at or after the anchor {anchor.sequence} ({seen}): the log expired",
        )
