"""Takedowns that are safe and prompt (issue 15, parts 1 and 2).

- A run that would take down (or delete) an unusual share of a connection's listings holds
  every takedown until an operator releases (exactly the held jobs, once) or discards them
  (none sent, the listings read by key again); a normal day's changes pass untouched.
- A by-key answer that is empty for listings the MLS had is a server failure, not deletions.
- Takedowns never wait on notifications: with the event bus failing, unpublish jobs still go
  in the same run, and the events follow once the bus is back, each once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from mls_sync import aws
from mls_sync.events import Event, EventPublisher
from mls_sync.models import PostStatus, SyncJob
from mls_sync.pipeline.takedowns import BrakeDeps, NothingHeld, Takedowns, decide
from mls_sync.queues import QueueSender
from mls_sync.status import Status

from tests.support.pipeline import CONNECTION, World

SLOT_0 = "2026-11-28T12:00:00Z"
SLOT_1 = "2026-11-28T12:15:00Z"


def _portfolio(world: World, count: int) -> None:
    """``count`` active listings, each with one published Facebook post, synced once."""
    world.add_connection()
    for n in range(count):
        world.track(f"l-{n:03d}", f"K{n:03d}", Status.ACTIVE)
        world.post(f"p-{n:03d}", f"l-{n:03d}", PostStatus.PUBLISHED, "facebook")
    world.run_worker([world.job(slot=SLOT_0)])
    world.events()
    world.sim.advance(60)


def _sell(world: World, count: int) -> None:
    for n in range(count):
        world.sim.advance(1)
        world.sim.set_status(f"K{n:03d}", "Closed")


def _kinds(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["detail-type"] for e in events)


def _brake_deps(world: World) -> BrakeDeps:
    settings = world.stack.settings
    return BrakeDeps(
        connections=world.connections,
        takedowns=Takedowns(
            world.listings,
            world.history,
            world.deps.posts,
            QueueSender(aws.sqs(), settings.unpublish_queue_url),
        ),
        events=EventPublisher(aws.events(), settings.event_bus_name),
        sync_queue=QueueSender(aws.sqs(), settings.sync_queue_url),
    )


def test_a_mass_sale_is_recorded_but_its_takedowns_are_held(world: World) -> None:
    # Given 100 listings with published posts, 30 of which sell in one run
    _portfolio(world, 100)
    _sell(world, 30)
    # When the run reads them
    response = world.run_worker([world.job(slot=SLOT_1)])
    # Then the statuses are recorded and told, but no post is taken down
    assert response == {"batchItemFailures": []}
    assert all(world.status(f"l-{n:03d}") is Status.SOLD for n in range(30))
    assert world.unpublish_jobs() == []
    events = world.events()
    assert _kinds(events) == {"ListingStatusChanged": 30, "MassChangeHeld": 1}
    held = next(e["detail"] for e in events if e["detail-type"] == "MassChangeHeld")
    assert held["listings"] == 30
    assert held["postsHeld"] == 30
    assert held["share"] == 0.3
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.braked is not None
    assert held["runKey"] == connection.braked.run_key
    # And while braked, the connection keeps syncing and a new sale is held too
    world.sim.advance(60)
    world.sim.set_status("K050", "Closed")
    world.run_worker([world.job(slot="2026-11-28T12:30:00Z")])
    assert world.status("l-050") is Status.SOLD
    assert world.unpublish_jobs() == []
    assert _kinds(world.events()) == {"ListingStatusChanged": 1}


def test_release_sends_exactly_the_held_jobs_once(world: World) -> None:
    # Given a braked connection holding 30 takedowns
    _portfolio(world, 100)
    _sell(world, 30)
    world.run_worker([world.job(slot=SLOT_1)])
    world.events()
    deps = _brake_deps(world)
    # When the operator releases them (and, by mistake, asks again)
    detail = decide(CONNECTION, "release", deps, now=world.sim.now, correlation_id="op-1")
    # Then exactly the 30 held jobs go, once, and the brake is off
    jobs = world.unpublish_jobs()
    assert sorted(j["postId"] for j in jobs) == [f"p-{n:03d}" for n in range(30)]
    assert detail.posts_sent == 30
    released = world.events()
    assert _kinds(released) == {"MassChangeReleased": 1}
    assert released[0]["detail"]["decision"] == "release"
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.braked is None
    try:
        decide(CONNECTION, "release", deps, now=world.sim.now, correlation_id="op-2")
    except NothingHeld:
        pass
    else:
        raise AssertionError("a second release must say nothing is held")
    # And the next run sends nothing more
    world.run_worker([world.job(slot="2026-11-28T12:30:00Z")])
    assert world.unpublish_jobs() == []


def test_discard_sends_nothing_and_reads_the_listings_again(world: World) -> None:
    # Given a braked connection holding 30 takedowns
    _portfolio(world, 100)
    _sell(world, 30)
    world.run_worker([world.job(slot=SLOT_1)])
    world.events()
    # When the operator discards them
    detail = decide(
        CONNECTION, "discard", _brake_deps(world), now=world.sim.now, correlation_id="op-1"
    )
    # Then no job is sent, and a manual sync of exactly those listings is queued
    assert detail.posts_sent == 0
    assert world.unpublish_jobs() == []
    jobs = [SyncJob.model_validate(b) for b in world.sync_jobs()]
    assert len(jobs) == 1
    assert sorted(jobs[0].listing_keys or []) == [f"K{n:03d}" for n in range(30)]
    assert _kinds(world.events()) == {"MassChangeReleased": 1}
    # And running it reads them again and takes nothing down (the MLS still says sold)
    world.run_worker(jobs)
    assert world.unpublish_jobs() == []
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.braked is None


def test_a_normal_days_changes_pass_untouched(world: World) -> None:
    # Given 100 listings of which 2 sell
    _portfolio(world, 100)
    _sell(world, 2)
    # When the run reads them
    world.run_worker([world.job(slot=SLOT_1)])
    # Then their posts come down in the same run, and no brake
    assert sorted(j["postId"] for j in world.unpublish_jobs()) == ["p-000", "p-001"]
    assert _kinds(world.events()) == {"ListingStatusChanged": 2}
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.braked is None


def test_an_empty_by_key_answer_deletes_nothing(world: World) -> None:
    # Given 20 synced listings, then an MLS that answers every lookup empty (an outage that
    # looks like "everything was deleted")
    _portfolio(world, 20)
    for n in range(20):
        world.sim.remove_listing(f"K{n:03d}")
    # When a reconciliation runs
    world.run_worker([world.job(reason="reconcile", slot=SLOT_1)])
    # Then nothing is deleted or taken down, and the run says why
    assert all(world.status(f"l-{n:03d}") is Status.ACTIVE for n in range(20))
    assert world.unpublish_jobs() == []
    runs = world.runs.list_for_connection(CONNECTION, limit=10)
    assert any("none of" in e and "nothing deleted" in e for r in runs for e in r.errors)


def test_many_deletions_at_once_trip_the_brake(world: World) -> None:
    # Given 40 listings of which 15 really left the feed (the rest still answer)
    _portfolio(world, 40)
    for n in range(15):
        world.sim.remove_listing(f"K{n:03d}")
    # When a reconciliation runs
    world.run_worker([world.job(reason="reconcile", slot=SLOT_1)])
    # Then the deletions are recorded but the brake holds (deletion is in no unpublish set
    # by default, so only the deletions count) and the operator is told
    assert all(world.status(f"l-{n:03d}") is Status.DELETED for n in range(15))
    events = world.events()
    assert _kinds(events)["MassChangeHeld"] == 1
    assert _kinds(events)["ListingDeleted"] == 15


class _BusDown(EventPublisher):
    """The real publisher, while the bus refuses every PutEvents."""

    def __init__(self, bus: str) -> None:
        super().__init__(aws.events(), bus, sleep=lambda _s: None)
        self.down = True

    def publish(self, events: Sequence[Event]) -> None:
        if self.down:
            raise RuntimeError("EventBridge unavailable")
        super().publish(events)


def test_takedowns_never_wait_on_notifications(world: World) -> None:
    # Given two sold listings with posts, and the event bus failing
    _portfolio(world, 5)
    _sell(world, 2)
    bus = _BusDown(world.stack.settings.event_bus_name)
    deps = world.sync_deps(events=bus)
    job = world.job(slot=SLOT_1)
    # When the run reads them
    first = world.run_worker([job], deps=deps)
    # Then the posts' unpublish jobs are sent in that same run; only the events wait
    assert sorted(j["postId"] for j in world.unpublish_jobs()) == ["p-000", "p-001"]
    assert world.events() == []
    assert first["batchItemFailures"]  # retried for the events
    # When the bus recovers and the job is delivered again
    bus.down = False
    assert world.run_worker([job], deps=deps) == {"batchItemFailures": []}
    # Then the events arrive, once each, and no takedown is sent twice
    assert _kinds(world.events()) == {"ListingStatusChanged": 2}
    assert world.unpublish_jobs() == []
    world.run_worker([world.job(slot="2026-11-28T12:30:00Z")], deps=deps)
    assert world.events() == []
    assert world.unpublish_jobs() == []
