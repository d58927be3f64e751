"""A manual sync asked for again while its job waits says "already queued" (SQS would drop
the second message silently); asked again once the job has run, it is a new job."""

from __future__ import annotations

from datetime import timedelta

from mls_sync.dal import SyncRunsRepo
from mls_sync.models import SyncJob
from mls_sync.pipeline.deps import build_manual_deps
from mls_sync.pipeline.manual import SyncConnectionRequest, request_sync

from functions.manual_sync import app as manual_sync
from tests.functional.pipeline.test_dispatcher_and_manual import NOW, _context, _queued, _seed
from tests.support.pipeline import CONNECTION, World, load_event
from tests.support.stack import LocalStack


def test_asked_twice_while_queued_says_already_queued(stack: LocalStack) -> None:
    _seed(stack)
    event = load_event("manual_sync.connection.json")
    deps = build_manual_deps(stack.settings)
    # Given a manual sync of a connection, queued
    first = manual_sync.handle(event, _context(), deps, clock=lambda: NOW)
    assert first["body"]["jobs"] == 1
    assert first["body"]["note"] == "queued 1 job(s)"
    # When it is asked for again within the minute, before the worker starts it
    second = manual_sync.handle(event, _context(), deps, clock=lambda: NOW + timedelta(seconds=20))
    # Then the answer says so rather than counting a job SQS would drop
    assert second["statusCode"] == 202
    assert second["body"]["jobs"] == 0
    assert second["body"]["alreadyQueued"] == ["c-ben-trestle"]
    assert second["body"]["note"] == "already queued: c-ben-trestle"
    assert len(_queued(stack)) == 1


def test_asked_again_after_the_job_ran_is_a_new_job(stack: LocalStack) -> None:
    _seed(stack)
    event = load_event("manual_sync.connection.json")
    deps = build_manual_deps(stack.settings)
    manual_sync.handle(event, _context(), deps, clock=lambda: NOW)
    assert len(_queued(stack)) == 1
    # Given the worker started and finished that job (its run is no longer queued)
    runs = SyncRunsRepo(stack.tables.sync_runs)
    (run,) = runs.list_for_connection("c-ben-trestle")
    assert run.outcome == "queued"
    stack.tables.sync_runs.put_item(Item={**run.to_item(), "outcome": "succeeded"})
    # When it is asked for again within the same minute
    later = NOW + timedelta(seconds=30)
    again = manual_sync.handle(event, _context(), deps, clock=lambda: later)
    # Then a new job goes, in a slot of its own that neither SQS nor the run swallows
    assert again["body"]["jobs"] == 1
    (job,) = _queued(stack)
    assert job["slot"] == "2026-11-28T17:04:35.000000Z"
    # And a third ask while that one waits is "already queued"
    third = manual_sync.handle(event, _context(), deps, clock=lambda: later)
    assert third["body"]["alreadyQueued"] == ["c-ben-trestle"]


def test_the_worker_takes_over_a_queued_run(world: World) -> None:
    # Given a connection and a manual sync of it, recorded queued and sent
    world.add_connection()
    world.sim.add_listing("K1", "Active")
    answer = request_sync(
        SyncConnectionRequest(action="sync_connection", connection_id=CONNECTION),
        world.manual,
        now=world.sim.clock(),
        correlation_id="corr-m",
    )
    assert answer.jobs == 1
    (body,) = world.sync_jobs()
    # When the worker runs that job
    world.run_worker([SyncJob.model_validate(body)])
    # Then its run is the queued one, taken over and finished
    (run,) = world.runs.list_for_connection(CONNECTION)
    assert run.outcome == "succeeded"
    assert run.correlation_id == "corr-m"
