"""Manual syncs: one listing, one connection, or all of a user's connections, now; and the
operator's decision on takedowns held by the mass-change brake (``brake_release``,
``brake_discard``: ``pipeline.takedowns.decide``).

A manual sync is a SyncJob on the same FIFO queue as the scheduled ones (same message group
per connection), so it never runs beside a scheduled sync of the same connection. Requests
are validated whole with pydantic; every refusal is a ``ManualSyncError`` with an HTTP-style
status and one readable message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from mls_sync.dal import ConnectionsRepo, ListingsRepo, SyncRunsRepo
from mls_sync.models import Ident, MassChangeReleasedDetail, Model, SyncJob, SyncRun
from mls_sync.pipeline.keys import dedup_id, group_id, manual_slot, run_key
from mls_sync.pipeline.takedowns import BrakeDeps, NothingHeld, decide
from mls_sync.queues import OutgoingMessage, QueueSender
from mls_sync.timeutil import format_utc


class SyncListingRequest(Model):
    action: Literal["sync_listing"]
    listing_id: Ident


class SyncConnectionRequest(Model):
    action: Literal["sync_connection"]
    connection_id: Ident


class SyncUserRequest(Model):
    action: Literal["sync_user"]
    user_id: Ident


class BrakeRequest(Model):
    """An admin action: release or discard the takedowns a braked connection holds."""

    action: Literal["brake_release", "brake_discard"]
    connection_id: Ident

    @property
    def decision(self) -> Literal["release", "discard"]:
        return "release" if self.action == "brake_release" else "discard"


SyncRequest = SyncListingRequest | SyncConnectionRequest | SyncUserRequest

ManualRequest = Annotated[SyncRequest | BrakeRequest, Field(discriminator="action")]
_REQUEST: TypeAdapter[ManualRequest] = TypeAdapter(ManualRequest)

ACTIONS = ("sync_listing", "sync_connection", "sync_user", "brake_release", "brake_discard")


class ManualSyncError(Exception):
    """A request refused: ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ManualSyncResult(Model):
    action: str
    slot: str
    correlation_id: str
    connection_ids: list[str]
    jobs: int
    """New jobs enqueued by this request."""
    already_queued: list[str] = Field(default_factory=list)
    """Connections whose identical job (same minute, same listings) is queued and has not
    started: SQS would drop a second message silently, and the queued one does the work."""
    note: str = ""


def parse_request(payload: Any) -> ManualRequest:
    """The request, or ManualSyncError(400) naming each bad field."""
    if not isinstance(payload, dict):
        raise ManualSyncError(400, "request must be a JSON object")
    if payload.get("action") not in ACTIONS:
        raise ManualSyncError(
            400, f"action: expected one of {', '.join(ACTIONS)}, got {payload.get('action')!r}"
        )
    try:
        return _REQUEST.validate_python(payload)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"][1:]) or "request"
            problems.append(f"{where}: {err['msg']}")
        raise ManualSyncError(400, "; ".join(problems)) from None


@dataclass(frozen=True)
class ManualDeps:
    connections: ConnectionsRepo
    listings: ListingsRepo
    sync_queue: QueueSender
    brake: BrakeDeps | None = None
    """What a brake decision needs (``build_manual_deps`` sets it); None: refused (501)."""
    runs: SyncRunsRepo | None = None
    """SyncRuns, to tell a job already queued from one already run (``build_manual_deps``
    sets it); None: every request is sent, and SQS drops a duplicate within 5 minutes."""
    run_ttl_days: int = 90


QUEUED = "queued"
"""The outcome of a manual job's SyncRuns item between the request and the worker's start
(the worker takes such a run over, as it does a failed one)."""


def request_sync(
    request: SyncRequest, deps: ManualDeps, *, now: datetime, correlation_id: str
) -> ManualSyncResult:
    """Enqueues the manual sync jobs the request asks for."""
    slot = manual_slot(now)
    jobs: list[SyncJob] = []
    match request:
        case SyncListingRequest(listing_id=listing_id):
            listing = deps.listings.get(listing_id)
            if listing is None:
                raise ManualSyncError(404, f"listing {listing_id} not found")
            if listing.sync_excluded:
                raise ManualSyncError(409, f"listing {listing_id} is excluded from sync")
            _enabled(deps, listing.connection_id)
            jobs.append(_job(listing.connection_id, slot, correlation_id, [listing.listing_key]))
        case SyncConnectionRequest(connection_id=connection_id):
            _enabled(deps, connection_id)
            jobs.append(_job(connection_id, slot, correlation_id))
        case SyncUserRequest(user_id=user_id):
            connections = [c for c in deps.connections.list_by_user(user_id) if c.enabled]
            if not connections:
                raise ManualSyncError(404, f"user {user_id} has no enabled connection")
            jobs.extend(_job(c.connection_id, slot, correlation_id) for c in connections)
    already: list[str] = []
    if deps.runs is not None:
        jobs, already = _claim(jobs, deps.runs, now=now, ttl_days=deps.run_ttl_days)
    try:
        deps.sync_queue.send(
            [
                OutgoingMessage(job, group_id=group_id(job.connection_id), dedup_id=dedup_id(job))
                for job in jobs
            ]
        )
    except Exception:
        if deps.runs is not None:  # nothing is queued after all: the next request must send
            for job in jobs:
                deps.runs.delete_queued(job.connection_id, run_key(job))
        raise
    queued = [j.connection_id for j in jobs]
    parts = [f"queued {len(jobs)} job(s)"] if jobs or not already else []
    if already:
        parts.append(f"already queued: {', '.join(already)}")
    return ManualSyncResult(
        action=request.action,
        slot=slot,
        correlation_id=correlation_id,
        connection_ids=queued,
        jobs=len(jobs),
        already_queued=already,
        note="; ".join(parts),
    )


def _claim(
    jobs: list[SyncJob], runs: SyncRunsRepo, *, now: datetime, ttl_days: int
) -> tuple[list[SyncJob], list[str]]:
    """Records each job's run as ``queued`` before it is sent. A job whose run already
    exists is either still queued (not sent again: "already queued") or has started or
    finished (sent again in a slot of its own, the request's instant, so that neither SQS
    deduplication nor the run's conditional start swallows it)."""
    to_send: list[SyncJob] = []
    already: list[str] = []
    for job in jobs:
        if _queue_run(job, runs, now, ttl_days):
            to_send.append(job)
            continue
        existing = runs.get(job.connection_id, run_key(job))
        if existing is not None and existing.outcome == QUEUED:
            already.append(job.connection_id)
            continue
        again = job.model_copy(update={"slot": format_utc(now)})
        if _queue_run(again, runs, now, ttl_days):
            to_send.append(again)
        else:  # the same instant asked twice
            already.append(job.connection_id)
    return to_send, already


def _queue_run(job: SyncJob, runs: SyncRunsRepo, now: datetime, ttl_days: int) -> bool:
    run = SyncRun(
        connection_id=job.connection_id,
        run_key=run_key(job),
        reason=job.reason,
        started_at=format_utc(now),
        outcome=QUEUED,
        correlation_id=job.correlation_id,
        ttl=int(now.timestamp()) + ttl_days * 86_400,
    )
    return runs.start(run) is not None


def decide_brake(
    request: BrakeRequest, deps: ManualDeps, *, now: datetime, correlation_id: str
) -> MassChangeReleasedDetail:
    """Releases or discards a braked connection's held takedowns (``takedowns.decide``):
    404 when the connection does not exist, 409 when it is not braked (nothing is held)."""
    if deps.brake is None:
        raise ManualSyncError(501, "brake decisions are not configured for this function")
    connection_id = request.connection_id
    if deps.connections.get(connection_id) is None:
        raise ManualSyncError(404, f"connection {connection_id} not found")
    try:
        return decide(
            connection_id, request.decision, deps.brake, now=now, correlation_id=correlation_id
        )
    except NothingHeld:
        raise ManualSyncError(
            409, f"connection {connection_id} is not braked: nothing is held"
        ) from None
    except LookupError as exc:
        if type(exc) is not LookupError:  # a KeyError is a bug, not an unknown connection
            raise
        raise ManualSyncError(404, f"connection {connection_id} not found") from None


def request_reconcile(
    connection_id: str, deps: ManualDeps, *, now: datetime, correlation_id: str
) -> ManualSyncResult:
    """Enqueues a reconciliation by key of one connection, now (``mls-sync reconcile``).

    Its slot is the request's own instant rather than a bucket: asking again is a new
    reconciliation, not a duplicate. It joins the connection's message group like every
    other job, so it never runs beside a scheduled sync."""
    _enabled(deps, connection_id)
    job = SyncJob(
        connection_id=connection_id,
        reason="reconcile",
        slot=format_utc(now),
        correlation_id=correlation_id,
    )
    deps.sync_queue.send(
        [OutgoingMessage(job, group_id=group_id(connection_id), dedup_id=dedup_id(job))]
    )
    return ManualSyncResult(
        action="reconcile",
        slot=job.slot,
        correlation_id=correlation_id,
        connection_ids=[connection_id],
        jobs=1,
    )


def _enabled(deps: ManualDeps, connection_id: str) -> None:
    connection = deps.connections.get(connection_id)
    if connection is None:
        raise ManualSyncError(404, f"connection {connection_id} not found")
    if not connection.enabled:
        raise ManualSyncError(409, f"connection {connection_id} is disabled")


def _job(
    connection_id: str, slot: str, correlation_id: str, keys: list[str] | None = None
) -> SyncJob:
    return SyncJob(
        connection_id=connection_id,
        reason="manual",
        slot=slot,
        listing_keys=keys,
        correlation_id=correlation_id,
    )
