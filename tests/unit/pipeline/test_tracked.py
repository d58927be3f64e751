"""Which tracked listings a run may ask the MLS about, and by what."""

from __future__ import annotations

from mls_sync.models import Listing
from mls_sync.pipeline.sync import Tracked, mls_update, newly_tracked_batch
from mls_sync.reso.records import MlsRecord
from mls_sync.status import StandardStatus, Status
from mls_sync.timeutil import Instant


def _listing(key: str, **kw: object) -> Listing:
    return Listing.model_validate(
        {
            "listingId": f"l-{key}",
            "userId": "u-1",
            "connectionId": "c-1",
            "listingKey": key,
            "status": "active",
            **kw,
        }
    )


TRACKED = Tracked.of(
    [
        _listing("K1", mlsListingId="ID-1", syncedAt="2026-11-28T12:00:00Z"),
        _listing("K2"),
        _listing("K3", mlsListingId="ID-3"),
        _listing("K4", syncExcluded=True),
    ]
)


def test_tracked_holds_ids_listing_ids_and_the_never_synced_not_excluded() -> None:
    assert TRACKED.ids == {"K1": "l-K1", "K2": "l-K2", "K3": "l-K3", "K4": "l-K4"}
    assert TRACKED.mls_ids == {"K1": "ID-1", "K3": "ID-3"}
    assert TRACKED.never_synced == ["K2", "K3"]


def test_by_listing_key_every_tracked_key_is_asked() -> None:
    assert TRACKED.lookup_values(["K1", "K2", "NOPE"], "ListingKey") == {"K1": "K1", "K2": "K2"}


def test_by_listing_id_only_listings_whose_id_we_hold_are_asked() -> None:
    # Asking by a field we have no value of would report the listing missing: deleted.
    assert TRACKED.lookup_values(["K1", "K2", "K3"], "ListingId") == {"ID-1": "K1", "ID-3": "K3"}


def test_an_unknown_lookup_field_asks_nothing() -> None:
    assert TRACKED.lookup_values(["K1", "K2"], "ListingNumber") == {}


def test_newly_tracked_batch_takes_all_up_to_the_limit() -> None:
    assert newly_tracked_batch(["K1", "K2"], "2026-11-28T12:00:00Z", 2) == ["K1", "K2"]


def test_newly_tracked_batch_beyond_the_limit_rotates_with_the_slot() -> None:
    keys = [f"K{n}" for n in range(100)]
    slots = [f"2026-11-28T{h:02d}:00:00Z" for h in range(24)]
    batches = [newly_tracked_batch(keys, slot, 10) for slot in slots]
    # Each run takes exactly the limit, the same for the same slot (a redelivered job)...
    assert all(len(b) == 10 for b in batches)
    assert newly_tracked_batch(keys, slots[0], 10) == batches[0]
    # ...and different runs different listings, so stuck ones cannot starve the rest
    assert len({k for b in batches for k in b}) > 50


def test_an_applied_record_carries_its_listing_id() -> None:
    record = MlsRecord(
        listing_key="K1",
        listing_id="ID-1",
        standard_status=StandardStatus.CLOSED,
        modification=Instant.parse("2026-11-28T16:59:59Z"),
    )
    update = mls_update(record, "2026-11-28T17:00:00.000000Z")
    assert update.mls_listing_id == "ID-1"
    assert update.status is Status.SOLD
