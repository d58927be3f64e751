"""Connections: one MLS feed of one agent, with its replication cursor."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from mls_sync.dal.base import ConditionFailed, is_condition_failure, plain, query_all, storable
from mls_sync.models import BrakeState, ByKeyPhase, Connection, Cursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

ENABLED_SHARDS = 16
"""Shards of the sparse byEnabled index: the dispatcher reads them in turn, and the spread
keeps any one index partition from growing hot at 100,000 connections."""


def enabled_shard(connection_id: str) -> str:
    digest = hashlib.sha256(connection_id.encode()).digest()
    return f"s{digest[0] % ENABLED_SHARDS:02d}"


class ConnectionsRepo:
    def __init__(self, table: Table) -> None:
        self._table = table

    def create(self, connection: Connection) -> None:
        """Creates a connection; fails with ConditionFailed('exists') when the id is taken."""
        item = storable(connection.to_item())
        if connection.enabled:
            item["enabledShard"] = enabled_shard(connection.connection_id)
        try:
            self._table.put_item(
                Item=item, ConditionExpression="attribute_not_exists(connectionId)"
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConditionFailed("exists", self.get_item(connection.connection_id)) from None
            raise

    def get_item(self, connection_id: str) -> dict[str, Any] | None:
        found = self._table.get_item(Key={"connectionId": connection_id}, ConsistentRead=True)
        item = found.get("Item")
        return plain(item) if item else None

    def get(self, connection_id: str) -> Connection | None:
        item = self.get_item(connection_id)
        return Connection.model_validate(item) if item else None

    def list_by_user(self, user_id: str) -> list[Connection]:
        return [
            Connection.model_validate(i)
            for i in query_all(
                self._table, IndexName="byUser", KeyConditionExpression=Key("userId").eq(user_id)
            )
        ]

    def iter_enabled_ids(self, page_size: int = 1000) -> Iterator[str]:
        """Ids of every enabled connection, read from the sparse byEnabled index, shard by
        shard (keys only: 100,000 connections are ~100 query pages)."""
        for shard in range(ENABLED_SHARDS):
            yield from (
                i["connectionId"]
                for i in query_all(
                    self._table,
                    IndexName="byEnabled",
                    KeyConditionExpression=Key("enabledShard").eq(f"s{shard:02d}"),
                    Limit=page_size,
                )
            )

    def set_enabled(self, connection_id: str, enabled: bool) -> None:
        expression = (
            "SET enabled = :e, enabledShard = :s"
            if enabled
            else "SET enabled = :e REMOVE enabledShard"
        )
        values: dict[str, Any] = {":e": enabled}
        if enabled:
            values[":s"] = enabled_shard(connection_id)
        self._update(connection_id, expression, values)

    def advance_cursor(
        self, connection_id: str, cursor: Cursor, *, expected: Cursor | None, synced_at: str
    ) -> None:
        """Moves the cursor from ``expected`` to ``cursor``. A concurrent writer that moved it
        first makes this fail (ConditionFailed('cursor moved')) instead of rewinding it."""
        values: dict[str, Any] = {":c": cursor.to_item(), ":t": synced_at}
        if expected is None:
            condition = "attribute_exists(connectionId) AND attribute_not_exists(#cursor)"
        else:
            condition = "attribute_exists(connectionId) AND #cursor = :expected"
            values[":expected"] = expected.to_item()
        try:
            self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression="SET #cursor = :c, lastSyncedAt = :t",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#cursor": "cursor"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConditionFailed("cursor moved", self.get_item(connection_id)) from None
            raise

    def save_phase(
        self,
        connection_id: str,
        phase: ByKeyPhase,
        *,
        expected: ByKeyPhase | None,
        cursor: Cursor | None = None,
    ) -> None:
        """Records the progress of a by-key phase, moving it on from ``expected`` (None: a new
        phase). ``cursor`` is a first sync's starting cursor, stored in the same write and only
        over no cursor at all. A concurrent writer makes this fail with
        ConditionFailed('phase moved') rather than losing or rewinding progress."""
        names = {"#phase": "byKeyPhase"}
        values: dict[str, Any] = {":p": phase.to_item()}
        sets = ["#phase = :p"]
        conditions = ["attribute_exists(connectionId)"]
        if expected is None:
            conditions.append("attribute_not_exists(#phase)")
        else:
            conditions.append("#phase = :expected")
            values[":expected"] = expected.to_item()
        if cursor is not None:
            names["#cursor"] = "cursor"
            sets.append("#cursor = :c")
            values[":c"] = cursor.to_item()
            conditions.append("attribute_not_exists(#cursor)")
        try:
            self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConditionFailed("phase moved", self.get_item(connection_id)) from None
            raise

    def finish_phase(
        self, connection_id: str, *, expected: ByKeyPhase | None, reconciled_at: str
    ) -> None:
        """Ends a by-key phase: every tracked listing was read, as of ``reconciled_at``."""
        values: dict[str, Any] = {":t": reconciled_at}
        condition = "attribute_exists(connectionId)"
        if expected is None:
            condition += " AND attribute_not_exists(byKeyPhase)"
        else:
            condition += " AND byKeyPhase = :expected"
            values[":expected"] = expected.to_item()
        try:
            self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression="SET lastReconciledAt = :t REMOVE byKeyPhase",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConditionFailed("phase moved", self.get_item(connection_id)) from None
            raise

    def set_braked(self, connection_id: str, brake: BrakeState) -> bool:
        """Trips the mass-change brake; False when it was already tripped (the first run that
        tripped it stays the one named)."""
        try:
            self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression="SET braked = :b",
                ConditionExpression=(
                    "attribute_exists(connectionId) AND attribute_not_exists(braked)"
                ),
                ExpressionAttributeValues={":b": storable(brake.to_item())},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def clear_braked(self, connection_id: str, run_key: str) -> bool:
        """Lifts the brake tripped by ``run_key``; False when it is not (or no longer) that."""
        try:
            self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression="REMOVE braked",
                ConditionExpression="braked.runKey = :r",
                ExpressionAttributeValues={":r": run_key},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def mark_reconciled(self, connection_id: str, at: str) -> None:
        self._update(connection_id, "SET lastReconciledAt = :t", {":t": at})

    def _update(self, connection_id: str, expression: str, values: dict[str, Any]) -> None:
        try:
            self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConditionFailed("missing") from None
            raise
