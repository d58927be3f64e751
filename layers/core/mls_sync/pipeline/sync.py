"""The worker's domain: sync one connection for one SyncJob.

In one breath (docs/pipeline.md has the why):
- a run is started (or resumed after a crash) under a key derived from the job, so a
  duplicate delivery of a finished job is a no-op;
- a new connection (no cursor) reads its tracked listings by key and then starts from
  ``initial_cursor(now)``: never a full download of the feed;
- every ``RECONCILE_EVERY_HOURS`` (and on ``reason=reconcile``) tracked listings are read by
  key; a key the MLS no longer returns becomes ``deleted``. MLS Grid is asked by ListingId
  (``mlsListingId``, stored from applied records); listings without one are never asked by
  the wrong field (that would "delete" them) and are counted ``notReconcilable``;
- otherwise, listings never synced (added after the cursor passed them) are read by key
  first, at most ``NEWLY_TRACKED_LIMIT`` per run;
- then incremental changes from the cursor; records of listings we do not track cost nothing
  but the read; the cursor is persisted after each page whose records were all applied;
- a status change is written with its history entry in one transaction, the entry carrying
  the effects still to deliver (outbox); effects are delivered and then ticked off, and a
  redelivery that finds the change already applied finishes whatever is still pending;
- when the invocation's time runs short, the cursor stands and a ``continuation`` job takes
  the rest.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from aws_lambda_powertools import Logger

from mls_sync.dal import ConnectionsRepo, HistoryRepo, ListingsRepo, PostsRepo, SyncRunsRepo
from mls_sync.dal.base import ConditionFailed
from mls_sync.dal.history import change_key
from mls_sync.dal.listing_keys import KeyEntry
from mls_sync.dal.listings import MlsUpdate, is_stale
from mls_sync.events import Event, EventPublisher
from mls_sync.models import (
    BrakeState,
    ByKeyPhase,
    ChangeSource,
    Connection,
    Cursor,
    Listing,
    MassChangeHeldDetail,
    StatusChange,
    SyncJob,
    SyncRun,
)
from mls_sync.pipeline.decisions import (
    EFFECT_EVENT,
    EFFECT_UNPUBLISH,
    LOOKUP_BY_ID,
    LOOKUP_BY_KEY,
    Tracked,
    chunks,
    deletion_update,
    describe_error,
    effects_for,
    event_for,
    is_permanent,
    mls_update,
    newly_tracked_batch,
    reconcile_due,
    restoration_key,
    status_change,
)
from mls_sync.pipeline.keys import dedup_id, group_id, run_key
from mls_sync.pipeline.mls_client import (
    ClientFactory,
    CredentialsError,
    MlsClient,
    credentials_from_secret,
    replication_client_factory,
    target_of,
)
from mls_sync.pipeline.takedowns import Pending, Takedowns, brake_trips
from mls_sync.policy import TransitionPolicy
from mls_sync.queues import OutgoingMessage, QueueSender
from mls_sync.reso.client import ChangePage
from mls_sync.reso.cursor import initial_cursor
from mls_sync.reso.errors import DeadlineReached
from mls_sync.reso.records import MlsRecord, SkippedRecord
from mls_sync.status import Status
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


# ---------------------------------------------------------------------------- the run


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


@dataclass
class SyncResult:
    connection_id: str
    run_key: str
    outcome: Outcome
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    mls_requests: int = 0
    duration_ms: int = 0

    @property
    def retry(self) -> bool:
        """The job must be delivered again (some work was not done)."""
        return self.outcome in ("partial", "failed")


class _OutOfTime(Exception):  # noqa: N818 - control flow, never escapes this module
    pass


class EffectsPendingError(RuntimeError):
    """A change is recorded but one of its notifications could not be delivered yet: the
    outbox keeps it and the next delivery finishes it (never a reason to quarantine)."""


class ImplausibleAnswerError(RuntimeError):
    """The MLS answered a by-key lookup in a way no real change explains (all missing)."""


class _ChunkFailed(Exception):  # noqa: N818 - control flow, never escapes this module
    """A first sync's chunk had a failed listing before any cursor could be stored."""


def _progress(connection: Connection) -> str:
    phase = connection.by_key_phase
    return f"{phase.kind}:{phase.after}" if phase is not None else ""


class _Sync:
    def __init__(self, deps: SyncDeps, job: SyncJob, remaining_ms: Callable[[], int]) -> None:
        self.deps = deps
        self.job = job
        self.remaining_ms = remaining_ms
        self.counts: Counter[str] = Counter()
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

    # ------------------------------------------------------------------ entry

    def run(self) -> SyncResult:
        deps, job = self.deps, self.job
        started = deps.monotonic()
        connection = deps.connections.get(job.connection_id)
        if connection is None or not connection.enabled:
            state = "missing" if connection is None else "disabled"
            logger.info(
                "connection not synced", extra={"connectionId": job.connection_id, "state": state}
            )
            return SyncResult(job.connection_id, "", "skipped", {state: 1})
        key = run_key(job, connection.cursor, _progress(connection))
        self.run_key = key
        if not self._claim(key):
            logger.info(
                "duplicate sync job", extra={"connectionId": job.connection_id, "runKey": key}
            )
            return SyncResult(job.connection_id, key, "duplicate")
        client: MlsClient | None = None
        outcome: Outcome
        continued = False
        try:
            client = deps.client_factory(connection)
            self._work(connection, client)
            outcome = "partial" if self.counts["failed"] else "succeeded"
        except (_OutOfTime, DeadlineReached):
            continued = True
            outcome = "continued"
        except _ChunkFailed:
            outcome = "partial"
        except Exception as exc:  # recorded on the run and retried
            logger.exception("sync failed", extra={"connectionId": job.connection_id})
            self.errors.insert(0, describe_error(exc))
            outcome = "failed"
        finally:
            requests = client.requests_made if client is not None else 0
            if client is not None:
                with suppress(Exception):
                    client.close()
        # Whatever happened to the reads, the takedowns of the changes written are settled
        # now (sent, or held by the brake): they never wait for the rest of the run.
        if not self._settle(connection) and outcome == "succeeded":
            outcome = "partial"
        if continued:
            self._continue(connection.connection_id)
        result = SyncResult(
            connection_id=job.connection_id,
            run_key=key,
            outcome=outcome,
            counts=dict(self.counts),
            errors=self.errors[:10],
            mls_requests=requests,
            duration_ms=int((deps.monotonic() - started) * 1000),
        )
        self._finish(result)
        return result

    def _claim(self, key: str) -> bool:
        """Starts the run, or takes over one a crashed or failed delivery left behind. A run
        that succeeded or handed over to a continuation is done: the job is a duplicate."""
        run = SyncRun(
            connection_id=self.job.connection_id,
            run_key=key,
            reason=self.job.reason,
            started_at=self.now_text,
            correlation_id=self.job.correlation_id,
            ttl=int(self.now.timestamp()) + self.deps.sync_run_ttl_days * 86_400,
        )
        if self.deps.runs.start(run) is not None:
            return True
        existing = self.deps.runs.get(self.job.connection_id, key)
        if existing is None or existing.outcome in ("succeeded", "continued"):
            return False
        # FIFO groups mean no other delivery of this connection is in flight: a "running"
        # run is one whose invocation died. Conditional on the outcome we read, so of two
        # takers only one proceeds.
        return self.deps.runs.restart(run, previous_outcome=existing.outcome)

    def _finish(self, result: SyncResult) -> None:
        run = SyncRun(
            connection_id=result.connection_id,
            run_key=result.run_key,
            reason=self.job.reason,
            started_at=self.now_text,
            finished_at=format_utc(self.deps.clock()),
            outcome=result.outcome,
            counts=result.counts,
            errors=result.errors,
            mls_requests=result.mls_requests,
            duration_ms=result.duration_ms,
            correlation_id=self.job.correlation_id,
            ttl=int(self.now.timestamp()) + self.deps.sync_run_ttl_days * 86_400,
        )
        try:
            self.deps.runs.finish(run)
        except ConditionFailed:
            logger.warning("sync run was taken over", extra={"runKey": result.run_key})
        logger.info(
            "sync finished",
            extra={
                "connectionId": result.connection_id,
                "runKey": result.run_key,
                "outcome": result.outcome,
                "counts": result.counts,
                "mlsRequests": result.mls_requests,
                "durationMs": result.duration_ms,
                "correlationId": self.job.correlation_id,
            },
        )

    def _continue(self, connection_id: str) -> Outcome:
        """Hands the rest of the connection's work to a continuation job. The cursor stored
        is the last one durably applied, so the continuation starts exactly there."""
        connection = self.deps.connections.get(connection_id)
        cursor = connection.cursor if connection else None
        progress = _progress(connection) if connection else ""
        job = SyncJob(
            connection_id=connection_id,
            reason="continuation",
            slot=self.job.slot,
            correlation_id=self.job.correlation_id,
        )
        self.deps.sync_queue.send(
            [
                OutgoingMessage(
                    job,
                    group_id=group_id(connection_id),
                    dedup_id=dedup_id(job, cursor, progress),
                )
            ]
        )
        self.counts["continuations"] += 1
        logger.info("continuation enqueued", extra={"connectionId": connection_id})
        return "continued"

    def _settle(self, connection: Connection) -> bool:
        """Settles every pending takedown of the connection: sends the jobs, or holds them
        all when the connection is braked or this run trips the brake. False (and the run is
        retried) when that could not be done; the takedowns stay pending, none is lost."""
        try:
            self._settle_takedowns(connection)
        except Exception as exc:  # the marks stay on the listings: the next run settles them
            logger.exception(
                "takedowns not settled", extra={"connectionId": self.job.connection_id}
            )
            self.counts["failed"] += 1
            self.errors.insert(0, f"takedowns not settled: {describe_error(exc)}"[:300])
            return False
        return True

    def _settle_takedowns(self, connection: Connection) -> None:
        deps = self.deps
        cid = connection.connection_id
        takedowns = Takedowns(deps.listings, deps.history, deps.posts, deps.unpublish_queue)
        pending = takedowns.pending(cid, also=self.takedowns)
        affected = {lid for lid, _ in pending} | self.deleted
        if not affected:
            return
        current = deps.connections.get(cid) or connection
        if current.braked is not None:
            self.counts["takedownsHeld"] += len(pending)
            logger.warning(
                "takedowns held: the connection is braked",
                extra={"connectionId": cid, "held": len(pending), "since": current.braked.run_key},
            )
            return
        tracked = self._tracked_count()
        if brake_trips(
            len(affected),
            tracked,
            share=current.brake_share,
            minimum=current.brake_min_listings,
        ):
            self._brake(current, pending, len(affected), tracked)
            return
        sent = takedowns.deliver(pending, self.job.correlation_id)
        self.counts["unpublishJobs"] += sent

    def _brake(
        self, connection: Connection, pending: list[Pending], affected: int, tracked: int
    ) -> None:
        """Holds every pending takedown: the connection is marked braked (by this run), and
        the operator is told (event, metric, alarm)."""
        takedowns = Takedowns(
            self.deps.listings, self.deps.history, self.deps.posts, self.deps.unpublish_queue
        )
        share = affected / max(tracked, affected)
        brake = BrakeState(
            run_key=self.run_key, at=self.now_text, listings=affected, share=round(share, 4)
        )
        self.counts["takedownsHeld"] += len(pending)
        if not self.deps.connections.set_braked(connection.connection_id, brake):
            return  # tripped meanwhile by another run: that one told the operator
        self.counts["massChangeHeld"] = 1
        detail = MassChangeHeldDetail(
            connection_id=connection.connection_id,
            user_id=connection.user_id,
            run_key=self.run_key,
            listings=affected,
            posts_held=takedowns.published_posts(pending),
            share=brake.share,
            at=self.now_text,
        )
        logger.warning("mass-change brake tripped: takedowns held", extra=detail.to_item())
        try:
            self.deps.events.publish([Event(detail_type="MassChangeHeld", detail=detail)])
        except Exception:  # the brake holds regardless; the metric and alarm still fire
            logger.exception("MassChangeHeld event not delivered")
            self.counts["eventsFailed"] += 1

    def _short_of_time(self) -> bool:
        return self.remaining_ms() < self.deps.reserve_ms

    # ------------------------------------------------------------------ phases

    def _work(self, connection: Connection, client: MlsClient) -> None:
        tracked = self.tracked
        if self.job.listing_keys:
            self._resolve(self.job.listing_keys)
            wanted = [k for k in self.job.listing_keys if k in tracked.ids]
            self.counts["notTracked"] += len(self.job.listing_keys) - len(wanted)
            self._by_key(client, wanted, tracked)
            return
        phase = connection.by_key_phase
        cursor = connection.cursor
        if cursor is None:
            # First sync: what we track, by key, durably in chunks; the cursor starts before
            # the reads (stored with the first chunk's progress), so a change made during them
            # is not missed, and later runs replicate from it while the reads go on.
            if phase is None or phase.kind != "first":
                phase = None
            cursor = self._phase(connection, client, tracked, "first", phase)
            self._incremental(connection, client, cursor, tracked)
            return
        # Changes first: a long reconciliation or first sync never delays a sale's detection.
        self._incremental(connection, client, cursor, tracked)
        if phase is not None:
            self._phase(connection, client, tracked, phase.kind, phase)
        elif self.job.reason == "reconcile" or reconcile_due(
            connection, self.now, self.deps.reconcile_every_hours
        ):
            self._phase(connection, client, tracked, "reconcile", None)
        else:
            self._newly_tracked(client, tracked)

    def _phase(
        self,
        connection: Connection,
        client: MlsClient,
        tracked: Tracked,
        kind: Literal["first", "reconcile"],
        resumed: ByKeyPhase | None,
    ) -> Cursor:
        """Reads every tracked listing by key, in key order and in chunks, recording after
        each chunk how far it got: a continuation (or the next scheduled run) resumes there,
        under a run key of its own. A chunk with a failed listing ends the phase for this run
        (the next delivery reads that chunk again). Returns the connection's cursor."""
        cid = connection.connection_id
        if resumed is None:
            phase = ByKeyPhase(kind=kind, started_at=self.now_text)
            self.counts["reconciled" if kind == "reconcile" else "firstSync"] += 1
            # Listings written to the table without their key-map entry (not through
            # ListingsRepo.create) are tracked from here on.
            repaired = self.deps.listings.repair_keys(cid)
            if repaired:
                self.counts["keysRepaired"] += repaired
        else:
            phase = resumed
            self.counts["phaseResumed"] += 1
        expected = resumed
        cursor = connection.cursor
        self.counts["tracked"] = self._tracked_count()
        after = phase.after
        while True:
            if self._short_of_time():
                raise _OutOfTime
            entries = self.deps.listings.keys.page(cid, after=after, limit=self.deps.by_key_chunk)
            if not entries:
                break
            chunk = [e.listing_key for e in entries]
            tracked.add(chunk, entries)
            after = chunk[-1]
            failed_before = self.counts["failed"]
            try:
                self._by_key(client, chunk, tracked)
            except ImplausibleAnswerError as exc:
                self.counts["failed"] += 1
                self.counts["implausibleAnswers"] += 1
                self.errors.insert(0, str(exc))
                logger.warning(str(exc), extra={"connectionId": cid})
            if self.counts["failed"] > failed_before:
                # Progress stops before this chunk; the run is partial and retried.
                if cursor is None:
                    raise _ChunkFailed
                return cursor
            moved = phase.model_copy(update={"after": chunk[-1]})
            first_cursor = None
            if cursor is None:
                first_cursor = self._first_cursor(phase, client)
            self.deps.connections.save_phase(cid, moved, expected=expected, cursor=first_cursor)
            cursor = cursor or first_cursor
            expected = moved
            if len(entries) < self.deps.by_key_chunk:
                break
        if cursor is None:
            # Nothing tracked (or all already read): start replicating from the phase's start.
            cursor = self._first_cursor(phase, client)
            self.deps.connections.advance_cursor(
                cid, cursor, expected=None, synced_at=self.now_text
            )
        self.deps.connections.finish_phase(cid, expected=expected, reconciled_at=phase.started_at)
        self.counts["phaseCompleted"] += 1
        return cursor

    def _first_cursor(self, phase: ByKeyPhase, client: MlsClient) -> Cursor:
        """A little before the phase began, on the MLS's clock where it is behind ours (a
        cursor ahead of the server would skip what changes there meanwhile), spelled the way
        this MLS spells its timestamps (a server comparing literals as text matches only its
        own form)."""
        began = Instant.parse(phase.started_at).to_datetime()
        elapsed = self.deps.clock() - began
        server_began = client.server_now() - max(elapsed, timedelta(0))
        return initial_cursor(min(began, server_began), like=self.sample_timestamp)

    def _newly_tracked(self, client: MlsClient, tracked: Tracked) -> None:
        """Listings added after the cursor passed their last MLS change would otherwise wait
        for the next reconciliation: look up the new ones (the key map's sparse ``byNew``
        index, one query) by key now, at most ``newly_tracked_limit`` a run. Each is taken
        out of the index once read (or found unaskable), so none is looked up twice."""
        entries = self.deps.listings.keys.new(
            self.job.connection_id, limit=self.deps.newly_tracked_limit
        )
        if not entries:
            return
        keys = [e.listing_key for e in entries]
        tracked.add(keys, entries)
        for chunk in chunks(keys, self.deps.by_key_chunk):
            # Counted as asked: those the MLS cannot be asked about (no ListingId yet on
            # MLS Grid) wait for a record of their own and cost no request.
            self.counts["newlyTracked"] += self._by_key(client, chunk, tracked)

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

    def _by_key(self, client: MlsClient, keys: list[str], tracked: Tracked) -> int:
        """Reads ``keys`` by key and applies what the MLS says; a listing it no longer
        returns (asked twice) is deleted. MLS Grid cannot filter on ListingKey and is asked by
        ListingId, for the listings whose ListingId we know; the others are counted
        ``notReconcilable`` and left alone."""
        if not keys:
            return 0
        prefetched = self._prefetch_ids([tracked.ids[k] for k in keys if k in tracked.ids])
        asked = tracked.lookup_values(keys, client.lookup_field)
        self.counts["notReconcilable"] += len(keys) - len(asked)
        unaskable = set(keys) - set(asked.values())
        self._confirm([k for k in keys if k in unaskable])
        if not asked:
            self._flush()
            return 0
        if self._short_of_time():
            raise _OutOfTime
        lookup = client.fetch_by_keys(list(asked), deadline=self.deadline)
        if (
            len(asked) >= IMPLAUSIBLE_MISSING
            and len(lookup.missing) == len(asked)
            and not lookup.found
            and not lookup.skipped
        ):
            raise ImplausibleAnswerError(
                f"the MLS returned none of {len(asked)} listings asked for by key: "
                "taken as a server failure, nothing deleted"
            )
        self.counts["recordsRead"] += len(lookup.found) + len(lookup.skipped)
        self.counts["readByKey"] += len(lookup.found) + len(lookup.skipped)
        self._note_skipped(lookup.skipped, tracked)
        self._note_clock(client)
        self._resolve(r.listing_key for r in lookup.found.values())
        for value, record in lookup.found.items():
            # Applied by its own ListingKey, never by what we asked: a ListingId we hold that
            # now names another MLS listing must neither give ours that listing's status nor
            # call ours deleted (the next record of ours stores its current ListingId).
            self._record(record, tracked, prefetched)
            key = asked.get(value)
            if key is not None and record.listing_key != key:
                self.counts["lookupMismatch"] += 1
                if len(self.errors) < 10:
                    self.errors.append(f"{key}: ListingId {value} is now {record.listing_key}")
        for value in lookup.missing:
            key = asked[value]
            listing_id = tracked.ids[key]
            if self._guarded(key, listing_id, functools.partial(self._missing, listing_id)):
                self._confirm([key])
        self._flush()
        return len(asked)

    def _incremental(
        self, connection: Connection, client: MlsClient, cursor: Cursor, tracked: Tracked
    ) -> None:
        expected = cursor
        held = False
        pages = client.changes(
            cursor, overlap_seconds=connection.overlap_seconds, deadline=self.deadline
        )
        for page in pages:
            self.counts["pages"] += 1
            self.counts["recordsRead"] += len(page.records) + len(page.skipped)
            self._resolve(
                [r.listing_key for r in page.records]
                + [k.listing_key for k in page.skipped if k.listing_key]
            )
            self._note_skipped(page.skipped, tracked)
            self._note_page(page)
            failed_before = self.counts["failed"]
            self._note_clock(client)
            prefetched = self._prefetch(page.records, tracked)
            for record in page.records:
                self._record(record, tracked, prefetched)
            self._flush()
            if self.counts["failed"] > failed_before:
                # Not durably applied: the cursor stays before this page, so the next
                # delivery reads it again (applied records are then no-ops).
                held = True
            if not held and page.cursor != expected:
                self.deps.connections.advance_cursor(
                    connection.connection_id,
                    page.cursor,
                    expected=expected,
                    synced_at=self.now_text,
                )
                expected = page.cursor
            if page.complete:
                return
            if self._short_of_time():
                raise _OutOfTime

    def _note_page(self, page: ChangePage) -> None:
        """Records stamped ahead of the MLS's own clock are applied, but the cursor stops at
        that clock (so one bad stamp cannot blind the connection): counted and named. A page
        read in the client's slower safe mode (the server did not order as asked) too."""
        if page.future:
            self.counts["futureStamped"] += len(page.future)
            logger.warning(
                "records stamped in the future: applied, cursor held at the MLS's clock",
                extra={"connectionId": self.job.connection_id, "listingKeys": page.future[:20]},
            )
        if page.degraded and not self.counts["degraded"]:
            self.counts["degraded"] = 1
            if len(self.errors) < 10:
                self.errors.append(f"degraded paging: {page.degraded}"[:300])

    def _note_skipped(self, skipped: Sequence[SkippedRecord], tracked: Tracked) -> None:
        """Records the client could not read. One naming a listing we track is quarantined
        on it, so the agent's listing shows why it is not in step (``dump``, ``report``)."""
        for item in skipped:
            self.counts["skipped"] += 1
            if len(self.errors) < 10:
                self.errors.append(f"skipped {item.listing_key or '?'}: {item.reason}"[:300])
            listing_id = tracked.ids.get(item.listing_key or "")
            if listing_id is not None:
                self._quarantine(
                    item.listing_key or "", listing_id, f"unreadable MLS record: {item.reason}"
                )

    # ------------------------------------------------------------------ one listing

    def _note_clock(self, client: MlsClient) -> None:
        now = Instant.from_datetime(client.server_now())
        self.not_after = Instant(now.epoch_ns + FUTURE_SKEW_SECONDS * 1_000_000_000)

    def _prefetch(self, records: Iterable[MlsRecord], tracked: Tracked) -> dict[str, Listing]:
        """The tracked listings these records name, read in batches: one call per 100
        records instead of one each. Untracked records cost nothing."""
        return self._prefetch_ids(
            [tracked.ids[r.listing_key] for r in records if r.listing_key in tracked.ids]
        )

    def _prefetch_ids(self, ids: list[str]) -> dict[str, Listing]:
        if not ids:
            return {}
        try:
            found = self.deps.listings.get_many(ids)
        except Exception:  # each listing is then read on its own, and fails on its own
            logger.exception("batch read failed", extra={"connectionId": self.job.connection_id})
            return {}
        self.tracked.note(found.values())
        return found

    def _record(
        self, record: MlsRecord, tracked: Tracked, prefetched: dict[str, Listing] | None = None
    ) -> None:
        listing_id = tracked.ids.get(record.listing_key)
        if listing_id is None:
            self.counts["untracked"] += 1
            return
        if self.sample_timestamp is None and record.modification.raw:
            self.sample_timestamp = record.modification.raw
        update = mls_update(record, self.now_text, not_after=self.not_after)
        # Used once: a second record of the same listing in the page reads what the first
        # wrote (a stale copy would only cost a refused write and a re-read).
        listing = prefetched.pop(listing_id, None) if prefetched else None
        if listing is not None and (
            listing.listing_key != record.listing_key
            or listing.connection_id != self.job.connection_id
        ):
            # The key map is behind: the listing now names another key (or connection).
            self.counts["untracked"] += 1
            return
        if self._guarded(
            record.listing_key, listing_id, lambda: self._apply(listing_id, update, listing)
        ):
            self._confirm([record.listing_key])

    def _guarded(self, listing_key: str, listing_id: str, work: Callable[[], None]) -> bool:
        """One failing listing never stops the others, and never stops its connection for
        good: a failure retrying cannot cure (or one that keeps coming back) quarantines the
        listing and the sync moves on; any other failure is counted, named and retried by
        the next delivery (the cursor stays before its page)."""
        try:
            work()
        except EffectsPendingError as exc:  # the change is recorded; the outbox finishes it
            self.counts["failed"] += 1
            self.counts["effectsPending"] += 1
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
                self.counts["failed"] += 1
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
        self.counts["quarantined"] += 1
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
            self.counts["quarantineCleared"] += 1

    def _missing(self, listing_id: str) -> None:
        raw = self.deps.listings.get_raw(listing_id)
        listing = Listing.model_validate(raw) if raw else None
        if raw is None or listing is None or listing.sync_excluded:
            self.counts["excluded" if listing else "vanished"] += 1
            return
        if listing.status is Status.DELETED:
            # Already deleted: finish the deletion's effects if a crash left them pending
            # (its change key came from the detection time, which a retry cannot recompute).
            latest = self._latest_change(listing)
            if latest is not None and latest.pending_effects:
                self._deliver(latest)
            self.counts["unchanged"] += 1
            return
        update = deletion_update(self.now)
        self._finish_pending(listing, update)
        change = status_change(
            listing,
            update,
            policy=self.deps.policy,
            source=self.source,
            correlation_id=self.job.correlation_id,
        )
        assert change is not None  # the listing is not deleted yet
        result = self.deps.listings.delete_by_detection(
            listing, update, change, raw.get("mlsModifiedKey")
        )
        if result.applied:
            self.counts["statusChanges"] += 1
            self.counts[f"{change.from_status}>{change.to_status}"] += 1
            self._deliver(change)
            return
        # Not retried here: a record applied since the read (``stale``) means the MLS spoke
        # after all; any other refusal is decided again by the next reconciliation.
        self.counts["deletionRefused" if result.reason == "stale" else "unchanged"] += 1

    def _apply(
        self,
        listing_id: str,
        update: MlsUpdate,
        listing: Listing | None = None,
        *,
        batch: bool = True,
    ) -> None:
        current = listing or self.deps.listings.get(listing_id)
        for _ in range(3):
            if current is None:
                self.counts["vanished"] += 1
                return
            if current.sync_excluded:
                self.counts["excluded"] += 1
                return
            if is_stale(current, update):
                # Decided in memory: no write, and the change's pending effects (if a
                # delivery crashed) are looked up with the page's others in one read.
                self.counts["unchanged"] += 1
                self._cleared(current)
                self._seen(listing_id, update, current)
                return
            self._finish_pending(current, update)
            change = status_change(
                current,
                update,
                policy=self.deps.policy,
                source=self.source,
                correlation_id=self.job.correlation_id,
            )
            if change is None and batch:
                if any(queued.listing_id == listing_id for queued, _ in self.writes):
                    self._flush_writes()  # one write per listing in a transaction
                self.writes.append((current, update))
                return
            result = self.deps.listings.apply(current, update, change)
            if result.applied:
                self._cleared(current)
                if change is None:
                    self.counts["updated"] += 1
                else:
                    self.counts["statusChanges"] += 1
                    self.counts[f"{change.from_status}>{change.to_status}"] += 1
                    self._deliver(change, now=False)
                return
            if result.reason == "status_moved":
                current = result.current  # decide again from what is there now
                continue
            if result.reason in ("stale", "duplicate_change"):
                self.counts["unchanged"] += 1
                self._cleared(result.current)
                if result.current is not None:
                    self._seen(listing_id, update, result.current)
                return
            self.counts["excluded" if result.reason == "excluded" else "vanished"] += 1
            return
        raise RuntimeError(f"listing {listing_id} kept changing under the sync")

    # ------------------------------------------------------------------ effects (outbox)

    def _finish_pending(self, listing: Listing, update: MlsUpdate) -> None:
        """A newer record is about to be applied: first deliver what a crashed delivery left
        pending on the listing's latest change. SQS redelivers after the visibility timeout,
        by when the MLS may have re-stamped or changed the listing: the record read then is
        not the one whose change is pending, so ``_resume`` (by the record's own change key)
        would never find it, and the sale's event and unpublish jobs would be lost. Costs a
        read only for a listing we changed before and a record newer than what we hold."""
        if listing.status_changed_at is None:
            return  # never changed by a sync: no history entry of ours
        if (
            listing.mls_modified_at is not None
            and not listing.deleted_by_detection
            and Instant.parse(listing.mls_modified_at) >= update.modified
        ):
            # Stale: _resume finishes this record's own change. After a deletion by
            # detection a record at the stored time is applied, and the deletion's
            # effects must go first.
            return
        latest = self._latest_change(listing)
        if latest is not None and latest.pending_effects:
            self.counts["effectsResumed"] += 1
            self._deliver(latest)

    def _latest_change(self, listing: Listing) -> StatusChange | None:
        """The history entry of the change that gave the listing its current status. Found by
        its own key where the listing says which it is (a deletion by detection is keyed by
        its detection time, a restoration after it remembers its key), not as the newest key:
        an entry of a record stamped in the future outranks later changes by key."""
        keys: list[str] = []
        if listing.deleted_by_detection and listing.status_changed_at is not None:
            keys.append(change_key(Instant.parse(listing.status_changed_at), Status.DELETED))
        if listing.restored_change_key:
            keys.append(listing.restored_change_key)
        if listing.mls_modified_at is not None and not listing.deleted_by_detection:
            keys.append(change_key(Instant.parse(listing.mls_modified_at), listing.status))
        for key in keys:
            entry = self.deps.history.get(listing.listing_id, key)
            if entry is not None and entry.to_status == listing.status:
                return entry
        # The listing's last write was not a status change (a re-stamp moved its MLS time):
        # its status came from an older entry, the newest by key as a rule.
        latest = self.deps.history.list_for_listing(listing.listing_id, limit=1)
        return latest[0] if latest else None

    def _seen(self, listing_id: str, update: MlsUpdate, seen: Listing) -> None:
        """A record already applied. The first confirmation (or a first ListingId) is noted
        once, so later re-reads cost no write; whatever effects of its change are pending
        (a delivery crashed between the write and the effects) are looked up at the end of
        the page, with the others', in one read."""
        if seen.synced_at is None or (
            update.mls_listing_id is not None and seen.mls_listing_id is None
        ):
            self.deps.listings.note_seen(listing_id, update)
        self.resumes.append((listing_id, update, seen))

    def _resume_all(self) -> None:
        """Delivers the pending effects of the changes the page's re-read records made. A
        restoration after a deletion by detection is keyed off the deletion: the listing
        remembers that key until its next write."""
        resumes, self.resumes = self.resumes, []
        if not resumes:
            return
        wanted: list[tuple[str, str]] = []
        for listing_id, update, seen in resumes:
            if seen.restored_change_key:
                wanted.append((listing_id, seen.restored_change_key))
            wanted.append((listing_id, change_key(update.modified, update.status)))
        entries = self.deps.history.get_many(wanted)
        for listing_id, update, seen in resumes:
            entry: StatusChange | None = None
            if seen.restored_change_key:
                # Checked first: an entry from before the deletion may hold the record's key.
                entry = entries.get((listing_id, seen.restored_change_key))
                if entry is not None and (
                    entry.to_status != update.status
                    or entry.mls_modified_at != update.modified.iso_micro()
                ):
                    entry = None  # the restoration came from another record
            if entry is None:
                entry = entries.get((listing_id, change_key(update.modified, update.status)))
            if entry is not None and entry.pending_effects:
                self.counts["effectsResumed"] += 1
                self._guarded(seen.listing_key, listing_id, functools.partial(self._deliver, entry))

    def _confirm(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key in self.tracked.new:
                self.tracked.new.discard(key)
                self.confirmed.append(KeyEntry(key, self.tracked.ids[key], new=True))

    def _flush(self) -> None:
        """The end of a page or chunk: the batched writes, then the effects looked up and
        the events published, then the new listings read taken out of ``byNew``."""
        self._flush_writes()
        self._resume_all()
        self._flush_events()
        confirmed, self.confirmed = self.confirmed, []
        if confirmed:
            try:
                self.deps.listings.keys.confirm(self.job.connection_id, confirmed)
            except Exception:  # costs a second lookup next run, nothing else
                logger.exception("new listings not confirmed", extra={"count": len(confirmed)})

    def _flush_writes(self) -> None:
        """Applies the queued records that change no status, 100 to a transaction; when any
        was refused (the listing moved meanwhile) each is applied on its own instead."""
        writes, self.writes = self.writes, []
        if not writes:
            return
        try:
            applied = self.deps.listings.apply_many(writes)
        except Exception:  # one bad record must fail alone: each is tried on its own
            logger.warning("batched writes failed; applying one by one", exc_info=True)
            applied = False
        if applied:
            for listing, _update in writes:
                self.counts["updated"] += 1
                self._cleared(listing)
            return
        self.counts["batchesRetried"] += 1
        for listing, update in writes:
            self._guarded(
                listing.listing_key,
                listing.listing_id,
                functools.partial(self._apply, listing.listing_id, update, batch=False),
            )

    def _flush_events(self) -> None:
        """Publishes the events of the changes written, ten to a call, and ticks each off.
        When a batch is refused each of its events is tried on its own, so one the bus
        will not take leaves only its own change pending (and the page is read again)."""
        outbox, self.outbox = self.outbox, []
        for start in range(0, len(outbox), 10):
            batch = outbox[start : start + 10]
            try:
                self.deps.events.publish([event_for(c, self.deps.policy) for c in batch])
            except Exception:  # each on its own: the failure stays with its listing
                logger.warning("event batch refused; publishing one by one", exc_info=True)
                for change in batch:
                    self._guarded(
                        change.listing_key or change.listing_id,
                        change.listing_id,
                        functools.partial(self._deliver, change),
                    )
                continue
            for change in batch:
                self.counts["events"] += 1
                try:
                    self.deps.history.complete_effect(
                        change.listing_id, change.change_key, EFFECT_EVENT
                    )
                except Exception as exc:  # delivered again by a redelivery: at least once
                    logger.exception("event delivered, not ticked off")
                    self.counts["failed"] += 1
                    self.counts["effectsPending"] += 1
                    self.errors.append(f"{change.listing_id}: {describe_error(exc)}"[:300])

    def _deliver(self, change: StatusChange, *, now: bool = True) -> None:
        """Delivers a change's outbox. Each effect on its own: the takedown is only noted
        here (settled for the whole connection at the end of the run, behind the brake), so a
        failing event bus can delay the event and nothing else. ``now=False`` queues the
        event for the page's batch (a change just written); a pending change found before a
        newer record is written is delivered at once (after that write it could no longer be
        found)."""
        pending = set(change.pending_effects)
        if change.to_status is Status.DELETED:
            self.deleted.add(change.listing_id)
        if EFFECT_UNPUBLISH in pending:
            self.takedowns.add((change.listing_id, change.change_key))
        if EFFECT_EVENT not in pending:
            return
        if not now:
            self.outbox.append(change)
            return
        try:
            self.deps.events.publish([event_for(change, self.deps.policy)])
            self.deps.history.complete_effect(change.listing_id, change.change_key, EFFECT_EVENT)
        except Exception as exc:
            raise EffectsPendingError(f"event not delivered yet: {describe_error(exc)}") from exc
        self.counts["events"] += 1


def sync_connection(job: SyncJob, deps: SyncDeps, remaining_ms: Callable[[], int]) -> SyncResult:
    """Runs one SyncJob to its end (or to a continuation) and records it as a SyncRun.

    Never raises for a failure it can record: the result's ``retry`` says whether the
    message must be delivered again."""
    return _Sync(deps, job, remaining_ms).run()


__all__ = [
    "BY_KEY_CHUNK",
    "EFFECT_EVENT",
    "EFFECT_UNPUBLISH",
    "LOOKUP_BY_ID",
    "LOOKUP_BY_KEY",
    "ClientFactory",
    "CredentialsError",
    "EffectsPendingError",
    "ImplausibleAnswerError",
    "MlsClient",
    "SyncDeps",
    "SyncResult",
    "Tracked",
    "chunks",
    "credentials_from_secret",
    "deletion_update",
    "describe_error",
    "effects_for",
    "event_for",
    "is_permanent",
    "mls_update",
    "newly_tracked_batch",
    "reconcile_due",
    "replication_client_factory",
    "restoration_key",
    "status_change",
    "sync_connection",
    "target_of",
]
