"""Issue 14, cases 1 (cursor), 5, 6, 7: no record or server behaviour stalls or blinds a
connection. Each test runs against a simulator variant that behaves the spec-legal way the
client used to miss."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from mls_sync.models import Cursor
from mls_sync.reso.cursor import initial_cursor, position
from mls_sync.timeutil import Instant

from mls_sync_local.sim import MlsSimulator
from mls_sync_local.sim.mls import format_ns
from tests.integration.reso.conftest import ClientFactory, cursor_at, drain

MakeSim = type[MlsSimulator]
VENDOR_MODES = ("reso", "mlsgrid", "spark")  # keyset, anchor, traverse


# --------------------------------------------------------------------------- case 1


@pytest.mark.parametrize("vendor", VENDOR_MODES)
def test_a_record_stamped_hours_ahead_is_applied_but_the_cursor_stops_at_the_server_clock(
    make_sim: MakeSim, make_client: ClientFactory, vendor: str
) -> None:
    # Given a feed with one record stamped 3 hours ahead (a zone bug), served in -05:00 with
    # 3 digits, among ordinary changes
    sim = make_sim(vendor=vendor, ts_offset="-05:00", page_cap=2)
    start = cursor_at(sim)
    sim.advance(10)
    sim.add_listing("A1")
    sim.add_listing("B2")
    ahead = sim.now_ns + 3 * 3600 * 10**9
    sim.add_listing("FUTURE", "Active", modified=format_ns(ahead, 3, "-05:00"))
    sim.add_listing("C3")
    client, _ = make_client(sim, page_size=2)

    # When a cycle runs
    pages, seen = drain(client.changes(start, overlap_seconds=0))

    # Then the future record is handed over (and named), every other change too
    assert sorted(set(seen)) == ["A1", "B2", "C3", "FUTURE"]
    assert [k for p in pages for k in p.future] == ["FUTURE"]
    # And no cursor handed out is later than the server's clock plus the skew, spelled in the
    # server's form (3 digits, -05:00)
    limit = sim.now_ns + 60 * 10**9
    for page in pages:
        assert position(page.cursor)[0] <= limit
    final = pages[-1].cursor
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-05:00", final.timestamp)
    assert position(final)[0] >= sim.listing("C3").modified_ns  # past every real change

    # When a sale happens a minute later, and the next cycle runs without overlap
    sim.advance(60)
    sim.set_status("A1", "Closed")
    _, seen_next = drain(client.changes(final, overlap_seconds=0))
    # Then it is seen (the cursor had not been carried 3 hours ahead)
    assert "A1" in seen_next


@pytest.mark.parametrize("vendor", VENDOR_MODES)
@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59.000-01:00"])
def test_a_year_9999_record_neither_stalls_nor_blinds(
    make_sim: MakeSim, make_client: ClientFactory, vendor: str, stamp: str
) -> None:
    # Given one record stamped in year 9999 (any agent's)
    sim = make_sim(vendor=vendor)
    start = cursor_at(sim)
    sim.advance(10)
    sim.add_listing("A1")
    sim.add_listing("Z9", "Active", modified=stamp)
    client, _ = make_client(sim)

    # When a cycle runs: it ends, the sentinel is skipped with a reason, the cursor stays sane
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    assert "A1" in seen
    assert "Z9" not in seen
    assert any(s.listing_key == "Z9" for p in pages for s in p.skipped)
    assert position(pages[-1].cursor)[0] <= sim.now_ns + 60 * 10**9

    # And a sale after it is seen in the next cycle
    sim.advance(120)
    sim.set_status("A1", "Closed")
    _, seen_next = drain(client.changes(pages[-1].cursor, overlap_seconds=0))
    assert "A1" in seen_next


def test_keyset_pages_on_past_many_future_records_and_ends(
    make_sim: MakeSim, make_client: ClientFactory
) -> None:
    # Given five records stamped an hour ahead, more than a page of 2
    sim = make_sim(page_cap=1000)
    start = cursor_at(sim)
    sim.advance(5)
    sim.add_listing("A1")
    for i in range(5):
        sim.add_listing(f"F{i}", modified=sim.now_ns + 3600 * 10**9 + i)
    client, _ = make_client(sim, page_size=2)

    # When a cycle runs: the in-run keyset moves past them and the run ends
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    assert seen == ["A1", "F0", "F1", "F2", "F3", "F4"]
    assert pages[-1].complete
    # And the cursor stops at the server's clock plus the skew, never moving backwards
    positions = [position(p.cursor) for p in pages]
    assert positions == sorted(positions)
    assert positions[-1][0] <= sim.now_ns + 60 * 10**9


def test_a_stored_cursor_ahead_of_the_server_is_brought_back(
    make_sim: MakeSim, make_client: ClientFactory
) -> None:
    # Given a cursor stored before this fix, carried to 9999 by a sentinel
    sim = make_sim()
    sim.add_listing("A1")
    client, _ = make_client(sim)
    poisoned = Cursor(timestamp="9999-12-31T23:59:59Z", listing_key="Z9")
    sim.advance(30)
    sim.set_status("A1", "Closed")

    # When a cycle runs from it
    pages, seen = drain(client.changes(poisoned))

    # Then the sale is seen and the cursor is back at the server's clock
    assert "A1" in seen
    assert position(pages[-1].cursor)[0] <= sim.now_ns + 60 * 10**9


# --------------------------------------------------------------------------- case 5


def _reversed_feed(sim: MlsSimulator) -> list[str]:
    """Five listings whose timestamps run against key order."""
    keys = ["K1", "K2", "K3", "K4", "K5"]
    for key in reversed(keys):
        sim.advance(1)
        sim.add_listing(key)
    return keys


def test_anchor_asks_for_timestamp_order_from_a_server_defaulting_to_key_order(
    make_sim: MakeSim, make_client: ClientFactory
) -> None:
    # Given an MLS Grid-like server whose default order is by key (it honours $orderby)
    sim = make_sim(vendor="mlsgrid", default_order="key", page_cap=2)
    start = cursor_at(sim)
    keys = _reversed_feed(sim)
    client, _ = make_client(sim, page_size=2)

    # When a cycle runs
    pages, seen = drain(client.changes(start, overlap_seconds=0))

    # Then it asked for timestamp order and read everything in it, not degraded
    assert seen == list(reversed(keys))
    assert sim.log[0].params["$orderby"] == "ModificationTimestamp asc"
    assert client.degraded is None
    assert pages[-1].cursor.listing_key == "K1"


def test_anchor_degrades_to_a_full_traversal_when_the_order_is_not_honoured(
    make_sim: MakeSim, make_client: ClientFactory
) -> None:
    # Given a server that serves key order whatever $orderby says
    sim = make_sim(vendor="mlsgrid", default_order="key", ignore_orderby=True, page_cap=2)
    start = cursor_at(sim)
    keys = _reversed_feed(sim)
    client, _ = make_client(sim, page_size=2)

    # When a cycle runs: no stall, everything read, the cursor moves only at the end
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    assert set(seen) == set(keys)
    assert client.degraded is not None
    assert "order" in client.degraded
    assert pages[-1].complete
    assert pages[-1].degraded == client.degraded
    assert pages[-1].cursor.listing_key == "K1"  # the newest
    assert all(p.cursor == start for p in pages[:-1])

    # And the next cycles keep syncing (the same client stays in the safe mode)
    sim.advance(30)
    sim.set_status("K5", "Closed")
    _, seen_next = drain(client.changes(pages[-1].cursor, overlap_seconds=0))
    assert "K5" in seen_next  # (with K1 again: a traversal starts at "ge" the cursor)


# --------------------------------------------------------------------------- case 6


def test_traverse_reads_every_record_from_a_server_applying_top_to_the_whole_result(
    make_sim: MakeSim, make_client: ClientFactory
) -> None:
    # Given a Spark-like server that applies $top to the whole result (OData) and pages
    # inside it at 10 with $skiptoken nextLinks, and 327 changes
    sim = make_sim(top_semantics="total", page_cap=10, nextlink="cursor")
    start = cursor_at(sim)
    sim.advance(5)
    keys = sim.add_many(327)
    sim.advance(1)
    sim.set_status(keys[100], "Closed")  # the newest change sits in the middle of key order
    client, _ = make_client(sim, vendor="spark", page_size=25)

    # When a cycle runs
    pages, seen = drain(client.changes(start, overlap_seconds=0))

    # Then all 327 are read (it used to read 25 and move the cursor past the rest)
    assert set(seen) == set(keys)
    # And the cursor moved only at the end, to the newest change
    assert all(p.cursor == start for p in pages[:-1])
    assert pages[-1].complete
    assert pages[-1].cursor.listing_key == keys[100]
    # And the page size was asked with Prefer (honoured: pages of at most 10 here)
    assert max(len(p.records) for p in pages) <= 10


def test_traverse_asks_the_page_size_with_prefer(
    make_sim: MakeSim, make_client: ClientFactory
) -> None:
    # Given a server paging at 100 that honours Prefer: odata.maxpagesize
    sim = make_sim(top_semantics="total", page_cap=100, nextlink="cursor")
    start = cursor_at(sim)
    sim.advance(5)
    keys = sim.add_many(60)
    client, _ = make_client(sim, vendor="spark", page_size=25)

    pages, seen = drain(client.changes(start, overlap_seconds=0))

    # Then pages come at the size asked (25), and nothing is missed (the first window, read
    # in the server's order, is read once more in key order: 25 records re-read)
    assert sorted(set(seen)) == keys
    assert len(seen) == 60 + 25
    assert {len(p.records) for p in pages if p.records} <= {25, 10}
    assert pages[-1].complete


def test_traverse_on_a_top_as_page_server_is_unchanged(
    make_sim: MakeSim, make_client: ClientFactory
) -> None:
    # Given Spark's own behaviour ($top is a page size, nextLinks to the end)
    sim = make_sim(page_cap=1000, nextlink="cursor")
    start = cursor_at(sim)
    sim.advance(5)
    keys = sim.add_many(60)
    client, _ = make_client(sim, vendor="spark", page_size=25)

    pages, seen = drain(client.changes(start, overlap_seconds=0))

    assert sorted(seen) == keys
    assert len(seen) == 60  # nothing read twice
    assert pages[-1].complete


# --------------------------------------------------------------------------- case 7


@pytest.mark.parametrize("like", [None, "2026-11-28T09:10:11.123Z"])
def test_a_change_in_the_first_cursors_second_is_seen_by_a_text_comparing_server(
    make_sim: MakeSim, make_client: ClientFactory, like: str | None
) -> None:
    # Given a server comparing timestamps as text (SQLite), serving milliseconds, and a new
    # connection whose first cursor is taken at 12:00:00.300
    sim = make_sim(compare_timestamps="text", ts_digits=3)
    sim.add_listing("A1", modified=sim.now - timedelta(hours=1))
    sim.advance(0.3)
    start = initial_cursor(sim.now, like)
    # And a sale in that same second, at 12:00:00.600
    sim.advance(0.3)
    sim.set_status("A1", "Closed")
    assert sim.listing("A1").fields["StatusChangeTimestamp"].endswith("00.600Z")
    client, _ = make_client(sim)

    # When the first cycle runs with overlapSeconds 0
    _, seen = drain(client.changes(start, overlap_seconds=0))

    # Then the sale is seen (a whole-second cursor "…T12:00:00Z" sorts after "…00.600Z")
    assert seen == ["A1"]
    if like is not None:
        assert start.timestamp == "2026-11-28T11:59:55.300Z"
    assert Instant.parse(start.timestamp).epoch_ns < sim.listing("A1").modified_ns
