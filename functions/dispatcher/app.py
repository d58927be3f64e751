"""DispatcherFunction: EventBridge schedule → one sync job per enabled connection.

Thin: parse the scheduled event, run the dispatch, report. An incomplete dispatch (time ran
short) fails the invocation so the asynchronous retry runs it again; the jobs already sent
are deduplicated by their (connection, slot) ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from mls_sync import aws
from mls_sync.config import get_settings
from mls_sync.container import per_container
from mls_sync.dal import ConnectionsRepo
from mls_sync.dal.base import Tables
from mls_sync.inputs import InputError, require_object
from mls_sync.lambda_events import ScheduledEvent
from mls_sync.pipeline.dispatch import TimeLeft, dispatch, health_census
from mls_sync.queues import QueueSender
from mls_sync.timeutil import Clock, utc_now
from mls_sync.tracing import handler_tracer
from pydantic import ValidationError

logger = Logger()
metrics = Metrics()
tracer = handler_tracer()  # the X-Ray SDK only where tracing is on


@dataclass(frozen=True)
class DispatcherDeps:
    connections: ConnectionsRepo
    sync_queue: QueueSender
    period_seconds: int
    clock: Clock = utc_now


@per_container
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
    try:
        scheduled = ScheduledEvent.model_validate(require_object(event, what="event"))
    except (InputError, ValidationError) as exc:
        # A retry cannot mend a malformed event: answer, log, count; never raise.
        error = exc.message if isinstance(exc, InputError) else _first_error(exc)
        logger.warning("not a scheduled event; nothing dispatched", extra={"error": error})
        return {"statusCode": 400, "error": f"not a scheduled event: {error}"}
    deps = deps or default_deps()
    result = dispatch(
        deps.connections.iter_enabled_ids(),
        deps.sync_queue,
        fired_at=scheduled.time,
        period_seconds=deps.period_seconds,
        # A duplicate delivery of a firing carries the same event id.
        correlation_id=scheduled.id,
        time_left=TimeLeft(context.get_remaining_time_in_millis),
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
    _report_health(deps, context)
    return summary


def _report_health(deps: DispatcherDeps, context: LambdaContext) -> None:
    """Every connection's health counted (metrics) and the worst named (logs). Best effort:
    the jobs are out; a failure here is logged, never a reason to fire the schedule again.
    The gauges are read at their Maximum by the dashboard and the stale alarm."""
    try:
        census = health_census(
            deps.connections.iter_health(),
            now=deps.clock(),
            period_seconds=deps.period_seconds,
            time_left=TimeLeft(context.get_remaining_time_in_millis),
        )
    except Exception as exc:  # noqa: BLE001 - observability must not fail the dispatch
        logger.warning("connection health not counted", extra={"error": type(exc).__name__})
        return
    if not census.complete:
        logger.warning("connection health not counted: the invocation ran short of time")
        return
    flagged = census.flagged
    metrics.add_metric(name="ConnectionsStale", unit=MetricUnit.Count, value=flagged["stale"])
    metrics.add_metric(name="ConnectionsFailing", unit=MetricUnit.Count, value=flagged["failing"])
    metrics.add_metric(name="ConnectionsBraked", unit=MetricUnit.Count, value=flagged["braked"])
    metrics.add_metric(name="ConnectionsDisabled", unit=MetricUnit.Count, value=flagged["disabled"])
    logger.info("connection health", extra={"connections": census.connections, **census.by_flag()})
    for entry in census.worst:
        logger.warning(
            "connection unhealthy",
            extra={
                "connectionId": entry.connection_id,
                "health": entry.health.label,
                "lagSeconds": entry.health.lag_seconds,
                "consecutiveFailures": entry.consecutive_failures,
                "errorClass": entry.error_class,
                "cause": entry.cause,
            },
        )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "event"
    return f"{where}: {err['msg']} ({exc.error_count()} problem(s))"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
