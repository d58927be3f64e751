"""What a listing write says and why one was refused, decided without touching DynamoDB.

A status write carries the MLS record's modification instant and lands only while the stored
one is older, the status is still the one the caller decided from and the agent has not
excluded the listing. This module builds those update expressions and conditions (for a record
applied, and for a deletion inferred by detection), decides in memory whether a record is stale
by the same rule, and explains a refusal from the item DynamoDB returned with it (``ALL_OLD``).
``ListingsRepo`` sends what is built here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mls_sync.dal.transactions import UpdateRequest
from mls_sync.models import Listing, StatusChange
from mls_sync.status import Status
from mls_sync.timeutil import Instant

RejectReason = Literal["missing", "excluded", "stale", "status_moved", "duplicate_change"]

TAKEDOWN_EFFECT = "unpublish"
"""The outbox effect that takes posts down (``pipeline.sync.EFFECT_UNPUBLISH``)."""

# Every status write: the listing exists, still holds the status the caller decided from,
# and the agent has not excluded it from sync.
DECIDED_FROM = (
    "attribute_exists(listingId) AND #s = :expected"
    " AND (attribute_not_exists(syncExcluded) OR syncExcluded <> :true)"
)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of applying one MLS record to one listing."""

    applied: bool
    reason: RejectReason | None = None
    current: Listing | None = None


@dataclass(frozen=True, slots=True)
class MlsUpdate:
    """What one MLS record says about a listing."""

    status: Status
    standard_status: str | None
    mls_status: str | None
    modified: Instant
    synced_at: str
    mls_listing_id: str | None = None
    """The record's ``ListingId``: stored when present (MLS Grid is looked up by it)."""


def apply_expression(
    listing: Listing, update: MlsUpdate, change: StatusChange | None
) -> UpdateRequest:
    """The update that applies ``update`` to ``listing`` and its condition (see
    ``ListingsRepo.apply``)."""
    names = {"#s": "status"}
    values: dict[str, Any] = {
        ":s": update.status.value,
        ":ss": update.standard_status,
        ":ms": update.mls_status,
        ":mma": update.modified.iso_micro(),
        ":mk": update.modified.sort_key(),
        ":now": update.synced_at,
        ":expected": listing.status.value,
        ":true": True,
    }
    sets = [
        "#s = :s",
        "standardStatus = :ss",
        "mlsStatus = :ms",
        "mlsModifiedAt = :mma",
        "mlsModifiedKey = :mk",
        "syncedAt = :now",
    ]
    if update.mls_listing_id:
        values[":lid"] = update.mls_listing_id
        sets.append("mlsListingId = :lid")
    if update.status != listing.status:
        sets.append("statusChangedAt = :now")
    if listing.status is Status.PENDING and update.status is Status.ACTIVE:
        sets.append("restoredAt = :now")
    # Only a restoration after a deletion by detection has a key not derived from the
    # record: remembered until the next write, for a redelivery to find its effects.
    removes = ["deletedByDetection"]
    if listing.deleted_by_detection and change is not None:
        values[":rck"] = change.change_key
        sets.append("restoredChangeKey = :rck")
    else:
        removes.append("restoredChangeKey")
    # A deletion by detection kept the MLS time last seen: a record at that very time
    # (the listing back, not re-stamped) is news, not a replay.
    condition = (
        DECIDED_FROM + " AND (attribute_not_exists(mlsModifiedKey) OR mlsModifiedKey < :mk"
        " OR (deletedByDetection = :true AND mlsModifiedKey <= :mk))"
    )
    expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
    return expression, condition, names, values


def detection_expression(
    listing: Listing, update: MlsUpdate, expected_key: str | None
) -> UpdateRequest:
    """The update that marks ``listing`` deleted by detection and its condition (see
    ``ListingsRepo.delete_by_detection``): the stored MLS time is kept and must still be
    ``expected_key``."""
    names = {"#s": "status"}
    values: dict[str, Any] = {
        ":s": update.status.value,
        ":now": update.synced_at,
        ":expected": listing.status.value,
        ":true": True,
    }
    condition = DECIDED_FROM
    if expected_key is None:
        condition += " AND attribute_not_exists(mlsModifiedKey)"
    else:
        values[":mk0"] = expected_key
        condition += " AND mlsModifiedKey = :mk0"
    expression = (
        "SET #s = :s, standardStatus = :ss, mlsStatus = :ms, syncedAt = :now,"
        " statusChangedAt = :now, deletedByDetection = :true"
    )
    values[":ss"] = update.standard_status
    values[":ms"] = update.mls_status
    return expression, condition, names, values


def with_takedown(request: UpdateRequest, change: StatusChange | None) -> UpdateRequest:
    """``request``, also marking the listing ``takedownKey`` (the sparse byTakedown index)
    when ``change`` takes posts down: written with the change, the takedown can never be
    recorded and not found."""
    expression, condition, names, values = request
    if change is None or TAKEDOWN_EFFECT not in change.pending_effects:
        return request
    assert expression.startswith("SET ")
    expression = "SET takedownKey = :tdk, " + expression[len("SET ") :]
    return expression, condition, names, {**values, ":tdk": change.change_key}


def is_stale(listing: Listing, update: MlsUpdate) -> bool:
    """Whether ``update`` is no newer than what ``listing`` holds, decided in memory by the
    same rule as ``apply``'s condition: such a record is never written."""
    if listing.mls_modified_at is None:
        return False
    stored = Instant.parse(listing.mls_modified_at).sort_key()
    incoming = update.modified.sort_key()
    return stored > incoming or (stored == incoming and not listing.deleted_by_detection)


def explain_refusal(
    raw: dict[str, Any] | None,
    update: MlsUpdate,
    change: StatusChange | None,
    expected_key: str | None = None,
) -> ApplyResult:
    """Why a write was refused, from the item as it stands (``raw``; None: it is gone).
    ``expected_key`` ("" for none) is given for a deletion by detection: any other stored MLS
    time means newer MLS data arrived (``stale``)."""
    if raw is None:
        return ApplyResult(False, "missing")
    current = Listing.model_validate(raw)
    if current.sync_excluded:
        return ApplyResult(False, "excluded", current)
    stored = raw.get("mlsModifiedKey")
    if expected_key is not None:
        if (stored or "") != expected_key:
            return ApplyResult(False, "stale", current)
    elif stored is not None:
        mk = update.modified.sort_key()
        if stored > mk or (stored == mk and not current.deleted_by_detection):
            return ApplyResult(False, "stale", current)
    if change is not None and current.status.value == (
        change.from_status.value if change.from_status else None
    ):
        return ApplyResult(False, "duplicate_change", current)
    return ApplyResult(False, "status_moved", current)
