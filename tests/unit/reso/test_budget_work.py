"""Which reads a sync job's MLS requests count as: a change log's or a push's keys read by
key are everyday reads in the job's own lane, never bulk."""

from __future__ import annotations

from mls_sync.reso.budget_work import current_work, named_reads, work_for


def test_keys_a_log_named_are_read_as_targeted_in_the_jobs_own_lane() -> None:
    with work_for("schedule", targeted=False):
        assert current_work().targeted is False
        with named_reads():
            assert current_work().targeted is True
            assert current_work().lane == "normal"
        assert current_work().targeted is False


def test_push_jobs_keep_the_priority_lane_inside_named_reads() -> None:
    with work_for("push", targeted=True), named_reads():
        assert current_work().lane == "priority"
        assert current_work().targeted is True
