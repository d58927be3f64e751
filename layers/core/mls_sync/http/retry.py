"""Capped exponential backoff with full jitter, deadlines, and resending what a batch API
refused.

Full jitter as in AWS's "Exponential Backoff And Jitter": the n-th pause (n from 0) is
uniform in ``[0, min(cap, base * 2**n)]``, so retries of many clients spread out instead of
arriving together. Randomness, sleep and the monotonic clock are always injected.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

Draw = Callable[[], float]
"""A uniform draw in [0, 1): ``random.Random().random`` or a test's fixed value."""

_MAX_EXPONENT = 62
"""Beyond this ``2**n`` only makes a float overflow; the cap has long applied."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """The ceiling of the n-th pause is ``min(cap, base * 2**n)``; the pause is drawn in
    ``[0, ceiling]``."""

    base: float
    cap: float

    def ceiling(self, attempt: int) -> float:
        return min(self.cap, self.base * (2.0 ** min(max(attempt, 0), _MAX_EXPONENT)))

    def delay(self, attempt: int, draw: Draw) -> float:
        """The pause after failure number ``attempt`` (0: the first failure)."""
        return draw() * self.ceiling(attempt)


@dataclass(frozen=True, slots=True)
class Deadline:
    """An instant on a monotonic clock by which a call must have finished; ``at=None`` is no
    deadline at all."""

    at: float | None
    clock: Callable[[], float]

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float]) -> Deadline:
        return cls(clock() + seconds, clock)

    def left(self) -> float:
        """Seconds until the deadline (negative once past it; infinite without one)."""
        return math.inf if self.at is None else self.at - self.clock()

    def allows(self, wait: float, *, then: float = 0.0) -> bool:
        """Whether a pause of ``wait`` seconds still leaves ``then`` seconds, and some time at
        all, before the deadline: nothing ever sleeps up to or past it."""
        if self.at is None:
            return True
        end = self.clock() + wait
        return end < self.at and end + then <= self.at

    def cap(self, seconds: float, *, floor: float = 0.0) -> float:
        """``seconds``, or what is left before the deadline when that is less (not below
        ``floor``: an HTTP library needs a positive timeout)."""
        return max(floor, min(seconds, self.left()))


BATCH_ATTEMPTS = 5
BATCH_BACKOFF = Backoff(base=0.1, cap=2.0)
"""Between two sends of what a batch call refused: 0.1 s, 0.2 s ... up to 2 s, jittered.
Throttled entries come back within the same invocation; longer outages are the caller's."""


def resend_rejected(
    send: Callable[[list[T]], Sequence[T]],
    items: Sequence[T],
    *,
    draw: Draw,
    sleep: Callable[[float], None],
    attempts: int = BATCH_ATTEMPTS,
    backoff: Backoff = BATCH_BACKOFF,
) -> tuple[list[T], int]:
    """Sends ``items``, then only those the service rejected, up to ``attempts`` calls in
    all with a jittered pause between two (batch APIs such as SQS SendMessageBatch and
    EventBridge PutEvents accept part of a batch). ``send`` returns the rejected items and
    raises for a rejection no retry can cure. Returns what is still rejected (empty when
    all went through) and the number of calls made."""
    pending = list(items)
    for attempt in range(attempts):
        pending = list(send(pending))
        if not pending:
            return [], attempt + 1
        if attempt + 1 < attempts:
            sleep(backoff.delay(attempt, draw))
    return pending, attempts


@dataclass(kw_only=True)
class BatchSender:
    """What a sender to an AWS batch API (SQS SendMessageBatch, EventBridge PutEvents) is
    made of besides its client: calls of at most ten entries, and the entries a call rejects
    sent again after a jittered pause (:func:`resend_rejected`)."""

    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)  # jitter, not security

    BATCH = 10
    """Entries per call: the most either API takes."""

    @classmethod
    def batches(cls, items: Sequence[T]) -> Iterator[list[T]]:
        for start in range(0, len(items), cls.BATCH):
            yield list(items[start : start + cls.BATCH])

    def resend(
        self, send: Callable[[list[T]], Sequence[T]], items: Sequence[T]
    ) -> tuple[list[T], int]:
        """:func:`resend_rejected` with this sender's pauses."""
        return resend_rejected(send, items, draw=self.rng.random, sleep=self.sleep)


__all__ = [
    "BATCH_ATTEMPTS",
    "BATCH_BACKOFF",
    "Backoff",
    "BatchSender",
    "Deadline",
    "Draw",
    "resend_rejected",
]
