"""Issue 14, cases 1 and 2: one fixed-width timestamp form (four-digit years) that sorts in
time order as text and reads back; no arithmetic on a valid timestamp raises; implausible
change timestamps are skipped per record with a named reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mls_sync.reso.cursor import shift_literal
from mls_sync.reso.profiles import profile_for
from mls_sync.reso.records import (
    EARLIEST_PLAUSIBLE,
    PLAUSIBLE_FUTURE,
    MlsRecord,
    SkippedRecord,
    parse_record,
)
from mls_sync.timeutil import Instant, TimestampError, format_utc, parse_utc

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
YEARS = [
    "0001-01-01T00:00:00Z",
    "0999-12-31T23:59:59Z",
    "1000-01-01T00:00:00Z",
    "2026-11-28T12:00:00Z",
    "9999-12-31T23:59:59Z",
]


@pytest.mark.parametrize("value", YEARS)
def test_every_year_round_trips_in_the_fixed_width_form(value: str) -> None:
    instant = Instant.parse(value)
    assert instant.sort_key() == value[:-1] + ".000000000Z"
    assert instant.iso_micro() == value[:-1] + ".000000Z"
    assert format_utc(instant.to_datetime()) == instant.iso_micro()
    assert Instant.parse(instant.iso_micro()) == instant
    assert Instant.parse(instant.sort_key()) == instant
    assert parse_utc(format_utc(instant.to_datetime())) == instant.to_datetime()


def test_the_stored_forms_sort_as_text_in_time_order() -> None:
    instants = [Instant.parse(v) for v in reversed(YEARS)]
    assert sorted(i.sort_key() for i in instants) == [i.sort_key() for i in sorted(instants)]
    assert sorted(i.iso_micro() for i in instants) == [i.iso_micro() for i in sorted(instants)]
    assert len({len(i.sort_key()) for i in instants}) == 1


def test_a_value_stored_before_years_were_padded_reads_back() -> None:
    assert format_utc(parse_utc("999-01-02T03:04:05.000000Z")) == "0999-01-02T03:04:05.000000Z"


@pytest.mark.parametrize(
    "value",
    ["9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00+14:00"],
)
def test_no_arithmetic_on_a_valid_timestamp_raises(value: str) -> None:
    instant = Instant.parse(value)
    assert 1 <= instant.to_datetime().year <= 9999
    assert Instant.parse(instant.iso_micro()) <= Instant.parse("9999-12-31T23:59:59.999999999Z")
    assert len(instant.sort_key()) == len("2026-11-28T12:00:00.000000000Z")
    assert instant.minus(1e12).to_datetime().year == 1  # below year 1: clamped
    assert instant.minus(-1e12).to_datetime().year == 9999
    with pytest.raises(TimestampError):
        instant.minus(float("nan"))


def test_format_utc_pads_years_and_survives_offsets_at_the_edges() -> None:
    assert format_utc(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000000Z"
    edge = datetime(9999, 12, 31, 23, tzinfo=UTC).astimezone(UTC)
    assert format_utc(edge) == "9999-12-31T23:00:00.000000Z"


# --------------------------------------------------------------------------- shift_literal


@pytest.mark.parametrize(
    ("raw", "seconds", "expected"),
    [
        ("9999-12-31T23:59:59-01:00", 300, "9999-12-31T23:54:59-01:00"),
        ("9999-12-31T23:59:59+14:00", 300, "9999-12-31T23:54:59+14:00"),
        ("0001-01-01T00:00:00Z", 300, "0001-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59+01:00", -300, "9999-12-31T23:04:59Z"),
        ("0001-01-01T00:02:00-01:00", 300, "0001-01-01T00:57:00Z"),
        ("0999-05-01T00:00:00.12Z", 0.001, "0999-05-01T00:00:00.11Z"),
        ("1000-01-01T00:00:00.5+02:00", 1, "0999-12-31T23:59:59.5+02:00"),
    ],
)
def test_shift_literal_never_raises_and_pads_years(raw: str, seconds: float, expected: str) -> None:
    out = shift_literal(raw, seconds)
    assert out == expected
    Instant.parse(out)


def test_shift_literal_falls_back_to_the_same_instant_in_utc() -> None:
    out = shift_literal("9999-12-31T23:59:59+01:00", -300)
    assert Instant.parse(out) == Instant.parse("9999-12-31T23:59:59+01:00").minus(-300)


# --------------------------------------------------------------------------- plausibility


def _raw(stamp: str) -> dict[str, object]:
    return {"ListingKey": "K1", "StandardStatus": "Active", "ModificationTimestamp": stamp}


@pytest.mark.parametrize(
    ("stamp", "why"),
    [
        ("0001-01-01T00:00:00Z", "before 1900"),
        ("1899-12-31T23:59:59Z", "before 1900"),
        ("9999-12-31T23:59:59Z", "more than a year in the future"),
        ("9999-12-31T23:59:59-01:00", "more than a year in the future"),
    ],
)
def test_an_implausible_change_timestamp_is_skipped_with_a_named_reason(
    stamp: str, why: str
) -> None:
    out = parse_record(_raw(stamp), profile_for("reso"), now=NOW)
    assert out == SkippedRecord(
        listing_key="K1", reason=f"ModificationTimestamp {stamp} is implausible ({why})"
    )


def test_the_reason_names_the_profile_s_change_field() -> None:
    raw = {
        "ListingKey": "K1",
        "StandardStatus": "Active",
        "BridgeModificationTimestamp": "0001-01-01T00:00:00Z",
    }
    out = parse_record(raw, profile_for("bridge"), now=NOW)
    assert isinstance(out, SkippedRecord)
    assert out.reason.startswith("BridgeModificationTimestamp 0001-01-01T00:00:00Z is implausible")


def test_plausible_timestamps_are_accepted() -> None:
    tomorrow = format_utc(NOW + timedelta(days=1))
    assert isinstance(parse_record(_raw(tomorrow), profile_for("reso"), now=NOW), MlsRecord)
    assert isinstance(
        parse_record(_raw("1900-01-01T00:00:00Z"), profile_for("reso"), now=NOW), MlsRecord
    )
    edge = format_utc(NOW + PLAUSIBLE_FUTURE)
    assert isinstance(parse_record(_raw(edge), profile_for("reso"), now=NOW), MlsRecord)
    assert datetime(1900, 1, 1, tzinfo=UTC) == EARLIEST_PLAUSIBLE


def test_without_now_every_readable_timestamp_is_kept() -> None:
    out = parse_record(_raw("0001-01-01T00:00:00Z"), profile_for("reso"))
    assert isinstance(out, MlsRecord)
