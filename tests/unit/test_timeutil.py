"""MLS timestamps compare exactly (nanoseconds), whatever their spelling, and are stored in
one form: ISO 8601 UTC with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from mls_sync.timeutil import Instant, TimestampError, format_utc, parse_utc


def test_seven_digit_fractions_are_kept_for_comparison() -> None:
    # Two records 100 ns apart: datetime would call them equal; Instant does not
    a = Instant.parse("2026-11-28T17:04:05.1234567Z")
    b = Instant.parse("2026-11-28T17:04:05.1234568Z")
    assert a < b
    assert b.epoch_ns - a.epoch_ns == 100
    # but both store as the same microsecond
    assert a.iso_micro() == b.iso_micro() == "2026-11-28T17:04:05.123456Z"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T17:04:05Z",
        "2026-11-28T17:04:05.000Z",
        "2026-11-28T17:04:05.0000000Z",
        "2026-11-28T12:04:05-05:00",
        "2026-11-28T18:04:05+0100",
        "2026-11-28T17:04:05",  # no offset: UTC, as RESO servers mean it
        "2026-11-28 17:04:05z",
    ],
)
def test_spellings_of_the_same_instant_are_equal(text: str) -> None:
    assert Instant.parse(text).epoch_ns == Instant.parse("2026-11-28T17:04:05Z").epoch_ns


def test_offsets_order_by_time_not_by_text() -> None:
    # Textually earlier, but five hours later in UTC
    east = Instant.parse("2026-11-28T10:00:00-05:00")
    utc = Instant.parse("2026-11-28T14:59:59.9999999Z")
    assert utc < east
    assert sorted([east, utc]) == [utc, east]


def test_sort_key_orders_like_the_instant_and_is_fixed_width() -> None:
    values = [
        "2026-11-28T17:04:05.1234568Z",
        "2026-11-28T17:04:05Z",
        "2026-11-28T12:04:05.5-05:00",
        "2025-01-01T00:00:00Z",
        "2026-11-28T17:04:05.1234567Z",
    ]
    instants = [Instant.parse(v) for v in values]
    assert sorted(instants) == sorted(instants, key=lambda i: i.sort_key())
    assert len({len(i.sort_key()) for i in instants}) == 1
    assert Instant.parse("2026-11-28T17:04:05.1234567Z").sort_key() == (
        "2026-11-28T17:04:05.123456700Z"
    )


def test_storage_form_is_utc_with_microseconds() -> None:
    assert Instant.parse("2026-11-28T12:04:05.5-05:00").iso_micro() == (
        "2026-11-28T17:04:05.500000Z"
    )
    assert format_utc(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-01-02T01:04:05.000000Z"
    )
    assert parse_utc("2026-11-28T17:04:05.9999999Z") == datetime(
        2026, 11, 28, 17, 4, 5, 999999, tzinfo=UTC
    )


def test_filter_literal_keeps_the_servers_spelling() -> None:
    assert Instant.parse("2026-11-28T17:04:05.1234567Z").filter_literal() == (
        "2026-11-28T17:04:05.1234567Z"
    )
    assert Instant(0).filter_literal() == "1970-01-01T00:00:00.000000000Z"


def test_from_datetime_round_trips() -> None:
    moment = datetime(2026, 11, 28, 17, 4, 5, 123456, tzinfo=UTC)
    assert Instant.from_datetime(moment).to_datetime() == moment
    assert Instant.from_datetime(moment).epoch_ns == (
        Instant.parse("2026-11-28T17:04:05.123456Z").epoch_ns
    )


def test_minus_moves_back_exactly() -> None:
    base = Instant.parse("2026-11-28T17:04:05Z")
    assert base.minus(1.5).epoch_ns == base.epoch_ns - 1_500_000_000


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-28", 42])
def test_invalid_timestamps_are_rejected_naming_the_value(text: object) -> None:
    with pytest.raises(TimestampError) as caught:
        Instant.parse(text)  # type: ignore[arg-type]
    assert repr(text) in str(caught.value)


def test_naive_values_are_refused_where_a_zone_is_needed() -> None:
    with pytest.raises(TimestampError, match="no UTC offset"):
        Instant.parse("2026-11-28T17:04:05", assume_utc=False)
    with pytest.raises(TimestampError, match="naive"):
        format_utc(datetime(2026, 11, 28))
    with pytest.raises(TimestampError, match="naive"):
        Instant.from_datetime(datetime(2026, 11, 28))
