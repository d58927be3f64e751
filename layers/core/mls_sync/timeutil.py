"""Instants from MLS timestamps, compared exactly.

MLS timestamps (Edm.DateTimeOffset) arrive with any number of fractional digits and with
``Z`` or a numeric offset. Python's datetime keeps microseconds only, so two records 100 ns
apart would compare equal; we keep nanoseconds since the epoch for every comparison and
truncate to microseconds only for display and storage (CONTRACT section 3).
"""

from __future__ import annotations

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
        """UTC datetime, truncated to microseconds."""
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self.epoch_ns // 1_000)

    def iso_micro(self) -> str:
        """Storage form: ``2026-11-28T17:04:05.123456Z``."""
        return format_utc(self.to_datetime())

    def sort_key(self) -> str:
        """Fixed-width nanosecond UTC text that orders like the instant (for conditions)."""
        ns = self.epoch_ns % 1_000_000_000
        return self.to_datetime().strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"

    def filter_literal(self) -> str:
        """An OData literal for this instant: the server's own spelling when we have it."""
        return self.raw or self.sort_key()

    def minus(self, seconds: float) -> Instant:
        return Instant(self.epoch_ns - int(seconds * 1_000_000_000))

    def __str__(self) -> str:
        return self.sort_key()


def format_utc(value: datetime) -> str:
    """ISO 8601 UTC with microseconds and ``Z``: the one timestamp form we store."""
    if value.tzinfo is None:
        raise TimestampError("naive datetime: give a timezone")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(value: str) -> datetime:
    """Reads any ISO 8601 timestamp into an aware UTC datetime (microseconds)."""
    return Instant.parse(value).to_datetime()
