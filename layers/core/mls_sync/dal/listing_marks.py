"""The marks a listing carries besides what the MLS said: quarantine and a pending takedown.

A record that keeps failing to apply quarantines its listing (skipped by syncs until a read by
key applies it), with the reason, the first failure's time and the attempts counted on the
item; the connection's count of quarantined listings is recounted from the table. A status
change that takes posts down marks the listing ``takedownKey`` (the sparse ``byTakedown``
index) until the takedown is settled. ``ListingsRepo`` takes these methods from
``ListingMarks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from mls_sync.dal.base import Update, is_condition_failure, query_all, update_if

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class ListingMarks:
    """Quarantine and takedown marks on the Listings table (a part of ``ListingsRepo``)."""

    _table: Table

    def quarantine(
        self, listing_id: str, *, reason: str, at: str, permanent: bool, after_attempts: int
    ) -> int:
        """Records that applying the MLS's record to this listing failed: ``reason`` (one
        line, bounded), first seen ``at`` (kept from the first failure), attempts counted.
        The listing becomes ``quarantined`` (skipped by syncs until a read by key applies it)
        when the failure is ``permanent`` or has now happened ``after_attempts`` times.
        Returns the attempts so far; 0 when the listing no longer exists."""
        expression = (
            "SET quarantineReason = :r, quarantinedAt = if_not_exists(quarantinedAt, :t),"
            " quarantineAttempts = if_not_exists(quarantineAttempts, :zero) + :one"
        )
        values: dict[str, Any] = {":r": reason[:300], ":t": at, ":zero": 0, ":one": 1}
        if permanent:
            expression += ", quarantined = :true"
            values[":true"] = True
        try:
            found = self._table.update_item(
                Key={"listingId": listing_id},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(listingId)",
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return 0
            raise
        attempts = int(str(found.get("Attributes", {}).get("quarantineAttempts", 1)))
        if not permanent and attempts >= after_attempts:
            self._table.update_item(
                Key={"listingId": listing_id},
                UpdateExpression="SET quarantined = :true",
                ConditionExpression="attribute_exists(quarantineReason)",
                ExpressionAttributeValues={":true": True},
            )
        return attempts

    def clear_quarantine(self, listing_id: str) -> None:
        """The listing's record applied after all: no longer quarantined."""
        update_if(
            self._table,
            {"listingId": listing_id},
            Update(
                "REMOVE quarantined, quarantineReason, quarantinedAt, quarantineAttempts",
                "attribute_exists(listingId)",
            ),
        )

    def count_quarantined(self, connection_id: str) -> int:
        """How many of the connection's listings are quarantined. Reads every listing of the
        connection (the byConnectionKey index): called only when a run quarantined or cleared
        one, to keep the connection's ``quarantinedRecords`` exact."""
        kwargs: dict[str, Any] = {
            "IndexName": "byConnectionKey",
            "KeyConditionExpression": Key("connectionId").eq(connection_id),
            "FilterExpression": "quarantined = :true",
            "ExpressionAttributeValues": {":true": True},
            "Select": "COUNT",
        }
        total = 0
        while True:
            page = self._table.query(**kwargs)
            total += int(page.get("Count", 0))
            if not page.get("LastEvaluatedKey"):
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def pending_takedowns(self, connection_id: str) -> list[tuple[str, str]]:
        """(listingId, change key) of every listing of the connection whose takedown is not
        settled. The index is eventually consistent: callers check the history entry."""
        return [
            (str(item["listingId"]), str(item["takedownKey"]))
            for item in query_all(
                self._table,
                IndexName="byTakedown",
                KeyConditionExpression=Key("connectionId").eq(connection_id),
            )
        ]

    def clear_takedown(self, listing_id: str, change_key: str) -> None:
        """The takedown of ``change_key`` is settled (only that one: a newer change may have
        marked the listing since)."""
        update_if(
            self._table,
            {"listingId": listing_id},
            Update("REMOVE takedownKey", "takedownKey = :k", values={":k": change_key}),
        )
