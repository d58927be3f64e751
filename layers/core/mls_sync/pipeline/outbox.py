"""The outbox: a change's effects (its event, its takedown) delivered after its write,
found again after a crash, and the takedowns settled behind the mass-change brake."""

from __future__ import annotations

import functools

from aws_lambda_powertools import Logger

from mls_sync.dal.history import change_key
from mls_sync.dal.listings import MlsUpdate
from mls_sync.events import Event
from mls_sync.models import BrakeState, Connection, Listing, MassChangeHeldDetail, StatusChange
from mls_sync.pipeline.decisions import EFFECT_EVENT, EFFECT_UNPUBLISH, describe_error, event_for
from mls_sync.pipeline.run_state import EffectsPendingError, RunState
from mls_sync.pipeline.takedowns import Pending, Takedowns, brake_trips
from mls_sync.status import Status
from mls_sync.timeutil import Instant

logger = Logger(child=True)


class Outbox(RunState):
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
            self.counts.failed += 1
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
            self.counts.takedowns_held += len(pending)
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
        self.counts.unpublish_jobs += sent

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
        self.counts.takedowns_held += len(pending)
        if not self.deps.connections.set_braked(connection.connection_id, brake):
            return  # tripped meanwhile by another run: that one told the operator
        self.counts.mass_change_held = 1
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
            self.counts.events_failed += 1

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
            self.counts.effects_resumed += 1
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
                self.counts.effects_resumed += 1
                self._guarded(seen.listing_key, listing_id, functools.partial(self._deliver, entry))

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
                self.counts.events += 1
                try:
                    self.deps.history.complete_effect(
                        change.listing_id, change.change_key, EFFECT_EVENT
                    )
                except Exception as exc:  # delivered again by a redelivery: at least once
                    logger.exception("event delivered, not ticked off")
                    self.counts.failed += 1
                    self.counts.effects_pending += 1
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
        self.counts.events += 1
