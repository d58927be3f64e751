"""StatusHistory: each listing's status changes, newest first, each recorded once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mls_sync.dal.base import condition_failed_as, newest, plain, read
from mls_sync.models import StatusChange
from mls_sync.status import Status
from mls_sync.timeutil import Instant

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def change_key(modified: Instant, to_status: Status) -> str:
    """Derived from the MLS record alone: the same record applied twice gives the same key,
    and keys sort by MLS time, so a descending query reads newest first."""
    return f"{modified.sort_key()}#{to_status.value}"


class HistoryRepo:
    def __init__(self, table: Table) -> None:
        self._table = table

    def list_for_listing(self, listing_id: str, limit: int = 50) -> list[StatusChange]:
        items = newest(self._table, "listingId", listing_id, limit)
        return [StatusChange.model_validate(i) for i in items]

    def get(self, listing_id: str, key: str) -> StatusChange | None:
        item = read(self._table, {"listingId": listing_id, "changeKey": key})
        return StatusChange.model_validate(item) if item else None

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StatusChange]:
        """Entries by (listingId, changeKey), read consistently 100 to a call; those that do
        not exist are simply absent. Keys DynamoDB leaves unprocessed are read on their own."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], StatusChange] = {}
        # The table's own client: it takes and gives plain Python values, like the table.
        client: Any = self._table.meta.client
        name = self._table.name
        for start in range(0, len(wanted), 100):
            batch = wanted[start : start + 100]
            answer = client.batch_get_item(
                RequestItems={
                    name: {
                        "Keys": [{"listingId": lid, "changeKey": key} for lid, key in batch],
                        "ConsistentRead": True,
                    }
                }
            )
            for item in answer.get("Responses", {}).get(name, []):
                entry = StatusChange.model_validate(plain(item))
                found[(entry.listing_id, entry.change_key)] = entry
            left = (answer.get("UnprocessedKeys") or {}).get(name, {}).get("Keys", [])
            for key in left:
                one = self.get(str(key["listingId"]), str(key["changeKey"]))
                if one is not None:
                    found[(one.listing_id, one.change_key)] = one
        return found

    def complete_effect(self, listing_id: str, key: str, effect: str) -> None:
        """Marks one outbox effect of a change delivered (idempotent)."""
        with condition_failed_as("missing"):
            self._table.update_item(
                Key={"listingId": listing_id, "changeKey": key},
                UpdateExpression="DELETE pendingEffects :e",
                ConditionExpression="attribute_exists(changeKey)",
                ExpressionAttributeValues={":e": {effect}},
            )
