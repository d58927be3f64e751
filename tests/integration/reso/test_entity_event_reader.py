"""The EntityEvent reader against the simulator in each variant: what it hands out (every
write after the anchor, in order), what it costs (a quiet run is 1 request; N events are
1 + ⌊(N + 1) ÷ page⌋ ≤ 1 + ⌈N ÷ page⌉), and that a reset or expired log is never silent."""

from __future__ import annotations

import math
from typing import Any

import pytest
from mls_sync.reso.client import ReplicationClient
from mls_sync.reso.entity_events import EventAnchor, EventLogBroken, EventPage
from mls_sync.reso.profiles import profile_for

from mls_sync_local.sim import MlsSimulator
from mls_sync_local.sim.mls import RequestLog
from tests.integration.reso.conftest import ClientFactory

PAGE = 5


def reader(make_client: ClientFactory, sim: MlsSimulator, page: int = PAGE) -> ReplicationClient:
    profile = profile_for(sim.vendor).model_copy(update={"event_page_size": page})
    client, _ = make_client(sim, profile=profile)
    return client


def run(client: ReplicationClient, anchor: EventAnchor) -> tuple[list[EventPage], int]:
    """One run as the worker makes it: every page, and the EntityEvent requests it cost."""
    before = client.event_requests
    pages = list(client.events_after(anchor))
    return pages, client.event_requests - before


def keys_of(pages: list[EventPage]) -> list[str]:
    return [k for p in pages for k in p.keys]


def expected_requests(n: int, page: int = PAGE) -> int:
    """The anchor's own event rides in the first page: N events fill N + 1 slots, and a page
    exactly full is followed by one more ask."""
    return (n + 1) // page + 1


def test_supports_is_one_metadata_request(make_sim: Any, make_client: ClientFactory) -> None:
    with_log = make_sim(entity_events=True)
    without = make_sim()
    client = reader(make_client, with_log)
    assert client.supports_entity_events()
    assert client.event_requests == 1
    assert [e.path for e in with_log.log] == ["/$metadata"]
    assert not reader(make_client, without).supports_entity_events()


def test_head_is_the_newest_property_event(make_sim: Any, make_client: ClientFactory) -> None:
    sim = make_sim(entity_events=True)
    client = reader(make_client, sim)
    assert client.event_head() == EventAnchor(sequence=0, key=None)
    sim.add_many(3)
    sim.add_lookup_events(4)  # newer, but not Property
    assert client.event_head() == EventAnchor(sequence=3, key="L000002")
    assert client.event_requests == 2


@pytest.mark.parametrize("n", [0, 1, PAGE - 2, PAGE - 1, PAGE, 2 * PAGE + 1, 23])
def test_n_events_cost_one_request_per_page_plus_one(
    make_sim: Any, make_client: ClientFactory, n: int
) -> None:
    sim = make_sim(entity_events=True)
    sim.add_listing("START")
    client = reader(make_client, sim)
    anchor = client.event_head()
    written = [f"K{i:03d}" for i in range(n)]
    for key in written:
        sim.add_listing(key)
    pages, requests = run(client, anchor)
    assert keys_of(pages) == written
    assert requests == expected_requests(n)
    assert requests <= 1 + math.ceil(n / PAGE)
    assert pages[-1].complete
    assert all(not p.complete for p in pages[:-1])
    assert pages[-1].anchor == (EventAnchor(sequence=n + 1, key=written[-1]) if n else anchor)
    # From where the run left the connection, the next run is quiet: one request.
    again, quiet = run(client, pages[-1].anchor)
    assert keys_of(again) == []
    assert quiet == 1


def test_lookup_noise_costs_nothing(make_sim: Any, make_client: ClientFactory) -> None:
    sim = make_sim(entity_events=True)
    sim.add_lookup_events(1000)  # a fresh reference server's first thousands of events
    sim.add_listing("A")
    client = reader(make_client, sim)
    anchor = client.event_head()
    for key in ("B", "C", "D"):
        sim.add_lookup_events(50)
        sim.add_listing(key)
    pages, requests = run(client, anchor)
    assert keys_of(pages) == ["B", "C", "D"]
    assert requests == 1


def test_updates_of_one_record_are_one_key_per_page(
    make_sim: Any, make_client: ClientFactory
) -> None:
    sim = make_sim(entity_events=True)
    sim.add_many(2)
    client = reader(make_client, sim, page=10)
    anchor = client.event_head()
    sim.set_status("L000000", "Pending")
    sim.touch("L000000")  # an empty update is an event too
    sim.set_status("L000000", "Closed")
    pages, _ = run(client, anchor)
    assert [p.keys for p in pages] == [["L000000"]]


def test_compaction_hides_the_anchor_and_the_reader_still_goes_on(
    make_sim: Any, make_client: ClientFactory
) -> None:
    sim = make_sim(entity_events=True, event_compaction=True)
    sim.add_many(4)  # 1..4
    client = reader(make_client, sim)
    anchor = client.event_head()  # (4, L000003)
    sim.set_status("L000000", "Closed")  # 5, hides 1
    sim.set_status("L000003", "Closed")  # 6, hides the anchor's event
    sim.add_listing("NEW")  # 7
    pages, requests = run(client, anchor)
    assert keys_of(pages) == ["L000000", "L000003", "NEW"]
    assert requests == 1
    assert pages[-1].anchor == EventAnchor(sequence=7, key="NEW")


def test_compaction_across_pages_holds_pages_until_the_anchor_record_shows(
    make_sim: Any, make_client: ClientFactory
) -> None:
    sim = make_sim(entity_events=True, event_compaction=True)
    sim.add_listing("ANCHOR")
    client = reader(make_client, sim)
    anchor = client.event_head()
    written = [f"K{i}" for i in range(2 * PAGE)]
    for key in written:
        sim.add_listing(key)
    sim.touch("ANCHOR")  # the anchor's event hidden; its record named again at the end
    before = client.event_requests
    pages = client.events_after(anchor)
    first = next(pages)
    # The first page was held back until the anchor's record was seen: all three were read.
    assert client.event_requests - before == 3
    rest = list(pages)
    assert keys_of([first, *rest]) == [*written, "ANCHOR"]


def test_sparse_sequences_cost_the_same(make_sim: Any, make_client: ClientFactory) -> None:
    sim = make_sim(entity_events=True, event_step=1000)
    sim.add_listing("START")
    client = reader(make_client, sim)
    anchor = client.event_head()
    written = [f"K{i}" for i in range(12)]
    for key in written:
        sim.add_listing(key)
    pages, requests = run(client, anchor)
    assert keys_of(pages) == written
    assert requests == expected_requests(12)
    assert pages[-1].anchor.sequence == 1 + 12 * 1000


def test_short_pages_without_a_nextlink_are_asked_again(
    make_sim: Any, make_client: ClientFactory
) -> None:
    sim = make_sim(entity_events=True, event_short_pages=True)
    sim.add_listing("START")
    client = reader(make_client, sim)
    anchor = client.event_head()
    written = [f"K{i:02d}" for i in range(13)]
    for key in written:
        sim.add_listing(key)
    pages, requests = run(client, anchor)
    assert keys_of(pages) == written
    assert requests == expected_requests(13)
    assert all("@odata.nextLink" not in str(e.params) for e in sim.log)


def test_a_server_capping_pages_under_offset_links_loses_nothing_to_compaction(
    make_sim: Any, make_client: ClientFactory
) -> None:
    """An offset nextLink over a log compacted between two pages skips an event; the reader
    asks by sequence instead, so the event that moved up a slot is still read."""
    sim = make_sim(entity_events=True, event_compaction=True, page_cap=3)
    written = [f"K{i}" for i in range(1, 10)]
    for key in written:
        sim.add_listing(key)
    client = reader(make_client, sim, page=10)
    rewrote: list[bool] = []

    def rewrite_after_first_page(entry: RequestLog) -> None:
        if entry.path == "/EntityEvent" and not rewrote:
            rewrote.append(True)
            sim.touch("K1")  # hides event 1: an offset of 3 would now start at K5

    sim.after_request = rewrite_after_first_page
    pages, _ = run(client, EventAnchor(sequence=0, key=None))
    assert keys_of(pages) == [*written, "K1"]


def test_a_reset_log_is_broken_not_quiet(make_sim: Any, make_client: ClientFactory) -> None:
    sim = make_sim(entity_events=True)
    sim.add_many(5)
    client = reader(make_client, sim)
    anchor = client.event_head()  # (5, L000004)
    sim.reset_event_log()
    sim.add_many(2)  # 1, 2: the log has not reached the anchor's sequence again
    with pytest.raises(EventLogBroken, match="newest event is 2") as broken:
        run(client, anchor)
    assert broken.value.reason == "reset"


def test_a_reset_log_that_grew_past_the_anchor_names_another_record(
    make_sim: Any, make_client: ClientFactory
) -> None:
    sim = make_sim(entity_events=True)
    sim.add_many(3)
    client = reader(make_client, sim)
    anchor = client.event_head()  # (3, L000002)
    sim.reset_event_log()
    for key in ("X", "Y", "Z", "W"):
        sim.add_listing(key)  # sequence 3 now names Z
    with pytest.raises(EventLogBroken, match="now names Property Z") as broken:
        run(client, anchor)
    assert broken.value.reason == "reset"
    assert client.event_requests == 2  # head, then one read: the reset was seen at once


def test_an_expired_prefix_past_the_anchor_is_broken(
    make_sim: Any, make_client: ClientFactory
) -> None:
    sim = make_sim(entity_events=True)
    sim.add_many(3)
    client = reader(make_client, sim)
    anchor = client.event_head()  # (3, L000002)
    sim.add_many(4, prefix="N")  # 4..7
    sim.expire_events(before=6)
    with pytest.raises(EventLogBroken, match="expired past the anchor") as broken:
        run(client, anchor)
    assert broken.value.reason == "expired"


def test_a_log_expired_to_nothing_is_broken(make_sim: Any, make_client: ClientFactory) -> None:
    sim = make_sim(entity_events=True)
    sim.add_many(3)
    client = reader(make_client, sim)
    anchor = client.event_head()
    sim.expire_events(before=100)
    with pytest.raises(EventLogBroken) as broken:
        run(client, anchor)
    assert broken.value.reason == "expired"


def test_a_throttled_read_is_retried_through_the_transport_and_counted(
    make_sim: Any, make_client: ClientFactory
) -> None:
    sim = make_sim(entity_events=True)
    sim.add_many(1)
    client = reader(make_client, sim)
    anchor = client.event_head()
    sim.throttle_next(1, retry_after="2")
    pages, requests = run(client, anchor)
    assert keys_of(pages) == []
    assert requests == 2  # the 429 and its retry
    assert client.requests_made == client.event_requests


def test_a_bridge_dataset_reads_events_and_metadata_under_it(
    make_sim: Any, make_client: ClientFactory
) -> None:
    sim = make_sim(vendor="bridge", entity_events=True)
    client = reader(make_client, sim)
    assert client.supports_entity_events()
    sim.add_listing("B1")
    pages, _ = run(client, EventAnchor(sequence=0, key=None))
    assert keys_of(pages) == ["B1"]
    assert {e.path for e in sim.log} == {"/test/$metadata", "/test/EntityEvent"}
