"""A connection's detection state on its Connections item: what ``auto`` found in the
server's ``$metadata`` (``detected``) and, in EntityEvent mode, the anchor: the last event
fully applied (``eventSequence``, ``eventKey``). docs/replication.md "Detection modes"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from mls_sync.dal.base import Update, update_if, update_or_fail
from mls_sync.models import ByKeyPhase

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

DetectedMode = Literal["replication", "entityEvent"]

_EXISTS = "attribute_exists(connectionId)"


class DetectionRepo:
    def __init__(self, table: Table) -> None:
        self._table = table

    def _key(self, connection_id: str) -> dict[str, str]:
        return {"connectionId": connection_id}

    def set_detected(self, connection_id: str, mode: DetectedMode, at: str) -> bool:
        """Records what the probe found, once: a concurrent run that recorded it first wins
        (both read the same ``$metadata``). False when it was already recorded."""
        return update_if(
            self._table,
            self._key(connection_id),
            Update(
                "SET detected = :m, detectedAt = :t",
                f"{_EXISTS} AND attribute_not_exists(detected)",
                {":m": mode, ":t": at},
            ),
        )

    def clear_detected(self, connection_id: str) -> None:
        """Forgets the probe's finding (the next run asks ``$metadata`` again)."""
        update_or_fail(
            "connection missing",
            self._table,
            self._key(connection_id),
            Update("REMOVE detected, detectedAt", _EXISTS),
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
        if key is None:
            expression = "SET eventSequence = :s, lastSyncedAt = :t REMOVE eventKey"
        else:
            expression = "SET eventSequence = :s, eventKey = :k, lastSyncedAt = :t"
            values[":k"] = key
        if expected is None:
            condition = f"{_EXISTS} AND attribute_not_exists(eventSequence)"
        else:
            condition = f"{_EXISTS} AND eventSequence = :expected"
            values[":expected"] = expected
        update_or_fail(
            "anchor moved",
            self._table,
            self._key(connection_id),
            Update(expression, condition, values),
            all_old=True,
        )

    def drop_phase(self, connection_id: str, expected: ByKeyPhase) -> None:
        """Abandons a by-key phase under way (it starts again from the first key), unless a
        concurrent writer moved it: ConditionFailed('phase moved')."""
        update_or_fail(
            "phase moved",
            self._table,
            self._key(connection_id),
            Update(
                "REMOVE byKeyPhase", "byKeyPhase = :expected", {":expected": expected.to_item()}
            ),
            all_old=True,
        )
