"""The records the client hands to the worker, validated, and the ones it had to skip."""

from datetime import date, datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, model_validator

from mls_sync.reso.profiles import VendorProfile
from mls_sync.status import StandardStatus, UnknownStatusError, parse_standard_status
from mls_sync.timeutil import (
    EARLIEST_PLAUSIBLE,
    PLAUSIBLE_FUTURE,
    Instant,
    TimestampError,
    implausible,
)

__all__ = [
    "EARLIEST_PLAUSIBLE",
    "PLAUSIBLE_FUTURE",
    "MlsRecord",
    "SkippedRecord",
    "parse_record",
]


class MlsRecord(BaseModel):
    """One listing as the MLS serves it, reduced to what a status sync needs.

    ``standard_status`` may be ``None`` only when ``visible`` is false: a record that left the
    feed (MLS Grid ``MlgCanView=false``) is a deletion signal whatever its status says, and
    vendors strip fields from such records.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    listing_key: str
    listing_id: str | None = None
    standard_status: StandardStatus | None
    mls_status: str | None = None
    modification: Instant
    """The change field's instant; ``modification.raw`` is the server's own spelling."""
    status_change_timestamp: Instant | None = None
    close_date: date | None = None
    visible: bool = True

    @model_validator(mode="after")
    def _status_unless_gone(self) -> Self:
        if self.standard_status is None and self.visible:
            raise ValueError("a visible record needs a StandardStatus")
        return self


class SkippedRecord(BaseModel):
    """A record the client could not use, and why. Reported, never applied."""

    model_config = ConfigDict(frozen=True)

    listing_key: str | None
    reason: str


def _text(raw: dict[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{field} is not text: {value!r}")


def parse_record(
    raw: object, profile: VendorProfile, *, now: datetime | None = None
) -> MlsRecord | SkippedRecord:
    """Validates one entry of a page's ``value`` array. Never raises: bad data is returned as
    a :class:`SkippedRecord` naming the record (when it has a key) and the reason.

    With ``now`` (aware; the server's clock where known), a change timestamp before
    :data:`EARLIEST_PLAUSIBLE` (1900) or later than ``now`` + :data:`PLAUSIBLE_FUTURE` (365
    days) is skipped as implausible: a ``0001-01-01`` or ``9999-12-31`` sentinel must neither
    overwrite a real change nor carry the cursor away."""
    if not isinstance(raw, dict):
        return SkippedRecord(listing_key=None, reason=f"record is not an object: {raw!r:.80}")
    key: str | None = None
    try:
        key = _text(raw, profile.key_field)
        if key is None:
            return SkippedRecord(listing_key=None, reason=f"missing {profile.key_field}")
        stamp = _text(raw, profile.change_field)
        if stamp is None:
            return SkippedRecord(listing_key=key, reason=f"missing {profile.change_field}")
        try:
            modification = Instant.parse(stamp)
        except TimestampError as exc:
            return SkippedRecord(listing_key=key, reason=f"{profile.change_field}: {exc}")
        if now is not None:
            why = implausible(modification.to_datetime(), now)
            if why is not None:
                return SkippedRecord(
                    listing_key=key,
                    reason=f"{profile.change_field} {stamp} is implausible ({why})",
                )
        visible = True
        if profile.visibility_field:
            flag = raw.get(profile.visibility_field)
            if flag is False or (isinstance(flag, str) and flag.lower() == "false"):
                visible = False
        status_raw = raw.get("StandardStatus")
        status: StandardStatus | None = None
        if status_raw is not None or visible:
            try:
                status = parse_standard_status(status_raw)
            except UnknownStatusError as exc:
                if visible:
                    return SkippedRecord(listing_key=key, reason=f"StandardStatus: {exc}")
        change_raw = _text(raw, "StatusChangeTimestamp")
        change = None
        if change_raw is not None:
            try:
                change = Instant.parse(change_raw)
            except TimestampError:
                # Informational field: a bad value must not hide the status change itself.
                change = None
        close_raw = _text(raw, "CloseDate")
        close: date | None = None
        if close_raw is not None:
            try:
                close = date.fromisoformat(close_raw[:10])
            except ValueError:
                close = None
        return MlsRecord(
            listing_key=key,
            listing_id=_text(raw, profile.lookup_field)
            if profile.lookup_field != profile.key_field
            else _text(raw, "ListingId"),
            standard_status=status,
            mls_status=_text(raw, "MlsStatus"),
            modification=modification,
            status_change_timestamp=change,
            close_date=close,
            visible=visible,
        )
    except ValueError as exc:
        return SkippedRecord(listing_key=key, reason=str(exc))
