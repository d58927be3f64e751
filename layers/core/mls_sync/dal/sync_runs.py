"""SyncRuns: one item per sync of a connection (counts, first errors, MLS requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mls_sync.dal.base import condition_failed_as, conditional, newest, read
from mls_sync.models import SyncRun

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

MAX_ERRORS = 10
"""First errors kept on a run: enough to diagnose, bounded so an item stays small."""


class SyncRunsRepo:
    def __init__(self, table: Table) -> None:
        self._table = table

    def start(self, run: SyncRun) -> SyncRun | None:
        """Records the start of a run. Returns None when the run already exists (a duplicate
        delivery), with the existing run available through ``get``."""
        started = conditional(
            lambda: self._table.put_item(
                Item=run.to_item(), ConditionExpression="attribute_not_exists(runKey)"
            )
        )
        return run if started else None

    def get(self, connection_id: str, run_key: str) -> SyncRun | None:
        item = read(self._table, {"connectionId": connection_id, "runKey": run_key})
        return SyncRun.model_validate(item) if item else None

    def delete_queued(self, connection_id: str, run_key: str) -> None:
        """Removes a run recorded as ``queued`` whose job was never sent (best effort)."""
        try:
            self._table.delete_item(
                Key={"connectionId": connection_id, "runKey": run_key},
                ConditionExpression="outcome = :queued",
                ExpressionAttributeValues={":queued": "queued"},
            )
        except ClientError:
            return

    def restart(self, run: SyncRun, *, previous_outcome: str) -> bool:
        """Takes over a run that ended ``previous_outcome`` (failed/continued) for a retry."""
        return conditional(
            lambda: self._table.put_item(
                Item=run.to_item(),
                ConditionExpression="outcome = :prev",
                ExpressionAttributeValues={":prev": previous_outcome},
            )
        )

    def finish(self, run: SyncRun) -> None:
        """Writes a run's final figures; only over a run that is still ``running``."""
        item: dict[str, Any] = run.to_item()
        item["errors"] = item.get("errors", [])[:MAX_ERRORS]
        with condition_failed_as("run not running"):
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_exists(runKey) AND outcome = :running",
                ExpressionAttributeValues={":running": "running"},
            )

    def list_for_connection(self, connection_id: str, limit: int = 20) -> list[SyncRun]:
        items = newest(self._table, "connectionId", connection_id, limit)
        return [SyncRun.model_validate(i) for i in items]
