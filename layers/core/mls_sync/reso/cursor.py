"""Keyset cursor arithmetic on (timestamp, ListingKey), and filter literals that keep the
server's own timestamp spelling (same fractional digits, same ``Z`` or offset)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from mls_sync.models import Cursor
from mls_sync.reso.odata import quote, timestamp_literal
from mls_sync.timeutil import Instant, TimestampError

__all__ = ["Position", "after_filter", "initial_cursor", "position", "quote", "shift_literal"]

_FORM = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?"
    r"(?:\.(?P<frac>\d+))?(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)

Position = tuple[int, str]
"""(epoch nanoseconds, ListingKey): the order the cursor moves in."""


def position(cursor: Cursor) -> Position:
    return Instant.parse(cursor.timestamp).epoch_ns, cursor.listing_key


def initial_cursor(now: datetime) -> Cursor:
    """Where a new connection starts after its tracked listings were read by key: now, in
    whole seconds with ``Z`` (the form every server reads). The overlap window absorbs clock
    skew between us and the MLS."""
    return Cursor(timestamp=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), listing_key="")


def shift_literal(raw: str, seconds: float) -> str:
    """``raw`` moved ``seconds`` earlier, spelled like ``raw``: same fractional digits (floored,
    so the result is never later than the exact instant) and the same zone form."""
    text = raw.strip()
    match = _FORM.match(text)
    if match is None:
        raise TimestampError(f"{raw!r} is not an ISO 8601 timestamp")
    digits = len(match["frac"] or "")
    tz = match["tz"]
    instant = Instant.parse(text)
    ns = instant.epoch_ns - round(seconds * 1_000_000_000)
    if digits < 9:
        step = 10 ** (9 - digits)
        ns -= ns % step
    if tz is None or tz in ("Z", "z"):
        zone: timezone = UTC
        suffix = tz or ""
    else:
        sign = -1 if tz[0] == "-" else 1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        zone = timezone(sign * timedelta(hours=hh, minutes=mm))
        suffix = tz
    whole, frac_ns = divmod(ns, 1_000_000_000)
    local = datetime.fromtimestamp(whole, tz=zone)
    out = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        out += "." + f"{frac_ns:09d}".ljust(digits, "0")[:digits]
    return out + suffix


def after_filter(field: str, key_field: str, cursor: Cursor) -> str:
    """Records strictly after the cursor in (field, key) order. The literal is the cursor's
    own spelling (made ABNF-valid), so servers that compare timestamps as text still match."""
    ts = timestamp_literal(cursor.timestamp)
    if not cursor.listing_key:
        return f"{field} ge {ts}"
    return f"({field} gt {ts} or ({field} eq {ts} and {key_field} gt {quote(cursor.listing_key)}))"
