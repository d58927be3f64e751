"""Listing status writes are guarded by the MLS modification instant and the status the
caller decided from: older MLS data never overwrites newer, and of two concurrent writers
exactly one wins while the other learns why."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from mls_sync.dal import ListingsRepo
from mls_sync.dal.history import HistoryRepo, change_key
from mls_sync.dal.listings import MlsUpdate
from mls_sync.models import Listing, StatusChange
from mls_sync.status import Status
from mls_sync.timeutil import Instant

from tests.support.stack import LocalStack

NOW = "2026-11-28T17:00:00.000000Z"


def _repo(stack: LocalStack) -> ListingsRepo:
    return ListingsRepo(
        stack.tables.listings,
        boto3.client("dynamodb"),
        stack.settings.history_table,
        stack.settings.listing_keys_table,
    )


def _listing(status: Status = Status.ACTIVE, modified: str | None = None) -> Listing:
    return Listing(
        listing_id="l-1",
        user_id="u-1",
        connection_id="c-1",
        listing_key="K1",
        status=status,
        mls_modified_at=modified,
    )


def _update(status: Status, modified: str) -> MlsUpdate:
    return MlsUpdate(status, status.value.title(), None, Instant.parse(modified), NOW)


def _change(listing: Listing, update: MlsUpdate) -> StatusChange:
    return StatusChange(
        listing_id=listing.listing_id,
        change_key=change_key(update.modified, update.status),
        from_status=listing.status,
        to_status=update.status,
        mls_modified_at=update.modified.iso_micro(),
        detected_at=NOW,
        source="schedule",
    )


def test_newer_change_is_applied_with_its_history_entry(stack: LocalStack) -> None:
    # Given an active listing last modified at 10:00
    repo = _repo(stack)
    listing = _listing(modified="2026-11-28T10:00:00Z")
    repo.create(listing)
    # When the MLS says it sold at 11:00
    update = _update(Status.SOLD, "2026-11-28T11:00:00Z")
    result = repo.apply(listing, update, _change(listing, update))
    # Then the listing is sold and the history holds one entry
    assert result.applied
    stored = repo.get("l-1")
    assert stored is not None
    assert stored.status is Status.SOLD
    assert stored.status_changed_at == NOW
    history = HistoryRepo(stack.tables.history).list_for_listing("l-1")
    assert [(h.from_status, h.to_status) for h in history] == [(Status.ACTIVE, Status.SOLD)]


def test_older_mls_data_never_overwrites_newer(stack: LocalStack) -> None:
    repo = _repo(stack)
    listing = _listing(Status.SOLD, modified="2026-11-28T12:00:00Z")
    repo.create(listing)
    update = _update(Status.ACTIVE, "2026-11-28T11:59:59.9999999Z")
    result = repo.apply(listing, update, _change(listing, update))
    assert not result.applied
    assert result.reason == "stale"
    stored = repo.get("l-1")
    assert stored is not None
    assert stored.status is Status.SOLD
    assert HistoryRepo(stack.tables.history).list_for_listing("l-1") == []


def test_same_instant_at_nanosecond_precision_is_not_stale(stack: LocalStack) -> None:
    # Given a stored instant with 7 fractional digits
    repo = _repo(stack)
    listing = _listing(Status.ACTIVE)
    repo.create(listing)
    first = _update(Status.ACTIVE, "2026-11-28T10:00:00.1234567Z")
    assert repo.apply(listing, first, None).applied
    # When a record 100 ns newer arrives (equal after truncation to microseconds)
    current = repo.get("l-1")
    assert current is not None
    newer = _update(Status.PENDING, "2026-11-28T10:00:00.1234568Z")
    # Then it is still newer, and it is applied
    assert repo.apply(current, newer, _change(current, newer)).applied


def test_concurrent_writers_exactly_one_wins(stack: LocalStack) -> None:
    # Given two workers that both read the active listing
    repo = _repo(stack)
    listing = _listing(modified="2026-11-28T10:00:00Z")
    repo.create(listing)
    sold = _update(Status.SOLD, "2026-11-28T11:00:00Z")
    pending = _update(Status.PENDING, "2026-11-28T10:30:00Z")
    # When both write, each from the state it read
    first = repo.apply(listing, sold, _change(listing, sold))
    second = repo.apply(listing, pending, _change(listing, pending))
    # Then the first wins and the second learns its data is older
    assert first.applied
    assert not second.applied
    assert second.reason == "stale"
    assert second.current is not None
    assert second.current.status is Status.SOLD


def test_same_change_applied_twice_is_recorded_once(stack: LocalStack) -> None:
    repo = _repo(stack)
    listing = _listing(modified="2026-11-28T10:00:00Z")
    repo.create(listing)
    sold = _update(Status.SOLD, "2026-11-28T11:00:00Z")
    assert repo.apply(listing, sold, _change(listing, sold)).applied
    again = repo.apply(listing, sold, _change(listing, sold))
    assert not again.applied
    assert again.reason == "stale"
    assert len(HistoryRepo(stack.tables.history).list_for_listing("l-1")) == 1


def test_excluded_listing_is_never_changed(stack: LocalStack) -> None:
    repo = _repo(stack)
    listing = _listing(modified="2026-11-28T10:00:00Z")
    repo.create(listing)
    repo.set_excluded("l-1", True)
    sold = _update(Status.SOLD, "2026-11-28T11:00:00Z")
    result = repo.apply(listing, sold, _change(listing, sold))
    assert (result.applied, result.reason) == (False, "excluded")
    stored = repo.get("l-1")
    assert stored is not None
    assert stored.status is Status.ACTIVE


def test_decision_on_stale_status_never_lands(stack: LocalStack) -> None:
    # Given a worker that decided from 'active' while another already made it 'pending'
    repo = _repo(stack)
    listing = _listing(modified="2026-11-28T10:00:00Z")
    repo.create(listing)
    pending = _update(Status.PENDING, "2026-11-28T10:30:00Z")
    assert repo.apply(listing, pending, _change(listing, pending)).applied
    # When the first worker writes a newer record still believing 'active'
    sold = _update(Status.SOLD, "2026-11-28T11:00:00Z")
    result = repo.apply(listing, sold, _change(listing, sold))
    # Then it is refused with the reason, so the caller re-reads and decides again
    assert (result.applied, result.reason) == (False, "status_moved")


@pytest.mark.usefixtures("atomic_writes")
def test_ten_threads_racing_on_one_listing_exactly_one_wins(stack: LocalStack) -> None:
    # Given ten workers that all read the same active listing
    repo = _repo(stack)
    listing = _listing(modified="2026-11-28T10:00:00Z")
    repo.create(listing)
    updates = [_update(Status.SOLD, f"2026-11-28T11:00:{i:02d}Z") for i in range(10)]
    # When they all write at once, each from the state it read
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda u: repo.apply(listing, u, _change(listing, u)), updates))
    # Then exactly one wins, every loser is told why, and history holds one entry
    winners = [r for r in results if r.applied]
    assert len(winners) == 1
    assert {r.reason for r in results if not r.applied} <= {"stale", "status_moved"}
    assert all(r.current is not None for r in results if not r.applied)
    assert len(HistoryRepo(stack.tables.history).list_for_listing("l-1")) == 1
