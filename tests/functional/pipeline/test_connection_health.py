"""Connection health: the worker's outcome written on the connection (conditionally), and the
dispatcher's census of it (low-cardinality metrics, the worst connections logged)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from mls_sync.dal import ConnectionsRepo
from mls_sync.models import BrakeState, Connection
from mls_sync.queues import QueueSender

from functions.dispatcher import app as dispatcher
from mls_sync_local.runtime.context import make_context
from tests.support.clock import FakeMonotonic
from tests.support.pipeline import load_event
from tests.support.stack import LocalStack

T0 = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
DOWN = (
    "MlsUnavailable: 127.0.0.1: connection failed (ConnectError: [Errno 111] Connection "
    "refused) after 5 attempts"
)


def _connection(repo: ConnectionsRepo, cid: str, *, enabled: bool = True) -> None:
    repo.create(
        Connection(
            connection_id=cid,
            user_id="u-1",
            vendor="reso",
            base_url="https://mls.example.com",
            credentials_secret_arn="arn:secret",
            enabled=enabled,
        )
    )


def test_outcomes_are_recorded_on_the_connection(stack: LocalStack) -> None:
    # Given a connection
    repo = ConnectionsRepo(stack.tables.connections)
    _connection(repo, "c-1")
    # When a run succeeds, then two fail, then one succeeds again
    repo.record_outcome("c-1", outcome="succeeded", at=T0, run_key="r1")
    first = repo.record_outcome(
        "c-1", outcome="failed", at=T0 + timedelta(minutes=15), errors=[DOWN], run_key="r2"
    )
    repo.record_outcome("c-1", outcome="failed", at=T0 + timedelta(minutes=30), errors=[DOWN])
    failing = repo.get("c-1")
    repo.record_outcome("c-1", outcome="continued", at=T0 + timedelta(minutes=45))
    healed = repo.get("c-1")
    # Then the failures counted, the lag grew from the last success, the cause was kept
    assert first is not None
    assert first.failure is not None
    assert first.failure.cause == "MLS unreachable: connection refused (5 attempts)"
    assert failing is not None
    assert failing.consecutive_failures == 2
    assert failing.last_success_at == "2026-11-28T18:00:00.000000Z"
    assert failing.failing_since == "2026-11-28T18:15:00.000000Z"
    assert failing.lag_seconds == 1800
    assert failing.last_outcome == "failed"
    assert failing.last_error is not None
    assert failing.last_error.error_class == "MlsUnavailable"
    assert failing.last_error.at == "2026-11-28T18:30:00.000000Z"
    # And a success (a continuation counts: it read the changes first) resets the streak
    assert healed is not None
    assert (healed.consecutive_failures, healed.lag_seconds, healed.failing_since) == (0, 0, None)
    assert healed.last_success_at == "2026-11-28T18:45:00.000000Z"
    assert healed.last_error is not None  # the last error stays readable


def test_an_older_attempt_never_overwrites_a_newer_one(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    _connection(repo, "c-1")
    repo.record_outcome("c-1", outcome="succeeded", at=T0 + timedelta(minutes=15))
    # When a slow run that started earlier reports a failure afterwards
    late = repo.record_outcome("c-1", outcome="failed", at=T0, errors=[DOWN])
    # Then nothing is written
    assert late is None
    current = repo.get("c-1")
    assert current is not None
    assert current.consecutive_failures == 0
    assert current.last_attempt_at == "2026-11-28T18:15:00.000000Z"


def test_duplicates_skips_and_unknown_connections_write_nothing(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    _connection(repo, "c-1")
    assert repo.record_outcome("c-1", outcome="duplicate", at=T0) is None
    assert repo.record_outcome("c-1", outcome="skipped", at=T0) is None
    assert repo.record_outcome("c-nope", outcome="succeeded", at=T0) is None
    assert repo.record_outcome("c-nope", outcome="failed", at=T0, errors=[DOWN]) is None
    assert (
        boto3.client("dynamodb")
        .get_item(TableName=stack.settings.connections_table, Key={"connectionId": {"S": "c-nope"}})
        .get("Item")
        is None
    )
    stored = repo.get("c-1")
    assert stored is not None
    assert stored.last_attempt_at is None


def _metrics() -> dict[str, list[float]]:
    serialized: dict[str, Any] = dict(dispatcher.metrics.serialize_metric_set())
    dispatcher.metrics.clear_metrics()
    names = [m["Name"] for m in serialized["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return {n: serialized[n] if isinstance(serialized[n], list) else [serialized[n]] for n in names}


def test_the_dispatcher_counts_health_and_names_the_worst(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    # Given five connections: healthy, failing for 40 minutes, braked, disabled, never synced
    repo = ConnectionsRepo(stack.tables.connections)
    for cid in ("c-ok", "c-down", "c-braked", "c-new"):
        _connection(repo, cid)
    _connection(repo, "c-off", enabled=False)
    now = T0 + timedelta(minutes=40)
    repo.record_outcome("c-ok", outcome="succeeded", at=now - timedelta(minutes=10))
    repo.record_outcome("c-braked", outcome="succeeded", at=now - timedelta(minutes=10))
    repo.set_braked(
        "c-braked", BrakeState(run_key="r", at="2026-11-28T18:20:00Z", listings=12, share=0.8)
    )
    repo.record_outcome("c-down", outcome="failed", at=T0, errors=[DOWN])
    repo.record_outcome("c-down", outcome="failed", at=now - timedelta(minutes=5), errors=[DOWN])
    deps = dispatcher.DispatcherDeps(
        connections=repo,
        sync_queue=QueueSender(boto3.client("sqs"), stack.settings.sync_queue_url),
        period_seconds=900,
        clock=lambda: now,
    )
    context: Any = make_context(
        "dispatcher", timeout_seconds=300, memory_mb=512, region="us-east-1", clock=FakeMonotonic()
    )
    dispatcher.metrics.clear_metrics()
    caplog.set_level("INFO")
    # When the schedule fires
    dispatcher.handle(load_event("dispatcher.schedule.json"), context, deps)
    # Then the gauges count each state once (the disabled one only as disabled)
    metrics = _metrics()
    assert metrics["ConnectionsStale"] == [1.0]
    assert metrics["ConnectionsFailing"] == [1.0]
    assert metrics["ConnectionsBraked"] == [1.0]
    assert metrics["ConnectionsDisabled"] == [1.0]
    assert metrics["SyncJobsDispatched"] == [4.0]
    # And the log names the unhealthy ones, worst first, with the cause
    lines = [{**vars(r), "message": r.getMessage()} for r in caplog.records]
    unhealthy = [line for line in lines if line["message"] == "connection unhealthy"]
    assert [(u["connectionId"], u["health"]) for u in unhealthy] == [
        ("c-down", "stale,failing"),
        ("c-braked", "braked"),
    ]
    assert unhealthy[0]["cause"] == "MLS unreachable: connection refused (5 attempts)"
    assert unhealthy[0]["lagSeconds"] == 2400
    summary: dict[str, Any] = next(x for x in lines if x["message"] == "connection health")
    assert summary["connections"] == 5
