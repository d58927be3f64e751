"""A run's counts are typed in code and stored in the shape SyncRuns history has always had:
camelCase names, ``"from>to"`` transition keys, zero counts left out, unknown keys skipped."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal

import pytest
from mls_sync.models import SyncRun
from mls_sync.run_counts import RunCounts
from mls_sync.status import Status
from pydantic import ValidationError

# Every name a run stored before the counts were typed (issue 16): history written then
# must read the same now, so renaming a field must fail here, not in production.
STORED_NAMES = {
    "anchored", "batchesRetried", "continuations", "degraded", "deletionRefused",
    "detectionProbed", "detectionReset", "effectsPending", "effectsResumed", "eventLogBroken",
    "eventPages", "events", "eventsFailed", "eventsSkipped", "eventsTracked", "excluded",
    "failed", "firstSync", "futureStamped", "implausibleAnswers", "keysRepaired",
    "lookupMismatch", "massChangeHeld", "newlyTracked", "notReconcilable", "notTracked",
    "pages", "phaseCompleted", "phaseResumed", "pushRequeued", "pushedKeys",
    "quarantineCleared", "quarantined", "readByKey", "reconciled", "recordsRead", "skipped",
    "statusChanges", "takedownsHeld", "tracked", "unchanged", "unpublishJobs", "untracked",
    "updated", "vanished",
}  # fmt: skip


def _run(counts: object) -> SyncRun:
    return SyncRun.model_validate(
        {
            "connectionId": "c-1",
            "runKey": "2026-11-28T17:00:00Z#schedule",
            "reason": "schedule",
            "startedAt": "2026-11-28T17:00:00Z",
            "counts": counts,
        }
    )


def _every_count_set() -> RunCounts:
    """Each count a different non-zero value, so a field stored under another's name shows."""
    counts = RunCounts()
    for n, f in enumerate(fields(RunCounts), start=1):
        if f.name != "transitions":
            setattr(counts, f.name, n)
    return counts


def test_every_count_is_stored_under_the_name_history_has() -> None:
    stored = _every_count_set().to_stored()
    assert set(stored) == STORED_NAMES
    assert stored["recordsRead"] != stored["statusChanges"]


def test_counts_round_trip_through_the_stored_shape() -> None:
    # Given a run's counts with transitions, one of them from no status
    counts = _every_count_set()
    counts.status_changed(Status.ACTIVE, Status.SOLD)
    counts.status_changed(Status.ACTIVE, Status.SOLD)
    counts.status_changed(None, Status.PENDING)
    # When stored and read back
    stored = counts.to_stored()
    # Then the transitions are spelt as history spells them, and nothing is lost
    assert stored["active>sold"] == 2
    assert stored["None>pending"] == 1
    assert RunCounts.from_stored(stored) == counts


def test_a_sync_run_item_keeps_the_stored_shape_both_ways() -> None:
    # Given an item as DynamoDB hands it back (numbers as Decimal)
    item_counts = {"recordsRead": Decimal(41), "statusChanges": Decimal(2), "active>sold": 2}
    run = _run(item_counts)
    # Then the counts are typed
    assert run.counts.records_read == 41
    assert run.counts.status_changes == 2
    assert run.counts.transitions == {(Status.ACTIVE, Status.SOLD): 2}
    # And the item written back has exactly the map it was read from
    assert run.to_item()["counts"] == {"recordsRead": 41, "statusChanges": 2, "active>sold": 2}
    assert SyncRun.model_validate_json(run.model_dump_json(by_alias=True)) == run


def test_zero_counts_are_left_out() -> None:
    counts = RunCounts(records_read=3, failed=0)
    counts.transitions[(Status.ACTIVE, Status.SOLD)] = 0
    assert counts.to_stored() == {"recordsRead": 3}
    assert RunCounts().to_stored() == {}
    assert _run(RunCounts()).to_item()["counts"] == {}


def test_unknown_stored_keys_are_skipped_not_errors() -> None:
    # Given an item from another version: a count we do not have, and transitions naming
    # a status we do not know or spelt in no form we wrote
    run = _run({"failed": 1, "retiredCount": 7, "active>archived": 1, ">": 2, "x>y>z": 1})
    # Then it reads, with the counts we know
    assert run.counts == RunCounts(failed=1)


@pytest.mark.parametrize("value", ["3", 1.5, True, None, [1]])
def test_a_known_count_that_is_not_a_whole_number_is_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="failed"):
        _run({"failed": value})


def test_counts_that_are_not_a_map_are_refused() -> None:
    with pytest.raises(ValidationError, match="mapping"):
        _run([("failed", 1)])


def test_runs_add_up_field_by_field_and_by_transition() -> None:
    # Given two runs' counts, as the CLI reads them from the runs of one command
    total = RunCounts.from_stored({"tracked": 4, "recordsRead": 2, "active>sold": 1})
    total += RunCounts.from_stored({"recordsRead": 3, "active>sold": 1, "sold>active": 1})
    # Then each count is the sum, and so is each transition
    assert total.to_stored() == {
        "tracked": 4,
        "recordsRead": 5,
        "active>sold": 2,
        "sold>active": 1,
    }
    assert total.named_transitions() == {"active>sold": 2, "sold>active": 1}
