"""The worker's decisions, pure: what a record says, the history entry and outbox of a
status change, when a reconciliation is due, which failures are permanent. No AWS here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from mls_sync.dal.history import change_key
from mls_sync.dal.listing_keys import KeyEntry
from mls_sync.dal.listings import MlsUpdate
from mls_sync.events import Event
from mls_sync.models import (
    ChangeSource,
    Connection,
    Listing,
    ListingEventDetail,
    StatusChange,
)
from mls_sync.pipeline.keys import digest
from mls_sync.policy import Action, TransitionPolicy
from mls_sync.reso.records import MlsRecord
from mls_sync.run_failure import FailureText, failure_of
from mls_sync.status import Status
from mls_sync.timeutil import Instant, format_utc

LOOKUP_BY_KEY = "ListingKey"
LOOKUP_BY_ID = "ListingId"

EFFECT_EVENT = "event"
EFFECT_UNPUBLISH = "unpublish"


def mls_update(record: MlsRecord, synced_at: str, *, not_after: Instant | None = None) -> MlsUpdate:
    """What one record says: a record the vendor flags as not visible is a deletion.

    A record stamped after ``not_after`` (the MLS's own clock plus a small skew) is taken as
    changed at ``not_after``: stored with its real stamp, a bogus one (``2027-…``, a zone bug)
    would make the MLS's next real change of the listing look older, and refused, until real
    time caught up; re-read later, it simply applies again."""
    if not record.visible or record.standard_status is None:
        status = Status.DELETED
    else:
        status = record.standard_status.status
    modified = record.modification
    if not_after is not None and modified > not_after:
        modified = Instant(not_after.epoch_ns)
    return MlsUpdate(
        status=status,
        standard_status=record.standard_status.value if record.standard_status else None,
        mls_status=record.mls_status,
        modified=modified,
        synced_at=synced_at,
        mls_listing_id=record.listing_id,
    )


def deletion_update(detected: datetime) -> MlsUpdate:
    """A listing the MLS no longer returns for its key: deleted as of the detection. The
    detection time names the change (history key, event) but is never stored as the
    listing's MLS time (``ListingsRepo.delete_by_detection``)."""
    return MlsUpdate(
        status=Status.DELETED,
        standard_status=None,
        mls_status=None,
        modified=Instant.from_datetime(detected),
        synced_at=format_utc(detected),
    )


def effects_for(policy: TransitionPolicy, from_status: Status | None, to: Status) -> list[str]:
    """The outbox of a status change: always an event; unpublish when the policy says so."""
    effects = [EFFECT_EVENT]
    if Action.UNPUBLISH in policy.actions(from_status, to):
        effects.append(EFFECT_UNPUBLISH)
    return effects


def status_change(
    listing: Listing,
    update: MlsUpdate,
    *,
    policy: TransitionPolicy,
    source: ChangeSource,
    correlation_id: str,
) -> StatusChange | None:
    """The history entry for applying ``update`` to ``listing``; None when the status stays."""
    if update.status == listing.status:
        return None
    return StatusChange(
        listing_id=listing.listing_id,
        change_key=restoration_key(listing, update) or change_key(update.modified, update.status),
        from_status=listing.status,
        to_status=update.status,
        standard_status=update.standard_status,
        mls_status=update.mls_status,
        mls_modified_at=update.modified.iso_micro(),
        detected_at=update.synced_at,
        source=source,
        correlation_id=correlation_id,
        connection_id=listing.connection_id,
        user_id=listing.user_id,
        listing_key=listing.listing_key,
        pending_effects=effects_for(policy, listing.status, update.status),
    )


def restoration_key(listing: Listing, update: MlsUpdate) -> str | None:
    """The history key of a change that ends a deletion by detection, else None.

    The record may carry the very MLS time (and status) of an entry recorded before the
    deletion, so its own key could collide with that entry, and it would sort before the
    deletion's. Derived from the deletion's key (its detection time is the listing's
    ``statusChangedAt``), it is unique, sorts right after the deletion, and a retry of the
    same restoration computes it again."""
    if not listing.deleted_by_detection or listing.status_changed_at is None:
        return None
    deleted = change_key(Instant.parse(listing.status_changed_at), Status.DELETED)
    return f"{deleted}#{update.status.value}"


def event_for(change: StatusChange, policy: TransitionPolicy) -> Event:
    detail = ListingEventDetail(
        listing_id=change.listing_id,
        user_id=change.user_id or "",
        connection_id=change.connection_id or "",
        listing_key=change.listing_key or "",
        from_status=change.from_status,
        to_status=change.to_status,
        standard_status=change.standard_status,
        mls_modified_at=change.mls_modified_at,
        detected_at=change.detected_at,
        correlation_id=change.correlation_id or "",
        change_key=change.change_key,
    )
    kind = policy.event_type(change.from_status, change.to_status)
    return Event(detail_type=kind, detail=detail)  # type: ignore[arg-type]


def reconcile_due(connection: Connection, now: datetime, every_hours: int) -> bool:
    if connection.last_reconciled_at is None:
        return True
    last = Instant.parse(connection.last_reconciled_at).to_datetime()
    return now - last >= timedelta(hours=every_hours)


def newly_tracked_batch(keys: Sequence[str], slot: str, limit: int) -> list[str]:
    """Which never-synced listings one run looks up: all of them up to ``limit``; beyond it
    a sample that depends on the slot, so listings that stay unsynced (a record older than
    the seeded state, say) cannot keep the others waiting run after run."""
    if len(keys) <= limit:
        return list(keys)
    return sorted(keys, key=lambda k: digest(slot, k))[:limit]


def describe_error(exc: BaseException) -> str:
    """An error for the run's record: type and message (ours never carry secrets), bounded;
    the text carries the typed failure that health reads (``mls_sync.run_failure``)."""
    return FailureText(f"{type(exc).__name__}: {exc}"[:300], failure_of(exc))


def is_permanent(exc: BaseException) -> bool:
    """Whether applying a record failed for a reason that retrying cannot cure: DynamoDB
    refusing the item itself (too large, invalid value) or our own validation rejecting the
    data. Throttling, timeouts and service errors are transient: the record is retried (and
    quarantined only if it keeps failing, ``QUARANTINE_AFTER``)."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ValidationException":
            return True
        if code == "TransactionCanceledException":
            reasons = exc.response.get("CancellationReasons", [])
            return any(r.get("Code") == "ValidationError" for r in reasons)
        return False
    if isinstance(exc, BotoCoreError | OSError):
        return False
    return isinstance(exc, ValueError | TypeError | LookupError)


def chunks(keys: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(keys), size):
        yield list(keys[start : start + size])


@dataclass
class Tracked:
    """The tracked listings a run has come across so far, by MLS key: filled from the key
    map a page (or chunk) at a time, never by reading the whole connection."""

    ids: dict[str, str] = field(default_factory=dict)
    """ListingKey → our listingId."""
    mls_ids: dict[str, str] = field(default_factory=dict)
    """ListingKey → the MLS's ListingId, where known."""
    never_synced: list[str] = field(default_factory=list)
    """Keys of listings never synced (no ``syncedAt``) and not excluded, in key order."""
    new: set[str] = field(default_factory=set)
    """Keys whose key-map entry still marks them new (not yet read from the MLS)."""
    looked_up: set[str] = field(default_factory=set)
    """Keys already looked up in the key map (tracked or not): never looked up twice."""

    @classmethod
    def of(cls, listings: Iterable[Listing]) -> Tracked:
        tracked = cls()
        for listing in listings:
            tracked.ids[listing.listing_key] = listing.listing_id
            tracked.looked_up.add(listing.listing_key)
            if listing.mls_listing_id:
                tracked.mls_ids[listing.listing_key] = listing.mls_listing_id
            if listing.synced_at is None and not listing.sync_excluded:
                tracked.never_synced.append(listing.listing_key)
        return tracked

    def unknown(self, keys: Iterable[str]) -> list[str]:
        """Those of ``keys`` not looked up yet, each once."""
        return [k for k in dict.fromkeys(keys) if k not in self.looked_up]

    def add(self, looked_up: Iterable[str], entries: Iterable[KeyEntry]) -> None:
        """Records a key-map lookup: ``entries`` found among the ``looked_up`` keys."""
        self.looked_up.update(looked_up)
        for entry in entries:
            self.looked_up.add(entry.listing_key)
            self.ids[entry.listing_key] = entry.listing_id
            if entry.new:
                self.new.add(entry.listing_key)

    def note(self, listings: Iterable[Listing]) -> None:
        """What the listings read tell about asking the MLS for them (their ListingId)."""
        for listing in listings:
            if listing.mls_listing_id:
                self.mls_ids[listing.listing_key] = listing.mls_listing_id

    def lookup_values(self, keys: Sequence[str], lookup_field: str) -> dict[str, str]:
        """What to ask the MLS for ``keys``, as {value in ``lookup_field`` terms: key}.

        Only fields we hold a value of: asking by ListingKey where the MLS looks up by
        ListingId would find nothing and call every listing deleted."""
        if lookup_field == LOOKUP_BY_KEY:
            return {k: k for k in keys if k in self.ids}
        if lookup_field == LOOKUP_BY_ID:
            return {self.mls_ids[k]: k for k in keys if k in self.mls_ids}
        return {}
