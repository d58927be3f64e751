"""The keyset cursor against the simulator: ties, shifting offset links, precision, overlap."""

from __future__ import annotations

import math
from collections import Counter

import httpx
from mls_sync.models import Cursor
from mls_sync.timeutil import Instant

from mls_sync_local.sim import MlsSimulator
from tests.integration.reso.conftest import ClientFactory, cursor_at, drain


def test_three_pages_sharing_one_timestamp_are_read_once_each(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given 15 listings changed at one instant and a page size of 5 (three pages, one stamp)
    sim = make_sim(page_cap=1000)
    sim.add_many(3, prefix="OLD")
    sim.advance(1)
    start = cursor_at(sim)
    sim.advance(60)
    keys = [f"T{i:02d}" for i in range(15)]
    for key in keys:
        sim.add_listing(key, "Pending")
    client, _ = make_client(sim, page_size=5)

    # When one cycle runs without overlap
    pages, seen = drain(client.changes(start, overlap_seconds=0))

    # Then every change is read exactly once, in key order, and the cursor sits on the last
    assert seen == keys
    assert len(pages) == 4  # 3 full pages + the empty page that proves the end
    assert client.requests_made <= 1 + math.ceil(len(keys) / 5)
    assert pages[-1].complete
    assert pages[-1].cursor.listing_key == "T14"
    # And each page's cursor moved forward inside the shared timestamp
    assert [p.cursor.listing_key for p in pages[:3]] == ["T04", "T09", "T14"]

    # When the next cycle starts from that cursor with nothing new
    before = client.requests_made
    again, seen_again = drain(client.changes(pages[-1].cursor, overlap_seconds=0))
    # Then nothing repeats and a quiet cycle costs one request
    assert seen_again == []
    assert client.requests_made - before == 1
    assert again[-1].cursor == pages[-1].cursor


def test_offset_nextlinks_with_records_restamped_between_pages(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a server that pages with $skip at 5 a page whatever $top says
    sim = make_sim(page_cap=5, nextlink="offset")
    start = cursor_at(sim)
    sim.advance(1)
    keys = []
    for i in range(12):
        sim.advance(1)
        keys.append(sim.add_listing(f"K{i:02d}").key)
    sim.advance(1)
    # And after the first page is served, a record on that page is re-stamped (moves to the
    # end, shifting everything after it one place back)
    served = {"n": 0}

    def restamp(_: object) -> None:
        served["n"] += 1
        if served["n"] == 1:
            sim.set_status("K01", "Closed")

    sim.after_request = restamp
    client, _ = make_client(sim, page_size=1000)

    # When the client reads the changes
    _, seen = drain(client.changes(start, overlap_seconds=0))

    # Then every record is seen (K01 twice: old and new stamp), none skipped
    assert set(seen) == set(keys)
    assert Counter(seen)["K01"] == 2

    # Contrast: following the server's offset nextLinks under the same change skips a record
    sim.after_request = None
    for i in range(12):
        sim.touch(f"K{i:02d}", at=sim.now_ns + i)
    sim.advance(1)
    served["n"] = 0
    sim.after_request = restamp
    naive: list[str] = []
    url: str | None = f"{sim.url}/Property"
    params: dict[str, str] | None = {
        "$filter": f"ModificationTimestamp ge {start.timestamp}",
        "$orderby": "ModificationTimestamp asc,ListingKey asc",
    }
    with httpx.Client(headers={"Authorization": "Bearer sim-static-token"}) as http:
        while url:
            body = http.get(url, params=params).json()
            naive += [r["ListingKey"] for r in body["value"]]
            url, params = body.get("@odata.nextLink"), None
    assert set(keys) - set(naive), "offset paging should have skipped a shifted record"


def test_seven_digit_fractions_and_non_utc_offsets(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    for offset in ("-05:00", "+02:00", "Z"):
        # Given timestamps with 7 fractional digits, 100 ns apart, in a non-UTC offset
        sim = make_sim(ts_digits=7, ts_offset=offset)
        start = cursor_at(sim)
        sim.advance(10)
        base = sim.now_ns
        keys = [f"P{i}" for i in range(7)]
        for i, key in enumerate(reversed(keys)):
            # Later instants get earlier keys so key order and time order disagree.
            sim.add_listing(key, modified=base + (len(keys) - 1 - i) * 100)
        client, _ = make_client(sim, page_size=2)

        # When read two at a time
        pages, seen = drain(client.changes(start, overlap_seconds=0))

        # Then in time order, none lost at the 100 ns steps (microseconds would tie them)
        assert seen == keys
        # And filter literals are the server's own spelling (7 digits, same offset)
        last_filter = sim.log[-1].params["$filter"]
        assert f"gt {pages[-2].cursor.timestamp} or" in last_filter
        assert len(pages[-1].cursor.timestamp.split(".")[1]) == 7 + len(offset)
        assert pages[-1].cursor.timestamp.endswith(offset)
        assert Instant.parse(pages[-1].cursor.timestamp).epoch_ns == base + 600


def test_late_visible_record_is_caught_inside_the_overlap_window(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a first cycle that read everything up to now
    sim = make_sim()
    start = cursor_at(sim)
    sim.advance(30)
    sim.add_listing("A1", "Active")
    client, _ = make_client(sim)
    pages, _ = drain(client.changes(start, overlap_seconds=0))
    cursor = pages[-1].cursor
    # And a record stamped 2 minutes before that cursor that only becomes visible later
    late_stamp = Instant.parse(cursor.timestamp).epoch_ns - 120 * 10**9
    sim.add_listing("LATE", "Closed", modified=late_stamp, visible_from=sim.now_ns + 60 * 10**9)
    sim.advance(15 * 60)

    # When the next cycle runs without overlap, the late record is missed
    _, seen_without = drain(client.changes(cursor, overlap_seconds=0))
    assert "LATE" not in seen_without
    # When it runs with a 5 minute overlap (the vendor default), it is caught
    _, seen_with = drain(client.changes(cursor, overlap_seconds=300))
    assert "LATE" in seen_with


def test_cursor_never_moves_backwards_inside_the_overlap(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a cursor and only older records inside the overlap window
    sim = make_sim()
    sim.add_listing("OLD", modified="2026-11-28T11:58:00.000Z")
    client, _ = make_client(sim)
    cursor = Cursor(timestamp="2026-11-28T12:00:00.000Z", listing_key="Z")
    # When a cycle re-reads them
    pages, seen = drain(client.changes(cursor, overlap_seconds=300))
    # Then they are re-applied (a no-op) and the cursor stays where it was
    assert seen == ["OLD"]
    assert pages[-1].cursor == cursor
