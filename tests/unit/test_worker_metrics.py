"""The worker turns a run's typed counts into its metrics and the connection's health: each
metric reads the count it is named for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mls_sync.models import SyncJob
from mls_sync.pipeline.sync import SyncResult
from mls_sync.run_counts import RunCounts

from functions.worker import app as worker
from mls_sync_local.runtime.context import make_context

EVENT = Path(__file__).resolve().parents[2] / "events" / "worker.sqs.json"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _counts() -> RunCounts:
    # Distinct values: a metric that read another count than its own shows a wrong number.
    return RunCounts(
        status_changes=2,
        records_read=3,
        unpublish_jobs=5,
        quarantined=7,
        future_stamped=11,
        degraded=1,
        mass_change_held=13,
        takedowns_held=17,
        failed=19,
    )


class _Health:
    """Connection health standing in for the table: what the worker recorded."""

    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []
        self.quarantine_counted = 0

    def record_outcome(self, _connection_id: str, **fields: Any) -> None:
        self.recorded.append(fields)

    def count_quarantined(self, _connection_id: str) -> int:
        self.quarantine_counted += 1
        return 7


@pytest.fixture
def emitted() -> Iterator[dict[str, Any]]:
    worker.metrics.clear_metrics()
    yield worker.metrics.metric_set
    worker.metrics.clear_metrics()


def _handle(result: SyncResult, health: _Health) -> dict[str, Any]:
    event = json.loads(EVENT.read_text(encoding="utf-8"))
    event["Records"] = event["Records"][:1]

    def sync_connection(_job: SyncJob, _deps: Any, _remaining: Any) -> SyncResult:
        return result

    deps: Any = SimpleNamespace(listings=health, connections=health, clock=lambda: NOW)
    context: Any = make_context(
        "mls-sync-test-fn", timeout_seconds=60, memory_mb=128, region="us-east-1"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(worker, "sync_connection", sync_connection)
        answer: dict[str, Any] = worker.handle(event, context, deps)
    return answer


def test_the_run_metrics_are_its_typed_counts(emitted: dict[str, Any]) -> None:
    # Given a run whose counts are all different
    result = SyncResult("c-ada-actris", "k", "partial", counts=_counts(), mls_requests=23)
    health = _Health()
    # When the worker handles its job
    answer = _handle(result, health)
    # Then each metric carries the count it is named for
    values = {name: metric["Value"] for name, metric in emitted.items()}
    assert values == {
        "StatusChanges": [2.0],
        "RecordsRead": [3.0],
        "MlsRequests": [23.0],
        "UnpublishJobs": [5.0],
        "QuarantinedRecords": [7.0],
        "FutureStampedRecords": [11.0],
        "DegradedPaging": [1.0],
        "MassChangeHeld": [13.0],
        "TakedownsHeld": [17.0],
        "Sync_partial": [1.0],
    }
    # And the connection's health has the failed listings, and the quarantine is recounted
    assert [r["failed_listings"] for r in health.recorded] == [19]
    assert health.quarantine_counted == 1
    # And the partial run is delivered again, naming how many listings failed
    assert len(answer["batchItemFailures"]) == 1


def test_a_run_that_counted_nothing_emits_zeros(emitted: dict[str, Any]) -> None:
    health = _Health()
    _handle(SyncResult("c-ada-actris", "k", "succeeded"), health)
    assert emitted["StatusChanges"]["Value"] == [0.0]
    assert emitted["TakedownsHeld"]["Value"] == [0.0]
    # No quarantine counted or cleared: the quarantined listings are not recounted
    assert health.quarantine_counted == 0
    assert [r["failed_listings"] for r in health.recorded] == [0]
