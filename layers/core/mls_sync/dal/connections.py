"""Connections: one MLS feed of one agent, with its replication cursor."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from mls_sync.dal.base import (
    Update,
    is_condition_failure,
    plain,
    put_new,
    query_all,
    read,
    storable,
)
from mls_sync.dal.connection_health import HEALTH_ATTRIBUTES, ConnectionHealthFields
from mls_sync.dal.detection import DetectionRepo
from mls_sync.dal.item_repo import ItemRepo
from mls_sync.health import (
    FAILURE_OUTCOMES,
    SUCCESS_OUTCOMES,
    Failure,
    describe_failure,
    through_open_circuit,
)
from mls_sync.models import BrakeState, ByKeyPhase, Connection, Cursor, LastError
from mls_sync.timeutil import TimestampError, format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

ENABLED_SHARDS = 16
"""Shards of the sparse byEnabled index: the dispatcher reads them in turn, and the spread
keeps any one index partition from growing hot at 100,000 connections."""


def enabled_shard(connection_id: str) -> str:
    digest = hashlib.sha256(connection_id.encode()).digest()
    return f"s{digest[0] % ENABLED_SHARDS:02d}"


def _seconds_between(since: str, at: datetime) -> int:
    try:
        return max(0, int((at - parse_utc(since)).total_seconds()))
    except TimestampError:
        return 0


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """What ``record_outcome`` wrote: for the worker's log line and metrics."""

    connection_id: str
    outcome: str
    failure: Failure | None
    consecutive_failures: int
    lag_seconds: int
    vendor: str


class ConnectionsRepo(ItemRepo[Connection]):
    model = Connection
    key = "connectionId"

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.detection = DetectionRepo(table)

    def create(self, connection: Connection) -> None:
        """Creates a connection; fails with ConditionFailed('exists') when the id is taken."""
        item = storable(connection.to_item())
        if connection.enabled:
            item["enabledShard"] = enabled_shard(connection.connection_id)
        put_new(self._table, item, "connectionId")

    def get_item(self, connection_id: str) -> dict[str, Any] | None:
        return self.get_raw(connection_id)

    def list_by_user(self, user_id: str) -> list[Connection]:
        return self._by_index("byUser", "userId", user_id)

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
        self._update_or_fail(
            "cursor moved",
            connection_id,
            Update(
                "SET #cursor = :c, lastSyncedAt = :t",
                condition,
                values=values,
                names={"#cursor": "cursor"},
            ),
            all_old=True,
        )

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
        self._update_or_fail(
            "phase moved",
            connection_id,
            Update("SET " + ", ".join(sets), " AND ".join(conditions), values=values, names=names),
            all_old=True,
        )

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
        self._update_or_fail(
            "phase moved",
            connection_id,
            Update("SET lastReconciledAt = :t REMOVE byKeyPhase", condition, values=values),
            all_old=True,
        )

    def set_braked(self, connection_id: str, brake: BrakeState) -> bool:
        """Trips the mass-change brake; False when it was already tripped (the first run that
        tripped it stays the one named)."""
        return self._update_if(
            connection_id,
            Update(
                "SET braked = :b",
                "attribute_exists(connectionId) AND attribute_not_exists(braked)",
                values={":b": storable(brake.to_item())},
            ),
        )

    def clear_braked(self, connection_id: str, run_key: str) -> bool:
        """Lifts the brake tripped by ``run_key``; False when it is not (or no longer) that."""
        return self._update_if(
            connection_id, Update("REMOVE braked", "braked.runKey = :r", values={":r": run_key})
        )

    # ------------------------------------------------------------------ health

    def record_outcome(
        self,
        connection_id: str,
        *,
        outcome: str,
        at: datetime,
        run_key: str = "",
        errors: Sequence[str] = (),
        failed_listings: int = 0,
        quarantined: int | None = None,
    ) -> HealthRecord | None:
        """Writes a run's outcome on the connection: ``lastAttemptAt``, ``lastOutcome`` and,
        for a success (``succeeded``/``continued``) ``lastSuccessAt`` with the failure streak
        reset; for a failure (``failed``/``partial``) ``lastError`` (class and one line),
        ``consecutiveFailures`` + 1, ``failingSince`` (kept from the streak's first failure)
        and ``lagSeconds``. ``quarantined``, when given, is the connection's count of
        quarantined listings now. Other outcomes (a duplicate or skipped job) write nothing.

        One UpdateItem for a success; a failure first reads the last success (the lag is
        computed from it). Conditional: the connection exists and no later attempt was
        recorded (``lastAttemptAt`` <= ``at``), so a slow, older run cannot overwrite a newer
        one's outcome. Returns what was written, or None when nothing was (skipped, or
        outdated)."""
        if outcome not in SUCCESS_OUTCOMES and outcome not in FAILURE_OUTCOMES:
            return None
        at_text = format_utc(at)
        values: dict[str, Any] = {":at": at_text, ":outcome": outcome, ":zero": 0}
        sets = ["lastAttemptAt = :at", "lastOutcome = :outcome"]
        removes: list[str] = []
        failure: Failure | None = None
        lag = 0
        failures = 0
        if outcome in SUCCESS_OUTCOMES:
            sets += ["lastSuccessAt = :at", "consecutiveFailures = :zero", "lagSeconds = :zero"]
            removes.append("failingSince")
        else:
            previous = self._health_fields(connection_id)
            if previous is None:
                return None
            failure = describe_failure(errors, failed_listings=failed_listings)
            last = previous.get("lastError")
            if previous.get("consecutiveFailures") and isinstance(last, dict):
                earlier = Failure(str(last.get("errorClass", "")), str(last.get("message", "")))
                failure = through_open_circuit(failure, earlier)
            since = previous.get("lastSuccessAt") or previous.get("failingSince")
            lag = _seconds_between(since, at) if isinstance(since, str) else 0
            failures = int(previous.get("consecutiveFailures") or 0) + 1
            values.update(
                {
                    ":lag": lag,
                    ":one": 1,
                    ":error": LastError(
                        error_class=failure.error_class,
                        message=failure.cause,
                        at=at_text,
                        run_key=run_key or None,
                    ).to_item(),
                }
            )
            sets += [
                "lastError = :error",
                "consecutiveFailures = if_not_exists(consecutiveFailures, :zero) + :one",
                "failingSince = if_not_exists(failingSince, :at)",
                "lagSeconds = :lag",
            ]
        if quarantined is not None:
            sets.append("quarantinedRecords = :q")
            values[":q"] = quarantined
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        try:
            written = self._table.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_exists(connectionId) AND "
                    "(attribute_not_exists(lastAttemptAt) OR lastAttemptAt <= :at)"
                ),
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        item = plain(written.get("Attributes", {}))
        return HealthRecord(
            connection_id=connection_id,
            outcome=outcome,
            failure=failure,
            consecutive_failures=int(item.get("consecutiveFailures") or failures),
            lag_seconds=lag,
            vendor=str(item.get("vendor") or ""),
        )

    def _health_fields(self, connection_id: str) -> dict[str, Any] | None:
        return read(
            self._table,
            {"connectionId": connection_id},
            ProjectionExpression=(
                "connectionId, lastSuccessAt, failingSince, consecutiveFailures, lastError"
            ),
        )

    def iter_health(self, page_size: int = 1000) -> Iterator[ConnectionHealthFields]:
        """Every connection's health fields (a Scan reading only those attributes): what
        the dispatcher counts for the health metrics. At 100,000 connections of ~1 KB,
        ~12,500 read request units (an eventually consistent scan is billed by the size
        read, not per item) and ~100 pages."""
        kwargs: dict[str, Any] = {"ProjectionExpression": HEALTH_ATTRIBUTES, "Limit": page_size}
        while True:
            page = self._table.scan(**kwargs)
            for raw in page.get("Items", []):
                item = plain(raw)
                yield ConnectionHealthFields.from_item(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def mark_reconciled(self, connection_id: str, at: str) -> None:
        self._update(connection_id, "SET lastReconciledAt = :t", {":t": at})

    def _update(self, connection_id: str, expression: str, values: dict[str, Any]) -> None:
        self._update_or_fail(
            "missing",
            connection_id,
            Update(expression, "attribute_exists(connectionId)", values=values),
        )
