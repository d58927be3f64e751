"""Shared HTTP behaviour: waits platforms ask for, backoff, and what is retried."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import httpx
import pytest
from mls_sync.platforms.base import Deleted, RateLimited, Transient
from mls_sync.platforms.http import (
    RetryPolicy,
    meta_wait_seconds,
    parse_meta_usage,
    parse_retry_after,
    scrub,
    seconds_until_next_utc_midnight,
)

from tests.unit.platforms.helpers import NOW, Recorder


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("-5", 0.0),
        ("1.5", 1.5),
        ("Sat, 28 Nov 2026 17:06:05 GMT", 120.0),
        ("Sat, 28 Nov 2026 17:00:00 GMT", 0.0),  # a date in the past means now
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_next_utc_midnight() -> None:
    # Given 17:04:05 UTC, midnight is 6 h 55 min 55 s away
    assert seconds_until_next_utc_midnight(NOW) == 6 * 3600 + 55 * 60 + 55
    # Exactly at midnight, the next reset is a full day away
    midnight = NOW.replace(hour=0, minute=0, second=0)
    assert seconds_until_next_utc_midnight(midnight) == 86_400
    # Another offset is converted to UTC first
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert seconds_until_next_utc_midnight(local) == seconds_until_next_utc_midnight(NOW)


def test_business_use_case_header_gives_the_longest_regain_time_in_seconds() -> None:
    headers = {
        "X-Business-Use-Case-Usage": json.dumps(
            {
                "1234567890": [
                    {
                        "type": "pages",
                        "call_count": 100,
                        "total_cputime": 12,
                        "total_time": 30,
                        "estimated_time_to_regain_access": 19,
                    },
                    {"type": "pages", "call_count": 40, "estimated_time_to_regain_access": 3},
                ]
            }
        )
    }
    usage = parse_meta_usage(headers)
    assert usage.regain_seconds == 19 * 60
    assert usage.max_percent == 100
    assert usage.exhausted
    assert meta_wait_seconds(headers, NOW, default=900) == 19 * 60


def test_app_and_page_usage_headers() -> None:
    headers = {
        "x-app-usage": json.dumps({"call_count": 28, "total_time": 25, "total_cputime": 25}),
        "X-Page-Usage": json.dumps(
            {
                "call_count": 101,
                "total_time": 3,
                "total_cputime": 2,
                "estimated_time_to_regain_access": 5,
            }
        ),
    }
    usage = parse_meta_usage(headers)
    assert usage.max_percent == 101
    assert usage.regain_seconds == 300


def test_meta_wait_falls_back_to_retry_after_then_default() -> None:
    exhausted_without_estimate = {"X-App-Usage": json.dumps({"call_count": 100})}
    assert meta_wait_seconds(exhausted_without_estimate, NOW, default=900) == 900
    with_retry_after = {**exhausted_without_estimate, "Retry-After": "42"}
    assert meta_wait_seconds(with_retry_after, NOW, default=900) == 42
    garbage = {"X-Business-Use-Case-Usage": "not json", "X-App-Usage": "[1, 2]"}
    assert meta_wait_seconds(garbage, NOW, default=900) == 900
    assert parse_meta_usage(garbage).max_percent is None


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_is_full_jitter_under_the_cap(attempt: int) -> None:
    backoff = RetryPolicy().backoff
    ceiling = min(2.0, 0.2 * 2**attempt)
    assert backoff.delay(attempt, lambda: 0.0) == 0.0
    assert backoff.delay(attempt, lambda: 0.999) == pytest.approx(0.999 * ceiling)


def _classify(response: httpx.Response) -> Deleted | Transient | RateLimited:
    if response.status_code >= 500:
        return Transient(
            reason=f"HTTP {response.status_code}",
            retry_after=1.0 if "retry-after" in response.headers else None,
        )
    if response.status_code == 429:
        return RateLimited(retry_after=60, reason="throttled")
    return Deleted()


def test_transient_failures_are_retried_with_backoff_then_succeed() -> None:
    # Given two 503s, then a success
    rec = Recorder([httpx.Response(503), httpx.ConnectError("refused"), httpx.Response(200)])
    # When
    result = rec.http(attempts=3, rng=0.5).call("DELETE", "https://x.test/a", classify=_classify)
    # Then three requests went out, with growing jittered pauses between them
    assert isinstance(result, Deleted)
    assert len(rec.requests) == 3
    assert rec.sleeps == [pytest.approx(0.1), pytest.approx(0.2)]


def test_last_transient_is_returned_when_attempts_run_out() -> None:
    rec = Recorder([httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow")])
    result = rec.http(attempts=2).call("DELETE", "https://x.test/a", classify=_classify)
    assert isinstance(result, Transient)
    assert "timeout" in result.reason
    assert len(rec.sleeps) == 1


def test_throttles_are_never_retried_in_process() -> None:
    rec = Recorder([httpx.Response(429)])
    result = rec.http().call("DELETE", "https://x.test/a", classify=_classify)
    assert isinstance(result, RateLimited)
    assert rec.sleeps == []


def test_transient_retry_after_is_honoured_within_the_in_process_limit() -> None:
    rec = Recorder([httpx.Response(503, headers={"Retry-After": "1"}), httpx.Response(200)])
    result = rec.http(rng=0.0).call("DELETE", "https://x.test/a", classify=_classify)
    assert isinstance(result, Deleted)
    assert rec.sleeps == [1.0]


def test_scrub_removes_known_secrets_and_credential_shapes() -> None:
    text = (
        "token EAAB-secret-1 failed; Authorization: Bearer abc.def-ghi "
        '{"access_token": "xyz123", "refresh_token":"r-456"} client_secret=s3cr3t&x=1'
    )
    cleaned = scrub(text, ["EAAB-secret-1"])
    for secret in ("EAAB-secret-1", "abc.def-ghi", "xyz123", "r-456", "s3cr3t"):
        assert secret not in cleaned
    assert "x=1" in cleaned
    assert len(scrub("a" * 1000)) <= 300
