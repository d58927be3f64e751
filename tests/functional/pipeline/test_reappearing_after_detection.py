"""A listing deleted because reconciliation no longer found it must come back when the MLS
serves it again, even with the very ModificationTimestamp it had before (a transient vendor
glitch, or a vendor that un-hides without re-stamping). The MLS is the source of truth: the
detection time is ours and is never stored as the listing's MLS time."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from mls_sync import aws
from mls_sync.dal import ListingsRepo
from mls_sync.dal.listings import ApplyResult, MlsUpdate
from mls_sync.models import Listing, PostStatus, StatusChange
from mls_sync.run_counts import RunCounts
from mls_sync.status import Status
from mls_sync.timeutil import Instant, format_utc

from tests.support.pipeline import CONNECTION, World


class Crash(BaseException):
    """The process dies here (nothing in the worker may catch it)."""


class RealListings(ListingsRepo):
    def __init__(self, world: World) -> None:
        super().__init__(
            world.stack.tables.listings,
            aws.dynamodb(),
            world.stack.settings.history_table,
            world.stack.settings.listing_keys_table,
        )


class DiesAfterRestoring(RealListings):
    """The real repository; the process dies right after a restoration lands."""

    def apply(self, listing: Listing, update: MlsUpdate, change: StatusChange | None) -> Any:
        result: ApplyResult = super().apply(listing, update, change)
        if result.applied and change is not None and listing.deleted_by_detection:
            raise Crash
        return result


class NewerRecordLandsFirst(RealListings):
    """Another worker applies a newer MLS record between our read and our deletion."""

    def __init__(self, world: World, modified: datetime) -> None:
        super().__init__(world)
        self.modified = modified

    def delete_by_detection(
        self, listing: Listing, update: MlsUpdate, change: StatusChange, expected_key: str | None
    ) -> ApplyResult:
        newer = MlsUpdate(
            status=listing.status,
            standard_status="Active",
            mls_status="Active",
            modified=Instant.from_datetime(self.modified),
            synced_at=format_utc(self.modified),
        )
        assert super().apply(listing, newer, None).applied
        return super().delete_by_detection(listing, update, change, expected_key)


def _pairs(world: World) -> Counter[tuple[str | None, str]]:
    return Counter((e["detail"]["from"], e["detail"]["to"]) for e in world.events())


def _last_run_counts(world: World) -> RunCounts:
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.outcome == "succeeded", run.errors
    return run.counts


def _deleted_by_reconciliation(world: World) -> datetime:
    """A pending listing with a published post, made active by the first sync from a record
    a day old; then the MLS stops serving it and a reconciliation deletes it. Returns the
    record's MLS time."""
    old = world.sim.now - timedelta(days=1)
    world.add_connection()
    world.track("l-1", "K1", Status.PENDING, modified=old)
    world.post("p-1", "l-1", PostStatus.PUBLISHED, "facebook")
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    assert world.status("l-1") is Status.ACTIVE
    world.sim.advance(60)
    world.sim.remove_listing("K1")
    world.run_worker([world.job("reconcile", slot="2026-11-28T12:15:00Z")])
    assert world.status("l-1") is Status.DELETED
    assert _pairs(world) == Counter({("pending", "active"): 1, ("active", "deleted"): 1})
    world.unpublish_jobs()
    world.sim.advance(60)
    return old


def _assert_restored_once(world: World) -> None:
    assert world.status("l-1") is Status.ACTIVE
    changes = world.changes("l-1")
    assert [(c.from_status, c.to_status) for c in changes] == [
        (Status.DELETED, Status.ACTIVE),
        (Status.ACTIVE, Status.DELETED),
        (Status.PENDING, Status.ACTIVE),
    ]
    assert len({c.change_key for c in changes}) == 3
    assert all(c.pending_effects == [] for c in changes)
    listing = world.listings.get("l-1")
    assert listing is not None
    assert not listing.deleted_by_detection


@pytest.mark.parametrize("path", ["reconcile", "by_key"])
def test_a_listing_back_with_its_old_timestamp_is_restored(world: World, path: str) -> None:
    # Given a listing reconciliation deleted because the MLS stopped serving it
    old = _deleted_by_reconciliation(world)
    # And the deletion kept the MLS time it had last seen, not the detection time
    listing = world.listings.get("l-1")
    assert listing is not None
    assert listing.deleted_by_detection
    assert listing.mls_modified_at == format_utc(old)
    # When the MLS serves it again, unchanged (same timestamp), and the next run reads it
    world.sim.add_listing("K1", "Active", modified=old)
    if path == "reconcile":
        job = world.job("reconcile", slot="2026-11-28T12:30:00Z")
    else:
        job = world.job("manual", slot="2026-11-28T12:30:00Z", listingKeys=["K1"])
    world.run_worker([job])
    # Then the MLS status is back: one new history entry (not colliding with the first
    # pending→active one at the same MLS time), one event, no unpublish job
    _assert_restored_once(world)
    assert _pairs(world) == Counter({("deleted", "active"): 1})
    assert world.unpublish_jobs() == []
    assert _last_run_counts(world).status_changes == 1
    # And reading the same record again changes nothing
    world.run_worker([world.job("reconcile", slot="2026-11-28T12:45:00Z")])
    _assert_restored_once(world)
    assert _pairs(world) == Counter()


def test_a_listing_back_with_a_newer_timestamp_is_restored(world: World) -> None:
    # Given a listing reconciliation deleted because the MLS stopped serving it
    _deleted_by_reconciliation(world)
    # When the MLS serves it again with a new timestamp, read by the incremental run
    world.sim.add_listing("K1", "Active", modified=world.sim.now)
    world.sim.advance(60)
    world.run_worker([world.job(slot="2026-11-28T12:30:00Z")])
    # Then it is restored once, with the new MLS time
    _assert_restored_once(world)
    assert _pairs(world) == Counter({("deleted", "active"): 1})
    assert world.unpublish_jobs() == []
    listing = world.listings.get("l-1")
    assert listing is not None
    assert listing.mls_modified_at == format_utc(world.sim.now - timedelta(seconds=60))


@pytest.mark.parametrize("later", ["same_record", "restamped"])
def test_a_crash_right_after_the_restoration_converges_on_redelivery(
    world: World, later: str
) -> None:
    # Given a deleted-by-detection listing back on the MLS unchanged, and a worker that
    # dies right after writing the restoration (its event still pending)
    old = _deleted_by_reconciliation(world)
    world.sim.add_listing("K1", "Active", modified=old)
    job = world.job("reconcile", slot="2026-11-28T12:30:00Z")
    with pytest.raises(Crash):
        world.run_worker([job], deps=world.sync_deps(listings=DiesAfterRestoring(world)))
    assert world.status("l-1") is Status.ACTIVE
    assert world.events() == []
    # When the job is delivered again (the MLS having re-stamped the record meanwhile, or not)
    if later == "restamped":
        world.sim.advance(1800)
        world.sim.touch("K1")
    world.run_worker([job])
    # Then exactly one restoration entry and one restoration event exist, nothing pending
    _assert_restored_once(world)
    assert _pairs(world) == Counter({("deleted", "active"): 1})
    assert world.unpublish_jobs() == []


def test_a_deletion_by_detection_never_overwrites_a_newer_record(world: World) -> None:
    # Given a tracked listing the MLS stops serving
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE, modified=world.sim.now - timedelta(days=1))
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.events()
    world.sim.advance(60)
    world.sim.remove_listing("K1")
    # When a newer MLS record of it is applied between the reconciliation's read and its
    # deletion
    racing = NewerRecordLandsFirst(world, world.sim.now)
    world.run_worker(
        [world.job("reconcile", slot="2026-11-28T12:15:00Z")],
        deps=world.sync_deps(listings=racing),
    )
    # Then the deletion is refused: the MLS's word wins over our inference
    assert world.status("l-1") is Status.ACTIVE
    assert world.changes("l-1") == []
    assert world.events() == []
    assert _last_run_counts(world).deletion_refused == 1
    listing = world.listings.get("l-1")
    assert listing is not None
    assert not listing.deleted_by_detection
