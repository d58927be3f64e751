"""The status vocabulary: every RESO StandardStatus, in display and lookup form, maps to our
status exactly as the contract's table says; anything else is rejected, naming the value."""

from __future__ import annotations

import pytest
from mls_sync.status import (
    StandardStatus,
    Status,
    UnknownStatusError,
    parse_standard_status,
    parse_status,
    status_from_reso,
)

# CONTRACT section 3: (display name, lookup name, our status)
TABLE = [
    ("Active", "Active", Status.ACTIVE),
    ("Active Under Contract", "ActiveUnderContract", Status.PENDING),
    ("Pending", "Pending", Status.PENDING),
    ("Closed", "Closed", Status.SOLD),
    ("Coming Soon", "ComingSoon", Status.COMING_SOON),
    ("Expired", "Expired", Status.EXPIRED),
    ("Withdrawn", "Withdrawn", Status.WITHDRAWN),
    ("Canceled", "Canceled", Status.CANCELED),
    ("Hold", "Hold", Status.HOLD),
    ("Delete", "Delete", Status.DELETED),
    ("Incomplete", "Incomplete", Status.INCOMPLETE),
]


def test_the_table_covers_all_eleven_reso_values() -> None:
    assert len(TABLE) == 11
    assert {d for d, _, _ in TABLE} == {s.value for s in StandardStatus}


@pytest.mark.parametrize(("display", "lookup", "ours"), TABLE)
def test_display_and_lookup_names_map_to_our_status(
    display: str, lookup: str, ours: Status
) -> None:
    assert status_from_reso(display) is ours
    assert status_from_reso(lookup) is ours
    parsed = parse_standard_status(lookup)
    assert parsed.value == display
    assert parsed.lookup_name == lookup
    assert parsed.status is ours


def test_surrounding_whitespace_is_tolerated() -> None:
    assert status_from_reso("  Closed ") is Status.SOLD


@pytest.mark.parametrize(
    "value", ["Sold", "closed", "ACTIVE", "Active-Under-Contract", "", None, 3]
)
def test_unknown_reso_values_are_rejected_naming_the_value(value: object) -> None:
    with pytest.raises(UnknownStatusError) as caught:
        status_from_reso(value)
    assert repr(value) in str(caught.value)
    assert "Active Under Contract" in str(caught.value)  # and says what would be accepted
    assert caught.value.value == value


def test_unknown_status_error_is_a_value_error() -> None:
    # pydantic validators turn ValueError into a validation error, so it is never stored
    assert issubclass(UnknownStatusError, ValueError)


def test_our_own_status_names() -> None:
    assert [s.value for s in Status] == [
        "active",
        "pending",
        "sold",
        "coming_soon",
        "expired",
        "withdrawn",
        "canceled",
        "hold",
        "deleted",
        "incomplete",
    ]
    for status in Status:
        assert parse_status(status.value) is status


@pytest.mark.parametrize("value", ["sould", "Active", "Closed", "", None])
def test_our_parser_rejects_reso_and_misspelt_names(value: object) -> None:
    with pytest.raises(UnknownStatusError, match="is not a status") as caught:
        parse_status(value)
    assert repr(value) in str(caught.value)
    assert "coming_soon" in str(caught.value)
