"""Pydantic models at every boundary: DynamoDB items, queue messages and event details.

Attribute names are camelCase in DynamoDB and JSON (CONTRACT section 3); Python uses
snake_case. Timestamps are ISO 8601 UTC strings with microseconds.
"""

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from mls_sync.inputs import ID_PATTERN, check_id
from mls_sync.run_counts import RunCounts
from mls_sync.status import Status, parse_status
from mls_sync.timeutil import TimestampError, format_utc, parse_utc

Vendor = Literal["reso", "mlsgrid", "trestle", "bridge", "spark"]
SyncReason = Literal["schedule", "manual", "continuation", "reconcile", "push"]
ChangeSource = Literal["schedule", "manual", "continuation", "reconcile", "push", "seed"]
Detection = Literal["replication", "entityEvent", "auto"]
"""How a connection learns of changes (docs/replication.md "Detection modes"): the
replication feed by timestamp, the RESO EntityEvent log (RCP-027), or ``auto`` (the log
when the server's ``$metadata`` has an ``EntityEvent`` set, else replication)."""


def _utc_text(value: str) -> str:
    try:
        return format_utc(parse_utc(value))
    except TimestampError as exc:
        raise ValueError(str(exc)) from None


UtcText = Annotated[str, AfterValidator(_utc_text)]
"""Any ISO 8601 timestamp, normalised to ``2026-11-28T17:04:05.123456Z``."""

NonEmpty = Annotated[str, Field(min_length=1, max_length=1024)]

Ident = Annotated[
    str, Field(min_length=1, max_length=128, pattern=f"^{ID_PATTERN}$"), AfterValidator(check_id)
]
"""An id of ours (user, connection, listing, post, account) where it enters: seed files,
manual sync requests, queue messages. Matched whole (``re.fullmatch``: a ``$`` would let a
trailing newline through into SQS group ids)."""


class Platform(StrEnum):
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    LINKEDIN = "linkedin"


class PostStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    UNPUBLISHED = "unpublished"
    MANUAL_ACTION_REQUIRED = "manual_action_required"
    REAUTH_REQUIRED = "reauth_required"
    FAILED = "failed"


class Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown input fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        # Each model's validator is built on its first use, not at import: a handler uses a
        # few of these models, and building them all cost every cold start ~0.07 s.
        # Inherited by every subclass. Threads that first use a model at once each build
        # it; pydantic keeps the placeholder until a built validator replaces it
        # (tests/unit/test_cold_start.py).
        defer_build=True,
    )

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB / JSON shape: camelCase, no None values."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ItemModel(Model):
    """Read side of a DynamoDB item: tolerate bookkeeping attributes we do not model."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


# ---------------------------------------------------------------------------- entities


class Cursor(Model):
    """Keyset replication cursor: the last (ModificationTimestamp, ListingKey) durably applied.
    ``timestamp`` is the server's own spelling, so filter literals match its form."""

    timestamp: NonEmpty
    listing_key: str = ""


class User(Model):
    user_id: NonEmpty
    name: str | None = None
    email: str | None = None


class ByKeyPhase(Model):
    """A by-key read of every tracked listing in progress (first sync or reconciliation):
    durable, so a continuation resumes after ``after`` instead of starting over."""

    kind: Literal["first", "reconcile"]
    started_at: UtcText
    """When the phase began: a first sync's cursor starts before it; a reconciliation counts
    as done as of this time."""
    after: str = ""
    """Every tracked ListingKey up to and including this one has been read and applied."""


class BrakeState(Model):
    """The mass-change brake tripped: takedowns are held until an operator decides."""

    run_key: NonEmpty
    """The run that tripped it."""
    at: UtcText
    listings: int = Field(ge=0)
    """Listings whose takedown (or deletion) made the run unusual."""
    share: float = Field(ge=0)
    """That many as a share of the connection's tracked listings."""


class LastError(Model):
    """A connection's last failure: the error's class and one line naming the cause."""

    error_class: NonEmpty
    message: NonEmpty
    at: UtcText
    run_key: str | None = None


class Connection(ItemModel):
    connection_id: NonEmpty
    user_id: NonEmpty
    vendor: Vendor
    base_url: NonEmpty
    resource: str = "Property"
    dataset: str | None = None
    originating_system_name: str | None = None
    credentials_secret_arn: NonEmpty
    enabled: bool = True
    cursor: Cursor | None = None
    overlap_seconds: int | None = Field(default=None, ge=0, le=86_400)
    last_reconciled_at: UtcText | None = None
    last_synced_at: UtcText | None = None
    by_key_phase: ByKeyPhase | None = None
    brake_share: float = Field(default=0.2, gt=0, le=1)
    """The mass-change brake trips when one run would take down posts of (or mark deleted)
    more than this share of the tracked listings ..."""
    brake_min_listings: int = Field(default=10, ge=0)
    """... and more than this many listings."""
    braked: BrakeState | None = None
    # Health, written by the worker after every run (ConnectionsRepo.record_outcome); see
    # mls_sync.health for how they read.
    last_attempt_at: UtcText | None = None
    last_success_at: UtcText | None = None
    """The last run that succeeded (or handed over to a continuation, having read the
    connection's changes first)."""
    last_outcome: str | None = None
    last_error: LastError | None = None
    """The last failed run's error; kept after a success (``consecutive_failures`` says
    whether it is current)."""
    consecutive_failures: int = Field(default=0, ge=0)
    failing_since: UtcText | None = None
    """The first failed attempt of the current streak of failures; removed on success."""
    lag_seconds: int | None = Field(default=None, ge=0)
    """As of the last attempt: seconds since the last success (or since ``failing_since``
    when it never succeeded); 0 after a success."""
    quarantined_records: int | None = Field(default=None, ge=0)
    """Listings of the connection in quarantine, counted when a run quarantined or cleared
    one (None: never counted, i.e. none ever quarantined)."""
    detection: Detection = "auto"
    detected: Literal["replication", "entityEvent"] | None = None
    """What ``auto`` found in the server's ``$metadata`` (asked once, then kept)."""
    event_sequence: int | None = Field(default=None, ge=0)
    """EntityEvent mode: the sequence of the last event fully applied (the anchor) ..."""
    event_key: str | None = None
    """... and the ResourceRecordKey that event named (None when the log was empty): a log
    that no longer answers the anchor's sequence with that key was reset or expired."""
    push_secret_arn: str | None = None
    """The Secrets Manager secret holding the bearer token the MLS presents when it pushes
    events for this connection (PushFunction); None: push not enabled."""


class Listing(ItemModel):
    listing_id: NonEmpty
    user_id: NonEmpty
    connection_id: NonEmpty
    listing_key: NonEmpty
    mls_listing_id: str | None = None
    """The MLS's ``ListingId``, stored from the records the sync applies (or seeded): how
    vendors that cannot filter on ListingKey (MLS Grid) are asked about this listing."""
    status: Status
    standard_status: str | None = None
    mls_status: str | None = None
    mls_modified_at: UtcText | None = None
    mls_modified_key: str | None = None
    """``mls_modified_at`` as a sortable key (``Instant.sort_key``), written by the DAL with
    every MLS time: what its conditional writes compare, and which sale a takedown is for."""
    status_changed_at: UtcText | None = None
    synced_at: UtcText | None = None
    sync_excluded: bool = False
    restored_at: UtcText | None = None
    deleted_by_detection: bool = False
    """Deleted because the MLS stopped returning the listing, not by an MLS record: the
    stored MLS time is still the last one seen, and a record at that very time restores it."""
    restored_change_key: str | None = None
    """The history key of the restoration after such a deletion (it cannot be derived from
    the record alone), so a redelivered record finds its pending effects."""
    quarantined: bool = False
    """The MLS's record for this listing cannot be applied (refused by the table, or by our
    validation, or failing again and again): the sync skips it so the connection moves on,
    and the next read by key (reconciliation) tries again; a successful apply clears it."""
    quarantine_reason: str | None = None
    quarantined_at: UtcText | None = None
    """When the failure was first seen."""
    quarantine_attempts: int = 0
    takedown_key: str | None = None
    """The history key of a change whose takedown (unpublish jobs) is not yet settled: set in
    the transaction that records the change, cleared once its jobs are sent or discarded.
    Listed through the sparse ``byTakedown`` index, so a run settles (or the brake holds)
    every pending takedown of its connection without reading all its listings."""

    @field_validator("status", mode="before")
    @classmethod
    def _known_status(cls, value: object) -> Status:
        return parse_status(value)


class Post(ItemModel):
    post_id: NonEmpty
    listing_id: NonEmpty
    platform: Platform
    account_id: NonEmpty
    platform_post_id: NonEmpty
    status: PostStatus
    permalink: str | None = None
    published_at: UtcText | None = None
    outcome_reason: str | None = None
    unpublished_at: UtcText | None = None
    updated_at: UtcText | None = None


class PlatformAccount(ItemModel):
    account_id: NonEmpty
    user_id: NonEmpty
    platform: Platform
    external_id: NonEmpty
    connected_via: Literal["facebook_login", "instagram_login"] | None = None
    token_secret_arn: NonEmpty
    token_expires_at: UtcText | None = None
    status: Literal["active", "reauth_required"] = "active"
    lease_owner: str | None = None
    lease_expires_at: UtcText | None = None


class StatusChange(ItemModel):
    """One entry of a listing's sync history. ``change_key`` is derived from the MLS record
    (its modification instant and the new status), so re-applying it cannot add a second
    entry, and it sorts newest first when queried in descending order."""

    listing_id: NonEmpty
    change_key: NonEmpty
    from_status: Status | None = Field(default=None, alias="from")
    to_status: Status = Field(alias="to")
    standard_status: str | None = None
    mls_status: str | None = None
    mls_modified_at: UtcText | None = None
    detected_at: UtcText
    source: ChangeSource
    correlation_id: str | None = None
    connection_id: str | None = None
    user_id: str | None = None
    listing_key: str | None = None
    # Outbox: effects still to deliver (event, unpublish jobs) after the state write.
    pending_effects: list[str] = Field(default_factory=list)


class SyncRun(ItemModel):
    connection_id: NonEmpty
    run_key: NonEmpty
    reason: SyncReason
    started_at: UtcText
    finished_at: UtcText | None = None
    # "queued": a manual job recorded at request time, not started yet (pipeline.manual).
    outcome: Literal["queued", "running", "succeeded", "partial", "failed", "continued"] = "running"
    # Stored as a plain map: camelCase names, zeros left out (mls_sync.run_counts).
    counts: RunCounts = Field(default_factory=RunCounts)
    errors: list[str] = Field(default_factory=list)
    mls_requests: int = 0
    duration_ms: int = 0
    correlation_id: str | None = None
    ttl: int | None = None


# ---------------------------------------------------------------------------- messages


class SyncJob(Model):
    """One message on SyncQueue: sync one connection (CONTRACT section 7)."""

    connection_id: Ident
    reason: SyncReason
    slot: UtcText
    listing_keys: list[NonEmpty] | None = Field(default=None, max_length=1000)
    correlation_id: NonEmpty


class UnpublishJob(Model):
    """One message on UnpublishQueue: take one post down."""

    post_id: Ident
    listing_id: Ident
    platform: Platform
    correlation_id: NonEmpty


# ---------------------------------------------------------------------------- events

EventType = Literal[
    "ListingStatusChanged",
    "ListingRestored",
    "ListingDeleted",
    "PostUnpublishOutcome",
    "ListingPostsUnpublished",
    "MassChangeHeld",
    "MassChangeReleased",
]


class ListingEventDetail(Model):
    """Detail of ListingStatusChanged, ListingRestored and ListingDeleted."""

    listing_id: str
    user_id: str
    connection_id: str
    listing_key: str
    from_status: Status | None = Field(alias="from")
    to_status: Status = Field(alias="to")
    standard_status: str | None
    mls_modified_at: str | None
    detected_at: str
    correlation_id: str
    change_key: str


class PostUnpublishOutcomeDetail(Model):
    post_id: str
    listing_id: str
    platform: Platform
    outcome: PostStatus
    reason: str | None
    at: str
    correlation_id: str
    permalink: str | None = None


class MassChangeHeldDetail(Model):
    connection_id: str
    user_id: str
    run_key: str
    listings: int
    """Listings affected (takedowns held, or deletions) in the run that tripped the brake."""
    posts_held: int
    """Published posts whose takedown is held."""
    share: float
    at: str


class MassChangeReleasedDetail(Model):
    connection_id: str
    run_key: str
    decision: Literal["release", "discard"]
    posts_sent: int
    at: str


class ListingPostsUnpublishedDetail(Model):
    listing_id: str
    user_id: str
    outcomes: dict[str, dict[str, int]]
    at: str
    correlation_id: str


__all__ = [
    "BrakeState",
    "ByKeyPhase",
    "ChangeSource",
    "Connection",
    "Cursor",
    "EventType",
    "Listing",
    "ListingEventDetail",
    "ListingPostsUnpublishedDetail",
    "MassChangeHeldDetail",
    "MassChangeReleasedDetail",
    "Platform",
    "PlatformAccount",
    "Post",
    "PostStatus",
    "PostUnpublishOutcomeDetail",
    "StatusChange",
    "SyncJob",
    "SyncReason",
    "SyncRun",
    "UnpublishJob",
    "User",
    "Vendor",
]
