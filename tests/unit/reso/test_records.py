"""Record validation: bad data is reported (which record, why), never raised."""

from __future__ import annotations

from datetime import date

from mls_sync.reso.profiles import profile_for
from mls_sync.reso.records import MlsRecord, SkippedRecord, parse_record
from mls_sync.status import StandardStatus

RESO = profile_for("reso")
GRID = profile_for("mlsgrid")


def good(**over: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "ListingKey": "K1",
        "StandardStatus": "ActiveUnderContract",
        "MlsStatus": "Contingent",
        "ModificationTimestamp": "2026-01-01T00:00:00.1234567-05:00",
        "StatusChangeTimestamp": "2025-12-31T00:00:00Z",
        "CloseDate": "2026-01-05",
    }
    raw.update(over)
    return raw


def test_a_good_record_keeps_the_raw_timestamp() -> None:
    rec = parse_record(good(), RESO)
    assert isinstance(rec, MlsRecord)
    assert rec.standard_status is StandardStatus.ACTIVE_UNDER_CONTRACT
    assert rec.modification.raw == "2026-01-01T00:00:00.1234567-05:00"
    assert rec.modification.epoch_ns % 1_000_000_000 == 123_456_700
    assert rec.close_date == date(2026, 1, 5)
    assert rec.visible


def test_display_form_status_accepted() -> None:
    rec = parse_record(good(StandardStatus="Coming Soon"), RESO)
    assert isinstance(rec, MlsRecord)
    assert rec.standard_status is StandardStatus.COMING_SOON


def test_bad_records_are_skipped_with_a_reason() -> None:
    cases = {
        "missing ListingKey": (good(ListingKey=None), None),
        "StandardStatus": (good(StandardStatus="Sould"), "K1"),
        "missing ModificationTimestamp": (good(ModificationTimestamp=None), "K1"),
        "ModificationTimestamp:": (good(ModificationTimestamp="yesterday"), "K1"),
        "not an object": ("junk", None),
    }
    for reason, (raw, key) in cases.items():
        out = parse_record(raw, RESO)
        assert isinstance(out, SkippedRecord), reason
        assert reason in out.reason
        assert out.listing_key == key
    missing = parse_record(good(StandardStatus=None), RESO)
    assert isinstance(missing, SkippedRecord)


def test_mlgcanview_false_is_a_deletion_signal_even_without_status() -> None:
    out = parse_record(good(StandardStatus=None, MlgCanView=False, ListingId="ACT1"), GRID)
    assert isinstance(out, MlsRecord)
    assert not out.visible
    assert out.standard_status is None
    assert out.listing_id == "ACT1"


def test_bad_informational_fields_do_not_hide_the_status() -> None:
    out = parse_record(good(StatusChangeTimestamp="??", CloseDate="n/a"), RESO)
    assert isinstance(out, MlsRecord)
    assert out.status_change_timestamp is None
    assert out.close_date is None
