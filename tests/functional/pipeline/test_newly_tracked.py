"""A listing added to our table after the connection's cursor passed its last MLS change is
looked up by key at the start of the next run (not only at the next daily reconciliation)."""

from __future__ import annotations

from datetime import timedelta

from mls_sync.status import Status

from tests.support.pipeline import CONNECTION, World


def _connected(world: World) -> None:
    """Past its first sync and reconciliation: cursor set, lastReconciledAt now."""
    world.add_connection()
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(3600)


def _run(world: World, slot: str, **deps: int) -> dict[str, int]:
    response = world.run_worker(
        [world.job(slot=slot)], deps=world.sync_deps(**deps) if deps else None
    )
    assert response == {"batchItemFailures": []}
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.outcome == "succeeded", run.errors
    return {**run.counts.to_stored(), "mlsRequests": run.mls_requests}


def test_a_newly_tracked_listing_gets_its_status_on_the_next_run(world: World) -> None:
    # Given a synced connection, and then a listing added to our table as active whose MLS
    # record (pending) changed long before the cursor (outside the overlap window)
    world.track("l-1", "K1", Status.ACTIVE)
    _connected(world)
    long_ago = world.sim.now - timedelta(hours=3)
    world.track("l-9", "K9", Status.ACTIVE, mls_status="Pending", modified=long_ago)
    # And an excluded one, which the sync never touches
    world.track("l-x", "KX", Status.ACTIVE, mls_status="Closed", modified=long_ago, excluded=True)
    # When the next scheduled run goes
    first = _run(world, "2026-11-28T13:00:00Z")
    # Then the new listing was read by key and holds the MLS's status, marked synced
    assert first["newlyTracked"] == 1
    assert world.status("l-9") is Status.PENDING
    listing = world.listings.get("l-9")
    assert listing is not None
    assert listing.synced_at is not None
    assert world.status("l-x") is Status.ACTIVE
    # And the run after costs one request again (the empty changes page): nothing is
    # looked up twice, not even the excluded listing that never syncs
    world.sim.advance(900)
    second = _run(world, "2026-11-28T13:15:00Z")
    assert "newlyTracked" not in second
    assert second["mlsRequests"] == 1


def test_newly_tracked_lookups_are_bounded_per_run(world: World) -> None:
    # Given three listings added after the cursor passed them, and a bound of two a run
    _connected(world)
    long_ago = world.sim.now - timedelta(hours=3)
    for n in (1, 2, 3):
        world.track(f"l-{n}", f"K{n}", Status.ACTIVE, mls_status="Closed", modified=long_ago)
    # When two scheduled runs go
    first = _run(world, "2026-11-28T13:00:00Z", newly_tracked_limit=2)
    second = _run(world, "2026-11-28T13:15:00Z", newly_tracked_limit=2)
    # Then each looked up at most two, and together they covered all three
    assert (first["newlyTracked"], second["newlyTracked"]) == (2, 1)
    assert {world.status(f"l-{n}") for n in (1, 2, 3)} == {Status.SOLD}


def test_a_listing_seeded_as_current_as_the_mls_is_confirmed_once(world: World) -> None:
    # Given a listing added with exactly the MLS's status and modification time (a seed
    # that already knew it): applying the record is a no-op (not newer than what we hold)
    _connected(world)
    long_ago = world.sim.now - timedelta(hours=3)
    world.track(
        "l-5",
        "K5",
        Status.PENDING,
        mls_status="Pending",
        modified=long_ago,
        stored_modified=long_ago,
    )
    # When the next run looks it up by key
    first = _run(world, "2026-11-28T13:00:00Z")
    # Then it is confirmed (syncedAt set) without a status change
    assert first["newlyTracked"] == 1
    listing = world.listings.get("l-5")
    assert listing is not None
    assert listing.synced_at is not None
    assert listing.status is Status.PENDING
    assert "statusChanges" not in first
    # And it is not looked up again
    world.sim.advance(900)
    second = _run(world, "2026-11-28T13:15:00Z")
    assert "newlyTracked" not in second
