"""PushInbox: the listing keys an MLS pushed for a connection, waiting for the worker.

One item per connection (``connectionId``) holding a string set ``keys`` and three counters:
``pushes`` (every push, and every requeue, adds one: the value a flip leaves names its job),
``pendingPushes`` (pushes since the last take; 0 means no job is queued) and ``takenAt``
(the ``pushes`` count at the last take), plus ``takes`` (how many times a worker took the
keys). Every operation is one ``UpdateItem``, so pushes and workers interleave without
locks:

- ``add`` (PushFunction): the keys join the set and both push counters grow; the push that
  found ``pendingPushes`` at 0 is the one that sends the job, named by the ``pushes`` count
  it left (so a job re-sent for the same flip is one SQS message, and the next flip, after
  a take, is a new one). A flood of pushes between two takes therefore makes one job, and a
  set at its cap refuses the push (the producer is told to retry later) instead of growing
  without bound.
- ``open`` (worker): ``pendingPushes`` back to 0, ``takenAt`` = ``pushes``, ``takes`` + 1,
  returning the keys present at that instant: they are the worker's. A key pushed after the
  take finds ``pendingPushes`` at 0 and sends a new job.
- ``done`` (worker): removes the keys it applied; keys pushed meanwhile stay. A key pushed
  *again* while it was in a worker's hands may have changed after the worker read it: such a
  push finds the key already in the set (``add`` reads the old item) and marks it in a
  second set ``again`` (counted by ``againCount``); ``done`` removes keys only while
  ``againCount`` is what its ``open`` saw, and otherwise leaves the ``again`` keys for the
  next take (which that push's job, or the next, makes). A worker that dies between
  ``open`` and ``done`` leaves its keys in the set, and the redelivered job (or the next
  one) reads them again.
- ``requeue`` (worker out of time): ``pendingPushes`` 0 -> 1 while keys remain; the caller
  sends the job.

Counters rather than a ``queued`` flag: whether an attribute that a write leaves at the same
value is part of ``UPDATED_OLD`` differs between DynamoDB (it is) and moto (it is not); a
counter changes on every write, so the answer reads the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from mls_sync.dal.base import is_condition_failure

if TYPE_CHECKING:
    from collections.abc import Collection

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.literals import ReturnValueType

ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"
_ONE = {"N": "1"}
_ZERO = {"N": "0"}
_DONE_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class AddOutcome:
    """What one push did to the inbox."""

    saturated: bool
    """The set is at its cap: nothing was added (answer 429, the producer retries)."""
    send_job: bool = False
    """This push found no job queued: it must send one."""
    ticket: int = 0
    """The ``pushes`` count this push left: names the job (``MessageDeduplicationId``)."""
    incomplete: bool = False
    """The keys are in, but marking those already waiting (``again``) failed: send any job
    as usual, then answer 503 so that the producer's retry marks them."""


@dataclass(frozen=True, slots=True)
class InboxBatch:
    """What ``open`` handed a worker: the keys present at the take, and which take it was
    (None and no keys: the connection has no inbox)."""

    keys: list[str]
    take: int | None
    mark: int = 0
    """``againCount`` at the take: ``done`` removes keys only while no key was pushed again
    since (else it leaves those)."""


@dataclass(frozen=True, slots=True)
class InboxTicket:
    """``requeue`` found no job queued: send one named by this number."""

    number: int


def _key(connection_id: str) -> dict[str, Any]:
    return {"connectionId": {"S": connection_id}}


def _number(item: dict[str, Any], name: str) -> int:
    value = item.get(name, {}).get("N")
    return int(value) if value is not None else 0


def _keys(item: dict[str, Any]) -> list[str]:
    return sorted(item.get("keys", {}).get("SS", []))


class PushInboxRepo:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def _update(
        self,
        connection_id: str,
        expression: str,
        values: dict[str, Any],
        *,
        condition: str | None = None,
        returns: ReturnValueType = "NONE",
    ) -> dict[str, Any] | None:
        """One UpdateItem on the connection's inbox item: the attributes it returned (as
        ``returns`` asks; empty for NONE), or None when ``condition`` did not hold."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _key(connection_id),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": values,
            "ReturnValues": returns,
        }
        if condition is not None:
            request["ConditionExpression"] = condition
        if "#keys" in f"{expression} {condition}":
            # DynamoDB refuses a name map that an expression does not use.
            request["ExpressionAttributeNames"] = {"#keys": "keys"}
        try:
            answer = self._client.update_item(**request)
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return dict(answer.get("Attributes", {}))

    def add(
        self,
        connection_id: str,
        keys: Collection[str],
        *,
        cap: int,
        now: str,
        owed_before: str | None = None,
    ) -> AddOutcome:
        """Adds ``keys`` (not empty: DynamoDB has no empty sets) unless the set would then
        hold more than ``cap`` keys. With ``owed_before``: a job owed since before that
        instant and never sent (its flip's push died, or its first write went in and the
        answer was lost, so a retry found the flag taken) is sent by this push."""
        wanted = sorted(set(keys))
        if not wanted:
            raise ValueError("add needs at least one key")
        room = cap - len(wanted)
        if room < 0:
            return AddOutcome(saturated=True)
        try:
            old = self._update(
                connection_id,
                "ADD #keys :keys, pushes :one, pendingPushes :one "
                "SET updatedAt = :now, pendingSince = if_not_exists(pendingSince, :now)",
                {
                    ":keys": {"SS": wanted},
                    ":one": _ONE,
                    ":now": {"S": now},
                    ":room": {"N": str(room)},
                },
                # Room for every key of this push even if none is in the set yet: the set
                # never holds more than ``cap`` (and the item stays under 400 KB).
                condition="attribute_not_exists(#keys) OR size(#keys) <= :room",
                # The old set, to see which keys were already waiting (ALL_OLD: the set is
                # most of the item anyway, and every attribute comes back changed or not).
                returns="ALL_OLD",
            )
        except ClientError as exc:
            if _too_large(exc):
                return AddOutcome(saturated=True)
            raise
        if old is None:
            return AddOutcome(saturated=True)
        flipped = _number(old, "pendingPushes") == 0
        outcome = AddOutcome(
            saturated=False,
            send_job=flipped or (owed_before is not None and _owed(old, owed_before)),
            ticket=_number(old, "pushes") + 1,
        )
        waiting = set(_keys(old)).intersection(wanted)
        if not waiting:
            return outcome
        try:
            again = self._again(connection_id, sorted(waiting), now=now)
        except (ClientError, BotoCoreError):
            return replace(outcome, incomplete=True)
        return outcome if outcome.send_job or again is None else again

    def _again(self, connection_id: str, keys: list[str], *, now: str) -> AddOutcome | None:
        """Keys pushed while already waiting may be in a worker's hands, read from the MLS
        before this change: marked ``again`` (and put back in the set, in case that worker's
        ``done`` removed them in between), so its ``done`` leaves them for the next take. A
        second flip is possible here (a take came between the two writes): then this push
        sends the job (the outcome returned), else None."""
        old = self._update(
            connection_id,
            "ADD again :keys, #keys :keys, againCount :one, pushes :one, pendingPushes :one "
            "SET pendingSince = if_not_exists(pendingSince, :now)",
            {":keys": {"SS": keys}, ":one": _ONE, ":now": {"S": now}},
            returns="UPDATED_OLD",
        )
        if old is None or _number(old, "pendingPushes") != 0:
            return None
        return AddOutcome(saturated=False, send_job=True, ticket=_number(old, "pushes") + 1)

    def unqueue(self, connection_id: str, ticket: int) -> bool:
        """Undoes the flip of a push whose job could not be sent: ``pendingPushes`` back to
        0, only while no worker has taken the keys since that push (``takenAt`` below its
        ticket). True when it was put back; the next push then sends the job."""
        put_back = self._update(
            connection_id,
            "SET pendingPushes = :zero REMOVE pendingSince",
            {":zero": _ZERO, ":t": {"N": str(ticket)}},
            condition="pendingPushes > :zero AND (attribute_not_exists(takenAt) OR takenAt < :t)",
        )
        return put_back is not None

    def open(self, connection_id: str) -> InboxBatch:
        """Takes the keys present now (ALL_NEW); keys pushed after this instant send a new
        job. No inbox item: no keys (and none is created)."""
        item = self._update(
            connection_id,
            "SET pendingPushes = :zero, takenAt = pushes ADD takes :one REMOVE again, pendingSince",
            {":zero": _ZERO, ":one": _ONE},
            condition="attribute_exists(pushes)",
            returns="ALL_NEW",
        )
        if item is None:
            return InboxBatch(keys=[], take=None)
        return InboxBatch(
            keys=_keys(item), take=_number(item, "takes"), mark=_number(item, "againCount")
        )

    def done(self, connection_id: str, keys: Collection[str], *, opened: InboxBatch) -> None:
        """Removes the keys a worker applied from the batch ``opened`` gave it, except those
        pushed again since (``again``): the worker may have read them before that change, so
        they stay for the next take. Keys pushed meanwhile that it did not take stay too."""
        applied = set(keys)
        mark = opened.mark
        for _ in range(_DONE_ROUNDS):
            if not applied:
                return
            try:
                self._client.update_item(
                    TableName=self.table_name,
                    Key=_key(connection_id),
                    UpdateExpression="DELETE #keys :done",
                    ConditionExpression=(
                        "attribute_exists(pushes) AND "
                        "(attribute_not_exists(againCount) OR againCount = :mark)"
                    ),
                    ExpressionAttributeNames={"#keys": "keys"},
                    ExpressionAttributeValues={
                        ":done": {"SS": sorted(applied)},
                        ":mark": {"N": str(mark)},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise
                refused: Any = exc.response
                current: dict[str, Any] = dict(refused.get("Item") or {})
                if not current:
                    return  # no inbox: nothing to remove
                applied -= set(current.get("again", {}).get("SS", []))
                mark = _number(current, "againCount")
            else:
                return
        # Pushed again and again while we tried: leaving keys costs the next take a lookup.

    def job_sent(self, connection_id: str, now: str) -> None:
        """Records that the job owed since ``pendingSince`` was sent (``jobSentAt``), so no
        later push takes it for lost."""
        # No inbox (condition failed): nothing is owed, so nothing to record.
        self._update(
            connection_id,
            "SET jobSentAt = :now",
            {":now": {"S": now}},
            condition="attribute_exists(pushes)",
        )

    def requeue(self, connection_id: str, *, now: str) -> InboxTicket | None:
        """For a worker that runs out of time with keys left: like a push of no new key. A
        ticket means the caller must send the job (``PushJobSender.send`` with its number);
        None means a push already did, or nothing is left."""
        new = self._update(
            connection_id,
            "ADD pushes :one, pendingPushes :one SET pendingSince = :now",
            {":one": _ONE, ":zero": _ZERO, ":now": {"S": now}},
            condition="attribute_exists(#keys) AND pendingPushes = :zero",
            returns="UPDATED_NEW",
        )
        return None if new is None else InboxTicket(number=_number(new, "pushes"))

    def peek(self, connection_id: str) -> InboxBatch:
        """The keys waiting and the takes so far, read consistently (tests, operators)."""
        answer = self._client.get_item(
            TableName=self.table_name, Key=_key(connection_id), ConsistentRead=True
        )
        item = dict(answer.get("Item", {}))
        if not item:
            return InboxBatch(keys=[], take=None)
        return InboxBatch(keys=_keys(item), take=_number(item, "takes"))


def _owed(old: dict[str, Any], before: str) -> bool:
    """A job was owed (a push flipped at ``pendingSince``) before ``before`` and none was
    recorded sent since (``jobSentAt``). Timestamps are fixed-width UTC text: they compare
    as text."""
    if _number(old, "pendingPushes") == 0:
        return False
    since = old.get("pendingSince", {}).get("S")
    sent = old.get("jobSentAt", {}).get("S", "")
    return since is not None and since < before and sent < since


def _too_large(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationException" and ITEM_TOO_LARGE in str(
        error.get("Message", "")
    )
