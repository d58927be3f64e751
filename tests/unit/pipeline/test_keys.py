"""Slots, deduplication ids and run keys are derived from the job alone, so a firing or a
message delivered twice maps to the same message and the same sync run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mls_sync.models import Cursor, SyncJob
from mls_sync.pipeline.keys import dedup_id, group_id, manual_slot, run_key, slot_of, sqs_id
from mls_sync.timeutil import parse_utc

FIRED = datetime(2026, 11, 28, 17, 4, 5, 123456, tzinfo=UTC)


def _job(reason: str = "schedule", **kw: object) -> SyncJob:
    return SyncJob.model_validate(
        {
            "connectionId": "c-1",
            "reason": reason,
            "slot": "2026-11-28T17:00:00Z",
            "correlationId": "corr",
            **kw,
        }
    )


def test_slot_rounds_down_to_the_period() -> None:
    assert slot_of(FIRED, 900) == "2026-11-28T17:00:00.000000Z"
    assert slot_of(FIRED, 300) == "2026-11-28T17:00:00.000000Z"
    assert slot_of(FIRED, 60) == "2026-11-28T17:04:00.000000Z"


def test_slot_is_the_same_for_a_late_duplicate_and_another_timezone() -> None:
    # Given the same firing seen in UTC, 40 s late, and in a +05:30 offset
    late = FIRED + timedelta(seconds=40)
    shifted = FIRED.astimezone(timezone(timedelta(hours=5, minutes=30)))
    # Then all three fall in one slot
    assert slot_of(late, 900) == slot_of(FIRED, 900) == slot_of(shifted, 900)


def test_next_period_is_a_new_slot() -> None:
    assert slot_of(FIRED + timedelta(minutes=15), 900) != slot_of(FIRED, 900)


@given(
    st.datetimes(datetime(1971, 1, 1), datetime(9000, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([60, 300, 900, 3600]),
)
def test_slot_is_never_after_the_firing_and_within_one_period(fired: datetime, period: int) -> None:
    slot = parse_utc(slot_of(fired, period))
    assert slot <= fired
    assert fired - slot < timedelta(seconds=period)
    assert int(slot.timestamp()) % period == 0


def test_naive_or_bad_period_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        slot_of(datetime(2026, 1, 1), 60)
    with pytest.raises(ValueError, match="positive"):
        slot_of(FIRED, 0)


def test_manual_slot_is_the_minute() -> None:
    assert manual_slot(FIRED) == "2026-11-28T17:04:00.000000Z"


def test_schedule_dedup_id_is_connection_and_slot() -> None:
    assert dedup_id(_job()) == "c-1#2026-11-28T17:00:00.000000Z"
    assert dedup_id(_job()) == dedup_id(_job(correlationId="another"))


def test_reasons_never_share_a_dedup_id() -> None:
    ids = {
        dedup_id(_job("schedule")),
        dedup_id(_job("reconcile")),
        dedup_id(_job("manual")),
        dedup_id(_job("continuation"), Cursor(timestamp="2026-11-28T16:00:00Z")),
    }
    assert len(ids) == 4


def test_continuation_dedup_id_follows_the_cursor() -> None:
    a = Cursor(timestamp="2026-11-28T16:00:00Z", listing_key="A")
    b = Cursor(timestamp="2026-11-28T16:00:00Z", listing_key="B")
    job = _job("continuation")
    assert dedup_id(job, a) == dedup_id(job, a)
    assert dedup_id(job, a) != dedup_id(job, b)
    assert run_key(job, a) != run_key(job, b)


def test_manual_keys_in_any_order_are_one_job() -> None:
    one = _job("manual", listingKeys=["K2", "K1"])
    two = _job("manual", listingKeys=["K1", "K2", "K1"])
    assert dedup_id(one) == dedup_id(two)
    assert run_key(one) == run_key(two)
    assert run_key(one) != run_key(_job("manual"))


def test_run_keys_sort_by_slot_and_differ_by_reason() -> None:
    early = run_key(_job())
    later = run_key(_job(slot="2026-11-28T17:15:00Z"))
    assert early < later
    assert run_key(_job()) != run_key(_job("reconcile"))


def test_ids_sqs_would_refuse_become_a_stable_digest() -> None:
    long_id = "c" * 200
    spaced = "conn with spaces"
    assert sqs_id(long_id) == sqs_id(long_id)
    assert len(sqs_id(long_id)) <= 128
    assert sqs_id(spaced).startswith("h-")
    assert group_id("c-1") == "c-1"
    # the longest connection id a job may carry (issue 19: ids of ours are 1-128 characters)
    assert len(dedup_id(_job(connectionId="c" * 128))) <= 128
