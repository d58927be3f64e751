"""PushInbox: the listing keys an MLS pushed for a connection, waiting for the worker.

One item per connection (``connectionId``) holding a string set ``keys``, a flag ``queued``
(a sync job for these keys is on SyncQueue or about to be) and a counter ``generation``
(how many times a worker has taken the keys; it names the job, so SQS deduplication never
merges two different takes). Every operation is one ``UpdateItem``, so pushes and workers
interleave without locks:

- ``add`` (PushFunction): the keys join the set and ``queued`` becomes true; the push that
  found ``queued`` not true is the one that sends the job. A flood of pushes between two
  takes therefore makes one job, and a set at its cap refuses the push (the producer is
  told to retry later) instead of growing without bound.
- ``open`` (worker): ``queued`` back to false and ``generation`` + 1, returning the keys
  present at that instant: they are the worker's. A key pushed after the flip finds
  ``queued`` false and sends a new job.
- ``done`` (worker): removes exactly the keys it applied; keys pushed meanwhile stay. A
  worker that dies between ``open`` and ``done`` leaves its keys in the set, and the
  redelivered job (or the next one) reads them again.
- ``requeue`` (worker out of time): ``queued`` false -> true; the caller sends the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mls_sync.dal.base import is_condition_failure

if TYPE_CHECKING:
    from collections.abc import Collection

    from mypy_boto3_dynamodb.client import DynamoDBClient

ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"


@dataclass(frozen=True, slots=True)
class AddOutcome:
    """What one push did to the inbox."""

    saturated: bool
    """The set is at its cap: nothing was added (answer 429, the producer retries)."""
    send_job: bool = False
    """This push flipped ``queued`` to true: it must send the sync job."""
    generation: int = 0
    """The inbox's generation at the push: names the job (``MessageDeduplicationId``)."""


@dataclass(frozen=True, slots=True)
class InboxBatch:
    """What ``open`` handed a worker: the keys present at the flip, and the generation that
    flip started (None and no keys: the connection has no inbox)."""

    keys: list[str]
    generation: int | None


@dataclass(frozen=True, slots=True)
class InboxTicket:
    """``requeue`` flipped ``queued`` to true: send a job named by this generation."""

    generation: int


def _key(connection_id: str) -> dict[str, Any]:
    return {"connectionId": {"S": connection_id}}


def _number(item: dict[str, Any], name: str) -> int:
    value = item.get(name, {}).get("N")
    return int(value) if value is not None else 0


class PushInboxRepo:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def add(self, connection_id: str, keys: Collection[str], *, cap: int, now: str) -> AddOutcome:
        """Adds ``keys`` (not empty: DynamoDB has no empty sets) unless the set would then
        hold more than ``cap`` keys. ``generation`` is set to 0 when absent so that it is
        one of the attributes UPDATED_OLD returns."""
        if not keys:
            raise ValueError("add needs at least one key")
        room = cap - len(keys)
        if room < 0:
            return AddOutcome(saturated=True)
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key=_key(connection_id),
                UpdateExpression=(
                    "ADD #keys :keys, pushes :one "
                    "SET queued = :true, updatedAt = :now, "
                    "generation = if_not_exists(generation, :zero)"
                ),
                # Room for every key of this push even if none is in the set yet: the set
                # never holds more than ``cap`` (the item stays under DynamoDB's 400 KB).
                ConditionExpression="attribute_not_exists(#keys) OR size(#keys) <= :room",
                ExpressionAttributeNames={"#keys": "keys"},
                ExpressionAttributeValues={
                    ":keys": {"SS": sorted(set(keys))},
                    ":one": {"N": "1"},
                    ":true": {"BOOL": True},
                    ":now": {"S": now},
                    ":zero": {"N": "0"},
                    ":room": {"N": str(room)},
                },
                ReturnValues="UPDATED_OLD",
            )
        except ClientError as exc:
            if is_condition_failure(exc) or _too_large(exc):
                return AddOutcome(saturated=True)
            raise
        old = answer.get("Attributes", {})
        was_queued = old.get("queued", {}).get("BOOL") is True
        return AddOutcome(
            saturated=False, send_job=not was_queued, generation=_number(dict(old), "generation")
        )

    def unqueue(self, connection_id: str, generation: int) -> bool:
        """Undoes the flip of a push whose job could not be sent: ``queued`` back to false,
        only while no worker has opened the inbox since (same generation). True when it was
        put back; the next push then sends the job."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_key(connection_id),
                UpdateExpression="SET queued = :false",
                ConditionExpression="queued = :true AND generation = :g",
                ExpressionAttributeValues={
                    ":false": {"BOOL": False},
                    ":true": {"BOOL": True},
                    ":g": {"N": str(generation)},
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def open(self, connection_id: str) -> InboxBatch:
        """Takes the keys present now: ``queued`` false, ``generation`` + 1 (ALL_NEW). Keys
        pushed after this instant send a new job. No inbox item: no keys (none created)."""
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key=_key(connection_id),
                UpdateExpression="SET queued = :false ADD generation :one",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={":false": {"BOOL": False}, ":one": {"N": "1"}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return InboxBatch(keys=[], generation=None)
            raise
        item = dict(answer.get("Attributes", {}))
        keys = sorted(item.get("keys", {}).get("SS", []))
        return InboxBatch(keys=keys, generation=_number(item, "generation"))

    def done(self, connection_id: str, keys: Collection[str]) -> None:
        """Removes the keys a worker applied (and only those: keys pushed since stay)."""
        if not keys:
            return
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_key(connection_id),
                UpdateExpression="DELETE #keys :done",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeNames={"#keys": "keys"},
                ExpressionAttributeValues={":done": {"SS": sorted(set(keys))}},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def requeue(self, connection_id: str) -> InboxTicket | None:
        """For a worker that runs out of time with keys left: ``queued`` false -> true while
        keys remain. A ticket means the caller must send the job (named by its generation);
        None means a push already did (or nothing is left)."""
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key=_key(connection_id),
                UpdateExpression="SET queued = :true",
                ConditionExpression="attribute_exists(#keys) AND queued = :false",
                ExpressionAttributeNames={"#keys": "keys"},
                ExpressionAttributeValues={":true": {"BOOL": True}, ":false": {"BOOL": False}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return InboxTicket(generation=_number(dict(answer.get("Attributes", {})), "generation"))

    def peek(self, connection_id: str) -> InboxBatch:
        """The keys waiting and the generation, read consistently (tests, `mls-sync dump`)."""
        answer = self._client.get_item(
            TableName=self.table_name, Key=_key(connection_id), ConsistentRead=True
        )
        item = dict(answer.get("Item", {}))
        if not item:
            return InboxBatch(keys=[], generation=None)
        return InboxBatch(
            keys=sorted(item.get("keys", {}).get("SS", [])),
            generation=_number(item, "generation"),
        )


def _too_large(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationException" and ITEM_TOO_LARGE in str(
        error.get("Message", "")
    )
