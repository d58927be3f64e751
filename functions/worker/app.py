"""WorkerFunction: SQS SyncQueue (FIFO) → sync one connection per job.

Thin: parse each record into a SyncJob, run the pipeline's domain, report the records that
must be delivered again (``mls_sync.sqs_batch``, ``skip_group_on_error``): a failed job also
fails the later jobs of the same connection in the batch (FIFO order), while other
connections' jobs go on; a body that does not parse fails alone.
"""

from __future__ import annotations

from dataclasses import is_dataclass, replace
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from mls_sync.inputs import check_body_size, log_refused, not_a_batch, sqs_batch_problem
from mls_sync.lambda_events import SqsRecord
from mls_sync.models import SyncJob
from mls_sync.pipeline.deps import default_sync_deps
from mls_sync.pipeline.sync import SyncDeps, SyncResult, sync_connection
from mls_sync.quota import quota_use
from mls_sync.reso.budget import work_for
from mls_sync.sqs_batch import process_sqs_batch
from mls_sync.tracing import handler_tracer
from pydantic import Json, field_validator

logger = Logger()
metrics = Metrics()
tracer = handler_tracer()  # the X-Ray SDK only where tracing is on


class SyncJobRecord(SqsRecord):
    body: Json[SyncJob]

    @field_validator("body", mode="before")
    @classmethod
    def _not_oversize(cls, body: Any) -> Any:
        # Fails this record alone (and, FIFO, its group's later ones), before parsing.
        return check_body_size(body)


def _failed(record: Any, exc: Exception) -> None:
    log_refused(logger, record, exc)  # a record that does not parse, logged


class SyncIncompleteError(RuntimeError):
    """Some of the job's work failed; the message is reported failed and delivered again."""


def _emit(result: SyncResult) -> None:
    counts = result.counts
    count = MetricUnit.Count
    metrics.add_metric(name="StatusChanges", unit=count, value=counts.status_changes)
    metrics.add_metric(name="RecordsRead", unit=count, value=counts.records_read)
    metrics.add_metric(name="MlsRequests", unit=count, value=result.mls_requests)
    metrics.add_metric(name="UnpublishJobs", unit=count, value=counts.unpublish_jobs)
    metrics.add_metric(name="QuarantinedRecords", unit=count, value=counts.quarantined)
    metrics.add_metric(name="FutureStampedRecords", unit=count, value=counts.future_stamped)
    metrics.add_metric(name="DegradedPaging", unit=count, value=counts.degraded)
    metrics.add_metric(name="MassChangeHeld", unit=count, value=counts.mass_change_held)
    metrics.add_metric(name="TakedownsHeld", unit=count, value=counts.takedowns_held)
    metrics.add_metric(name=f"Sync_{result.outcome}", unit=count, value=1)


def _record_health(result: SyncResult, deps: SyncDeps) -> None:
    """The run's outcome on the connection (its health), and one warning naming the
    connection and the cause when it failed: what Logs Insights' "top sync errors" reads.
    Best effort: recording health never fails the job."""
    counts = result.counts
    try:
        quarantined = (
            deps.listings.count_quarantined(result.connection_id)
            if counts.quarantined or counts.quarantine_cleared
            else None
        )
        record = deps.connections.record_outcome(
            result.connection_id,
            outcome=result.outcome,
            at=deps.clock(),
            run_key=result.run_key,
            errors=result.errors,
            failed_listings=counts.failed,
            quarantined=quarantined,
        )
    except Exception as exc:  # noqa: BLE001 - health is observability, never the job's fate
        logger.warning(
            "connection health not recorded",
            extra={"connectionId": result.connection_id, "error": f"{type(exc).__name__}"},
        )
        return
    if record is not None and record.failure is not None:
        logger.warning(
            "connection failing",
            extra={
                "connectionId": record.connection_id,
                "vendor": record.vendor,
                "outcome": record.outcome,
                "errorClass": record.failure.error_class,
                "cause": record.failure.cause,
                "consecutiveFailures": record.consecutive_failures,
                "lagSeconds": record.lag_seconds,
                "runKey": result.run_key,
            },
        )


def _watching(deps: SyncDeps, clients: list[object]) -> SyncDeps:
    """The same deps, keeping the MLS clients the run makes (their shared budget says how
    much of the credential's quota is spent). Observability: deps it cannot copy pass
    through unchanged."""
    make = getattr(deps, "client_factory", None)
    if make is None or not is_dataclass(deps):
        return deps

    def factory(connection: Any) -> Any:
        client = make(connection)
        clients.append(client)
        return client

    return replace(deps, client_factory=factory)


QUOTA_LOG_PERCENT = 50.0
"""A run whose credential has spent at least this share of its quota logs "mls quota"."""


def _report_quota(clients: list[object], deps: SyncDeps) -> None:
    """``MlsQuotaUsedPercent`` from the budget the run's client took permits from (no call),
    and, past half the quota, which credential (the dashboard's "tokens nearest their quota")."""
    try:
        use = quota_use(clients[-1], deps.clock().timestamp()) if clients else None
    except Exception as exc:  # noqa: BLE001 - observability, never the job's fate
        logger.warning("quota use not read", extra={"error": type(exc).__name__})
        return
    if use is None:
        return
    metrics.add_metric(name="MlsQuotaUsedPercent", unit=MetricUnit.Percent, value=use.percent)
    if use.percent >= QUOTA_LOG_PERCENT:
        logger.info("mls quota", extra=use.to_log())


def handle(event: dict[str, Any], context: LambdaContext, deps: SyncDeps | None = None) -> Any:
    problem = sqs_batch_problem(event)
    if problem is not None:
        logger.warning("not an SQS batch; nothing processed", extra={"error": problem})
        return not_a_batch(event, problem)
    sync_deps = deps or default_sync_deps()

    def record_handler(record: SyncJobRecord) -> str:
        job = record.body
        logger.append_keys(connectionId=job.connection_id, correlationId=job.correlation_id)
        # Manual and push jobs go first when the MLS credential's shared budget is short.
        clients: list[object] = []
        with work_for(job.reason, targeted=bool(job.listing_keys) or job.reason == "push"):
            result = sync_connection(
                job, _watching(sync_deps, clients), context.get_remaining_time_in_millis
            )
        _emit(result)
        _record_health(result, sync_deps)
        _report_quota(clients, sync_deps)
        if result.retry:
            raise SyncIncompleteError(
                f"sync of {job.connection_id} {result.outcome}: "
                f"{result.counts.failed} listing(s) failed; "
                + ("; ".join(result.errors[:3]) or "see the sync run")
            )
        return result.outcome

    # Every record failed is still a partial response: SQS retries exactly those messages,
    # and the invocation does not count as a function error.
    return process_sqs_batch(
        event["Records"],
        SyncJobRecord,
        record_handler,
        on_failure=_failed,
        skip_group_on_error=True,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return handle(event, context)
