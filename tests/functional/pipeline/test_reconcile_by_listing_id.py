"""MLS Grid cannot filter on ListingKey: its listings are reconciled by ListingId, which the
worker stores from every record it applies (or a seed provides). The simulator in mlsgrid
mode refuses ListingKey filters with a 400, so a run that asked by the wrong field fails."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from mls_sync.run_counts import RunCounts
from mls_sync.status import Status

from mls_sync_local.sim.mls import MlsSimulator
from tests.support.clock import FakeMonotonic
from tests.support.pipeline import CONNECTION, World, event_tap, transitions
from tests.support.stack import LocalStack


@pytest.fixture
def grid(stack: LocalStack) -> Iterator[World]:
    with MlsSimulator(vendor="mlsgrid") as sim:
        yield World(
            stack=stack,
            sim=sim,
            mono=FakeMonotonic(),
            events_tap_url=event_tap(stack.settings.event_bus_name),
        )


def _yesterday(world: World) -> datetime:
    """Before the first sync's overlap window: its incremental read does not see them."""
    return world.sim.now - timedelta(days=1)


def _first_sync(world: World) -> None:
    world.add_connection()
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.events()
    world.sim.advance(60)


def _asked_by(world: World, field: str) -> int:
    return sum(field in entry.params.get("$filter", "") for entry in world.sim.log)


def _last_run_counts(world: World) -> RunCounts:
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.outcome == "succeeded", run.errors
    return run.counts


def test_reconcile_asks_by_listing_id_and_deletes_only_what_left_the_feed(grid: World) -> None:
    # Given four tracked MLS Grid listings: three with a known ListingId, one without
    grid.track(
        "l-1",
        "K1",
        Status.ACTIVE,
        mls_listing_id="ID-1",
        known_listing_id=True,
        modified=_yesterday(grid),
    )
    grid.track(
        "l-2",
        "K2",
        Status.ACTIVE,
        mls_listing_id="ID-2",
        known_listing_id=True,
        modified=_yesterday(grid),
    )
    grid.track(
        "l-3",
        "K3",
        Status.ACTIVE,
        mls_listing_id="ID-3",
        known_listing_id=True,
        modified=_yesterday(grid),
    )
    grid.track("l-4", "K4", Status.ACTIVE, mls_listing_id="ID-4", modified=_yesterday(grid))
    _first_sync(grid)
    # And the MLS then drops K2 without a trace, hides K3 (MlgCanView false) and drops K4
    grid.sim.remove_listing("K2")
    grid.sim.hide("K3")
    grid.sim.remove_listing("K4")
    grid.sim.log.clear()
    # When a reconcile job runs
    response = grid.run_worker([grid.job("reconcile", slot="2026-11-28T12:15:00Z")])
    # Then the run succeeded, asking by ListingId and never by ListingKey
    assert response == {"batchItemFailures": []}
    counts = _last_run_counts(grid)
    assert _asked_by(grid, "ListingId") >= 1
    assert _asked_by(grid, "ListingKey") == 0
    # And the removed and the hidden listing are deleted, with one ListingDeleted each
    assert grid.status("l-2") is Status.DELETED
    assert grid.status("l-3") is Status.DELETED
    assert transitions(grid.events()) == {("ListingDeleted", "active", "deleted"): 2}
    # And the present one is untouched; the one whose ListingId we do not know is left
    # alone (not deleted), and counted as not reconcilable
    assert grid.status("l-1") is Status.ACTIVE
    assert grid.status("l-4") is Status.ACTIVE
    assert counts.not_reconcilable == 1
    assert grid.changes("l-4") == []


def test_listing_id_is_learned_from_applied_records_then_used_to_reconcile(grid: World) -> None:
    # Given an MLS Grid listing whose ListingId we do not know yet
    grid.track("l-1", "K1", Status.ACTIVE, mls_listing_id="ID-1", modified=_yesterday(grid))
    _first_sync(grid)
    listing = grid.listings.get("l-1")
    assert listing is not None
    assert listing.mls_listing_id is None
    # When the MLS changes it and a scheduled run applies the record
    grid.sim.set_status("K1", "Pending")
    grid.run_worker([grid.job(slot="2026-11-28T12:15:00Z")])
    # Then its ListingId is stored with the new status
    listing = grid.listings.get("l-1")
    assert listing is not None
    assert listing.status is Status.PENDING
    assert listing.mls_listing_id == "ID-1"
    grid.events()
    # And once it leaves the feed, reconciliation (by that ListingId) deletes it
    grid.sim.advance(60)
    grid.sim.remove_listing("K1")
    grid.run_worker([grid.job("reconcile", slot="2026-11-28T12:30:00Z")])
    assert _last_run_counts(grid).not_reconcilable == 0
    assert grid.status("l-1") is Status.DELETED
    assert transitions(grid.events()) == {("ListingDeleted", "pending", "deleted"): 1}


def test_a_listing_id_that_now_names_another_listing_is_never_a_deletion(grid: World) -> None:
    # Given our listing K1 stored under ListingId ID-1, which the MLS now gives to K9
    grid.track("l-1", "K1", Status.ACTIVE, mls_listing_id="ID-OLD", modified=_yesterday(grid))
    _first_sync(grid)
    grid.stack.tables.listings.update_item(
        Key={"listingId": "l-1"},
        UpdateExpression="SET mlsListingId = :v",
        ExpressionAttributeValues={":v": "ID-1"},
    )
    grid.sim.add_listing("K9", "Closed", listing_id="ID-1")
    # When a reconcile job runs
    grid.run_worker([grid.job("reconcile", slot="2026-11-28T12:15:00Z")])
    # Then our listing is neither given K9's status nor deleted
    assert grid.status("l-1") is Status.ACTIVE
    assert _last_run_counts(grid).lookup_mismatch == 1
    assert grid.events() == []


def test_newly_tracked_mls_grid_listings_are_looked_up_by_listing_id(grid: World) -> None:
    # Given a synced MLS Grid connection, and then two listings added to our table whose
    # MLS records (closed) changed before the cursor: one with its ListingId, one without
    _first_sync(grid)
    grid.sim.advance(3600)
    grid.track(
        "l-1", "K1", Status.ACTIVE, mls_status="Closed", mls_listing_id="ID-1",
        known_listing_id=True, modified=_yesterday(grid),
    )  # fmt: skip
    grid.track("l-2", "K2", Status.ACTIVE, mls_status="Closed", modified=_yesterday(grid))
    grid.sim.log.clear()
    # When the next scheduled run goes
    grid.run_worker([grid.job(slot="2026-11-28T13:00:00Z")])
    # Then the one we can ask about is read by ListingId and sold; the other waits for a
    # record of its own (no request by ListingKey, no deletion)
    counts = _last_run_counts(grid)
    assert counts.newly_tracked == 1
    assert grid.status("l-1") is Status.SOLD
    assert grid.status("l-2") is Status.ACTIVE
    assert _asked_by(grid, "ListingKey") == 0


def test_a_record_without_listing_id_keeps_the_one_we_hold(world: World) -> None:
    # Given a (trestle) listing seeded with its ListingId; trestle records do not carry it
    world.track("l-1", "K1", Status.ACTIVE, mls_listing_id="ID-1", known_listing_id=True)
    world.add_connection()
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)
    # When a change of status is applied
    world.sim.set_status("K1", "Closed")
    world.run_worker([world.job(slot="2026-11-28T12:15:00Z")])
    # Then the write did not drop the ListingId
    listing = world.listings.get("l-1")
    assert listing is not None
    assert listing.status is Status.SOLD
    assert listing.mls_listing_id == "ID-1"
