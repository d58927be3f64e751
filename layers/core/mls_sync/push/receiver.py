"""One push, judged and turned into inbox keys and (at most) one sync job.

Checks in order, cheapest first, so that a stranger's request costs no read and its body
is never parsed: route (404), method (405), size (413, before decoding; base64 allowed
for), content type (415), bearer token (401: one answer for every reason), connection
enabled (403), body (400; 413 for more than 1,000 keys). Then the keys join the
connection's inbox (429 + ``Retry-After`` when it is full) and the push that found no job
queued sends one (503 + ``Retry-After`` when that fails, with the flag put back). Nothing is
queued on any 4xx; a 5xx leaves keys in the inbox, which a retry or the next job takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from mls_sync.dal.push_inbox import PushInboxRepo
from mls_sync.inputs import InputError, decode_body, is_id, loads_object
from mls_sync.push.access_cache import AccessSource
from mls_sync.push.auth import SecretSource, Verdict, judge
from mls_sync.push.bodies import BodyError, pushed_keys
from mls_sync.push.http import UNAUTHORIZED, Answer, PushRequest, refused
from mls_sync.push.jobs import PushJobSender
from mls_sync.secrets import SecretError
from mls_sync.timeutil import format_utc

MAX_PUSH_BODY_BYTES = 256 * 1024
"""An RCP-028 batch of ~2,500 events; Lambda would take 6 MB, we need far less."""
INBOX_CAP = 1500
"""Keys a connection's inbox holds before pushes are told to wait: 1,500 keys of RESO's
longest (255 characters) still fit DynamoDB's 400 KB item."""
RETRY_SATURATED_SECONDS = 30
"""After a 429: about the time a queued job takes to start and empty the inbox."""
JOB_OWED_SECONDS = 900
"""A job owed this long (its push flipped the inbox and none was recorded sent: the push's
first write went in but its answer was lost, or the push died) is sent by the next push.
Longer than a queued job takes to start, so a job merely waiting is not sent twice."""
RETRY_UNAVAILABLE_SECONDS = 5
"""After a 503 (DynamoDB, SQS or Secrets Manager did not answer in time)."""

logger = Logger(child=True)


@dataclass(frozen=True)
class PushDeps:
    connections: AccessSource
    inbox: PushInboxRepo
    secrets: SecretSource
    jobs: PushJobSender
    cap: int = INBOX_CAP


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer, and what the handler logs and counts."""

    answer: Answer
    outcome: str
    """accepted, refused (4xx of the request itself), unauthorized, disabled, saturated,
    unavailable."""
    connection_id: str | None = None
    keys: int = 0
    ignored: int = 0
    job_sent: bool = False


def receive(request: PushRequest, deps: PushDeps, *, now: datetime, correlation_id: str) -> Receipt:
    connection_id = request.connection_id()
    if connection_id is None:
        return Receipt(
            refused(404, "not found: POST /connections/{connectionId}/events"), "refused"
        )
    if request.method != "POST":
        answer = refused(405, f"method {request.method[:16]!r} not allowed: use POST", allow="POST")
        return Receipt(answer, "refused")
    try:
        text = decode_body(
            request.body, base64_encoded=request.base64_encoded, max_bytes=MAX_PUSH_BODY_BYTES
        )
    except InputError as exc:
        return Receipt(refused(exc.status, exc.message), "refused")
    if not request.json_content_type():
        return Receipt(refused(415, "content-type must be application/json (UTF-8)"), "refused")

    try:
        verdict = _authenticate(request, connection_id, deps)
    except (SecretError, ClientError, BotoCoreError) as exc:
        logger.error(  # noqa: TRY400 - the cause in one line, no traceback
            "push secret unreadable", extra={"connectionId": connection_id, "error": str(exc)}
        )
        return _unavailable(connection_id)
    if verdict is not None:
        return verdict

    try:
        found = pushed_keys(loads_object(text, what="body"))
    except (InputError, BodyError) as exc:
        status = exc.status
        return Receipt(refused(status, exc.message), "refused", connection_id)
    if not found.keys:
        return _accepted(connection_id, 0, found.ignored, job_sent=False)

    try:
        added = deps.inbox.add(
            connection_id,
            found.keys,
            cap=deps.cap,
            now=format_utc(now),
            owed_before=format_utc(now - timedelta(seconds=JOB_OWED_SECONDS)),
        )
    except (ClientError, BotoCoreError) as exc:
        logger.error(  # noqa: TRY400 - the cause in one line, no traceback
            "push inbox unavailable", extra={"connectionId": connection_id, "error": str(exc)}
        )
        return _unavailable(connection_id)
    if added.saturated:
        answer = refused(
            429,
            "this connection's pushed listings are still being synced: retry later",
            **{"retry-after": str(RETRY_SATURATED_SECONDS)},
        )
        return Receipt(answer, "saturated", connection_id, keys=len(found.keys))
    if added.send_job:
        try:
            deps.jobs.send(connection_id, added.ticket, now=now, correlation_id=correlation_id)
        except (ClientError, BotoCoreError) as exc:
            _put_back(deps, connection_id, added.ticket)
            logger.error(  # noqa: TRY400 - the cause in one line, no traceback
                "push job not sent", extra={"connectionId": connection_id, "error": str(exc)}
            )
            return _unavailable(connection_id)
        _sent(deps, connection_id, now)
    if added.incomplete:
        logger.error(
            "push inbox: keys pushed again not marked", extra={"connectionId": connection_id}
        )
        return _unavailable(connection_id)
    return _accepted(connection_id, len(found.keys), found.ignored, job_sent=added.send_job)


def _authenticate(request: PushRequest, connection_id: str, deps: PushDeps) -> Receipt | None:
    """None when the caller may push; else the answer."""
    token = request.bearer_token()
    if token is None or not is_id(connection_id):
        return Receipt(UNAUTHORIZED, "unauthorized")
    access = deps.connections.get(connection_id)
    verdict = judge(token, access, deps.secrets)
    if verdict is Verdict.MISCONFIGURED:
        logger.error("push secret holds no token", extra={"connectionId": connection_id})
    if verdict is not Verdict.GRANTED or access is None:
        return Receipt(UNAUTHORIZED, "unauthorized", connection_id)
    if not access.enabled:
        # Only a caller holding the token learns this. Nothing is lost by refusing: the
        # replication run after the connection is enabled again reads every change since.
        answer = refused(403, f"connection {connection_id} is disabled: nothing was queued")
        return Receipt(answer, "disabled", connection_id)
    return None


def _sent(deps: PushDeps, connection_id: str, now: datetime) -> None:
    """Best effort: without the record, a push after ``JOB_OWED_SECONDS`` sends one more
    job, which finds the keys taken (harmless)."""
    try:
        deps.inbox.job_sent(connection_id, format_utc(now))
    except (ClientError, BotoCoreError) as exc:
        logger.warning(
            "push job sent, not recorded", extra={"connectionId": connection_id, "error": str(exc)}
        )


def _put_back(deps: PushDeps, connection_id: str, ticket: int) -> None:
    """The job was not sent: ``queued`` back to false, so the producer's retry (or any next
    push) sends it. Best effort: if this fails too, the keys wait in the inbox for the
    connection's next job (docs/push.md, "What the worker does")."""
    try:
        deps.inbox.unqueue(connection_id, ticket)
    except (ClientError, BotoCoreError) as exc:
        logger.error(  # noqa: TRY400 - the cause in one line, no traceback
            "push inbox flag not put back", extra={"connectionId": connection_id, "error": str(exc)}
        )


def _unavailable(connection_id: str) -> Receipt:
    answer = refused(
        503,
        "temporarily unavailable: retry later",
        **{"retry-after": str(RETRY_UNAVAILABLE_SECONDS)},
    )
    return Receipt(answer, "unavailable", connection_id)


def _accepted(connection_id: str, keys: int, ignored: int, *, job_sent: bool) -> Receipt:
    answer = Answer(200, {"accepted": keys, "ignored": ignored})
    return Receipt(answer, "accepted", connection_id, keys=keys, ignored=ignored, job_sent=job_sent)
