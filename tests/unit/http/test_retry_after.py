"""Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date in any of its three forms,
clamped to [0, cap]; anything unreadable is no wait at all."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mls_sync.http.retry_after import MAX_WAIT_SECONDS, parse_http_date, parse_retry_after

NOW = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),  # not RFC delta-seconds, but sent in practice
        ("-5", 0.0),  # a negative wait means now
        ("Tue, 01 Dec 2026 09:02:00 GMT", 120.0),  # IMF-fixdate
        ("Tuesday, 01-Dec-26 09:00:30 GMT", 30.0),  # obsolete RFC 850
        ("Tue Dec  1 09:00:45 2026", 45.0),  # obsolete asctime
        ("Tue, 01 Dec 2026 08:00:00 GMT", 0.0),  # in the past: go now
    ],
)
def test_seconds_and_every_http_date_form(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "nan", "inf", "-inf", "12 s"])
def test_unreadable_values_are_no_wait(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_waits_are_clamped_to_the_cap() -> None:
    assert parse_retry_after("99999999999", NOW) == MAX_WAIT_SECONDS
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == MAX_WAIT_SECONDS
    assert parse_retry_after("600", NOW, cap=60.0) == 60.0


def test_an_http_date_is_read_as_utc() -> None:
    assert parse_http_date("Tue, 01 Dec 2026 09:00:00 GMT") == NOW
    assert parse_http_date("Tue, 01 Dec 2026 10:00:00 +0100") == NOW
    assert parse_http_date("Tue, 01 Dec 2026 09:00:00 -0000") == NOW
    assert parse_http_date("yesterday") is None
    assert parse_http_date(None) is None
