"""Virtual time shared by threads: tests of concurrent workers without sleeping.

Each participating thread's ``sleep`` blocks it until the virtual clock reaches its wake-up
time; the clock jumps to the earliest wake-up only when *every* participant is asleep (a
discrete-event simulation). Work between sleeps (DynamoDB calls, HTTP to a simulator on
loopback) takes no virtual time, so 100 s of 2-requests-a-second pacing runs as fast as the
CPU allows and every measured interval is exact.

Rules: register the participants before they start (``join``), make each one ``leave`` when
it ends (also on failure), and never hold a lock that another participant needs while
sleeping. Threads that are not participants (the simulator's server threads, the test's
main thread) may read the clock; their waits do not hold time back.
"""

from __future__ import annotations

import heapq
import threading
from datetime import UTC, datetime


class VirtualTime:
    def __init__(self, start: datetime) -> None:
        self._now = start.timestamp()
        self._cond = threading.Condition()
        self._active = 0
        self._sleepers: list[tuple[float, int]] = []
        self._seq = 0
        self.failed: BaseException | None = None

    # -- clocks (epoch seconds, monotonic seconds, aware datetime: one timeline)

    def time(self) -> float:
        with self._cond:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)

    # -- participants

    def join(self, count: int = 1) -> None:
        with self._cond:
            self._active += count

    def leave(self) -> None:
        with self._cond:
            self._active -= 1
            self._advance()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cond:
            wake = self._now + seconds
            self._seq += 1
            ticket = (wake, self._seq)
            heapq.heappush(self._sleepers, ticket)
            self._active -= 1
            self._advance()
            while ticket in self._sleepers or self._now < wake:
                if self.failed is not None:
                    raise RuntimeError("virtual time stopped: another participant failed")
                self._cond.wait(timeout=5)

    def fail(self, exc: BaseException) -> None:
        """Wakes everyone so a failing test does not hang."""
        with self._cond:
            self.failed = exc
            self._cond.notify_all()

    def _advance(self) -> None:
        """With every participant asleep, jump to the earliest wake-up and wake those due
        (counted active again here, so no second jump happens before they run)."""
        if self._active > 0 or not self._sleepers:
            return
        self._now = max(self._now, self._sleepers[0][0])
        while self._sleepers and self._sleepers[0][0] <= self._now:
            heapq.heappop(self._sleepers)
            self._active += 1
        self._cond.notify_all()
