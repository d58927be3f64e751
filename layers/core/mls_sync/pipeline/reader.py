"""Reading the MLS for a run: changes since the cursor, new listings by key, and the
by-key phases (first sync, reconciliation) in durable chunks."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from aws_lambda_powertools import Logger

from mls_sync.models import (
    ByKeyPhase,
    Connection,
    Cursor,
)
from mls_sync.pipeline.applier import Applier
from mls_sync.pipeline.decisions import (
    Tracked,
    chunks,
    reconcile_due,
)
from mls_sync.pipeline.mls_client import (
    MlsClient,
)
from mls_sync.pipeline.run_state import (
    FUTURE_SKEW_SECONDS,
    IMPLAUSIBLE_MISSING,
    ChunkFailed,
    ImplausibleAnswerError,
    OutOfTime,
)
from mls_sync.reso.client import ChangePage
from mls_sync.reso.cursor import initial_cursor
from mls_sync.reso.records import SkippedRecord
from mls_sync.timeutil import Instant

logger = Logger(child=True)


class Reader(Applier):
    def _work(self, connection: Connection, client: MlsClient) -> None:
        tracked = self.tracked
        if self.job.listing_keys:
            self._resolve(self.job.listing_keys)
            wanted = [k for k in self.job.listing_keys if k in tracked.ids]
            self.counts.not_tracked += len(self.job.listing_keys) - len(wanted)
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
            if kind == "reconcile":
                self.counts.reconciled += 1
            else:
                self.counts.first_sync += 1
            # Listings written to the table without their key-map entry (not through
            # ListingsRepo.create) are tracked from here on.
            repaired = self.deps.listings.repair_keys(cid)
            if repaired:
                self.counts.keys_repaired += repaired
        else:
            phase = resumed
            self.counts.phase_resumed += 1
        expected = resumed
        cursor = connection.cursor
        self.counts.tracked = self._tracked_count()
        after = phase.after
        while True:
            if self._short_of_time():
                raise OutOfTime
            entries = self.deps.listings.keys.page(cid, after=after, limit=self.deps.by_key_chunk)
            if not entries:
                break
            chunk = [e.listing_key for e in entries]
            tracked.add(chunk, entries)
            after = chunk[-1]
            failed_before = self.counts.failed
            try:
                self._by_key(client, chunk, tracked)
            except ImplausibleAnswerError as exc:
                self.counts.failed += 1
                self.counts.implausible_answers += 1
                self.errors.insert(0, str(exc))
                logger.warning(str(exc), extra={"connectionId": cid})
            if self.counts.failed > failed_before:
                # Progress stops before this chunk; the run is partial and retried.
                if cursor is None:
                    raise ChunkFailed
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
        self.counts.phase_completed += 1
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
            self.counts.newly_tracked += self._by_key(client, chunk, tracked)

    def _by_key(
        self, client: MlsClient, keys: list[str], tracked: Tracked, *, expect_missing: bool = False
    ) -> int:
        """Reads ``keys`` by key and applies what the MLS says; a listing it no longer
        returns (asked twice) is deleted. MLS Grid cannot filter on ListingKey and is asked
        by ListingId, for the listings whose ListingId we know; the others are counted
        ``notReconcilable`` and left alone. ``expect_missing``: the keys come from a change
        log or a push, so all of them gone is plausible (deletions), not an outage."""
        if not keys:
            return 0
        prefetched = self._prefetch_ids([tracked.ids[k] for k in keys if k in tracked.ids])
        asked = tracked.lookup_values(keys, client.lookup_field)
        self.counts.not_reconcilable += len(keys) - len(asked)
        unaskable = set(keys) - set(asked.values())
        self._confirm([k for k in keys if k in unaskable])
        if not asked:
            self._flush()
            return 0
        if self._short_of_time():
            raise OutOfTime
        lookup = client.fetch_by_keys(list(asked), deadline=self.deadline)
        if (
            not expect_missing
            and len(asked) >= IMPLAUSIBLE_MISSING
            and len(lookup.missing) == len(asked)
            and not lookup.found
            and not lookup.skipped
        ):
            raise ImplausibleAnswerError(
                f"the MLS returned none of {len(asked)} listings asked for by key: "
                "taken as a server failure, nothing deleted"
            )
        self.counts.records_read += len(lookup.found) + len(lookup.skipped)
        self.counts.read_by_key += len(lookup.found) + len(lookup.skipped)
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
                self.counts.lookup_mismatch += 1
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
            self.counts.pages += 1
            self.counts.records_read += len(page.records) + len(page.skipped)
            self._resolve(
                [r.listing_key for r in page.records]
                + [k.listing_key for k in page.skipped if k.listing_key]
            )
            self._note_skipped(page.skipped, tracked)
            self._note_page(page)
            failed_before = self.counts.failed
            self._note_clock(client)
            prefetched = self._prefetch(page.records, tracked)
            for record in page.records:
                self._record(record, tracked, prefetched)
            self._flush()
            if self.counts.failed > failed_before:
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
                raise OutOfTime

    def _note_page(self, page: ChangePage) -> None:
        """Records stamped ahead of the MLS's own clock are applied, but the cursor stops at
        that clock (so one bad stamp cannot blind the connection): counted and named. A page
        read in the client's slower safe mode (the server did not order as asked) too."""
        if page.future:
            self.counts.future_stamped += len(page.future)
            logger.warning(
                "records stamped in the future: applied, cursor held at the MLS's clock",
                extra={"connectionId": self.job.connection_id, "listingKeys": page.future[:20]},
            )
        if page.degraded and not self.counts.degraded:
            self.counts.degraded = 1
            if len(self.errors) < 10:
                self.errors.append(f"degraded paging: {page.degraded}"[:300])

    def _note_skipped(self, skipped: Sequence[SkippedRecord], tracked: Tracked) -> None:
        """Records the client could not read. One naming a listing we track is quarantined
        on it, so the agent's listing shows why it is not in step (``dump``, ``report``)."""
        for item in skipped:
            self.counts.skipped += 1
            if len(self.errors) < 10:
                self.errors.append(f"skipped {item.listing_key or '?'}: {item.reason}"[:300])
            listing_id = tracked.ids.get(item.listing_key or "")
            if listing_id is not None:
                self._quarantine(
                    item.listing_key or "", listing_id, f"unreadable MLS record: {item.reason}"
                )

    def _note_clock(self, client: MlsClient) -> None:
        now = Instant.from_datetime(client.server_now())
        self.not_after = Instant(now.epoch_ns + FUTURE_SKEW_SECONDS * 1_000_000_000)
