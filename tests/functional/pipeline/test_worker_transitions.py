"""Every transition of the policy table, end to end: MLS simulator → worker handler (SQS
event shaped like events/worker.sqs.json) → DynamoDB, EventBridge, UnpublishQueue."""

from __future__ import annotations

import pytest
from mls_sync.models import PostStatus
from mls_sync.policy import TransitionPolicy, parse_unpublish_on
from mls_sync.status import Status

from tests.support.pipeline import CONNECTION, World, transitions


def _connected(world: World) -> None:
    """A connection past its first sync: tracked listings read by key, cursor set."""
    world.add_connection()
    world.sim.add_many(5, prefix="OTHER")  # the MLS holds listings we do not track
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.events()
    world.sim.advance(60)


def _posts(world: World, listing_id: str) -> None:
    world.post("p-fb", listing_id, PostStatus.PUBLISHED, "facebook")
    world.post("p-li", listing_id, PostStatus.PUBLISHED, "linkedin")
    world.post("p-draft", listing_id, PostStatus.DRAFT, "facebook")
    world.post("p-gone", listing_id, PostStatus.UNPUBLISHED, "instagram")


@pytest.mark.parametrize(
    ("ours", "mls_before", "mls_after", "to", "detail_type", "unpublished"),
    [
        (Status.ACTIVE, "Active", "Closed", Status.SOLD, "ListingStatusChanged", 2),
        (Status.ACTIVE, "Active", "Pending", Status.PENDING, "ListingStatusChanged", 0),
        (Status.PENDING, "Pending", "Active", Status.ACTIVE, "ListingRestored", 0),
        (Status.PENDING, "Active Under Contract", "Closed", Status.SOLD, "ListingStatusChanged", 2),
        (Status.SOLD, "Closed", "Active", Status.ACTIVE, "ListingStatusChanged", 0),
        (Status.ACTIVE, "Active", "Withdrawn", Status.WITHDRAWN, "ListingStatusChanged", 0),
        (Status.ACTIVE, "Active", "Delete", Status.DELETED, "ListingDeleted", 0),
    ],
    ids=[
        "active>sold",
        "active>pending",
        "pending>active",
        "pending>sold",
        "sold>active",
        "active>withdrawn",
        "active>deleted",
    ],
)
def test_transition_end_to_end(
    world: World,
    ours: Status,
    mls_before: str,
    mls_after: str,
    to: Status,
    detail_type: str,
    unpublished: int,
) -> None:
    # Given a tracked listing in `ours` with two published posts (and two that are not)
    world.track("l-1", "K1", ours, mls_status=mls_before)
    _posts(world, "l-1")
    _connected(world)
    # When the MLS changes its status and the next scheduled job runs
    world.sim.set_status("K1", mls_after)
    response = world.run_worker([world.job(slot="2026-11-28T12:15:00Z")])
    # Then the listing moved, with one history entry and one event of the right type
    assert response == {"batchItemFailures": []}
    assert world.status("l-1") is to
    history = world.changes("l-1")
    assert [(h.from_status, h.to_status) for h in history] == [(ours, to)]
    assert history[0].pending_effects == []
    events = world.events()
    assert transitions(events) == {(detail_type, ours.value, to.value): 1}
    detail = events[0]["detail"]
    assert detail["listingId"] == "l-1"
    assert detail["connectionId"] == CONNECTION
    assert detail["changeKey"] == history[0].change_key
    # And only the published posts are queued for unpublishing, when the policy says so
    jobs = world.unpublish_jobs()
    assert sorted(j["postId"] for j in jobs) == (["p-fb", "p-li"] if unpublished else [])
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.outcome == "succeeded"
    assert run.counts.transitions == {(ours, to): 1}
    assert run.mls_requests >= 1


def test_a_listing_the_mls_no_longer_returns_is_deleted_on_reconcile(world: World) -> None:
    # Given two tracked listings, one of which leaves the MLS feed without a trace
    world.track("l-1", "K1", Status.ACTIVE)
    world.track("l-2", "K2", Status.ACTIVE)
    _connected(world)
    world.sim.remove_listing("K2")
    # When a reconcile job runs
    world.run_worker([world.job("reconcile", slot="2026-11-28T12:15:00Z")])
    # Then the vanished listing is deleted (ListingDeleted), the other untouched
    assert world.status("l-2") is Status.DELETED
    assert world.status("l-1") is Status.ACTIVE
    assert transitions(world.events()) == {("ListingDeleted", "active", "deleted"): 1}
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.last_reconciled_at is not None


def test_unchanged_listings_make_no_history_and_no_events(world: World) -> None:
    world.track("l-1", "K1", Status.ACTIVE)
    _connected(world)
    world.sim.touch("K1")  # re-stamped, same status
    world.run_worker([world.job(slot="2026-11-28T12:15:00Z")])
    assert world.changes("l-1") == []
    assert world.events() == []
    listing = world.listings.get("l-1")
    assert listing is not None
    assert listing.synced_at is not None


def test_unpublish_on_statuses_is_configuration(world: World) -> None:
    # Given a deployment that also takes posts down on withdrawal
    deps = world.sync_deps(
        policy=TransitionPolicy(unpublish_on=parse_unpublish_on("sold,withdrawn"))
    )
    world.track("l-1", "K1", Status.ACTIVE)
    _posts(world, "l-1")
    _connected(world)
    world.sim.set_status("K1", "Withdrawn")
    world.run_worker([world.job(slot="2026-11-28T12:15:00Z")], deps=deps)
    assert sorted(j["postId"] for j in world.unpublish_jobs()) == ["p-fb", "p-li"]
