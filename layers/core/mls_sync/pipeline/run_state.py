"""One sync run's state, its dependencies and result, and the failure handling every
part of it shares: one listing's failure is counted, named, or quarantined, never more."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from aws_lambda_powertools import Logger

from mls_sync.dal import ConnectionsRepo, HistoryRepo, ListingsRepo, PostsRepo, SyncRunsRepo
from mls_sync.dal.listing_keys import KeyEntry
from mls_sync.dal.listings import MlsUpdate
from mls_sync.dal.push_inbox import PushInboxRepo
from mls_sync.events import EventPublisher
from mls_sync.models import (
    ChangeSource,
    Connection,
    Listing,
    StatusChange,
    SyncJob,
)
from mls_sync.pipeline.decisions import (
    Tracked,
    describe_error,
    is_permanent,
)
from mls_sync.pipeline.mls_client import (
    ClientFactory,
)
from mls_sync.pipeline.takedowns import Pending
from mls_sync.policy import TransitionPolicy
from mls_sync.queues import QueueSender
from mls_sync.run_counts import RunCounts
from mls_sync.timeutil import Clock, Instant, format_utc, utc_now

logger = Logger(child=True)

RESERVE_MS = 60_000
"""Time kept back from the invocation for the last page's writes, the cursor and the
continuation message. The client also never starts a request that could outlive it."""

NEWLY_TRACKED_LIMIT = 1000
"""At most this many never-synced listings are looked up by key at the start of a run."""

BY_KEY_CHUNK = 200
"""Listings read by key and applied between two progress writes of a by-key phase: what a
continuation may have to read again, and one DynamoDB write per this many listings."""

FUTURE_SKEW_SECONDS = 60
"""How far ahead of the MLS's clock a record's stamp is still taken at its word (the vendor
profiles' ``future_skew_seconds``)."""

IMPLAUSIBLE_MISSING = 5
"""A by-key answer in which every one of at least this many keys is missing is a server
failure (an outage answering empty), not that many deletions at once."""

QUARANTINE_AFTER = 3
"""A listing whose record fails this many times in a row (a transient-looking error that
does not go away) is quarantined, so it cannot hold its connection's cursor for ever. Not
more than SyncQueue's maxReceiveCount (3): the last delivery must be able to move on."""

Outcome = Literal["succeeded", "partial", "failed", "continued", "duplicate", "skipped"]


@dataclass
class SyncDeps:
    policy: TransitionPolicy
    connections: ConnectionsRepo
    listings: ListingsRepo
    history: HistoryRepo
    posts: PostsRepo
    runs: SyncRunsRepo
    events: EventPublisher
    sync_queue: QueueSender
    unpublish_queue: QueueSender
    client_factory: ClientFactory
    reconcile_every_hours: int = 24
    sync_run_ttl_days: int = 90
    clock: Clock = utc_now
    monotonic: Callable[[], float] = time.monotonic
    reserve_ms: int = RESERVE_MS
    newly_tracked_limit: int = NEWLY_TRACKED_LIMIT
    by_key_chunk: int = BY_KEY_CHUNK
    quarantine_after: int = QUARANTINE_AFTER
    push_inbox: PushInboxRepo | None = None


@dataclass
class SyncResult:
    connection_id: str
    run_key: str
    outcome: Outcome
    counts: RunCounts = field(default_factory=RunCounts)
    errors: list[str] = field(default_factory=list)
    mls_requests: int = 0
    duration_ms: int = 0

    @property
    def retry(self) -> bool:
        """The job must be delivered again (some work was not done)."""
        return self.outcome in ("partial", "failed")


class OutOfTime(Exception):  # noqa: N818 - control flow, never escapes the worker
    """The invocation's time is short: the rest goes to a continuation."""


class EffectsPendingError(RuntimeError):
    """A change is recorded but one of its notifications could not be delivered yet: the
    outbox keeps it and the next delivery finishes it (never a reason to quarantine)."""


class ImplausibleAnswerError(RuntimeError):
    """The MLS answered a by-key lookup in a way no real change explains (all missing)."""


class ChunkFailed(Exception):  # noqa: N818 - control flow, never escapes the worker
    """A first sync's chunk had a failed listing before any cursor could be stored."""


def progress(connection: Connection) -> str:
    """How far a connection's by-key phase and its EntityEvent anchor have come: part of a
    continuation's run key, so each continuation that moved on is a run of its own."""
    phase = connection.by_key_phase
    text = f"{phase.kind}:{phase.after}" if phase is not None else ""
    if connection.event_sequence is not None:
        text += f"@e{connection.event_sequence}"
    return text


class RunState:
    """What a run knows as it goes; the parts of the worker (reader, applier, outbox,
    ledger) each add their steps on top of it."""

    def __init__(self, deps: SyncDeps, job: SyncJob, remaining_ms: Callable[[], int]) -> None:
        self.deps = deps
        self.job = job
        self.remaining_ms = remaining_ms
        self.counts = RunCounts()
        self.errors: list[str] = []
        self.now = deps.clock()
        self.now_text = format_utc(self.now)
        self.run_key = ""
        self.deleted: set[str] = set()
        """Listings this run marked deleted: they count towards the mass-change brake."""
        self.takedowns: set[Pending] = set()
        """Changes this run wrote (or resumed) whose takedown is still to settle."""
        self.not_after: Instant | None = None
        """The latest MLS time a record is taken to have changed at: the MLS's clock as its
        last answer gave it, plus ``FUTURE_SKEW_SECONDS`` (set per page and lookup)."""
        self.sample_timestamp: str | None = None
        """A change timestamp as this MLS spells it (from any record read): how a first
        sync's cursor is written, so a server comparing literals as text still matches."""
        self.source: ChangeSource = job.reason
        self.tracked = Tracked()
        """The tracked listings this run has come across (looked up a page at a time)."""
        self.tracked_count: int | None = None
        self.writes: list[tuple[Listing, MlsUpdate]] = []
        """Records that change no status, applied together at the end of a page or chunk."""
        self.outbox: list[StatusChange] = []
        """Changes written whose event is still to publish (at the end of a page or chunk)."""
        self.resumes: list[tuple[str, MlsUpdate, Listing]] = []
        """Records already applied: their change's pending effects are looked up together."""
        self.confirmed: list[KeyEntry] = []
        """New listings read from the MLS this page: taken out of the ``byNew`` index."""
        # The client's deadline on its monotonic scale: no request starts that could end
        # inside the reserve.
        self.deadline = deps.monotonic() + max(0, remaining_ms() - deps.reserve_ms) / 1000

    def _short_of_time(self) -> bool:
        return self.remaining_ms() < self.deps.reserve_ms

    def _guarded(self, listing_key: str, listing_id: str, work: Callable[[], None]) -> bool:
        """One failing listing never stops the others, and never stops its connection for
        good: a failure retrying cannot cure (or one that keeps coming back) quarantines the
        listing and the sync moves on; any other failure is counted, named and retried by
        the next delivery (the cursor stays before its page)."""
        try:
            work()
        except EffectsPendingError as exc:  # the change is recorded; the outbox finishes it
            self.counts.failed += 1
            self.counts.effects_pending += 1
            self.errors.append(f"{listing_key}: {exc}"[:300])
            logger.warning(
                "effects pending",
                extra={"connectionId": self.job.connection_id, "listingKey": listing_key},
            )
        except Exception as exc:  # classified below; never escapes one listing
            reason = describe_error(exc)
            logger.exception(
                "listing failed",
                extra={"connectionId": self.job.connection_id, "listingKey": listing_key},
            )
            if not self._quarantine(listing_key, listing_id, reason, permanent=is_permanent(exc)):
                self.counts.failed += 1
                self.errors.append(f"{listing_key}: {reason}"[:300])
        else:
            return True
        return False

    def _quarantine(
        self, listing_key: str, listing_id: str, reason: str, *, permanent: bool = True
    ) -> bool:
        """Records a listing's failure; True when it is now quarantined (skip it, move on)."""
        try:
            attempts = self.deps.listings.quarantine(
                listing_id,
                reason=reason,
                at=self.now_text,
                permanent=permanent,
                after_attempts=self.deps.quarantine_after,
            )
        except Exception:  # the table itself is failing: retry the whole listing later
            logger.exception("could not record a listing's failure", extra={"key": listing_key})
            return False
        if attempts == 0 or not (permanent or attempts >= self.deps.quarantine_after):
            return False
        self.counts.quarantined += 1
        if len(self.errors) < 10:
            self.errors.append(f"quarantined {listing_key}: {reason}"[:300])
        logger.warning(
            "listing quarantined",
            extra={
                "connectionId": self.job.connection_id,
                "listingKey": listing_key,
                "reason": reason,
                "attempts": attempts,
            },
        )
        return True

    def _cleared(self, listing: Listing | None) -> None:
        """A quarantined listing's record applied (or was already held): lift the quarantine."""
        if listing is not None and (listing.quarantined or listing.quarantine_reason):
            self.deps.listings.clear_quarantine(listing.listing_id)
            self.counts.quarantine_cleared += 1

    def _resolve(self, keys: Iterable[str]) -> None:
        """Looks the keys not seen yet this run up in the key map (one call per 100)."""
        unknown = self.tracked.unknown(keys)
        if unknown:
            found = self.deps.listings.keys.lookup(self.job.connection_id, unknown)
            self.tracked.add(unknown, found.values())

    def _tracked_count(self) -> int:
        if self.tracked_count is None:
            self.tracked_count = self.deps.listings.keys.count(self.job.connection_id)
        return self.tracked_count
