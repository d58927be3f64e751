"""Keyset cursor arithmetic on (timestamp, ListingKey), and filter literals that keep the
server's own timestamp spelling (same fractional digits, same ``Z`` or offset)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mls_sync.models import Cursor
from mls_sync.reso.odata import quote, timestamp_literal
from mls_sync.timeutil import MAX_NS, MIN_NS, Instant, TimestampError, format_seconds

__all__ = [
    "INITIAL_CURSOR_LEAD_SECONDS",
    "Position",
    "after_filter",
    "initial_cursor",
    "literal_like",
    "position",
    "quote",
    "shift_literal",
]

_FORM = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?"
    r"(?:\.(?P<frac>\d+))?(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)

Position = tuple[int, str]
"""(epoch nanoseconds, ListingKey): the order the cursor moves in."""


def position(cursor: Cursor) -> Position:
    return Instant.parse(cursor.timestamp).epoch_ns, cursor.listing_key


INITIAL_CURSOR_LEAD_SECONDS = 5
"""How long before ``now`` a new connection's first cursor starts. A server that compares
timestamps as text (the RESO reference server on SQLite) sorts ``…:03Z`` after ``…:03.698Z``:
a first cursor in the very second of a change would drop that change (with ``overlapSeconds``
0, until reconciliation). Starting a few seconds early costs a re-read of those seconds'
changes, never a miss; the by-key reads that precede the first cycle cover what is older."""


def literal_like(epoch_ns: int, like: str | None = None) -> str:
    """The instant ``epoch_ns`` spelled like ``like`` (a timestamp the server served, e.g. a
    record's ``modification.raw``): the same fractional digits (floored, so never later than
    the instant) and the same zone form (``Z``, ``±hh:mm``, ``±hhmm`` or none), so a server
    that compares literals as text compares like with like. Without a readable ``like``: whole
    seconds with ``Z``. Never raises: instants beyond the years 1-9999 are clamped, and a wall
    time an offset would push out of them is written in UTC."""
    match = _FORM.match(like.strip()) if like else None
    digits = len(match["frac"] or "") if match else 0
    tz = match["tz"] if match else "Z"
    return _spell(min(max(epoch_ns, MIN_NS), MAX_NS), digits, tz)


def initial_cursor(now: datetime, like: str | None = None) -> Cursor:
    """Where a new connection starts after its tracked listings were read by key:
    :data:`INITIAL_CURSOR_LEAD_SECONDS` before ``now``, spelled like ``like`` (the
    ``modification.raw`` of any record the server served: its precision and zone form) or, without
    one, in whole seconds with ``Z`` (the form every server reads). The overlap window absorbs
    clock skew between us and the MLS."""
    start = Instant.from_datetime(now).epoch_ns - INITIAL_CURSOR_LEAD_SECONDS * 1_000_000_000
    return Cursor(timestamp=literal_like(start, like), listing_key="")


def shift_literal(raw: str, seconds: float) -> str:
    """``raw`` moved ``seconds`` earlier, spelled like ``raw``: same fractional digits (floored,
    so the result is never later than the exact instant) and the same zone form. Never raises
    for a timestamp :class:`Instant` reads: where the offset's wall time would leave the years
    1 to 9999 (``9999-12-31T23:59:59+01:00`` shifted later), the same instant is written in
    UTC with ``Z``; an instant beyond those years in UTC as well keeps its zone and is
    clamped to the wall time's ends (at ``0001-01-01`` the one case where the result can be
    later than the exact instant).
    Years are always four digits (``0999-…``)."""
    text = raw.strip()
    match = _FORM.match(text)
    if match is None:
        raise TimestampError(f"{raw!r} is not an ISO 8601 timestamp")
    try:
        shift = round(seconds * 1_000_000_000)
    except (OverflowError, ValueError):
        raise TimestampError(f"cannot shift {raw!r} by {seconds} seconds") from None
    digits = len(match["frac"] or "")
    tz = match["tz"]
    return _spell(Instant.parse(text).epoch_ns - shift, digits, tz)


def _spell(ns: int, digits: int, tz: str | None) -> str:
    """The instant ``ns`` with ``digits`` fractional digits (floored) in the zone form ``tz``
    (``Z``, ``±hh:mm``, ``±hhmm`` or None for none). A wall time the offset would push out of
    the years 1-9999 is written in UTC with ``Z`` (when the instant itself is within them);
    otherwise the wall time is clamped to those years' ends."""
    offset_ns = 0
    suffix = tz or ""
    if tz is not None and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        offset_ns = sign * (int(tz[1:3]) * 3600 + int(tz[-2:]) * 60) * 1_000_000_000
        if not MIN_NS <= ns + offset_ns <= MAX_NS and MIN_NS <= ns <= MAX_NS:
            offset_ns, suffix = 0, "Z"
    local = min(max(ns + offset_ns, MIN_NS), MAX_NS)
    if digits < 9:
        local -= local % 10 ** (9 - digits)
    whole, frac_ns = divmod(local, 1_000_000_000)
    out = format_seconds(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=whole))
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
