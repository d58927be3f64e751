"""A connection's detection state on its Connections item: what ``auto`` found in the
server's ``$metadata`` (``detected``) and, in EntityEvent mode, the anchor: the last event
fully applied (``eventSequence``, ``eventKey``). docs/replication.md "Detection modes"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from mls_sync.dal.base import condition_failed_as, conditional
from mls_sync.models import ByKeyPhase

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

DetectedMode = Literal["replication", "entityEvent"]


class DetectionRepo:
    def __init__(self, table: Table) -> None:
        self._table = table

    def set_detected(self, connection_id: str, mode: DetectedMode, at: str) -> bool:
        """Records what the probe found, once: a concurrent run that recorded it first wins
        (both read the same ``$metadata``). False when it was already recorded."""
        return conditional(
            lambda: self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression="SET detected = :m, detectedAt = :t",
                ConditionExpression=(
                    "attribute_exists(connectionId) AND attribute_not_exists(detected)"
                ),
                ExpressionAttributeValues={":m": mode, ":t": at},
            )
        )

    def clear_detected(self, connection_id: str) -> None:
        """Forgets the probe's finding (the next run asks ``$metadata`` again)."""
        self._table.update_item(
            Key={"connectionId": connection_id},
            UpdateExpression="REMOVE detected, detectedAt",
            ConditionExpression="attribute_exists(connectionId)",
        )

    def advance_anchor(
        self,
        connection_id: str,
        sequence: int,
        key: str | None,
        *,
        expected: int | None,
        synced_at: str,
    ) -> None:
        """Moves the anchor from the sequence ``expected`` (None: no anchor yet) to
        ``sequence``/``key``. A concurrent writer that moved it first makes this fail with
        ConditionFailed('anchor moved') instead of rewinding it."""
        values: dict[str, Any] = {":s": sequence, ":t": synced_at}
        sets = ["eventSequence = :s", "lastSyncedAt = :t"]
        removes: list[str] = []
        if key is None:
            removes.append("eventKey")
        else:
            sets.append("eventKey = :k")
            values[":k"] = key
        if expected is None:
            condition = "attribute_exists(connectionId) AND attribute_not_exists(eventSequence)"
        else:
            condition = "attribute_exists(connectionId) AND eventSequence = :expected"
            values[":expected"] = expected
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        with condition_failed_as("anchor moved"):
            self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )

    def drop_phase(self, connection_id: str, expected: ByKeyPhase) -> None:
        """Abandons a by-key phase under way (it starts again from the first key), unless a
        concurrent writer moved it: ConditionFailed('phase moved')."""
        with condition_failed_as("phase moved"):
            self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression="REMOVE byKeyPhase",
                ConditionExpression="byKeyPhase = :expected",
                ExpressionAttributeValues={":expected": expected.to_item()},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
