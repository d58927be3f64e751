"""ListingKeys: which of our listings an MLS record names, without reading the connection.

One small item per tracked listing, keyed (``connectionId``, ``listingKey``) and holding our
``listingId``: a page of MLS records is matched with one BatchGetItem per 100 records, so a
cycle costs what its changes cost, not what the connection holds (a record of a listing we
do not track costs a share of that one read). A listing added and not yet read from the MLS
carries ``newListingOf`` (= its connection) and so sits in the sparse ``byNew`` index: one
query per run finds the listings to look up by key, usually none.

Written in the same transaction as the listing by ``ListingsRepo.create`` (the one way a
listing is added); ``mls-sync reconcile`` (and the daily reconciliation) re-create any that
are missing, e.g. for listings written to the Listings table directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

NEW_INDEX = "byNew"
_BATCH_GET = 100  # BatchGetItem's limit per call
_BATCH_WRITE = 25  # BatchWriteItem's limit per call
_ROUNDS = 8
"""Rounds for keys DynamoDB leaves unprocessed (throttling) before giving up loudly."""


class KeysUnprocessedError(RuntimeError):
    """DynamoDB kept leaving part of a batch unprocessed (throttled)."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One tracked listing as the key map holds it."""

    listing_key: str
    listing_id: str
    new: bool = False
    """Not yet read from the MLS since it was added (in the ``byNew`` index)."""


def _entry(item: dict[str, Any]) -> KeyEntry:
    return KeyEntry(
        listing_key=item["listingKey"]["S"],
        listing_id=item["listingId"]["S"],
        new="newListingOf" in item,
    )


def key_item(connection_id: str, listing_key: str, listing_id: str, *, new: bool) -> dict[str, Any]:
    """The item in DynamoDB's wire form (for a transaction or a batch)."""
    item: dict[str, Any] = {
        "connectionId": {"S": connection_id},
        "listingKey": {"S": listing_key},
        "listingId": {"S": listing_id},
    }
    if new:
        item["newListingOf"] = {"S": connection_id}
    return item


class ListingKeysRepo:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def lookup(self, connection_id: str, listing_keys: Iterable[str]) -> dict[str, KeyEntry]:
        """The tracked listings among ``listing_keys``, by key (one call per 100 keys).
        Eventually consistent reads: a listing added a moment ago may be missed by one run,
        and is found by the ``byNew`` query of the next."""
        wanted = list(dict.fromkeys(listing_keys))
        found: dict[str, KeyEntry] = {}
        name = self.table_name
        for start in range(0, len(wanted), _BATCH_GET):
            keys: list[Any] = [
                {"connectionId": {"S": connection_id}, "listingKey": {"S": k}}
                for k in wanted[start : start + _BATCH_GET]
            ]
            for _ in range(_ROUNDS):
                answer = self._client.batch_get_item(RequestItems={name: {"Keys": keys}})
                for raw in answer.get("Responses", {}).get(name, []):
                    entry = _entry(dict(raw))
                    found[entry.listing_key] = entry
                left = answer.get("UnprocessedKeys") or {}
                keys = list(left[name]["Keys"]) if name in left else []
                if not keys:
                    break
            else:
                raise KeysUnprocessedError(f"{len(keys)} listing keys left unread (throttled)")
        return found

    def page(self, connection_id: str, *, after: str, limit: int) -> list[KeyEntry]:
        """Up to ``limit`` tracked listings in key order, after ``after`` ("" = from the
        start): how a by-key phase walks the connection, one chunk at a time."""
        entries: list[KeyEntry] = []
        start: Any = None
        while len(entries) < limit:
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "KeyConditionExpression": "connectionId = :c AND listingKey > :after",
                "ExpressionAttributeValues": {":c": {"S": connection_id}, ":after": {"S": after}},
                "Limit": limit - len(entries),
            }
            if not after:
                kwargs["KeyConditionExpression"] = "connectionId = :c"
                del kwargs["ExpressionAttributeValues"][":after"]
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            answer = self._client.query(**kwargs)
            entries.extend(_entry(dict(i)) for i in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                break
        return entries

    def all(self, connection_id: str) -> Iterator[KeyEntry]:
        after = ""
        while True:
            chunk = self.page(connection_id, after=after, limit=1000)
            yield from chunk
            if len(chunk) < 1000:
                return
            after = chunk[-1].listing_key

    def count(self, connection_id: str) -> int:
        """How many listings the connection tracks (a count query: no items returned)."""
        total = 0
        start: Any = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "KeyConditionExpression": "connectionId = :c",
                "ExpressionAttributeValues": {":c": {"S": connection_id}},
                "Select": "COUNT",
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            answer = self._client.query(**kwargs)
            total += int(answer.get("Count", 0))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return total

    def new(self, connection_id: str, *, limit: int) -> list[KeyEntry]:
        """Up to ``limit`` listings added and not yet read from the MLS, in key order."""
        answer = self._client.query(
            TableName=self.table_name,
            IndexName=NEW_INDEX,
            KeyConditionExpression="newListingOf = :c",
            ExpressionAttributeValues={":c": {"S": connection_id}},
            Limit=limit,
        )
        return [_entry(dict(i)) for i in answer.get("Items", [])]

    def confirm(self, connection_id: str, entries: Sequence[KeyEntry]) -> None:
        """Takes listings read from the MLS out of ``byNew``: their items written again
        without the mark, 25 to a call (the item is ours alone and fully determined)."""
        self._write(
            [
                {
                    "PutRequest": {
                        "Item": key_item(connection_id, e.listing_key, e.listing_id, new=False)
                    }
                }
                for e in entries
                if e.new
            ]
        )

    def restore(self, connection_id: str, entries: Sequence[KeyEntry]) -> None:
        """Writes the given entries (a repair: listings whose key item was missing)."""
        self._write(
            [
                {
                    "PutRequest": {
                        "Item": key_item(connection_id, e.listing_key, e.listing_id, new=e.new)
                    }
                }
                for e in entries
            ]
        )

    def forget(self, connection_id: str, entry: KeyEntry) -> None:
        """Drops an entry whose listing is gone (only while it still names that listing)."""
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.delete_item(
                TableName=self.table_name,
                Key={"connectionId": {"S": connection_id}, "listingKey": {"S": entry.listing_key}},
                ConditionExpression="listingId = :id",
                ExpressionAttributeValues={":id": {"S": entry.listing_id}},
            )

    def _write(self, requests: list[Any]) -> None:
        name = self.table_name
        for start in range(0, len(requests), _BATCH_WRITE):
            batch = requests[start : start + _BATCH_WRITE]
            for _ in range(_ROUNDS):
                answer = self._client.batch_write_item(RequestItems={name: batch})
                left = answer.get("UnprocessedItems") or {}
                batch = list(left[name]) if name in left else []
                if not batch:
                    break
            else:
                raise KeysUnprocessedError(f"{len(batch)} listing keys left unwritten (throttled)")
