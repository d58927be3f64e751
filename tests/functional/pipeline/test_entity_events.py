"""EntityEvent mode (RCP-027) through the worker handler: every event applied exactly once
into the store, the anchor never past an unapplied event, a reset or expired log recovered
with a full pass, deletions seen in the first run after them, and what a run costs in MLS
requests. The main test runs against every shape of log the standard allows (a healthy log,
compaction gaps, sparse sequences, pages cut by ``$top`` without a nextLink)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from mls_sync.models import Connection, PostStatus
from mls_sync.reso.profiles import profile_for
from mls_sync.status import Status

from mls_sync_local.sim.mls import MlsSimulator
from tests.functional.pipeline.test_worker_robustness import FailingFor
from tests.support.clock import FakeMonotonic
from tests.support.pipeline import CONNECTION, World, event_tap
from tests.support.stack import LocalStack

VARIANTS: dict[str, dict[str, Any]] = {
    "healthy": {},
    "compaction": {"event_compaction": True},
    "sparse": {"event_step": 7},
    "short-pages": {"event_short_pages": True},
}


class Feed:
    """A world whose MLS offers EntityEvent, and the runs of its worker."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sim = world.sim
        self._slots = (
            f"2026-11-28T{12 + n // 4:02d}:{(n % 4) * 15:02d}:00Z" for n in itertools.count()
        )
        self.untracked: list[str] = []

    def run(self, **deps: Any) -> dict[str, int]:
        slot = next(self._slots)
        world = self.world
        response = world.run_worker(
            [world.job(slot=slot)], deps=world.sync_deps(**deps) if deps else None
        )
        run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
        assert run.run_key.startswith(slot[:19])
        return {
            **run.counts.to_stored(),
            "mlsRequests": run.mls_requests,
            "retried": int(bool(response["batchItemFailures"])),
            run.outcome: 1,
        }

    @property
    def connection(self) -> Connection:
        connection = self.world.connections.get(CONNECTION)
        assert connection is not None
        return connection

    def synced(self, tracked: int = 6) -> None:
        """A connection in EntityEvent mode past its first run (anchored, everything it
        tracks read by key); other agents' listings in the same feed."""
        for n in range(tracked):
            self.world.track(f"l-{n}", f"K{n}", Status.ACTIVE)
        self.untracked = self.sim.add_many(20, prefix="U")
        self.world.add_connection(detection="entityEvent")
        first = self.run()
        assert first.get("succeeded"), first
        assert first["anchored"] == 1
        assert first["firstSync"] == 1
        self.sim.advance(60)

    def event_requests(self) -> int:
        return sum(1 for r in self.sim.log if "EntityEvent" in r.path)


def _feed(stack: LocalStack, **options: Any) -> Iterator[Feed]:
    with MlsSimulator(vendor="reso", entity_events=True, **options) as sim:
        yield Feed(
            World(
                stack=stack,
                sim=sim,
                mono=FakeMonotonic(),
                events_tap_url=event_tap(stack.settings.event_bus_name),
            )
        )


@pytest.fixture(params=sorted(VARIANTS))
def any_feed(request: pytest.FixtureRequest, stack: LocalStack) -> Iterator[Feed]:
    yield from _feed(stack, **VARIANTS[request.param])


@pytest.fixture
def feed(stack: LocalStack) -> Iterator[Feed]:
    yield from _feed(stack)


def test_each_event_is_applied_once_and_a_quiet_run_costs_one_request(any_feed: Feed) -> None:
    feed, world, sim = any_feed, any_feed.world, any_feed.sim
    # Given a synced connection
    feed.synced()
    anchor = feed.connection
    # When the MLS writes: a pending, a sale, a deletion, a re-stamp, one listing changed
    # twice, other agents' listings, and lookups
    sim.set_status("K0", "Pending")
    sim.set_status("K1", "Closed")
    sim.remove_listing("K2")
    sim.touch("K3")
    sim.set_status("K4", "Pending")
    sim.set_status("K4", "Active")
    for key in feed.untracked[:5]:
        sim.set_status(key, "Closed")
    sim.add_lookup_events(30)
    run = feed.run()
    # Then the store holds the MLS's state, with one history entry per change
    assert run.get("succeeded"), run
    assert [world.status(f"l-{n}") for n in range(6)] == [
        Status.PENDING,
        Status.SOLD,
        Status.DELETED,
        Status.ACTIVE,
        Status.ACTIVE,
        Status.ACTIVE,
    ]
    assert [len(world.changes(f"l-{n}")) for n in range(4)] == [1, 1, 1, 0]
    # And the anchor moved on
    assert (feed.connection.event_sequence or 0) > (anchor.event_sequence or 0)
    # And the next run, with nothing new, costs one request and changes nothing
    before = feed.event_requests()
    quiet = feed.run()
    assert quiet.get("succeeded"), quiet
    assert quiet["mlsRequests"] == 1
    assert feed.event_requests() == before + 1
    # And a replay of the whole log (the first anchor put back) changes nothing twice
    assert len(world.events()) == 3  # the three status changes, drained from the tap
    world.connections.detection.advance_anchor(
        CONNECTION,
        anchor.event_sequence or 0,
        anchor.event_key,
        expected=feed.connection.event_sequence,
        synced_at="2026-11-28T12:00:00Z",
    )
    replay = feed.run()
    assert replay.get("succeeded"), replay
    assert [len(world.changes(f"l-{n}")) for n in range(4)] == [1, 1, 1, 0]
    assert world.events() == []


def test_a_deletion_and_a_sale_are_acted_on_in_the_first_run_after_them(feed: Feed) -> None:
    # Given a synced connection whose listings have published posts
    feed.synced()
    world = feed.world
    world.post("p-1", "l-1", PostStatus.PUBLISHED, "facebook")
    world.post("p-3", "l-3", PostStatus.PUBLISHED, "linkedin")
    world.events()  # drained: only this run's events below
    # When the MLS deletes one listing and sells another
    feed.sim.remove_listing("K1")
    feed.sim.set_status("K3", "Closed")
    run = feed.run()
    # Then the first run after them marks one deleted (and says so on the bus) and queues
    # the sold one's takedown (the default policy takes posts down on a sale)
    assert run.get("succeeded"), run
    assert world.status("l-1") is Status.DELETED
    assert world.status("l-3") is Status.SOLD
    kinds = sorted(e["detail-type"] for e in world.events())
    assert kinds == ["ListingDeleted", "ListingStatusChanged"]
    assert [job["postId"] for job in world.unpublish_jobs()] == ["p-3"]


def test_the_anchor_never_passes_an_event_not_applied(feed: Feed) -> None:
    # Given a synced connection, and the bus failing for one listing's change
    feed.synced()
    world = feed.world
    anchored = feed.connection.event_sequence
    feed.sim.set_status("K1", "Closed")
    feed.sim.set_status("K3", "Pending")
    failing = FailingFor(world.stack.settings.event_bus_name, "l-1")
    # When the run meets it
    run = feed.run(events=failing)
    # Then the run asks to be retried and the anchor has not moved past the event
    assert run["retried"] == 1, run
    assert feed.connection.event_sequence == anchored
    # And once the bus is back, the next run finishes it: one history entry each
    failing.failing = False
    again = feed.run(events=failing)
    assert again.get("succeeded"), again
    assert world.status("l-1") is Status.SOLD
    assert world.status("l-3") is Status.PENDING
    assert [len(world.changes(f"l-{n}")) for n in (1, 3)] == [1, 1]
    assert (feed.connection.event_sequence or 0) > (anchored or 0)


@pytest.mark.parametrize("breakage", ["reset", "expired"])
def test_a_broken_log_is_recovered_with_a_full_pass(feed: Feed, breakage: str) -> None:
    # Given a synced connection
    feed.synced()
    sim, world = feed.sim, feed.world
    # When the log is reset (numbering starts again) or expires past the anchor, with
    # changes made meanwhile
    sim.set_status("K1", "Closed")
    if breakage == "reset":
        sim.reset_event_log()
    else:
        sim.set_status(feed.untracked[0], "Closed")
        assert sim.events is not None
        sim.expire_events(before=sim.events.last_sequence + 1)
    sim.set_status("K2", "Pending")
    run = feed.run()
    # Then the run says so, re-anchors and reads every tracked listing by key
    assert run.get("eventLogBroken") == 1, run
    assert run["reconciled"] == 1
    assert run["readByKey"] == 6
    # And nothing changed meanwhile is missed
    assert world.status("l-1") is Status.SOLD
    assert world.status("l-2") is Status.PENDING
    # And the runs after it read the log again from its new anchor
    sim.advance(60)
    sim.set_status("K4", "Closed")
    after = feed.run()
    assert after.get("succeeded"), after
    assert "eventLogBroken" not in after
    assert world.status("l-4") is Status.SOLD


def test_auto_mode_asks_the_metadata_once(feed: Feed, stack: LocalStack) -> None:
    # Given a connection in auto mode to a server that offers EntityEvent
    world = feed.world
    world.track("l-0", "K0", Status.ACTIVE)
    world.add_connection()
    # When it runs twice
    first = feed.run()
    feed.sim.advance(60)
    feed.sim.set_status("K0", "Closed")
    second = feed.run()
    # Then the first run probed $metadata and found the log; the second used it
    assert first["detectionProbed"] == 1
    assert feed.connection.detected == "entityEvent"
    assert "detectionProbed" not in second
    assert second["eventPages"] >= 1
    assert world.status("l-0") is Status.SOLD


def test_auto_mode_replicates_where_the_server_has_no_log(stack: LocalStack) -> None:
    with MlsSimulator(vendor="reso") as sim:
        feed = Feed(
            World(
                stack=stack,
                sim=sim,
                mono=FakeMonotonic(),
                events_tap_url=event_tap(stack.settings.event_bus_name),
            )
        )
        feed.world.track("l-0", "K0", Status.ACTIVE)
        feed.world.add_connection()
        first = feed.run()
        assert first.get("succeeded"), first
        assert first["detectionProbed"] == 1
        assert feed.connection.detected == "replication"
        assert feed.connection.cursor is not None
        assert feed.connection.event_sequence is None


def test_a_run_costs_one_request_per_page_of_events_and_per_batch_of_tracked_keys(
    feed: Feed,
) -> None:
    # Given a synced connection (six tracked listings)
    feed.synced()
    # When 1,484 Property events are written (1,480 about other agents' listings, one each
    # for four tracked listings) among 500 lookups, which the server filters out
    for key in ("K0", "K1", "K2", "K3"):
        feed.sim.set_status(key, "Pending")
    feed.sim.add_lookup_events(500)
    for _ in range(74):
        for key in feed.untracked:
            feed.sim.touch(key)
    before = feed.event_requests()
    run = feed.run()
    # Then the run read the log a page at a time, 1 + (1,484 + 1) // page requests (the
    # first answer also carries the anchor's own event), and the four tracked records in
    # one batch
    page = profile_for("reso").event_page
    assert page < 1_484
    events = 1 + (1_484 + 1) // page
    assert run.get("succeeded"), run
    assert feed.event_requests() - before == events
    assert run["mlsRequests"] == events + 1
    assert run["eventsTracked"] == 4
    assert {feed.world.status(f"l-{n}") for n in range(4)} == {Status.PENDING}


def test_auto_mode_replicates_when_the_log_it_found_is_gone(feed: Feed) -> None:
    # Given a connection in auto mode that found the log and is anchored in it
    world, sim = feed.world, feed.sim
    world.track("l-0", "K0", Status.ACTIVE)
    world.add_connection()
    feed.run()
    assert feed.connection.detected == "entityEvent"
    # When the server stops serving the log (404), and a listing sells meanwhile
    sim.events = None
    sim.advance(60)
    sim.set_status("K0", "Closed")
    run = feed.run()
    # Then the run replicates instead (no failure), and forgets what the probe found
    assert run.get("succeeded"), run
    assert run["detectionReset"] == 1
    assert feed.connection.detected is None
    assert world.status("l-0") is Status.SOLD
    # And the next run asks $metadata again and finds replication
    again = feed.run()
    assert again["detectionProbed"] == 1
    assert feed.connection.detected == "replication"
