"""Applying MLS records to listings: read in batches, decided in memory, written
conditionally (in transactions of 100 where no status changes), one listing's failure its own."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from aws_lambda_powertools import Logger

from mls_sync.dal.listing_keys import KeyEntry
from mls_sync.dal.listings import MlsUpdate, is_stale
from mls_sync.models import (
    Listing,
    StatusChange,
)
from mls_sync.pipeline.decisions import (
    Tracked,
    deletion_update,
    mls_update,
    status_change,
)
from mls_sync.pipeline.outbox import Outbox
from mls_sync.reso.records import MlsRecord
from mls_sync.status import Status

logger = Logger(child=True)


class Applier(Outbox):
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
            self.counts.untracked += 1
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
            self.counts.untracked += 1
            return
        if self._guarded(
            record.listing_key, listing_id, lambda: self._apply(listing_id, update, listing)
        ):
            self._confirm([record.listing_key])

    def _missing(self, listing_id: str) -> None:
        listing = self.deps.listings.get(listing_id)
        if listing is None or listing.sync_excluded:
            if listing:
                self.counts.excluded += 1
            else:
                self.counts.vanished += 1
            return
        if listing.status is Status.DELETED:
            # Already deleted: finish the deletion's effects if a crash left them pending
            # (its change key came from the detection time, which a retry cannot recompute).
            latest = self._latest_change(listing)
            if latest is not None and latest.pending_effects:
                self._deliver(latest)
            self.counts.unchanged += 1
            return
        update = deletion_update(self.now)
        self._finish_pending(listing, update)
        change = self._change(listing, update)
        assert change is not None  # the listing is not deleted yet
        result = self.deps.listings.delete_by_detection(
            listing, update, change, listing.mls_modified_key
        )
        if result.applied:
            self.counts.status_changed(change.from_status, change.to_status)
            self._deliver(change)
            return
        # Not retried here: a record applied since the read (``stale``) means the MLS spoke
        # after all; any other refusal is decided again by the next reconciliation.
        if result.reason == "stale":
            self.counts.deletion_refused += 1
        else:
            self.counts.unchanged += 1

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
                self.counts.vanished += 1
                return
            if current.sync_excluded:
                self.counts.excluded += 1
                return
            if is_stale(current, update):
                # Decided in memory: no write, and the change's pending effects (if a
                # delivery crashed) are looked up with the page's others in one read.
                self.counts.unchanged += 1
                self._cleared(current)
                self._seen(listing_id, update, current)
                return
            self._finish_pending(current, update)
            change = self._change(current, update)
            if change is None and batch:
                if any(queued.listing_id == listing_id for queued, _ in self.writes):
                    self._flush_writes()  # one write per listing in a transaction
                self.writes.append((current, update))
                return
            result = self.deps.listings.apply(current, update, change)
            if result.applied:
                self._cleared(current)
                if change is None:
                    self.counts.updated += 1
                else:
                    self.counts.status_changed(change.from_status, change.to_status)
                    self._deliver(change, now=False)
                return
            if result.reason == "status_moved":
                current = result.current  # decide again from what is there now
                continue
            if result.reason in ("stale", "duplicate_change"):
                self.counts.unchanged += 1
                self._cleared(result.current)
                if result.current is not None:
                    self._seen(listing_id, update, result.current)
                return
            if result.reason == "excluded":
                self.counts.excluded += 1
            else:
                self.counts.vanished += 1
            return
        raise RuntimeError(f"listing {listing_id} kept changing under the sync")

    def _change(self, listing: Listing, update: MlsUpdate) -> StatusChange | None:
        """The status change ``update`` makes to ``listing`` under this run's policy, if any."""
        return status_change(
            listing,
            update,
            policy=self.deps.policy,
            source=self.source,
            correlation_id=self.job.correlation_id,
        )

    def _seen(self, listing_id: str, update: MlsUpdate, seen: Listing) -> None:
        """A record already applied. The first confirmation (or a first ListingId) is noted
        once, so later re-reads cost no write; whatever effects of its change are pending
        (a delivery crashed between the write and the effects) are looked up at the end of
        the page, with the others', in one read."""
        if seen.synced_at is None or (
            update.mls_listing_id is not None and seen.mls_listing_id is None
        ):
            self.deps.listings.note_seen(listing_id, update)
        # Only the change that gave the listing what it holds can still have effects
        # pending: an older record's change was superseded by a newer write, and every
        # newer write first delivers what the change before it left pending
        # (``_finish_pending``). A listing no sync ever changed has no change of ours.
        if seen.status_changed_at is not None and (
            seen.restored_change_key is not None
            or seen.mls_modified_at == update.modified.iso_micro()
        ):
            self.resumes.append((listing_id, update, seen))

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
                self.counts.updated += 1
                self._cleared(listing)
            return
        self.counts.batches_retried += 1
        for listing, update in writes:
            self._guarded(
                listing.listing_key,
                listing.listing_id,
                functools.partial(self._apply, listing.listing_id, update, batch=False),
            )
