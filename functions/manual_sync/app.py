"""ManualSyncFunction: sync a listing, a connection or all of a user's connections now; and
the admin actions on the mass-change brake.

Two entry points, one answer shape (``statusCode`` and ``body``):
- direct invocation: ``{"action": "sync_listing", "listingId": ...}`` (or ``sync_connection``
  with ``connectionId``, ``sync_user`` with ``userId``): 202 and what was enqueued;
  ``{"action": "brake_release"|"brake_discard", "connectionId": ...}``: 200 and the
  ``MassChangeReleased`` detail, 404 unknown connection, 409 nothing is held;
  ``body`` is an object;
- the function URL (``AuthType: AWS_IAM``: callers sign with SigV4, no shared secret):
  ``POST`` with the same JSON object as body; ``body`` is a JSON string.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from mls_sync.inputs import (
    MAX_HTTP_BODY_BYTES,
    InputError,
    decode_body,
    loads_object,
    require_object,
)
from mls_sync.pipeline.deps import default_manual_deps
from mls_sync.pipeline.manual import (
    BrakeRequest,
    ManualDeps,
    ManualSyncError,
    decide_brake,
    parse_request,
    request_sync,
)
from mls_sync.timeutil import Clock, utc_now
from mls_sync.tracing import handler_tracer

logger = Logger()
metrics = Metrics()
tracer = handler_tracer()  # the X-Ray SDK only where tracing is on


def _is_http(event: dict[str, Any]) -> bool:
    context = event.get("requestContext")
    return isinstance(context, dict) and isinstance(context.get("http"), dict)


def _http_payload(event: dict[str, Any]) -> Any:
    method = event["requestContext"]["http"].get("method", "")
    if method != "POST":
        raise ManualSyncError(405, f"method {str(method)[:16]!r} not allowed: use POST")
    # Size (413), base64, strict UTF-8, JSON, depth and object-ness (400): mls_sync.inputs.
    text = decode_body(
        event.get("body"),
        base64_encoded=event.get("isBase64Encoded") is True,
        max_bytes=MAX_HTTP_BODY_BYTES,
    )
    return loads_object(text, what="body")


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    deps: ManualDeps | None = None,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    http = isinstance(event, dict) and _is_http(event)
    request_id = event["requestContext"].get("requestId") if http else None
    correlation_id = (
        (request_id if isinstance(request_id, str) else None)
        or getattr(context, "aws_request_id", None)
        or str(uuid.uuid4())
    )
    try:
        # A direct invoke's payload must be a JSON object of sane depth (mls_sync.inputs).
        payload = _http_payload(event) if http else require_object(event)
        request = parse_request(payload)
        if isinstance(request, BrakeRequest):
            decided = decide_brake(
                request, deps or default_manual_deps(), now=clock(), correlation_id=correlation_id
            )
            metrics.add_metric(name="BrakeDecisions", unit=MetricUnit.Count, value=1)
            logger.info("brake decided", extra=decided.to_item())
            return _answer(200, decided.to_item(), http=http)
        result = request_sync(
            request, deps or default_manual_deps(), now=clock(), correlation_id=correlation_id
        )
    except (ManualSyncError, InputError) as exc:
        logger.info("manual sync refused", extra={"status": exc.status, "error": exc.message})
        return _answer(exc.status, {"error": exc.message}, http=http)
    metrics.add_metric(name="ManualSyncJobs", unit=MetricUnit.Count, value=result.jobs)
    logger.info("manual sync enqueued", extra=result.to_item())
    return _answer(202, result.to_item(), http=http)


def _answer(status: int, body: dict[str, Any], *, http: bool) -> dict[str, Any]:
    if not http:
        return {"statusCode": status, "body": body}
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, separators=(",", ":")),
    }


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
