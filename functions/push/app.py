"""PushFunction: RESO push (RCP-028) and vendor webhooks, behind a function URL.

``POST /connections/{connectionId}/events`` with ``Authorization: Bearer <token>`` and a JSON
body (an EntityEvent, a batch ``{"value": [...]}``, or ``{"listingKeys": [...]}``): 200 with
``{"accepted", "ignored"}``; 401 (with ``WWW-Authenticate``) for an unknown connection, one
without push, or a missing or wrong token; 403 disabled; 400/404/405/413/415 for the request
itself; 429 and 503 with ``Retry-After``. Nothing is queued on any 4xx. docs/push.md.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from mls_sync.inputs import InputError
from mls_sync.push.deps import default_push_deps
from mls_sync.push.http import PushRequest, refused
from mls_sync.push.receiver import PushDeps, Receipt, receive
from mls_sync.timeutil import Clock, utc_now
from mls_sync.tracing import handler_tracer

logger = Logger()
metrics = Metrics()
tracer = handler_tracer()  # the X-Ray SDK only where tracing is on


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    deps: PushDeps | None = None,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    try:
        request = PushRequest.from_event(event)
    except InputError as exc:
        return refused(exc.status, exc.message).to_response()
    correlation_id = (
        request.request_id or getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    )
    receipt = receive(
        request, deps or default_push_deps(), now=clock(), correlation_id=correlation_id
    )
    _count(receipt)
    # Never the headers or the body: the token is in one, anything may be in the other.
    logger.info(
        "push answered",
        extra={
            "status": receipt.answer.status,
            "outcome": receipt.outcome,
            "connectionId": receipt.connection_id,
            "keys": receipt.keys,
            "ignored": receipt.ignored,
            "jobSent": receipt.job_sent,
            "correlationId": correlation_id,
            "error": receipt.answer.body.get("error"),
        },
    )
    return receipt.answer.to_response()


def _count(receipt: Receipt) -> None:
    match receipt.outcome:
        case "accepted":
            metrics.add_metric(name="PushAccepted", unit=MetricUnit.Count, value=1)
            metrics.add_metric(name="PushListingKeys", unit=MetricUnit.Count, value=receipt.keys)
        case "unauthorized":
            metrics.add_metric(name="PushUnauthorized", unit=MetricUnit.Count, value=1)
        case "saturated":
            metrics.add_metric(name="PushSaturated", unit=MetricUnit.Count, value=1)
        case "unavailable":
            metrics.add_metric(name="PushUnavailable", unit=MetricUnit.Count, value=1)
        case _:  # the request itself refused (4xx), or a disabled connection
            metrics.add_metric(name="PushRefused", unit=MetricUnit.Count, value=1)
    if receipt.job_sent:
        metrics.add_metric(name="PushJobsSent", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
