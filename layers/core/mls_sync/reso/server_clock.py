"""The MLS's clock as its answers give it: the ``Date`` header of the last one, advanced by
the monotonic time since it arrived. A record stamped after the MLS's own "now" is a clock
fault, however our clock differs from the server's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from mls_sync.http.retry_after import parse_http_date
from mls_sync.timeutil import Clock


class ServerClock:
    def __init__(self, clock: Clock, monotonic: Callable[[], float]) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self.date: datetime | None = None
        """The server's time (aware UTC) from the ``Date`` header of its last answer."""
        self._date_at = 0.0

    def note(self, value: str | None) -> None:
        """Remembers a ``Date`` header (an HTTP-date); an unreadable one is ignored."""
        date = parse_http_date(value)
        if date is not None:
            self.date = date
            self._date_at = self._monotonic()

    def now(self) -> datetime:
        """The server's current time; our own clock until it has sent a date."""
        if self.date is None:
            return self._clock()
        elapsed = max(0.0, self._monotonic() - self._date_at)
        try:
            return self.date + timedelta(seconds=elapsed)
        except OverflowError:
            return self.date


__all__ = ["ServerClock"]
