"""Timestamps written in the server's own spelling: a clamped cursor and a first cursor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mls_sync.reso.cursor import initial_cursor, literal_like
from mls_sync.timeutil import Instant

NS = Instant.parse("2026-11-28T12:00:03.698765432Z").epoch_ns


@pytest.mark.parametrize(
    ("like", "want"),
    [
        (None, "2026-11-28T12:00:03Z"),
        ("2026-01-01T00:00:00Z", "2026-11-28T12:00:03Z"),
        ("2026-01-01T00:00:00.000Z", "2026-11-28T12:00:03.698Z"),
        ("2026-01-01T00:00:00.1234567-05:00", "2026-11-28T07:00:03.6987654-05:00"),
        ("2026-01-01T00:00:00.12+0530", "2026-11-28T17:30:03.69+0530"),
        ("2026-01-01 00:00:00.1", "2026-11-28T12:00:03.6"),
        ("not a timestamp", "2026-11-28T12:00:03Z"),
    ],
)
def test_spelled_like_the_server_floored_to_its_digits(like: str | None, want: str) -> None:
    got = literal_like(NS, like)
    assert got == want
    assert Instant.parse(got).epoch_ns <= NS


def test_never_raises_at_the_ends_of_the_calendar() -> None:
    end = Instant.parse("9999-12-31T23:59:59.999Z").epoch_ns
    assert literal_like(end, "2026-01-01T00:00:00+01:00") == "9999-12-31T23:59:59Z"
    assert literal_like(end + 10**18, None) == "9999-12-31T23:59:59Z"
    assert literal_like(-(10**20), "2026-01-01T00:00:00.0Z") == "0001-01-01T00:00:00.0Z"


def test_initial_cursor_in_the_servers_spelling() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, 300_000, tzinfo=UTC)
    cursor = initial_cursor(now, like="2020-01-01T00:00:00.0000000-05:00")
    assert cursor.timestamp == "2026-11-28T06:59:55.3000000-05:00"
    assert cursor.listing_key == ""
