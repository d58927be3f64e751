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

from mls_sync.dal import ConnectionsRepo, ListingsRepo
from mls_sync.models import MassChangeReleasedDetail, Model, NonEmpty, SyncJob
from mls_sync.pipeline.keys import dedup_id, group_id, manual_slot
from mls_sync.pipeline.takedowns import BrakeDeps, NothingHeld, decide
from mls_sync.queues import OutgoingMessage, QueueSender
from mls_sync.timeutil import format_utc


class SyncListingRequest(Model):
    action: Literal["sync_listing"]
    listing_id: NonEmpty


class SyncConnectionRequest(Model):
    action: Literal["sync_connection"]
    connection_id: NonEmpty


class SyncUserRequest(Model):
    action: Literal["sync_user"]
    user_id: NonEmpty


class BrakeRequest(Model):
    """An admin action: release or discard the takedowns a braked connection holds."""

    action: Literal["brake_release", "brake_discard"]
    connection_id: NonEmpty

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
    deps.sync_queue.send(
        [
            OutgoingMessage(job, group_id=group_id(job.connection_id), dedup_id=dedup_id(job))
            for job in jobs
        ]
    )
    return ManualSyncResult(
        action=request.action,
        slot=slot,
        correlation_id=correlation_id,
        connection_ids=[j.connection_id for j in jobs],
        jobs=len(jobs),
    )


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
