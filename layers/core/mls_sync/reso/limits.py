"""Pure limit machinery: the MLS's backoff, quota headers, rate limiter, breaker (the
backoff and ``Retry-After`` themselves are ``mls_sync.http``'s, shared with the platforms).

Nothing here sleeps or reads the clock by itself: every function takes ``now`` or a clock, so
tests drive time by hand.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from mls_sync.http.retry import Backoff
from mls_sync.http.retry_after import parse_retry_after
from mls_sync.reso.profiles import QuotaHeader, Quotas
from mls_sync.timeutil import Instant, TimestampError

Monotonic = Callable[[], float]


MLS_BACKOFF = Backoff(base=0.5, cap=30.0)
"""Between two attempts at one MLS request: 0.5 s, 1 s, 2 s ... up to 30 s, fully jittered."""


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """The MLS pause after failure number ``attempt`` (from 0), drawn from ``rng``."""
    return MLS_BACKOFF.delay(attempt, rng.random)


def parse_reset(value: str, now: datetime) -> float | None:
    """A quota reset header: seconds from now, epoch seconds, an HTTP-date or ISO 8601.
    Vendors differ and do not all document the form, so accept each."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            return None
        if number > 1_000_000_000:  # epoch seconds (or milliseconds)
            epoch = number / 1000 if number > 100_000_000_000 else number
            return max(0.0, epoch - now.timestamp())
        return max(0.0, number)
    try:
        when_ns = Instant.parse(text).epoch_ns
    except TimestampError:
        return parse_retry_after(text, now)
    return max(0.0, when_ns / 1e9 - now.timestamp())


def quota_wait(
    headers: Mapping[str, str], quota_headers: tuple[QuotaHeader, ...], now: datetime
) -> float | None:
    """How long to hold off when a vendor's quota header says nothing is left."""
    wait: float | None = None
    for qh in quota_headers:
        remaining = headers.get(qh.remaining)
        if remaining is None:
            continue
        try:
            left = float(remaining)
        except ValueError:
            continue
        if left > 0:
            continue
        reset = headers.get(qh.reset) if qh.reset else None
        seconds = parse_reset(reset, now) if reset else None
        # Exhausted with no readable reset: hold off a minute rather than burn the suspension.
        seconds = 60.0 if seconds is None else seconds
        wait = seconds if wait is None else max(wait, seconds)
    return wait


class Limiter(Protocol):
    """What the transport asks of a request budget before each MLS request and after each
    answer: the per-process :class:`RateLimiter`, or the budget shared through DynamoDB by
    every worker on one credential (``mls_sync.reso.budget``)."""

    def permit(self, max_wait: float | None, sleep: Callable[[float], None]) -> bool:
        """Waits (through ``sleep``) until one request may go and takes it: True. False, at
        once and without waiting, when no permit can be had within ``max_wait`` seconds
        (``None``: no limit): the caller hands the rest of its run to a continuation."""
        ...

    def block_for(self, seconds: float) -> None:
        """Nobody on this credential sends for ``seconds`` (a 429 with ``Retry-After``)."""
        ...

    def note_headers(
        self, headers: Mapping[str, str], quota_headers: tuple[QuotaHeader, ...], now: datetime
    ) -> None:
        """What an answer's quota headers say: hold off when exhausted, count down otherwise."""
        ...


def hold_while_exhausted(
    limiter: Limiter,
    headers: Mapping[str, str],
    quota_headers: tuple[QuotaHeader, ...],
    now: datetime,
) -> None:
    """What every limiter does with an answer's quota headers first: when one says nothing
    is left, nobody on the credential sends until its reset."""
    hold = quota_wait(headers, quota_headers, now)
    if hold:
        limiter.block_for(hold)


class TokenBucket:
    """A token bucket that hands out reservations: a taker may drive it negative and is told
    how long to wait, so concurrent takers queue fairly and no one spins."""

    def __init__(self, rate: float, capacity: float, *, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def reserve(self, now: float) -> float:
        self._refill(now)
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def refund(self) -> None:
        self.tokens = min(self.capacity, self.tokens + 1)


class RateLimiter:
    """Per-token request budget: one bucket per quota granularity, plus a hold-off set by 429s
    and exhausted quota headers. Thread-safe; share one instance by every connection that uses
    the same MLS token (see :func:`shared_limiter`), since vendors count per token."""

    def __init__(self, quotas: Quotas, *, monotonic: Monotonic = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        now = monotonic()
        self._buckets: list[TokenBucket] = []
        for amount, period in (
            (quotas.per_second, 1.0),
            (quotas.per_minute, 60.0),
            (quotas.per_hour, 3600.0),
            (quotas.per_day, 86400.0),
        ):
            if amount:
                self._buckets.append(TokenBucket(amount / period, max(1.0, amount), now=now))
        self._blocked_until = 0.0

    def reserve(self) -> float:
        """Takes one request from every bucket; returns the seconds to wait before sending."""
        with self._lock:
            now = self._monotonic()
            waits = [bucket.reserve(now) for bucket in self._buckets]
            waits.append(self._blocked_until - now)
            return max(0.0, *waits)

    def refund(self) -> None:
        """Gives back a reservation that will not be used (the deadline did not allow it)."""
        with self._lock:
            for bucket in self._buckets:
                bucket.refund()

    def block_for(self, seconds: float) -> None:
        """Nobody on this token sends for ``seconds`` (server said 429 or quota exhausted)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._monotonic() + seconds)

    def permit(self, max_wait: float | None, sleep: Callable[[float], None]) -> bool:
        """:class:`Limiter`: reserve, and sleep the wait unless it is longer than ``max_wait``
        (then the reservation is given back)."""
        wait = self.reserve()
        if max_wait is not None and wait > max_wait:
            self.refund()
            return False
        if wait > 0:
            sleep(wait)
        return True

    def note_headers(
        self, headers: Mapping[str, str], quota_headers: tuple[QuotaHeader, ...], now: datetime
    ) -> None:
        """:class:`Limiter`: an exhausted quota header holds off until its reset."""
        hold_while_exhausted(self, headers, quota_headers, now)


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def credential_fingerprint(*parts: str) -> str:
    """A stable, non-reversible id for a credential, to key shared state without holding it."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def shared_limiter(
    key: str, quotas: Quotas, *, monotonic: Monotonic = time.monotonic
) -> RateLimiter:
    """The process-wide limiter for one token (``key`` from :func:`credential_fingerprint`).
    Across Lambda instances the vendor's own 429/quota headers are the backstop."""
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = RateLimiter(quotas, monotonic=monotonic)
        return limiter


class CircuitBreaker:
    """Per connection: after ``threshold`` operations in a row fail (retries exhausted), no
    request is sent for ``cooldown`` seconds; then one trial request decides."""

    def __init__(
        self, *, threshold: int = 3, cooldown: float = 120.0, monotonic: Monotonic = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._monotonic() - self._opened_at >= self.cooldown:
                return "half-open"
            return "open"

    def retry_in(self) -> float:
        """0 when a request may go; otherwise seconds until the trial request."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self.cooldown - self._monotonic())

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                # A failed half-open trial re-opens for a full cooldown.
                self._opened_at = self._monotonic()


_BREAKERS: dict[str, CircuitBreaker] = {}


def shared_breaker(key: str, *, monotonic: Monotonic = time.monotonic) -> CircuitBreaker:
    with _LIMITERS_LOCK:
        breaker = _BREAKERS.get(key)
        if breaker is None:
            breaker = _BREAKERS[key] = CircuitBreaker(monotonic=monotonic)
        return breaker
