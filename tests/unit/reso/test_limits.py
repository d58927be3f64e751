"""Backoff, Retry-After, quota headers, rate limiter and circuit breaker (pure, clock by hand)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from mls_sync.http.retry_after import parse_retry_after
from mls_sync.reso.limits import (
    CircuitBreaker,
    RateLimiter,
    TokenBucket,
    backoff_delay,
    parse_reset,
    quota_wait,
    shared_limiter,
)
from mls_sync.reso.profiles import PROFILES, Quotas

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        samples = [backoff_delay(attempt, rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # Full jitter: spread over the whole range, not clustered at the ceiling.
        assert min(samples) < ceiling * 0.2
        assert max(samples) > ceiling * 0.8


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert 0 <= backoff_delay(10_000, random.Random(1)) <= 30.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("Sat, 28 Nov 2026 12:00:30 GMT", 30.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_seconds_and_http_date(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("45", 45.0),
        (str(int(NOW.timestamp()) + 90), 90.0),
        (str(int(NOW.timestamp() * 1000) + 10_000), 10.0),
        ("2026-11-28T12:05:00Z", 300.0),
        ("Sat, 28 Nov 2026 12:01:00 GMT", 60.0),
    ],
)
def test_quota_reset_forms(value: str, expected: float) -> None:
    assert parse_reset(value, NOW) == pytest.approx(expected)


def test_quota_wait_only_when_exhausted() -> None:
    trestle = PROFILES["trestle"].quota_headers
    assert quota_wait({"Hour-Quota-Available": "12"}, trestle, NOW) is None
    assert quota_wait(
        {"Hour-Quota-Available": "0", "Hour-Quota-ResetTime": "2026-11-28T12:10:00Z"}, trestle, NOW
    ) == pytest.approx(600.0)
    # Exhausted without a readable reset: hold a minute rather than risk a suspension.
    assert quota_wait({"Hour-Quota-Available": "0"}, trestle, NOW) == 60.0


def test_bridge_takes_the_longest_of_burst_and_hourly() -> None:
    headers = {
        "Burst-RateLimit-Remaining": "0",
        "Burst-RateLimit-Reset": "20",
        "Application-RateLimit-Remaining": "0",
        "Application-RateLimit-Reset": "900",
    }
    assert quota_wait(headers, PROFILES["bridge"].quota_headers, NOW) == 900.0


def test_token_bucket_reserves_and_tells_the_wait() -> None:
    bucket = TokenBucket(rate=2.0, capacity=2.0, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(0.5)  # third in the same instant: wait
    assert bucket.reserve(0.0) == pytest.approx(1.0)  # the fourth queues behind it
    assert bucket.reserve(10.0) == 0.0  # refilled (capped at capacity)


def test_rate_limiter_enforces_mlsgrid_two_per_second() -> None:
    # Given MLS Grid's quota and a hand-driven clock
    clock = FakeClock()
    limiter = RateLimiter(PROFILES["mlsgrid"].quotas, monotonic=clock)
    # When 10 requests are made, each waiting what the limiter says
    for _ in range(10):
        clock.t += limiter.reserve()
    # Then they span at least 4 s (2 immediate, then 2 per second)
    assert clock.t - 1000.0 == pytest.approx(4.0)


def test_rate_limiter_hold_off_and_refund() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Quotas(per_second=1), monotonic=clock)
    limiter.block_for(30)
    assert limiter.reserve() == pytest.approx(30.0)
    limiter.refund()
    clock.t += 30
    assert limiter.reserve() == 0.0


def test_shared_limiter_is_one_per_token() -> None:
    a = shared_limiter("unit-test:token-a", Quotas(per_second=1))
    assert shared_limiter("unit-test:token-a", Quotas(per_second=99)) is a
    assert shared_limiter("unit-test:token-b", Quotas(per_second=1)) is not a


def test_breaker_opens_after_threshold_and_half_opens_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cooldown=60, monotonic=clock)
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    assert breaker.retry_in() == pytest.approx(60)
    clock.t += 60
    assert breaker.state == "half-open"
    assert breaker.retry_in() == 0.0
    # A failed trial re-opens for a full cooldown; a success closes.
    breaker.failure()
    assert breaker.state == "open"
    clock.t += 60
    breaker.success()
    assert breaker.state == "closed"
