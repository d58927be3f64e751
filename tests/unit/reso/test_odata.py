"""The simulator's OData $filter / $orderby reader."""

from __future__ import annotations

import pytest
from mls_sync.timeutil import Instant

from mls_sync_local.sim.odata import (
    ODataError,
    describe,
    evaluate,
    hint,
    parse_filter,
    parse_orderby,
)

REC = {
    "ListingKey": "K'1",
    "StandardStatus": "Active",
    "ModificationTimestamp": "2026-01-01T00:00:00.1234567-05:00",
    "ListPrice": 250000,
    "MlgCanView": True,
    "CloseDate": None,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("StandardStatus eq 'Active'", True),
        ("StandardStatus ne 'Active'", False),
        ("StandardStatus eq Odata.Models.StandardStatus'Active'", True),
        ("ListingKey eq 'K''1'", True),
        ("ListPrice gt 200000 and ListPrice le 250000", True),
        ("ListPrice lt 1 or StandardStatus eq 'Active'", True),
        ("not (StandardStatus eq 'Active')", False),
        ("not StandardStatus eq 'Closed'", True),
        ("StandardStatus in ('Pending', 'Active')", True),
        ("StandardStatus in ('Pending')", False),
        ("MlgCanView eq true", True),
        ("CloseDate eq null", True),
        ("CloseDate gt 2020-01-01", False),
        # Instants, not text: the same moment in UTC and 100 ns either side
        ("ModificationTimestamp eq 2026-01-01T05:00:00.1234567Z", True),
        ("ModificationTimestamp gt 2026-01-01T05:00:00.1234566Z", True),
        ("ModificationTimestamp lt 2026-01-01T05:00:00.1234568Z", True),
        ("ModificationTimestamp ge 2026-01-01T05:00:00.124Z", False),
        ("ModificationTimestamp ge 2026-01-01T06:00:00.1234567+01:00", True),
        (
            "(ModificationTimestamp gt 2026-01-01T05:00:00.1234567Z or "
            "(ModificationTimestamp eq 2026-01-01T05:00:00.1234567Z and ListingKey gt 'K'))",
            True,
        ),
        ("a eq 1 or b eq 2 and c eq 3", False),  # and binds tighter than or
    ],
)
def test_filter_evaluation(text: str, expected: bool) -> None:
    assert evaluate(parse_filter(text), REC) is expected


@pytest.mark.parametrize(
    "text",
    ["StandardStatus eq", "eq 'x'", "(A eq 1", "A eq 1)", "A in (B)", "A ~ 1", "", "A eq 'x"],
)
def test_unreadable_filters_raise(text: str) -> None:
    with pytest.raises(ODataError):
        parse_filter(text)


def test_describe_lists_fields_ors_and_equalities() -> None:
    info = describe(
        parse_filter(
            "OriginatingSystemName eq 'actris' and (ListingId eq 'A' or ListingId eq 'B' "
            "or ListingKey in ('x'))"
        )
    )
    assert info.fields == {"OriginatingSystemName", "ListingId", "ListingKey"}
    assert info.or_count == 2
    assert ("OriginatingSystemName", "actris") in info.equalities


def test_orderby() -> None:
    assert parse_orderby("ModificationTimestamp asc, ListingKey desc") == [
        ("ModificationTimestamp", False),
        ("ListingKey", True),
    ]
    assert parse_orderby("ListingKey") == [("ListingKey", False)]
    with pytest.raises(ODataError):
        parse_orderby("ListingKey sideways")


def test_index_hints_are_necessary_conditions() -> None:
    ts = ("ModificationTimestamp",)
    keys = ("ListingKey", "ListingId")
    keyset = parse_filter(
        "OriginatingSystemName eq 'x' and (ModificationTimestamp gt 2026-01-01T00:00:01Z or "
        "(ModificationTimestamp eq 2026-01-01T00:00:01Z and ListingKey gt 'K'))"
    )
    assert hint(keyset, ts, keys).ts_min == Instant.parse("2026-01-01T00:00:01Z").epoch_ns
    lookup = hint(parse_filter("ListingId in ('A', 'B')"), ts, keys)
    assert lookup.values == ("ListingId", frozenset({"A", "B"}))
    # An 'or' with an unbounded side, or a 'not', narrows nothing.
    loose = parse_filter("ModificationTimestamp ge 2026-01-01T00:00:00Z or StandardStatus eq 'A'")
    assert hint(loose, ts, keys).ts_min is None
    negated = parse_filter("not (ModificationTimestamp ge 2026-01-01T00:00:00Z)")
    assert hint(negated, ts, keys).ts_min is None
