"""DispatcherFunction: EventBridge schedule → one sync job per enabled connection.

Thin: parse the scheduled event, run the dispatch, report. An incomplete dispatch (time ran
short) fails the invocation so the asynchronous retry runs it again; the jobs already sent
are deduplicated by their (connection, slot) ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from mls_sync import aws
from mls_sync.config import get_settings
from mls_sync.dal import ConnectionsRepo
from mls_sync.dal.base import Tables
from mls_sync.pipeline.dispatch import dispatch
from mls_sync.queues import QueueSender

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@dataclass(frozen=True)
class DispatcherDeps:
    connections: ConnectionsRepo
    sync_queue: QueueSender
    period_seconds: int


@cache
def default_deps() -> DispatcherDeps:
    settings = get_settings()
    return DispatcherDeps(
        connections=ConnectionsRepo(Tables.from_settings(settings).connections),
        sync_queue=QueueSender(aws.sqs(), settings.sync_queue_url),
        period_seconds=settings.period_seconds,
    )


class DispatchIncompleteError(RuntimeError):
    """The invocation ran short of time before every connection was enqueued."""


def handle(
    event: dict[str, Any], context: LambdaContext, deps: DispatcherDeps | None = None
) -> dict[str, Any]:
    deps = deps or default_deps()
    scheduled = EventBridgeModel.model_validate(event)
    result = dispatch(
        deps.connections.iter_enabled_ids(),
        deps.sync_queue,
        fired_at=scheduled.time,
        period_seconds=deps.period_seconds,
        # A duplicate delivery of a firing carries the same event id.
        correlation_id=scheduled.id,
        remaining_ms=context.get_remaining_time_in_millis,
    )
    metrics.add_metric(name="SyncJobsDispatched", unit=MetricUnit.Count, value=result.messages)
    summary = {
        "slot": result.slot,
        "connections": result.connections,
        "batches": result.batches,
        "complete": result.complete,
    }
    logger.info("dispatched", extra=summary)
    if not result.complete:
        raise DispatchIncompleteError(
            f"enqueued {result.connections} connection(s) for slot {result.slot} before the "
            "deadline; the retry sends the rest (already-sent jobs are deduplicated)"
        )
    return summary


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
