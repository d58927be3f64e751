"""Repair of the key map from the Listings table itself.

``ListingsRepo.create`` writes a listing and its key-map entry in one transaction, but a
listing written to the table directly (a seed, an operator's fix) has no entry, and a run
looking records up by key would never find it. Each first sync and reconciliation therefore
reads the connection's listings from the ``byConnectionKey`` index (just the attributes an
entry needs) and restores the entries the map lacks. ``ListingsRepo`` takes these methods
from ``ListingKeyRepair``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from boto3.dynamodb.conditions import Key

from mls_sync.dal.base import query_all
from mls_sync.dal.listing_keys import KeyEntry, ListingKeysRepo

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class ListingKeyRepair:
    """The key map checked against the Listings table (a part of ``ListingsRepo``)."""

    _table: Table
    keys: ListingKeysRepo

    def key_entries(self, connection_id: str) -> Iterator[KeyEntry]:
        """Every listing of the connection as a key-map entry, from the ``byConnectionKey``
        index with just the attributes that needs (a repair of the key map, run with each
        first sync and reconciliation: listings written to the table directly are found)."""
        for item in query_all(
            self._table,
            IndexName="byConnectionKey",
            KeyConditionExpression=Key("connectionId").eq(connection_id),
            ProjectionExpression="listingId, listingKey, syncedAt, syncExcluded",
        ):
            yield KeyEntry(
                listing_key=str(item["listingKey"]),
                listing_id=str(item["listingId"]),
                new="syncedAt" not in item and not item.get("syncExcluded"),
            )

    def repair_keys(self, connection_id: str) -> int:
        """Adds the key-map entries missing for the connection's listings; how many."""
        held = {e.listing_key: e.listing_id for e in self.keys.all(connection_id)}
        missing = [
            e for e in self.key_entries(connection_id) if held.get(e.listing_key) != e.listing_id
        ]
        if missing:
            self.keys.restore(connection_id, missing)
        return len(missing)
