"""Instants from MLS timestamps, compared exactly.

MLS timestamps (Edm.DateTimeOffset) arrive with any number of fractional digits and with
``Z`` or a numeric offset. Python's datetime keeps microseconds only, so two records 100 ns
apart would compare equal; we keep nanoseconds since the epoch for every comparison and
truncate to microseconds only for display and storage (CONTRACT section 3).

Every timestamp we store or compare as text has one fixed-width form with a four-digit,
zero-padded year (``0999-…`` sorts before ``2026-…``); strftime's ``%Y`` is never used for it
(glibc writes year 999 as ``999``). Instants outside what the text form can hold (years 1 to
9999 in UTC, e.g. ``9999-12-31T23:59:59-01:00``) are clamped to its ends for display, storage
and datetime arithmetic, so no arithmetic on a valid timestamp raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_TS = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:\.(?P<frac>\d{1,12}))?(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock. Code takes a Clock so tests can inject their own."""
    return datetime.now(UTC)


class TimestampError(ValueError):
    """A timestamp that cannot be read as an instant."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_NS = -62_135_596_800 * 1_000_000_000
"""0001-01-01T00:00:00Z in nanoseconds since the epoch: the earliest storable instant."""
MAX_NS = 253_402_300_799 * 1_000_000_000 + 999_999_999
"""9999-12-31T23:59:59.999999999Z: the latest storable instant."""

EARLIEST_PLAUSIBLE = datetime(1900, 1, 1, tzinfo=UTC)
"""A change timestamp before this is a sentinel or a bug, never a real listing change."""
PLAUSIBLE_FUTURE = timedelta(days=365)
"""A change timestamp later than now + this is a bug (or a 9999 sentinel), never a change."""


def implausible(value: datetime, now: datetime) -> str | None:
    """Why ``value`` cannot be a real change timestamp seen at ``now``, or ``None``. A naive
    datetime is read as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if value < EARLIEST_PLAUSIBLE:
        return "before 1900"
    try:
        latest = now + PLAUSIBLE_FUTURE
    except OverflowError:
        return None
    if value > latest:
        return "more than a year in the future"
    return None


def _clamp_ns(ns: int) -> int:
    return min(max(ns, MIN_NS), MAX_NS)


def format_seconds(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a datetime's own wall time, the year always four digits
    (never strftime ``%Y``, which glibc leaves unpadded)."""
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )


@dataclass(frozen=True, order=True, slots=True)
class Instant:
    """A point in time with nanosecond precision, ordered by time.

    ``raw`` keeps the server's own spelling so filter literals can be built from exactly the
    string the server returned (some servers compare timestamps as text).
    """

    epoch_ns: int
    # The spelling is not the instant: "05Z" and "05.000Z" are equal and order by time only.
    raw: str = field(default="", compare=False)

    @classmethod
    def parse(cls, value: str, *, assume_utc: bool = True) -> Instant:
        m = _TS.match(value.strip()) if isinstance(value, str) else None
        if m is None:
            raise TimestampError(f"{value!r} is not an ISO 8601 timestamp")
        time_part = m["time"] if m["time"].count(":") == 2 else m["time"] + ":00"
        tz = m["tz"]
        if tz is None:
            if not assume_utc:
                raise TimestampError(f"{value!r} has no UTC offset")
            tz = "+00:00"
        elif tz in ("Z", "z"):
            tz = "+00:00"
        elif ":" not in tz:
            tz = tz[:3] + ":" + tz[3:]
        try:
            base = datetime.fromisoformat(f"{m['date']}T{time_part}{tz}")
        except ValueError as exc:
            raise TimestampError(f"{value!r} is not a valid timestamp: {exc}") from None
        frac = (m["frac"] or "").ljust(9, "0")
        if len(frac) > 9:
            # Beyond nanoseconds: keep ordering exact enough by truncating (no vendor sends it).
            frac = frac[:9]
        seconds = int(base.timestamp())
        return cls(seconds * 1_000_000_000 + int(frac), value.strip())

    @classmethod
    def from_datetime(cls, value: datetime) -> Instant:
        if value.tzinfo is None:
            raise TimestampError("naive datetime: give a timezone")
        us = value - datetime(1970, 1, 1, tzinfo=UTC)
        ns = (us.days * 86_400 + us.seconds) * 1_000_000_000 + us.microseconds * 1_000
        return cls(ns, "")

    def to_datetime(self) -> datetime:
        """UTC datetime, truncated to microseconds; clamped to years 1 to 9999 (an offset can put
        a valid timestamp just outside them)."""
        return _EPOCH + timedelta(microseconds=_clamp_ns(self.epoch_ns) // 1_000)

    def iso_micro(self) -> str:
        """Storage form: ``2026-11-28T17:04:05.123456Z`` (four-digit year, clamped as
        :meth:`to_datetime`)."""
        return format_utc(self.to_datetime())

    def sort_key(self) -> str:
        """Fixed-width nanosecond UTC text that orders like the instant (for conditions):
        ``0999-01-01T00:00:00.000000000Z`` sorts before ``2026-…``. Instants beyond the years
        1 to 9999 in UTC share the key of the nearest end."""
        ns = _clamp_ns(self.epoch_ns)
        whole = _EPOCH + timedelta(seconds=ns // 1_000_000_000)
        return format_seconds(whole) + f".{ns % 1_000_000_000:09d}Z"

    def filter_literal(self) -> str:
        """An OData literal for this instant: the server's own spelling when we have it."""
        return self.raw or self.sort_key()

    def minus(self, seconds: float) -> Instant:
        """``seconds`` earlier, never before 0001-01-01T00:00:00Z (nor after 9999's end)."""
        if not math.isfinite(seconds):
            raise TimestampError(f"cannot move an instant by {seconds} seconds")
        return Instant(_clamp_ns(self.epoch_ns - int(seconds * 1_000_000_000)))

    def __str__(self) -> str:
        return self.sort_key()


def format_utc(value: datetime) -> str:
    """ISO 8601 UTC with microseconds and ``Z``: the one timestamp form we store."""
    if value.tzinfo is None:
        raise TimestampError("naive datetime: give a timezone")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = (
            datetime.max.replace(tzinfo=UTC) if value.year > 1 else datetime.min.replace(tzinfo=UTC)
        )
    return f"{format_seconds(utc)}.{utc.microsecond:06d}Z"


_LEGACY_YEAR = re.compile(r"^\s*(\d{1,3})-(?=\d{2}-\d{2}[T ])")


def parse_utc(value: str) -> datetime:
    """Reads any ISO 8601 timestamp into an aware UTC datetime (microseconds). A stored value
    written before years were zero-padded (``999-01-01T…``, glibc ``%Y``) is read as the
    padded year, so it can be read back and rewritten in the canonical form."""
    if isinstance(value, str):
        value = _LEGACY_YEAR.sub(lambda m: f"{int(m[1]):04d}-", value, count=1)
    return Instant.parse(value).to_datetime()
