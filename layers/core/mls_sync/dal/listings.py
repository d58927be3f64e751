"""Listings: the agent's listings as the MLS last said, with timestamp-guarded writes.

The MLS is the source of truth, but only its latest word counts: a status write carries the
record's modification instant and succeeds only while the stored one is older. Two workers
applying the same listing race on that condition: exactly one wins, the other learns why.
The expressions and the explanation of a refusal live in ``listing_updates``; quarantine and
takedown marks in ``listing_marks``; the key map's repair in ``listing_key_repair``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mls_sync.dal.base import ConditionFailed, Update, old_item
from mls_sync.dal.item_repo import ItemRepo
from mls_sync.dal.listing_key_repair import ListingKeyRepair
from mls_sync.dal.listing_keys import ListingKeysRepo, key_item
from mls_sync.dal.listing_marks import ListingMarks
from mls_sync.dal.listing_updates import (
    TAKEDOWN_EFFECT,
    ApplyResult,
    MlsUpdate,
    RejectReason,
    apply_expression,
    detection_expression,
    explain_refusal,
    is_stale,
    with_takedown,
)
from mls_sync.dal.transactions import (
    UpdateRequest,
    av,
    from_wire,
    refused_by_condition,
    update_operation,
    wire_item,
)
from mls_sync.models import Listing, StatusChange
from mls_sync.timeutil import Instant

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table

__all__ = [
    "TAKEDOWN_EFFECT",
    "ApplyResult",
    "ListingsRepo",
    "MlsUpdate",
    "RejectReason",
    "is_stale",
]

_BATCH_GET = 100  # BatchGetItem's limit per call
_TRANSACT = 100  # TransactWriteItems' limit per call
_BATCH_GET_ROUNDS = 5
"""Rounds for keys DynamoDB leaves unprocessed (throttling); those still left are simply not
prefetched: the caller reads each of them on its own."""


class ListingsRepo(ItemRepo[Listing], ListingMarks, ListingKeyRepair):
    model = Listing
    key = "listingId"

    def __init__(
        self, table: Table, client: DynamoDBClient, history_table: str, keys_table: str
    ) -> None:
        super().__init__(table)
        self._client = client
        self._history_table = history_table
        self.keys = ListingKeysRepo(client, keys_table)
        """The key map a listing is found by (kept in step by ``create``)."""

    # ------------------------------------------------------------------ reads

    def get_many(self, listing_ids: Sequence[str]) -> dict[str, Listing]:
        """The listings by id, read consistently in batches of 100 (BatchGetItem): what a page
        of MLS records names, in one call instead of one per record. An item that does not
        validate is left out (the caller's own read of it then reports why)."""
        wanted = list(dict.fromkeys(listing_ids))
        found: dict[str, Listing] = {}
        name = self._table.name
        for start in range(0, len(wanted), _BATCH_GET):
            keys: list[dict[str, Any]] = [
                {"listingId": av(i)} for i in wanted[start : start + _BATCH_GET]
            ]
            for _ in range(_BATCH_GET_ROUNDS):
                answer = self._client.batch_get_item(
                    RequestItems={name: {"Keys": keys, "ConsistentRead": True}}
                )
                for raw in answer.get("Responses", {}).get(name, []):
                    with suppress(ValueError):
                        listing = Listing.model_validate(from_wire(raw))
                        found[listing.listing_id] = listing
                left = answer.get("UnprocessedKeys") or {}
                keys = [dict(k) for k in (left[name]["Keys"] if name in left else [])]
                if not keys:
                    break
        return found

    def list_by_user(self, user_id: str) -> list[Listing]:
        return self._by_index("byUser", "userId", user_id)

    # ------------------------------------------------------------------ writes

    def create(self, listing: Listing) -> None:
        """Adds a listing and its key-map entry in one transaction; a listing never read
        from the MLS (no ``syncedAt``) is marked new, so the next run looks it up by key."""
        item = listing.to_item()
        item.pop("mlsModifiedKey", None)  # derived here from the MLS time, never taken as given
        if listing.mls_modified_at:
            item["mlsModifiedKey"] = Instant.parse(listing.mls_modified_at).sort_key()
        entry = key_item(
            listing.connection_id,
            listing.listing_key,
            listing.listing_id,
            new=listing.synced_at is None and not listing.sync_excluded,
        )
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": wire_item(item),
                            "ConditionExpression": "attribute_not_exists(listingId)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {"Put": {"TableName": self.keys.table_name, "Item": entry}},
                ]
            )
        except ClientError as exc:
            if refused_by_condition(exc):
                raise ConditionFailed("exists", old_item(exc)) from None
            raise

    def set_excluded(self, listing_id: str, excluded: bool) -> None:
        self._update_or_fail(
            "missing",
            listing_id,
            Update("SET syncExcluded = :x", "attribute_exists(listingId)", values={":x": excluded}),
        )

    def note_seen(self, listing_id: str, update: MlsUpdate) -> bool:
        """Records that the MLS confirmed what we hold: sets ``syncedAt`` (and the record's
        ``mlsListingId`` when we lack it) on a listing whose stored MLS time is already at
        least this record's. Status and timestamps are untouched; False when the listing
        moved on or is excluded (nothing to note)."""
        sets = ["syncedAt = :now"]
        values: dict[str, Any] = {
            ":now": update.synced_at,
            ":mk": update.modified.sort_key(),
            ":true": True,
        }
        if update.mls_listing_id:
            sets.append("mlsListingId = if_not_exists(mlsListingId, :lid)")
            values[":lid"] = update.mls_listing_id
        return self._update_if(
            listing_id,
            Update(
                "SET " + ", ".join(sets),
                "attribute_exists(listingId) AND mlsModifiedKey >= :mk"
                " AND (attribute_not_exists(syncExcluded) OR syncExcluded <> :true)",
                values=values,
            ),
        )

    def apply(
        self,
        listing: Listing,
        update: MlsUpdate,
        change: StatusChange | None,
    ) -> ApplyResult:
        """Writes what the MLS says, if it is newer than what we hold.

        ``listing`` is the state the caller decided from: the write also requires the status
        to still be that one, so a decision made on stale state never lands. ``change`` is the
        history entry to add in the same transaction when the status changes (its key is
        derived from the MLS record, so the same change can never be recorded twice).
        """
        request = apply_expression(listing, update, change)
        return self._write(listing.listing_id, update, change, request)

    def apply_many(self, writes: Sequence[tuple[Listing, MlsUpdate]]) -> bool:
        """Applies records that change no status, up to 100 listings in one transaction
        (each with the same condition as ``apply``): a first sync or reconciliation writes a
        chunk in a few calls instead of one per listing. All or nothing: False when any
        condition failed (nothing was written; the caller applies them one by one, each
        learning why). Raises for any other failure."""
        for start in range(0, len(writes), _TRANSACT):
            items = [
                update_operation(
                    self._table.name,
                    {"listingId": listing.listing_id},
                    apply_expression(listing, update, None),
                )
                for listing, update in writes[start : start + _TRANSACT]
            ]
            try:
                self._client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if refused_by_condition(exc):
                    return False
                raise
        return True

    def delete_by_detection(
        self,
        listing: Listing,
        update: MlsUpdate,
        change: StatusChange,
        expected_key: str | None,
    ) -> ApplyResult:
        """Marks ``listing`` deleted because the MLS no longer returns it, with ``change``.

        The stored MLS time is kept (the detection time is ours, not the MLS's: storing it
        would make the listing's own records stale if it comes back unchanged) and the item
        is flagged ``deletedByDetection``. Lands only while the status is still the one the
        caller decided from and ``mlsModifiedKey`` is still ``expected_key``: a record
        applied meanwhile means the MLS spoke, and its word wins over our inference."""
        request = detection_expression(listing, update, expected_key)
        return self._write(
            listing.listing_id, update, change, request, expected_key=expected_key or ""
        )

    def _write(
        self,
        listing_id: str,
        update: MlsUpdate,
        change: StatusChange | None,
        request: UpdateRequest,
        *,
        expected_key: str | None = None,
    ) -> ApplyResult:
        """The listing update ``request``, in one transaction with ``change`` when there is
        one. A change that takes posts down also marks the listing ``takedownKey`` (the sparse
        byTakedown index), in the same transaction: the takedown can never be recorded and not
        found."""
        key = {"listingId": listing_id}
        try:
            if change is None:
                expression, condition, names, values = request
                self._table.update_item(
                    Key=key,
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            else:
                request = with_takedown(request, change)
                self._client.transact_write_items(
                    TransactItems=[
                        update_operation(self._table.name, key, request, all_old=True),
                        {
                            "Put": {
                                "TableName": self._history_table,
                                "Item": wire_item(_history_item(change)),
                                "ConditionExpression": "attribute_not_exists(changeKey)",
                            }
                        },
                    ]
                )
        except ClientError as exc:
            if not refused_by_condition(exc):
                raise
            # Read again only when DynamoDB returned no item with the refusal (it is gone).
            old = old_item(exc) or self.get_raw(listing_id)
            return explain_refusal(old, update, change, expected_key)
        return ApplyResult(applied=True)


def _history_item(change: StatusChange) -> dict[str, Any]:
    item = change.to_item()
    effects = item.pop("pendingEffects", [])
    if effects:
        item["pendingEffects"] = set(effects)
    return item
