"""Push jobs through the worker: the keys waiting in a connection's push inbox are read by
key and applied with the same guarantees as any run; a key leaves the inbox only once
applied; a replayed push changes nothing twice; out of time, the rest stays in the inbox
under a new push job (never a replication continuation)."""

from __future__ import annotations

from typing import Any

from mls_sync.dal.push_inbox import PushInboxRepo
from mls_sync.models import SyncJob
from mls_sync.pipeline.sync import sync_connection
from mls_sync.status import Status

from tests.support.pipeline import CONNECTION, World


def _inbox(world: World) -> PushInboxRepo:
    repo = world.deps.push_inbox
    assert repo is not None, "the stack's settings name the PushInbox table"
    return repo


def _push(world: World, *keys: str) -> None:
    outcome = _inbox(world).add(CONNECTION, keys, cap=1_500, now="2026-11-28T12:20:00Z")
    assert not outcome.saturated


def _push_job(n: int = 1) -> SyncJob:
    return SyncJob(
        connection_id=CONNECTION,
        reason="push",
        slot=f"2026-11-28T12:20:0{n}Z",
        correlation_id=f"push-{n}",
    )


def _synced(world: World, count: int = 5) -> None:
    world.add_connection(detection="replication")
    for n in range(count):
        world.track(f"l-{n}", f"K{n}", Status.ACTIVE)
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)


def _last_run(world: World) -> dict[str, Any]:
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    return {**run.counts.to_stored(), "mlsRequests": run.mls_requests, run.outcome: 1}


def test_pushed_keys_are_read_by_key_and_leave_the_inbox_once_applied(world: World) -> None:
    # Given a synced connection, a sale of a tracked listing, and a push naming it and a
    # listing we do not track
    _synced(world)
    world.sim.set_status("K1", "Closed")
    _push(world, "K1", "K-other")
    # When the push job runs
    response = world.run_worker([_push_job()])
    # Then the sale is applied from one lookup, and the inbox is empty
    assert response == {"batchItemFailures": []}
    run = _last_run(world)
    assert run.get("succeeded"), run
    assert run["pushedKeys"] == 2
    assert run["notTracked"] == 1
    assert run["mlsRequests"] == 1
    assert world.status("l-1") is Status.SOLD
    assert _inbox(world).peek(CONNECTION).keys == []
    # And the same push again (a producer retrying) changes nothing twice
    _push(world, "K1")
    world.run_worker([_push_job(2)])
    assert len(world.changes("l-1")) == 1
    assert _inbox(world).peek(CONNECTION).keys == []


def test_a_deleted_listing_named_by_a_push_is_deleted(world: World) -> None:
    # Given a synced connection whose listings are then removed from the MLS, six at once
    # (a burst a change log or webhook can name: not taken for an outage)
    _synced(world, count=8)
    for n in range(6):
        world.sim.remove_listing(f"K{n}")
    _push(world, *(f"K{n}" for n in range(6)))
    world.run_worker([_push_job()])
    assert [world.status(f"l-{n}") for n in range(7)] == [Status.DELETED] * 6 + [Status.ACTIVE]


def test_out_of_time_the_rest_waits_in_the_inbox_under_a_new_push_job(world: World) -> None:
    # Given five pushed keys read two at a time, and an invocation whose time runs short
    # after the first batch (calls: the run's deadline, then a check before each batch
    # and before its lookup)
    _synced(world)
    for n in range(5):
        world.sim.set_status(f"K{n}", "Pending")
    _push(world, *(f"K{n}" for n in range(5)))
    world.sync_jobs()  # drained: only what this run sends below
    deps = world.sync_deps(by_key_chunk=2)
    calls = iter([300_000, 300_000, 300_000])
    result = sync_connection(_push_job(), deps, lambda: next(calls, 0))
    # Then the first two are applied and gone from the inbox, the rest wait there
    assert result.outcome == "continued"
    assert [world.status(f"l-{n}") for n in range(5)] == [Status.PENDING] * 2 + [Status.ACTIVE] * 3
    assert _inbox(world).peek(CONNECTION).keys == ["K2", "K3", "K4"]
    # And a push job (not a replication continuation) was sent for them
    jobs = world.sync_jobs()
    assert [job["reason"] for job in jobs] == ["push"]
    # And that job finishes them
    world.run_worker([SyncJob.model_validate(jobs[0])])
    assert [world.status(f"l-{n}") for n in range(5)] == [Status.PENDING] * 5
    assert _inbox(world).peek(CONNECTION).keys == []
