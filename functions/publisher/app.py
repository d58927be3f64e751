"""PublisherFunction: SQS UnpublishQueue → take one post down per job.

Thin: parse each record, run the job once per (platform, post, takedown round) through
Powertools idempotency, report the records that must be retried. A record whose post is
already settled with effects pending (a previous delivery failed after the outcome write)
gets those delivered instead.

A direct invoke ``{"action": "accountReauthorized", "accountId": ...}`` (an admin, after
replacing the account's token secret) retries the account's ``reauth_required`` posts
(``mls_sync.unpublish.reauth``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext
from mls_sync import aws
from mls_sync.inputs import (
    InputError,
    check_body_size,
    is_id,
    log_refused,
    not_a_batch,
    require_object,
    sqs_batch_problem,
)
from mls_sync.lambda_events import SqsRecord
from mls_sync.models import UnpublishJob
from mls_sync.sqs_batch import process_sqs_batch
from mls_sync.unpublish.deps import PublisherDeps, default_deps
from mls_sync.unpublish.reauth import ADMIN_ACTION, ReauthorizationError
from mls_sync.unpublish.service import Attempt, GaveUp, RetryLater
from pydantic import Json, field_validator

logger = Logger()
metrics = Metrics()

MAX_VISIBILITY_SECONDS = 43_200  # SQS's ceiling for ChangeMessageVisibility
TIME_RESERVE_MS = 15_000
"""A job may take one platform call's time limit (12 s) plus our writes: a job that could not
finish before the function's timeout is handed back to the queue instead of started."""


class UnpublishRecord(SqsRecord):
    body: Json[UnpublishJob]

    @field_validator("body", mode="before")
    @classmethod
    def _not_oversize(cls, body: Any) -> Any:
        return check_body_size(body)  # fails this record alone, before parsing


def _failed(record: Any, exc: Exception) -> None:
    log_refused(logger, record, exc)  # a record that does not parse, logged


def _count(name: str) -> None:
    """A metric must never fail a job whose post is already down (Powertools flushes every
    100 metrics and raises then if, say, the namespace is missing)."""
    try:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    except Exception as exc:  # noqa: BLE001 - observability is best effort here
        logger.warning("metric not recorded", extra={"metric": name, "error": str(exc)})


def _require_time(context: LambdaContext) -> None:
    if context.get_remaining_time_in_millis() < TIME_RESERVE_MS:
        raise RetryLater("not enough time left in this invocation", delay=1)


def _admin_problem(event: dict[str, Any]) -> str | None:
    if event.get("action") != ADMIN_ACTION or not is_id(event.get("accountId")):
        return f'expected {{"action": "{ADMIN_ACTION}", "accountId": "<id>"}}'
    return None


def handle_admin(event: dict[str, Any], deps: PublisherDeps) -> dict[str, Any]:
    """An admin's direct invoke: ``{"action": "accountReauthorized", "accountId": "..."}``
    once the account's token secret holds the new token. Answers what was done, or
    ``{"error": ...}`` for a request that cannot be carried out."""
    problem = _admin_problem(event)
    if problem is not None:
        return {"error": problem}
    correlation = event.get("correlationId")
    try:
        done = deps.reauth.reauthorized(
            event["accountId"], correlation if isinstance(correlation, str) else None
        )
    except ReauthorizationError as exc:
        logger.warning("re-authorisation refused", extra={"error": str(exc)})
        return {"error": str(exc)}
    _count("AccountsReauthorized")
    return done.to_json()


def handle(event: dict[str, Any], context: LambdaContext, deps: PublisherDeps | None = None) -> Any:
    if not isinstance(event, dict) or "Records" not in event:
        try:
            admin = require_object(event, what="event")
        except InputError as exc:
            logger.warning("invocation refused", extra={"error": exc.message})
            return {"error": exc.message}
        problem = _admin_problem(admin)
        if problem is not None:
            logger.warning("invocation refused", extra={"error": problem})
            return {"error": problem}
        return handle_admin(admin, deps or default_deps())
    problem = sqs_batch_problem(event)
    if problem is not None:
        logger.warning("not an SQS batch; nothing processed", extra={"error": problem})
        return not_a_batch(event, problem)
    deps = deps or default_deps()
    config = IdempotencyConfig(
        # The round changes when a post is put back to `published` for another try (its
        # account re-authorised): that takedown is new, not a duplicate of the last one.
        event_key_jmespath="[platform, postId, takedownRound]",
        expires_after_seconds=86_400,
        raise_on_no_idempotency_key=True,
    )
    config.register_lambda_context(context)

    def take_down(job: dict[str, Any], attempt: Attempt) -> str:
        body = {k: v for k, v in job.items() if k != "takedownRound"}
        return deps.service.take_down(UnpublishJob.model_validate(body), attempt)

    # Keyed on (platform, post, round): a job delivered twice makes one delete call.
    run_job = cast(
        "Callable[..., str]",
        idempotent_function(
            data_keyword_argument="job", config=config, persistence_store=deps.persistence
        )(take_down),
    )

    def record_handler(record: UnpublishRecord) -> str:
        job = record.body
        attempt = Attempt(
            receive_count=int(record.attributes.ApproximateReceiveCount),
            max_receives=deps.max_receives,
        )
        logger.append_keys(postId=job.post_id, correlationId=job.correlation_id)
        try:
            _require_time(context)
            skipped = deps.service.precheck(job)
            if skipped == "effects_delivered":
                _count("Unpublish_effects_delivered")
            if skipped is not None:
                return skipped
            data = job.to_item()
            takedown_round = deps.service.takedown_round(job.post_id)
            if takedown_round:
                data["takedownRound"] = takedown_round
            result = run_job(job=data, attempt=attempt)
        except RetryLater as exc:
            if exc.delay is not None:
                # Never retry into a throttle: hide the message for as long as the platform said.
                aws.sqs().change_message_visibility(
                    QueueUrl=deps.queue_url,
                    ReceiptHandle=record.receiptHandle,
                    VisibilityTimeout=min(MAX_VISIBILITY_SECONDS, max(1, int(exc.delay))),
                )
            logger.info("unpublish will be retried", extra={"reason": exc.reason})
            raise
        except GaveUp as exc:
            # Recorded `failed`; reporting the record failed sends it to the DLQ after this,
            # its last receive.
            _count("Unpublish_failed")
            logger.warning("unpublish gave up; job goes to the DLQ", extra={"reason": exc.reason})
            raise
        _count(f"Unpublish_{result}")
        if result == "unpublished":
            _count("PostsUnpublished")
        elif result == "manual_action_required":
            _count("PostsManualAction")
        return result

    # A batch whose every record must wait (one throttled account) is not a function error:
    # report each record failed rather than raise, so the Errors alarm stays for real faults.
    return process_sqs_batch(event["Records"], UnpublishRecord, record_handler, on_failure=_failed)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return handle(event, context)
