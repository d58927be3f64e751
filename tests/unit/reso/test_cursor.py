"""Cursor arithmetic and filter literals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mls_sync.models import Cursor
from mls_sync.reso.cursor import (
    INITIAL_CURSOR_LEAD_SECONDS,
    after_filter,
    initial_cursor,
    position,
    quote,
    shift_literal,
)
from mls_sync.timeutil import Instant


@pytest.mark.parametrize(
    ("raw", "seconds", "expected"),
    [
        # 7 digits stay 7 digits: servers comparing as text see their own precision.
        ("2026-01-01T00:10:00.1234567Z", 300, "2026-01-01T00:05:00.1234567Z"),
        # A non-UTC offset keeps its offset; half a second floors to the whole second before.
        ("2026-01-01T00:10:00-05:00", 0.5, "2026-01-01T00:09:59-05:00"),
        ("2026-01-01T00:10:00.123+02:00", 600, "2026-01-01T00:00:00.123+02:00"),
        ("2026-01-01T00:00:00.000000001Z", 0, "2026-01-01T00:00:00.000000001Z"),
        ("2026-03-01T00:00:00Z", 1, "2026-02-28T23:59:59Z"),
    ],
)
def test_shift_literal_keeps_the_servers_spelling(raw: str, seconds: float, expected: str) -> None:
    assert shift_literal(raw, seconds) == expected


def test_shift_literal_is_never_later_than_the_exact_instant() -> None:
    # Given a millisecond literal and a shift of a fraction of a millisecond
    raw = "2026-01-01T00:00:00.005Z"
    # When shifted
    out = shift_literal(raw, 0.0004)
    # Then the floored result is at or before the exact instant (a 'ge' filter stays a superset)
    assert Instant.parse(out).epoch_ns <= Instant.parse(raw).epoch_ns - 400_000


def test_after_filter_is_a_keyset_condition_on_the_raw_literal() -> None:
    cursor = Cursor(timestamp="2026-01-01T00:00:00.1234567Z", listing_key="O'Neil-1")
    assert after_filter("ModificationTimestamp", "ListingKey", cursor) == (
        "(ModificationTimestamp gt 2026-01-01T00:00:00.1234567Z or "
        "(ModificationTimestamp eq 2026-01-01T00:00:00.1234567Z and ListingKey gt 'O''Neil-1'))"
    )


def test_after_filter_without_key_includes_the_timestamp_itself() -> None:
    cursor = Cursor(timestamp="2026-01-01T00:00:00Z", listing_key="")
    assert after_filter("ModificationTimestamp", "ListingKey", cursor) == (
        "ModificationTimestamp ge 2026-01-01T00:00:00Z"
    )


def test_position_orders_by_instant_not_text() -> None:
    # Given the same instant in two spellings and a later instant in a negative offset
    a = Cursor(timestamp="2026-01-01T05:00:00Z", listing_key="B")
    b = Cursor(timestamp="2026-01-01T00:00:00.0000001-05:00", listing_key="A")
    # Then 100 ns later wins although its key and text sort lower
    assert position(b) > position(a)


def test_initial_cursor_is_whole_seconds_utc_a_few_seconds_early() -> None:
    now = datetime(2026, 1, 1, 1, 2, 3, 999_999, tzinfo=UTC)
    assert INITIAL_CURSOR_LEAD_SECONDS == 5
    assert initial_cursor(now) == Cursor(timestamp="2026-01-01T01:01:58Z", listing_key="")


def test_quote_escapes_single_quotes() -> None:
    assert quote("a'b") == "'a''b'"
