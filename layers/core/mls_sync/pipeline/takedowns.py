"""Takedowns: the unpublish jobs of a connection's status changes, settled behind the
mass-change brake.

A post that is deleted cannot be restored. So the unpublish effect of a change is not sent the
moment the change is written: the change marks its listing (``takedownKey``, in the same
transaction), and at the end of each run the worker settles every marked listing of the
connection at once. A normal run sends them; a run that would take down (or delete) an
unusual share of the connection's listings trips the brake and holds them all, and so does
every later run, until an operator releases (sends exactly the held jobs) or discards (drops
them and has the listings looked up by key again). docs/pipeline.md has the why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from aws_lambda_powertools import Logger

from mls_sync.dal import ConnectionsRepo, HistoryRepo, ListingsRepo, PostsRepo
from mls_sync.dal.listings import TAKEDOWN_EFFECT
from mls_sync.events import Event, EventPublisher
from mls_sync.models import (
    MassChangeReleasedDetail,
    PostStatus,
    SyncJob,
    UnpublishJob,
)
from mls_sync.pipeline.keys import dedup_id, group_id, manual_slot
from mls_sync.queues import OutgoingMessage, QueueSender
from mls_sync.timeutil import format_utc

logger = Logger(child=True)

Pending = tuple[str, str]
"""(listingId, change key) of a takedown not yet settled."""

MAX_KEYS_PER_JOB = 1000
"""A SyncJob names at most this many listing keys (its model's limit)."""


def brake_trips(affected: int, tracked: int, *, share: float, minimum: int) -> bool:
    """Whether one run's takedowns and deletions are unusual enough to hold: more than
    ``minimum`` listings and more than ``share`` of those tracked."""
    return affected > minimum and affected > share * max(tracked, affected)


@dataclass
class Takedowns:
    listings: ListingsRepo
    history: HistoryRepo
    posts: PostsRepo
    unpublish_queue: QueueSender

    def pending(self, connection_id: str, also: Iterable[Pending] = ()) -> list[Pending]:
        """Every unsettled takedown of the connection: the index, plus ``also`` (changes this
        process just wrote, which an eventually consistent index may not show yet)."""
        found = dict.fromkeys([*self.listings.pending_takedowns(connection_id), *also])
        return sorted(found)

    def published_posts(self, pending: Sequence[Pending]) -> int:
        return sum(
            1
            for listing_id in {lid for lid, _ in pending}
            for post in self.posts.list_by_listing(listing_id)
            if post.status is PostStatus.PUBLISHED
        )

    def deliver(self, pending: Sequence[Pending], correlation_id: str) -> int:
        """Sends one unpublish job per published post of each pending change, then ticks the
        effect off and unmarks the listing. A crash between the two resends them once (the
        publisher is idempotent per post). Returns the jobs sent."""
        jobs: list[OutgoingMessage] = []
        settled: list[tuple[str, str, bool]] = []
        for listing_id, key in pending:
            entry = self.history.get(listing_id, key)
            if entry is None or TAKEDOWN_EFFECT not in entry.pending_effects:
                settled.append((listing_id, key, False))
                continue
            jobs.extend(
                OutgoingMessage(
                    UnpublishJob(
                        post_id=post.post_id,
                        listing_id=listing_id,
                        platform=post.platform,
                        correlation_id=entry.correlation_id or correlation_id,
                    )
                )
                for post in self.posts.list_by_listing(listing_id)
                if post.status is PostStatus.PUBLISHED
            )
            settled.append((listing_id, key, True))
        if jobs:
            self.unpublish_queue.send(jobs)
        for listing_id, key, had_effect in settled:
            if had_effect:
                self.history.complete_effect(listing_id, key, TAKEDOWN_EFFECT)
            self.listings.clear_takedown(listing_id, key)
        return len(jobs)

    def discard(self, pending: Sequence[Pending]) -> list[str]:
        """Drops the takedowns (no job is sent); returns the listings, to be read again."""
        for listing_id, key in pending:
            entry = self.history.get(listing_id, key)
            if entry is not None and TAKEDOWN_EFFECT in entry.pending_effects:
                self.history.complete_effect(listing_id, key, TAKEDOWN_EFFECT)
            self.listings.clear_takedown(listing_id, key)
        return sorted({lid for lid, _ in pending})


class NothingHeld(Exception):  # noqa: N818 - reads as the answer it gives
    """The connection is not braked: there is nothing to release or discard."""


@dataclass
class BrakeDeps:
    connections: ConnectionsRepo
    takedowns: Takedowns
    events: EventPublisher
    sync_queue: QueueSender


def decide(
    connection_id: str,
    decision: Literal["release", "discard"],
    deps: BrakeDeps,
    *,
    now: datetime,
    correlation_id: str,
) -> MassChangeReleasedDetail:
    """An operator's decision on a braked connection's held takedowns.

    release: exactly the held jobs are sent (and any held since); discard: none is sent, and
    the listings are looked up by key again (a manual sync job) so what the MLS says now wins.
    The brake is lifted only after the held takedowns are settled, so a crash in between
    leaves it on and the decision can simply be made again."""
    connection = deps.connections.get(connection_id)
    if connection is None:
        raise LookupError(f"connection {connection_id} not found")
    if connection.braked is None:
        raise NothingHeld(f"connection {connection_id} is not braked: nothing is held")
    pending = deps.takedowns.pending(connection_id)
    sent = 0
    if decision == "release":
        sent = deps.takedowns.deliver(pending, correlation_id)
    else:
        listing_ids = deps.takedowns.discard(pending)
        keys = [
            listing.listing_key
            for listing in (deps.takedowns.listings.get(lid) for lid in listing_ids)
            if listing is not None
        ]
        slot = manual_slot(now)
        jobs = [
            SyncJob(
                connection_id=connection_id,
                reason="manual",
                slot=slot,
                listing_keys=keys[start : start + MAX_KEYS_PER_JOB],
                correlation_id=correlation_id,
            )
            for start in range(0, len(keys), MAX_KEYS_PER_JOB)
        ]
        if jobs:
            deps.sync_queue.send(
                [
                    OutgoingMessage(j, group_id=group_id(connection_id), dedup_id=dedup_id(j))
                    for j in jobs
                ]
            )
    deps.connections.clear_braked(connection_id, connection.braked.run_key)
    detail = MassChangeReleasedDetail(
        connection_id=connection_id,
        run_key=connection.braked.run_key,
        decision=decision,
        posts_sent=sent,
        at=format_utc(now),
    )
    logger.info("mass-change brake decided", extra=detail.to_item())
    deps.events.publish([Event(detail_type="MassChangeReleased", detail=detail)])
    return detail
