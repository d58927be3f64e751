"""How long a server asks us to wait: ``Retry-After`` (RFC 9110 §10.2.3) as delta-seconds
or an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms, which recipients
must still read: RFC 9110 §5.6.7), clamped to a sane range."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_WAIT_SECONDS = 7 * 86_400.0
"""The longest wait any server's word is taken for: a week (a larger value is a bug or an
attack, and a wait past it would outlive every lease and queue retention anyway)."""


def clamp_wait(seconds: float | None, *, cap: float = MAX_WAIT_SECONDS) -> float | None:
    """A wait as a finite number of seconds in [0, cap]; None and NaN are no wait at all."""
    if seconds is None or math.isnan(seconds):
        return None
    return min(cap, max(0.0, seconds))


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date as an aware UTC datetime; None when absent or unreadable. A date without
    a zone (``-0000`` in RFC 5322 terms) is read as UTC, which HTTP dates always are."""
    if not value or not value.strip():
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_retry_after(
    value: str | None, now: datetime, *, cap: float = MAX_WAIT_SECONDS
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds (a decimal is tolerated)
    or an HTTP-date, measured from ``now``. A date in the past or a negative number means
    "now" (0). None when absent or unreadable (including NaN); at most ``cap``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return clamp_wait(seconds, cap=cap) if math.isfinite(seconds) else None
    when = parse_http_date(text)
    if when is None:
        return None
    try:
        return clamp_wait((when - now).total_seconds(), cap=cap)
    except OverflowError:
        return None


__all__ = ["MAX_WAIT_SECONDS", "clamp_wait", "parse_http_date", "parse_retry_after"]
