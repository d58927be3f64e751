"""At-least-once delivery, crashes, deadlines and bad input leave the same state and the same
number of history entries, events and unpublish jobs as one clean run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from mls_sync import aws
from mls_sync.events import Event, EventPublisher
from mls_sync.models import PostStatus, SyncJob
from mls_sync.queues import OutgoingMessage, QueueSender
from mls_sync.status import Status

from functions.worker.app import handle
from tests.support.pipeline import CONNECTION, World, sqs_event


class Crash(BaseException):
    """The process dies here (nothing in the worker may catch it)."""


class CrashingEvents(EventPublisher):
    """The real publisher, except the process dies on its first call."""

    def __init__(self, bus: str) -> None:
        super().__init__(aws.events(), bus)
        self.crashes = 1

    def publish(self, events: Sequence[Event]) -> None:
        if self.crashes:
            self.crashes -= 1
            raise Crash
        super().publish(events)


class CrashingQueue(QueueSender):
    def __init__(self, url: str) -> None:
        super().__init__(aws.sqs(), url)
        self.crashes = 1

    def send(self, messages: Sequence[OutgoingMessage]) -> int:
        if self.crashes:
            self.crashes -= 1
            raise Crash
        return super().send(messages)


class FailingFor(EventPublisher):
    """Event delivery fails for one listing (a transient fault of one listing's effects)."""

    def __init__(self, bus: str, listing_id: str) -> None:
        super().__init__(aws.events(), bus)
        self.listing_id = listing_id
        self.failing = True

    def publish(self, events: Sequence[Event]) -> None:
        if self.failing and any(
            getattr(e.detail, "listing_id", None) == self.listing_id for e in events
        ):
            raise RuntimeError("bus unavailable for this one")
        super().publish(events)


def _three_selling(world: World) -> None:
    world.add_connection()
    for n in (1, 2, 3):
        world.track(f"l-{n}", f"K{n}", Status.ACTIVE)
        world.post(f"p-{n}", f"l-{n}", PostStatus.PUBLISHED, "facebook")
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)
    for n in (1, 2, 3):
        world.sim.set_status(f"K{n}", "Closed")


def _totals(world: World) -> tuple[int, int, int]:
    history = sum(len(world.changes(f"l-{n}")) for n in (1, 2, 3))
    return history, len(world.events()), len(world.unpublish_jobs())


def test_duplicate_delivery_adds_nothing(world: World) -> None:
    # Given three listings that sold
    _three_selling(world)
    job = world.job(slot="2026-11-28T12:15:00Z")
    # When the same job is delivered twice
    world.run_worker([job])
    first = _totals(world)
    world.run_worker([job])
    # Then the second delivery is a no-op
    assert first == (3, 3, 3)
    assert _totals(world) == (3, 0, 0)  # history is state; events and jobs were drained
    runs = world.runs.list_for_connection(CONNECTION)
    assert [r.outcome for r in runs if r.run_key.startswith("2026-11-28T12:15")] == ["succeeded"]


@pytest.mark.parametrize("where", ["event", "unpublish"])
def test_crash_between_write_and_effects_converges(world: World, where: str) -> None:
    # Given three listings that sold, and a worker that dies right after the first
    # listing's state write (before its event, or before its unpublish jobs)
    _three_selling(world)
    bus = world.stack.settings.event_bus_name
    crashing = (
        world.sync_deps(events=CrashingEvents(bus))
        if where == "event"
        else world.sync_deps(
            unpublish_queue=CrashingQueue(world.stack.settings.unpublish_queue_url)
        )
    )
    job = world.job(slot="2026-11-28T12:15:00Z")
    with pytest.raises(Crash):
        world.run_worker([job], deps=crashing)
    assert world.status("l-1") is Status.SOLD  # the write landed
    pending = world.changes("l-1")[0].pending_effects
    assert where in pending
    # When SQS delivers the message again to a healthy worker
    response = world.run_worker([job])
    # Then history, events and unpublish jobs number exactly one clean run's
    assert response == {"batchItemFailures": []}
    assert _totals(world) == (3, 3, 3)
    assert all(world.changes(f"l-{n}")[0].pending_effects == [] for n in (1, 2, 3))
    assert all(world.status(f"l-{n}") is Status.SOLD for n in (1, 2, 3))


def test_one_failing_listing_does_not_stop_the_others_and_is_retried(world: World) -> None:
    # Given three listings that sold, and event delivery failing for l-2 only
    _three_selling(world)
    failing = FailingFor(world.stack.settings.event_bus_name, "l-2")
    deps = world.sync_deps(events=failing)
    job = world.job(slot="2026-11-28T12:15:00Z")
    cursor_before = world.connections.get(CONNECTION)
    # When the job runs
    response = world.run_worker([job], deps=deps)
    # Then the others are done, the message is reported failed, the run says why
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        sqs_event([job])["Records"][0]["messageId"]
    ]
    assert world.status("l-1") is Status.SOLD
    assert world.status("l-3") is Status.SOLD
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.outcome == "partial"
    assert run.counts.failed == 1
    assert any("K2" in e and "bus unavailable" in e for e in run.errors)
    # And the cursor did not pass the page holding the failure
    after = world.connections.get(CONNECTION)
    assert cursor_before is not None
    assert after is not None
    assert after.cursor == cursor_before.cursor
    # When the fault clears and the message is delivered again
    failing.failing = False
    response = world.run_worker([job], deps=deps)
    # Then everything converges to one clean run's effects
    assert response == {"batchItemFailures": []}
    assert _totals(world) == (3, 3, 3)
    final = world.connections.get(CONNECTION)
    assert final is not None
    assert final.cursor != cursor_before.cursor


def test_deadline_persists_the_cursor_and_enqueues_a_continuation(world: World) -> None:
    # Given 30 tracked listings that all sold, served 1 per page, and each MLS request
    # taking 9 s of a 300 s invocation (within the 10 s a request may take)
    world.add_connection()
    for n in range(30):
        world.track(f"l-{n:02d}", f"K{n:02d}", Status.ACTIVE)
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.page_cap = 1
    world.sim.advance(600)
    for n in range(30):
        world.sim.advance(1)
        world.sim.set_status(f"K{n:02d}", "Closed")
    world.sim.after_request = lambda _log: world.mono.advance(9)
    job = world.job(slot="2026-11-28T12:15:00Z")
    # When the job runs out of time before the last page
    response = world.run_worker([job])
    # Then it succeeds as "continued", having applied whole pages and saved the cursor
    assert response == {"batchItemFailures": []}
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.outcome == "continued"
    done = sum(world.status(f"l-{n:02d}") is Status.SOLD for n in range(30))
    assert 0 < done < 30
    continuation = world.sync_jobs()
    assert len(continuation) == 1
    assert continuation[0]["reason"] == "continuation"
    assert continuation[0]["slot"] == job.slot
    # When the continuation runs (a fresh invocation), then the rest is done, once
    world.sim.after_request = None
    response = world.run_worker([SyncJob.model_validate(continuation[0])])
    assert response == {"batchItemFailures": []}
    assert all(world.status(f"l-{n:02d}") is Status.SOLD for n in range(30))
    assert sum(len(world.changes(f"l-{n:02d}")) for n in range(30)) == 30
    # (30 of 30 listings selling in one run also trips the mass-change brake: one more event)
    changed = [e for e in world.events() if e["detail-type"] == "ListingStatusChanged"]
    assert len(changed) == 30
    assert world.sync_jobs() == []


def test_excluded_listing_is_never_changed(world: World) -> None:
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE, excluded=True)
    world.track("l-2", "K2", Status.ACTIVE)
    world.post("p-1", "l-1", PostStatus.PUBLISHED, "facebook")
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)
    world.sim.set_status("K1", "Closed")
    world.sim.set_status("K2", "Closed")
    world.run_worker([world.job(slot="2026-11-28T12:15:00Z")])
    listing = world.listings.get("l-1")
    assert listing is not None
    assert listing.status is Status.ACTIVE
    assert listing.synced_at is None  # never written at all
    assert world.changes("l-1") == []
    assert world.status("l-2") is Status.SOLD
    assert [j["listingId"] for j in world.unpublish_jobs()] == []


def test_untracked_records_cost_nothing_but_the_read(world: World) -> None:
    # Given a connection that tracks one listing, on an MLS with 200 others that change
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE)
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(600)
    keys = world.sim.add_many(200, prefix="X")
    for key in keys[:50]:
        world.sim.set_status(key, "Closed")
    # When the next job runs
    world.run_worker([world.job(slot="2026-11-28T12:15:00Z")])
    # Then they were read and counted, nothing else
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.counts.untracked == 200
    assert run.counts.records_read - run.counts.unchanged == 200
    assert run.counts.status_changes == 0
    assert world.events() == []


def test_first_sync_reads_tracked_listings_by_key_never_the_feed(world: World) -> None:
    # Given a new connection (no cursor) on an MLS with many listings, two of them ours
    world.add_connection()
    world.sim.add_many(300, prefix="X")
    world.sim.advance(3600)
    world.track("l-1", "K1", Status.ACTIVE, mls_status="Closed")
    world.track("l-2", "K2", Status.ACTIVE)
    # When its first job runs
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    # Then our listings were looked up by key (the sold one applied), and the cursor starts
    # at "now" so the incremental read sees nothing of the 300 others
    assert world.status("l-1") is Status.SOLD
    filters = [log.params.get("$filter", "") for log in world.sim.log if log.path != "/token"]
    assert any("ListingKey in" in f for f in filters)
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.cursor is not None
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.counts.records_read < 300


def test_a_body_that_does_not_parse_fails_alone(world: World) -> None:
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE)
    event: dict[str, Any] = sqs_event([world.job(slot="2026-11-28T12:00:00Z")])
    bad = dict(event["Records"][0])
    bad["messageId"] = "bad-one"
    bad["body"] = '{"connectionId": "c-x", "reason": "whenever"}'
    bad["attributes"] = {**bad["attributes"], "MessageGroupId": "c-x"}
    event["Records"].insert(0, bad)
    response = handle(event, world.context(), world.deps)  # type: ignore[arg-type]
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad-one"}]}
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.cursor is not None


def test_disabled_or_unknown_connection_is_skipped(world: World) -> None:
    world.add_connection(enabled=False)
    response = world.run_worker(
        [world.job(), world.job().model_copy(update={"connection_id": "nope"})]
    )
    assert response == {"batchItemFailures": []}
    assert world.runs.list_for_connection(CONNECTION) == []
