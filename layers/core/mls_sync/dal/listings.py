"""Listings: the agent's listings as the MLS last said, with timestamp-guarded writes.

The MLS is the source of truth, but only its latest word counts: a status write carries the
record's modification instant and succeeds only while the stored one is older. Two workers
applying the same listing race on that condition: exactly one wins, the other learns why.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from mls_sync.dal.base import (
    ConditionFailed,
    condition_failed_as,
    conditional,
    is_condition_failure,
    old_item,
    plain,
    query_all,
    read,
    storable,
)
from mls_sync.dal.listing_keys import KeyEntry, ListingKeysRepo, key_item
from mls_sync.models import Listing, StatusChange
from mls_sync.status import Status
from mls_sync.timeutil import Instant

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table

_Request = tuple[str, str, dict[str, str], dict[str, Any]]
"""A listing update: its expression, condition, attribute names and values."""

RejectReason = Literal["missing", "excluded", "stale", "status_moved", "duplicate_change"]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_BATCH_GET = 100  # BatchGetItem's limit per call
_TRANSACT = 100  # TransactWriteItems' limit per call
_BATCH_GET_ROUNDS = 5
"""Rounds for keys DynamoDB leaves unprocessed (throttling); those still left are simply not
prefetched: the caller reads each of them on its own."""

TAKEDOWN_EFFECT = "unpublish"
"""The outbox effect that takes posts down (``pipeline.sync.EFFECT_UNPUBLISH``)."""

# Every status write: the listing exists, still holds the status the caller decided from,
# and the agent has not excluded it from sync.
_DECIDED_FROM = (
    "attribute_exists(listingId) AND #s = :expected"
    " AND (attribute_not_exists(syncExcluded) OR syncExcluded <> :true)"
)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of applying one MLS record to one listing."""

    applied: bool
    reason: RejectReason | None = None
    current: Listing | None = None


@dataclass(frozen=True, slots=True)
class MlsUpdate:
    """What one MLS record says about a listing."""

    status: Status
    standard_status: str | None
    mls_status: str | None
    modified: Instant
    synced_at: str
    mls_listing_id: str | None = None
    """The record's ``ListingId``: stored when present (MLS Grid is looked up by it)."""


def _av(value: Any) -> dict[str, Any]:
    return dict(_serializer.serialize(value))


class ListingsRepo:
    def __init__(
        self, table: Table, client: DynamoDBClient, history_table: str, keys_table: str
    ) -> None:
        self._table = table
        self._client = client
        self._history_table = history_table
        self.keys = ListingKeysRepo(client, keys_table)
        """The key map a listing is found by (kept in step by ``create``)."""

    # ------------------------------------------------------------------ reads

    def get(self, listing_id: str) -> Listing | None:
        item = self.get_raw(listing_id)
        return Listing.model_validate(item) if item else None

    def get_many(self, listing_ids: Sequence[str]) -> dict[str, Listing]:
        """The listings by id, read consistently in batches of 100 (BatchGetItem): what a page
        of MLS records names, in one call instead of one per record. An item that does not
        validate is left out (the caller's own read of it then reports why)."""
        wanted = list(dict.fromkeys(listing_ids))
        found: dict[str, Listing] = {}
        name = self._table.name
        for start in range(0, len(wanted), _BATCH_GET):
            keys: list[dict[str, Any]] = [
                {"listingId": _av(i)} for i in wanted[start : start + _BATCH_GET]
            ]
            for _ in range(_BATCH_GET_ROUNDS):
                answer = self._client.batch_get_item(
                    RequestItems={name: {"Keys": keys, "ConsistentRead": True}}
                )
                for raw in answer.get("Responses", {}).get(name, []):
                    item = plain({k: _deserializer.deserialize(v) for k, v in raw.items()})
                    with suppress(ValueError):
                        listing = Listing.model_validate(item)
                        found[listing.listing_id] = listing
                left = answer.get("UnprocessedKeys") or {}
                keys = [dict(k) for k in (left[name]["Keys"] if name in left else [])]
                if not keys:
                    break
        return found

    def get_raw(self, listing_id: str) -> dict[str, Any] | None:
        return read(self._table, {"listingId": listing_id})

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

    def list_by_user(self, user_id: str) -> list[Listing]:
        return [
            Listing.model_validate(i)
            for i in query_all(
                self._table, IndexName="byUser", KeyConditionExpression=Key("userId").eq(user_id)
            )
        ]

    # ------------------------------------------------------------------ writes

    def create(self, listing: Listing) -> None:
        """Adds a listing and its key-map entry in one transaction; a listing never read
        from the MLS (no ``syncedAt``) is marked new, so the next run looks it up by key."""
        item = listing.to_item()
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
                            "Item": {k: _av(v) for k, v in storable(item).items()},
                            "ConditionExpression": "attribute_not_exists(listingId)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {"Put": {"TableName": self.keys.table_name, "Item": entry}},
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException" and (
                _conditional(exc)
            ):
                raise ConditionFailed("exists", old_item(exc)) from None
            raise

    def set_excluded(self, listing_id: str, excluded: bool) -> None:
        with condition_failed_as("missing"):
            self._table.update_item(
                Key={"listingId": listing_id},
                UpdateExpression="SET syncExcluded = :x",
                ConditionExpression="attribute_exists(listingId)",
                ExpressionAttributeValues={":x": excluded},
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
        return conditional(
            lambda: self._table.update_item(
                Key={"listingId": listing_id},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=(
                    "attribute_exists(listingId) AND mlsModifiedKey >= :mk"
                    " AND (attribute_not_exists(syncExcluded) OR syncExcluded <> :true)"
                ),
                ExpressionAttributeValues=values,
            )
        )

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
        conditional(
            lambda: self._table.update_item(
                Key={"listingId": listing_id},
                UpdateExpression=(
                    "REMOVE quarantined, quarantineReason, quarantinedAt, quarantineAttempts"
                ),
                ConditionExpression="attribute_exists(listingId)",
            )
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
        conditional(
            lambda: self._table.update_item(
                Key={"listingId": listing_id},
                UpdateExpression="REMOVE takedownKey",
                ConditionExpression="takedownKey = :k",
                ExpressionAttributeValues={":k": change_key},
            )
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
        request = _apply_expression(listing, update, change)
        return self._write(listing.listing_id, update, change, request)

    def apply_many(self, writes: Sequence[tuple[Listing, MlsUpdate]]) -> bool:
        """Applies records that change no status, up to 100 listings in one transaction
        (each with the same condition as ``apply``): a first sync or reconciliation writes a
        chunk in a few calls instead of one per listing. All or nothing: False when any
        condition failed (nothing was written; the caller applies them one by one, each
        learning why). Raises for any other failure."""
        for start in range(0, len(writes), _TRANSACT):
            batch = writes[start : start + _TRANSACT]
            items: list[Any] = []
            for listing, update in batch:
                expression, condition, names, values = _apply_expression(listing, update, None)
                items.append(
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": {"listingId": _av(listing.listing_id)},
                            "UpdateExpression": expression,
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": {k: _av(v) for k, v in values.items()},
                        }
                    }
                )
            try:
                self._client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "TransactionCanceledException" and _conditional(exc):
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
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":s": update.status.value,
            ":now": update.synced_at,
            ":expected": listing.status.value,
            ":true": True,
        }
        condition = _DECIDED_FROM
        if expected_key is None:
            condition += " AND attribute_not_exists(mlsModifiedKey)"
        else:
            values[":mk0"] = expected_key
            condition += " AND mlsModifiedKey = :mk0"
        expression = (
            "SET #s = :s, standardStatus = :ss, mlsStatus = :ms, syncedAt = :now,"
            " statusChangedAt = :now, deletedByDetection = :true"
        )
        values[":ss"] = update.standard_status
        values[":ms"] = update.mls_status
        request = (expression, condition, names, values)
        return self._write(
            listing.listing_id, update, change, request, expected_key=expected_key or ""
        )

    def _write(
        self,
        listing_id: str,
        update: MlsUpdate,
        change: StatusChange | None,
        request: _Request,
        *,
        expected_key: str | None = None,
    ) -> ApplyResult:
        """The listing update ``request``, in one transaction with ``change`` when there is
        one. A change that takes posts down also marks the listing ``takedownKey`` (the sparse
        byTakedown index), in the same transaction: the takedown can never be recorded and not
        found."""
        expression, condition, names, values = request
        listing_key = {"listingId": listing_id}
        if change is not None and TAKEDOWN_EFFECT in change.pending_effects:
            assert expression.startswith("SET ")
            expression = "SET takedownKey = :tdk, " + expression[len("SET ") :]
            values = {**values, ":tdk": change.change_key}
        try:
            if change is None:
                self._table.update_item(
                    Key=listing_key,
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            else:
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._table.name,
                                "Key": {"listingId": _av(listing_id)},
                                "UpdateExpression": expression,
                                "ConditionExpression": condition,
                                "ExpressionAttributeNames": names,
                                "ExpressionAttributeValues": {k: _av(v) for k, v in values.items()},
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._history_table,
                                "Item": {k: _av(v) for k, v in _history_item(change).items()},
                                "ConditionExpression": "attribute_not_exists(changeKey)",
                            }
                        },
                    ]
                )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            if code == "TransactionCanceledException" and not _conditional(exc):
                raise
            return self._explain(listing_id, update, change, expected_key, old_item(exc))
        return ApplyResult(applied=True)

    def _explain(
        self,
        listing_id: str,
        update: MlsUpdate,
        change: StatusChange | None,
        expected_key: str | None = None,
        old: dict[str, Any] | None = None,
    ) -> ApplyResult:
        """Why a write was refused, from the item as the refusal returned it (``old``; read
        again only when DynamoDB returned none, i.e. the item is gone). ``expected_key`` ("" for
        none) is given for a deletion by detection: any other stored MLS time means newer MLS
        data arrived (``stale``)."""
        raw = old or self.get_raw(listing_id)
        if raw is None:
            return ApplyResult(False, "missing")
        current = Listing.model_validate(raw)
        if current.sync_excluded:
            return ApplyResult(False, "excluded", current)
        stored = raw.get("mlsModifiedKey")
        if expected_key is not None:
            if (stored or "") != expected_key:
                return ApplyResult(False, "stale", current)
        elif stored is not None:
            mk = update.modified.sort_key()
            if stored > mk or (stored == mk and not current.deleted_by_detection):
                return ApplyResult(False, "stale", current)
        if change is not None and current.status.value == (
            change.from_status.value if change.from_status else None
        ):
            return ApplyResult(False, "duplicate_change", current)
        return ApplyResult(False, "status_moved", current)


def _apply_expression(listing: Listing, update: MlsUpdate, change: StatusChange | None) -> _Request:
    """The update that applies ``update`` to ``listing`` and its condition (see ``apply``)."""
    names = {"#s": "status"}
    values: dict[str, Any] = {
        ":s": update.status.value,
        ":ss": update.standard_status,
        ":ms": update.mls_status,
        ":mma": update.modified.iso_micro(),
        ":mk": update.modified.sort_key(),
        ":now": update.synced_at,
        ":expected": listing.status.value,
        ":true": True,
    }
    sets = [
        "#s = :s",
        "standardStatus = :ss",
        "mlsStatus = :ms",
        "mlsModifiedAt = :mma",
        "mlsModifiedKey = :mk",
        "syncedAt = :now",
    ]
    if update.mls_listing_id:
        values[":lid"] = update.mls_listing_id
        sets.append("mlsListingId = :lid")
    if update.status != listing.status:
        sets.append("statusChangedAt = :now")
    if listing.status is Status.PENDING and update.status is Status.ACTIVE:
        sets.append("restoredAt = :now")
    # Only a restoration after a deletion by detection has a key not derived from the
    # record: remembered until the next write, for a redelivery to find its effects.
    removes = ["deletedByDetection"]
    if listing.deleted_by_detection and change is not None:
        values[":rck"] = change.change_key
        sets.append("restoredChangeKey = :rck")
    else:
        removes.append("restoredChangeKey")
    # A deletion by detection kept the MLS time last seen: a record at that very time
    # (the listing back, not re-stamped) is news, not a replay.
    condition = (
        _DECIDED_FROM + " AND (attribute_not_exists(mlsModifiedKey) OR mlsModifiedKey < :mk"
        " OR (deletedByDetection = :true AND mlsModifiedKey <= :mk))"
    )
    expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
    return expression, condition, names, values


def is_stale(listing: Listing, update: MlsUpdate) -> bool:
    """Whether ``update`` is no newer than what ``listing`` holds, decided in memory by the
    same rule as ``apply``'s condition: such a record is never written."""
    if listing.mls_modified_at is None:
        return False
    stored = Instant.parse(listing.mls_modified_at).sort_key()
    incoming = update.modified.sort_key()
    return stored > incoming or (stored == incoming and not listing.deleted_by_detection)


def _conditional(exc: ClientError) -> bool:
    reasons = exc.response.get("CancellationReasons", [])
    return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons


def _history_item(change: StatusChange) -> dict[str, Any]:
    item = change.to_item()
    effects = item.pop("pendingEffects", [])
    if effects:
        item["pendingEffects"] = set(effects)
    return item
