"""The EntityEvent reader's pure decisions: reading hostile events, order, anchor
verification, when to ask again, the keys and anchor of a page, ``$metadata``; and the reader
itself against a scripted ``get`` (no sockets), down to the exact requests it sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mls_sync.reso.entity_events import (
    MAX_HELD_PAGES,
    Event,
    EventAnchor,
    EventLogBroken,
    EventReader,
    check_order,
    entity_sets,
    last_property,
    more_remain,
    parse_events,
    property_keys,
    verify_anchor,
)
from mls_sync.reso.errors import MlsMalformedPage, MlsProtocolError, MlsQueryRefused
from pydantic import ValidationError


def ev(sequence: int, key: str | None = "K", resource: str = "Property") -> dict[str, Any]:
    return {"EntityEventSequence": sequence, "ResourceName": resource, "ResourceRecordKey": key}


# ---------------------------------------------------------------------------- parsing


def test_hostile_events_are_skipped_and_counted_never_raised() -> None:
    parsed = parse_events(
        [
            ev(1, "A"),
            {"EntityEventSequence": "2", "ResourceName": "Property", "ResourceRecordKey": "B"},
            {"EntityEventSequence": True, "ResourceName": "Property", "ResourceRecordKey": "C"},
            ev(0, "D"),
            ev(2**63, "E"),
            ev(3, None),
            ev(4, "x" * 256),
            ev(5, "   "),
            "not an object",
            ev(6, "F"),
        ]
    )
    # Unreadable sequences are gone; unreadable Property keys keep their place (order).
    assert [(e.sequence, e.key) for e in parsed.events] == [
        (1, "A"),
        (3, None),
        (4, None),
        (5, None),
        (6, "F"),
    ]
    assert parsed.skipped == 8
    assert parsed.last_sequence == 6


def test_a_key_of_255_characters_is_read() -> None:
    assert parse_events([ev(1, "k" * 255)]).events[0].key == "k" * 255


def test_other_resources_events_are_not_counted_as_skipped() -> None:
    parsed = parse_events([ev(1, None, "Lookup"), ev(2, "L1", "Lookup")])
    assert parsed.skipped == 0
    assert property_keys(parsed.events) == []


# ---------------------------------------------------------------------------- order


def test_order_must_increase_within_and_after_the_last_seen() -> None:
    events = [Event(5, "Property", "A"), Event(7, "Property", "B")]
    check_order(events, 5, inclusive=True, host="h")  # the anchor's own event (ge)
    check_order(events, 4, inclusive=False, host="h")
    with pytest.raises(MlsProtocolError, match="out of order"):
        check_order(events, 5, inclusive=False, host="h")  # a gt answer repeating 5
    with pytest.raises(MlsProtocolError, match="7 came after 7"):
        check_order([*events, Event(7, "Property", "C")], 0, inclusive=False, host="h")
    with pytest.raises(MlsProtocolError, match="6 came after 7"):
        check_order([*events, Event(6, "Property", "C")], 0, inclusive=False, host="h")


# ---------------------------------------------------------------------------- anchor


def test_the_anchor_event_is_found_searched_or_the_log_is_broken() -> None:
    anchor = EventAnchor(sequence=10, key="A")
    assert verify_anchor(anchor, Event(10, "Property", "A")) == "found"
    assert verify_anchor(anchor, Event(12, "Property", "B")) == "search"
    with pytest.raises(EventLogBroken, match="now names Property B") as broken:
        verify_anchor(anchor, Event(10, "Property", "B"))
    assert broken.value.reason == "reset"
    with pytest.raises(EventLogBroken) as lookup:
        verify_anchor(anchor, Event(10, "Lookup", "A"))
    assert lookup.value.reason == "reset"


def test_anchor_model_is_frozen_and_never_negative() -> None:
    anchor = EventAnchor(sequence=3, key="A")
    with pytest.raises(ValidationError):
        anchor.sequence = 4  # type: ignore[misc]
    with pytest.raises(ValidationError):
        EventAnchor(sequence=-1, key=None)


# ---------------------------------------------------------------------------- paging


@pytest.mark.parametrize(
    ("count", "link", "top", "more"),
    [
        (0, None, 10, False),  # empty: the end
        (0, "next", 10, False),  # empty, even with a link: nothing to key on, the end
        (3, None, 10, False),  # short, no link: the end
        (10, None, 10, True),  # exactly $top, no link: more may remain
        (3, "next", 10, True),  # a server capping below $top says so with a link
    ],
)
def test_when_to_ask_again(count: int, link: str | None, top: int, more: bool) -> None:
    assert more_remain(count, link, top) is more


def test_page_keys_are_deduplicated_in_order_without_the_anchor_event() -> None:
    events = [
        Event(5, "Property", "A"),
        Event(6, "Property", "B"),
        Event(7, "Lookup", "X"),
        Event(8, "Property", "A"),
        Event(9, "Property", None),
    ]
    assert property_keys(events, drop=5) == ["B", "A"]
    assert property_keys(events) == ["A", "B"]
    # The anchor is the last readable Property event, else where the page started.
    assert last_property(events, EventAnchor(sequence=0, key=None)) == EventAnchor(
        sequence=8, key="A"
    )
    start = EventAnchor(sequence=4, key="Z")
    assert last_property([Event(7, "Lookup", "X")], start) is start


# ---------------------------------------------------------------------------- $metadata


def test_entity_sets_from_csdl_xml_and_json() -> None:
    xml = (
        '<?xml version="1.0"?><edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" '
        'Version="4.0"><edmx:DataServices><Schema xmlns="http://docs.oasis-open.org/odata/ns/edm"'
        ' Namespace="org.reso.metadata"><EntityType Name="EntityEvent"/>'
        '<EntityContainer Name="D"><EntitySet Name="Property" EntityType="x.Property"/>'
        '<EntitySet Name="EntityEvent" EntityType="x.EntityEvent"/></EntityContainer>'
        "</Schema></edmx:DataServices></edmx:Edmx>"
    )
    assert entity_sets(xml) == {"Property", "EntityEvent"}
    json_csdl = (
        '{"$Version": "4.01", "$EntityContainer": "ns.D", "ns": {"D": {"$Kind": '
        '"EntityContainer", "Property": {"$Collection": true, "$Type": "ns.Property"}, '
        '"Me": {"$Type": "ns.Member"}}}}'
    )
    assert entity_sets(json_csdl) == {"Property"}
    # An entity type named EntityEvent is not a set one can read.
    assert "EntityEvent" not in entity_sets(xml.replace('<EntitySet Name="EntityEvent"', "<X"))


def test_metadata_with_a_doctype_or_broken_markup_is_refused() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>'
    with pytest.raises(MlsMalformedPage, match="DOCTYPE"):
        entity_sets(bomb)
    with pytest.raises(MlsMalformedPage, match="not readable XML"):
        entity_sets("<Edmx><EntitySet")
    with pytest.raises(MlsMalformedPage, match="not readable JSON"):
        entity_sets("{nope")


# ---------------------------------------------------------------------------- the reader


class Script:
    """A scripted server for the reader: each request gets the next body (or raises)."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, dict[str, str] | None, dict[str, str] | None]] = []
        self.sent = 0

    def get_json(
        self,
        url: str,
        params: dict[str, str] | None,
        deadline: float | None,
        headers: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], str]:
        self.asked.append((url, params, headers))
        self.sent += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer, url

    def reader(
        self, page_size: int = 3, text: Callable[[str, float | None], str] | None = None
    ) -> EventReader:
        return EventReader(
            get_json=self.get_json,
            get_text=text or (lambda url, deadline: ""),
            events_url="https://mls.example/EntityEvent",
            metadata_url="https://mls.example/$metadata",
            page_size=page_size,
            host="mls.example",
            requests_made=lambda: self.sent,
        )


def page(*events: dict[str, Any], link: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"value": list(events)}
    if link:
        body["@odata.nextLink"] = link
    return body


def test_a_quiet_run_is_one_request_asking_ge_the_anchor() -> None:
    server = Script(page(ev(7, "A")))
    reader = server.reader()
    pages = list(reader.after(EventAnchor(sequence=7, key="A"), None))
    assert [(p.keys, p.anchor.sequence, p.complete) for p in pages] == [([], 7, True)]
    url, params, headers = server.asked[0]
    assert url == "https://mls.example/EntityEvent"
    assert params == {
        "$filter": "EntityEventSequence ge 7 and ResourceName eq 'Property'",
        "$orderby": "EntityEventSequence asc",
        "$top": "3",
    }
    assert headers == {"Prefer": "odata.maxpagesize=3"}
    assert reader.requests == 1


def test_an_empty_log_is_read_with_gt_and_no_verification() -> None:
    server = Script(page())
    pages = list(server.reader().after(EventAnchor(sequence=0, key=None), None))
    assert pages[0].anchor == EventAnchor(sequence=0, key=None)
    assert pages[0].complete
    assert server.asked[0][1]["$filter"].startswith("EntityEventSequence gt 0")  # type: ignore[index]


def test_pages_are_asked_by_keyset_never_by_the_servers_offset_link() -> None:
    server = Script(
        page(ev(1, "A"), ev(2, "B"), ev(3, "C"), link="https://mls.example/EntityEvent?$skip=3"),
        page(ev(4, "D"), ev(5, "E"), ev(6, "F")),  # exactly $top, no link: ask again
        page(),
    )
    pages = list(server.reader().after(EventAnchor(sequence=1, key="A"), None))
    assert [p.keys for p in pages] == [["B", "C"], ["D", "E", "F"], []]
    assert [p.complete for p in pages] == [False, False, True]
    assert [p.anchor.sequence for p in pages] == [3, 6, 6]
    filters = [params["$filter"] for _, params, _ in server.asked if params]
    assert filters[1:] == [
        "EntityEventSequence gt 3 and ResourceName eq 'Property'",
        "EntityEventSequence gt 6 and ResourceName eq 'Property'",
    ]


def test_a_page_of_unreadable_events_goes_on_by_the_link() -> None:
    bad = {"EntityEventSequence": "x"}
    server = Script(
        page(ev(1, "A"), ev(2, "B"), ev(3, "Z")),
        page(bad, bad, bad, link="https://mls.example/EntityEvent?$skiptoken=z"),
        page(ev(9, "C")),
    )
    reader = server.reader()
    pages = list(reader.after(EventAnchor(sequence=1, key="A"), None))
    assert [p.keys for p in pages] == [["B", "Z"], [], ["C"]]
    assert pages[1].skipped == 3
    assert reader.skipped == 3
    assert server.asked[2][0].endswith("$skiptoken=z")
    assert pages[-1].anchor == EventAnchor(sequence=9, key="C")


def test_an_unordered_answer_is_an_error_not_a_skip() -> None:
    server = Script(page(ev(5, "A"), ev(8, "B"), ev(6, "C")))
    with pytest.raises(MlsProtocolError, match="6 came after 8"):
        list(server.reader().after(EventAnchor(sequence=5, key="A"), None))


def test_an_answer_before_the_anchor_is_an_error() -> None:
    server = Script(page(ev(2, "A")))
    with pytest.raises(MlsProtocolError, match="out of order"):
        list(server.reader().after(EventAnchor(sequence=5, key="A"), None))


def test_an_empty_answer_is_a_reset_when_the_newest_event_is_older() -> None:
    server = Script(page(), page(ev(2, "N")))
    reader = server.reader()
    with pytest.raises(EventLogBroken, match="newest event is 2") as broken:
        list(reader.after(EventAnchor(sequence=50, key="A"), None))
    assert broken.value.reason == "reset"
    assert reader.requests == 2  # the read and one look at the head


def test_an_empty_answer_on_an_empty_log_is_expired() -> None:
    server = Script(page(), page())
    with pytest.raises(EventLogBroken) as broken:
        list(server.reader().after(EventAnchor(sequence=50, key="A"), None))
    assert broken.value.reason == "expired"


def test_a_hidden_anchor_holds_pages_back_until_a_later_event_names_its_record() -> None:
    server = Script(
        page(ev(11, "B"), ev(12, "C"), ev(13, "D")),
        page(ev(14, "A"), ev(15, "E")),
    )
    reader = server.reader()
    pages = reader.after(EventAnchor(sequence=10, key="A"), None)
    first = next(pages)
    # Nothing was yielded before the anchor's record was seen again: both pages were read.
    assert len(server.asked) == 2
    assert first.keys == ["B", "C", "D"]
    rest = list(pages)
    assert [p.keys for p in rest] == [["A", "E"]]
    assert rest[-1].complete


def test_a_hidden_anchor_never_named_again_means_expired() -> None:
    server = Script(page(ev(11, "B")))
    with pytest.raises(EventLogBroken, match="no later event names that record") as broken:
        list(server.reader().after(EventAnchor(sequence=10, key="A"), None))
    assert broken.value.reason == "expired"


def test_a_search_for_a_hidden_anchor_is_bounded() -> None:
    full = [
        page(ev(n, f"K{n}"), ev(n + 1, f"K{n + 1}"), ev(n + 2, f"K{n + 2}"))
        for n in range(11, 11 + 3 * MAX_HELD_PAGES, 3)
    ]
    server = Script(*full)
    with pytest.raises(EventLogBroken, match=f"next {MAX_HELD_PAGES} pages") as broken:
        list(server.reader().after(EventAnchor(sequence=10, key="A"), None))
    assert broken.value.reason == "expired"
    assert server.sent == MAX_HELD_PAGES


def test_other_resources_are_ignored_even_if_the_server_sends_them() -> None:
    server = Script(page(ev(1, "A"), ev(2, "L", "Lookup")))
    pages = list(server.reader().after(EventAnchor(sequence=1, key="A"), None))
    assert pages[0].keys == []
    assert pages[0].anchor == EventAnchor(sequence=1, key="A")


def test_head_is_the_newest_property_event_stepping_past_foreign_ones() -> None:
    server = Script(page(ev(9, "L", "Lookup")), page(ev(8, "A")))
    assert server.reader().head(None) == EventAnchor(sequence=8, key="A")
    assert server.asked[0][1] == {
        "$filter": "ResourceName eq 'Property'",
        "$orderby": "EntityEventSequence desc",
        "$top": "1",
    }
    assert server.asked[1][1]["$filter"].startswith("EntityEventSequence lt 9")  # type: ignore[index]
    assert Script(page()).reader().head(None) == EventAnchor(sequence=0, key=None)
    with pytest.raises(MlsProtocolError, match="cannot be read"):
        Script(page({"EntityEventSequence": None})).reader().head(None)


def test_supports_reads_metadata_once_and_a_missing_document_means_no() -> None:
    asked: list[str] = []

    def text(url: str, deadline: float | None) -> str:
        asked.append(url)
        return '<Edmx><EntityContainer><EntitySet Name="EntityEvent"/></EntityContainer></Edmx>'

    assert Script().reader(text=text).supports(None)
    assert asked == ["https://mls.example/$metadata"]

    def missing(url: str, deadline: float | None) -> str:
        raise MlsQueryRefused("404", 404)

    def refused(url: str, deadline: float | None) -> str:
        raise MlsQueryRefused("400", 400)

    assert not Script().reader(text=missing).supports(None)
    with pytest.raises(MlsQueryRefused):
        Script().reader(text=refused).supports(None)
