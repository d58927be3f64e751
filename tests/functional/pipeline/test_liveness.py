"""No listing and no connection size can stall a connection (issue 14, cases 3 and 4).

- A by-key phase (first sync, reconciliation) larger than one invocation finishes across
  continuations: each resumes where the last stopped, under a run key of its own, and the
  connection's changes are still read every run while it goes on.
- A record that cannot be applied (the table refuses it, or it keeps failing) is
  quarantined on its listing and skipped: the cursor moves on, the run succeeds, and the
  next read by key tries it again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError
from mls_sync.dal import ListingsRepo
from mls_sync.dal.listings import ApplyResult, MlsUpdate
from mls_sync.models import Listing, PostStatus, StatusChange, SyncJob
from mls_sync.status import Status
from mls_sync.timeutil import Instant

from tests.support.pipeline import CONNECTION, World


def _slow_mls(world: World, seconds: float) -> None:
    """Every MLS request takes ``seconds`` of the invocation's time (and the MLS's)."""

    def spend(_log: object) -> None:
        world.mono.advance(seconds)
        world.sim.advance(seconds)

    world.sim.after_request = spend


def _run_to_quiescence(world: World, first: SyncJob, *, limit: int = 50) -> list[str]:
    """Runs ``first`` and every continuation it hands over; the outcomes, in order."""
    outcomes: list[str] = []
    seen = {r.run_key for r in world.runs.list_for_connection(CONNECTION, limit=1000)}
    jobs = [first]
    while jobs:
        assert len(outcomes) < limit, "continuations never ended"
        response = world.run_worker(jobs)
        assert response == {"batchItemFailures": []}
        new = [
            r
            for r in world.runs.list_for_connection(CONNECTION, limit=1000)
            if r.run_key not in seen
        ]
        assert len(new) == 1, "each invocation is a run of its own"
        seen.add(new[0].run_key)
        outcomes.append(new[0].outcome)
        jobs = [SyncJob.model_validate(body) for body in world.sync_jobs()]
    return outcomes


def _last_run(world: World) -> str:
    runs = world.runs.list_for_connection(CONNECTION, limit=1000)
    return max(runs, key=lambda r: (r.started_at, r.finished_at or "")).outcome


# ---------------------------------------------------------------------------- case 3


def test_first_sync_larger_than_one_invocation_finishes_across_continuations(
    world: World,
) -> None:
    # Given 100 tracked listings, read 2 keys per chunk, and an MLS taking 9 s per request
    # of a 300 s invocation (60 s kept back): 26 requests fit in one invocation
    world.add_connection()
    for n in range(100):
        world.track(f"l-{n:03d}", f"K{n:03d}", Status.ACTIVE, mls_status="Pending")
    _slow_mls(world, 9)
    deps = world.sync_deps(by_key_chunk=2)
    world.deps = deps
    # When the first sync runs, with every continuation it hands over
    outcomes = _run_to_quiescence(world, world.job(slot="2026-11-28T12:00:00Z"))
    # Then it took several invocations, each one a new run, and all 500 were read
    assert outcomes[-1] == "succeeded"
    assert outcomes.count("continued") >= 1
    runs = world.runs.list_for_connection(CONNECTION, limit=100)
    assert len({r.run_key for r in runs}) == len(outcomes)
    assert all(world.status(f"l-{n:03d}") is Status.PENDING for n in range(100))
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.by_key_phase is None
    assert connection.last_reconciled_at is not None
    # And no listing was read by key twice: each continuation resumed after the last chunk
    # (the rest of what was read is the change feed's overlap, read by every run)
    by_key = sum(r.counts.read_by_key for r in runs)
    assert by_key <= 100 + 2 * len(outcomes)


def test_a_sale_during_a_long_first_sync_is_seen_while_it_goes_on(world: World) -> None:
    # Given a first sync that needs several invocations
    world.add_connection()
    for n in range(60):
        world.track(f"l-{n:03d}", f"K{n:03d}", Status.ACTIVE)
    world.post("p-1", "l-059", PostStatus.PUBLISHED, "facebook")
    _slow_mls(world, 9)
    world.deps = world.sync_deps(by_key_chunk=1)
    response = world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    assert response == {"batchItemFailures": []}
    assert _last_run(world) == "continued"
    # When the last listing in key order sells while the by-key reads are still going on
    world.sim.set_status("K059", "Closed")
    continuation = [SyncJob.model_validate(b) for b in world.sync_jobs()]
    assert len(continuation) == 1
    response = world.run_worker(continuation)
    # Then the very next run sees it through the change feed, not at the end of the phase
    assert response == {"batchItemFailures": []}
    assert world.status("l-059") is Status.SOLD
    assert len(world.unpublish_jobs()) == 1
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.by_key_phase is not None  # the reads are still going on


def test_reconciliation_resumes_and_scheduled_runs_keep_reading_changes(world: World) -> None:
    # Given a synced connection of 60 listings whose daily reconciliation is due
    world.add_connection()
    for n in range(60):
        world.track(f"l-{n:03d}", f"K{n:03d}", Status.ACTIVE)
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)
    world.sim.remove_listing("K050")
    _slow_mls(world, 9)
    world.deps = world.sync_deps(by_key_chunk=1)
    # When a reconciliation runs out of time, and a scheduled run (not a continuation)
    # comes next after a sale
    world.run_worker([world.job(reason="reconcile", slot="2026-11-28T12:15:00Z")])
    assert _last_run(world) == "continued"
    world.sync_jobs()  # the continuation is lost (say it went to the DLQ)
    world.sim.set_status("K010", "Closed")
    outcomes = _run_to_quiescence(world, world.job(slot="2026-11-28T12:30:00Z"))
    # Then the sale is applied and the reconciliation carries on from where it stopped
    assert outcomes[-1] == "succeeded"
    assert world.status("l-010") is Status.SOLD
    assert world.status("l-050") is Status.DELETED
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.by_key_phase is None
    runs = world.runs.list_for_connection(CONNECTION, limit=100)
    assert any(r.counts.phase_resumed for r in runs)


# ---------------------------------------------------------------------------- case 4


def test_a_record_the_table_refuses_is_quarantined_and_the_cursor_moves_on(
    world: World,
) -> None:
    # Given a synced connection, then one listing's record grows a 450 KB MlsStatus (the
    # item would pass DynamoDB's 400 KB limit) while another listing sells
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE)
    world.track("l-2", "K2", Status.ACTIVE)
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)
    world.sim.set_status("K1", "Pending", mls_status="x" * 450_000)
    world.sim.advance(1)
    world.sim.set_status("K2", "Closed")
    # When the next run reads them
    response = world.run_worker([world.job(slot="2026-11-28T12:15:00Z")])
    # Then the run succeeds, the sale is applied, and K1 is quarantined with the reason
    assert response == {"batchItemFailures": []}
    assert world.status("l-2") is Status.SOLD
    run = world.runs.list_for_connection(CONNECTION, limit=1)[0]
    assert run.outcome == "succeeded"
    assert run.counts.quarantined == 1
    l1 = world.listings.get("l-1")
    assert l1 is not None
    assert l1.status is Status.ACTIVE
    assert l1.quarantined
    assert l1.quarantine_reason is not None
    assert "ValidationException" in l1.quarantine_reason
    # And the cursor moved past it: a later sale is seen in the next period
    world.sim.advance(60)
    world.sim.set_status("K2", "Active")
    world.run_worker([world.job(slot="2026-11-28T12:30:00Z")])
    assert world.status("l-2") is Status.ACTIVE
    # When the MLS fixes the record and the next reconciliation reads it by key
    world.sim.set_status("K1", "Pending", mls_status="Pending")
    world.sim.advance(48 * 3600)
    world.run_worker([world.job(reason="reconcile", slot="2026-11-30T12:00:00Z")])
    # Then it applies and the quarantine is lifted
    l1 = world.listings.get("l-1")
    assert l1 is not None
    assert l1.status is Status.PENDING
    assert not l1.quarantined
    assert l1.quarantine_reason is None


class _AlwaysThrottled(ListingsRepo):
    """The real repository, except DynamoDB throttles every write of one listing (a fault
    that looks transient but never goes away)."""

    def __init__(self, real: ListingsRepo, listing_id: str) -> None:
        self.__dict__.update(real.__dict__)
        self.listing_id = listing_id

    def apply(self, listing: Listing, update: MlsUpdate, change: StatusChange | None) -> Any:
        if listing.listing_id == self.listing_id:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                "UpdateItem",
            )
        result: ApplyResult = super().apply(listing, update, change)
        return result


def test_a_listing_that_keeps_failing_is_quarantined_after_three_deliveries(
    world: World,
) -> None:
    # Given a synced connection where every write of l-1 is throttled, and both listings sold
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE)
    world.track("l-2", "K2", Status.ACTIVE)
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)
    world.sim.set_status("K1", "Closed")
    world.sim.advance(1)
    world.sim.set_status("K2", "Closed")
    deps = world.sync_deps(listings=_AlwaysThrottled(world.listings, "l-1"))
    job = world.job(slot="2026-11-28T12:15:00Z")
    # When the job is delivered (SyncQueue's maxReceiveCount is 3)
    first = world.run_worker([job], deps=deps)
    second = world.run_worker([job], deps=deps)
    third = world.run_worker([job], deps=deps)
    # Then the first two deliveries retry (the cursor holds), the third quarantines l-1 and
    # succeeds, so the connection is not stuck behind it
    assert first["batchItemFailures"]
    assert second["batchItemFailures"]
    assert third == {"batchItemFailures": []}
    assert world.status("l-2") is Status.SOLD
    l1 = world.listings.get("l-1")
    assert l1 is not None
    assert l1.quarantined
    assert l1.quarantine_attempts == 3
    assert "ProvisionedThroughputExceeded" in (l1.quarantine_reason or "")


def test_a_first_cursor_starts_on_the_mls_clock_when_ours_is_ahead(world: World) -> None:
    # Given our clock 10 minutes ahead of the MLS's (its Date header says so)
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE)
    world.post("p-1", "l-1", PostStatus.PUBLISHED, "facebook")
    deps = world.sync_deps(clock=lambda: world.sim.now + timedelta(minutes=10))
    # When the first sync runs
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")], deps=deps)
    # Then the cursor starts before the MLS's own now, not ours
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.cursor is not None
    assert Instant.parse(connection.cursor.timestamp).to_datetime() <= world.sim.now
    # And a sale 8 minutes later on the MLS's clock (before our clock's start) is seen
    world.sim.advance(8 * 60)
    world.sim.set_status("K1", "Closed")
    world.run_worker([world.job(slot="2026-11-28T12:15:00Z")], deps=deps)
    assert world.status("l-1") is Status.SOLD


def test_a_listing_stamped_in_the_future_still_takes_the_mls_s_next_real_change(
    world: World,
) -> None:
    # Given a synced listing whose record the MLS stamps 300 days ahead (a clock bug)
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE)
    world.post("p-1", "l-1", PostStatus.PUBLISHED, "facebook")
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)
    world.sim.set_status("K1", "Pending", at=world.sim.now + timedelta(days=300))
    world.run_worker([world.job(slot="2026-11-28T12:15:00Z")])
    assert world.status("l-1") is Status.PENDING
    # When the MLS fixes its clock and the listing then sells, stamped with the real time
    world.sim.advance(15 * 60)
    world.sim.set_status("K1", "Closed")
    world.run_worker([world.job(slot="2026-11-28T12:30:00Z")])
    # Then the sale is applied (the bogus stamp was taken as "changed at the MLS's now")
    assert world.status("l-1") is Status.SOLD
    assert [j["postId"] for j in world.unpublish_jobs()] == ["p-1"]
