"""Eight workers on eight connections behind one MLS Grid token share its request budget
through DynamoDB (issue 21), against moto and the MLS simulator on loopback.

Time is virtual (``tests.support.virtual_time``): the simulator, the workers' clients,
their Lambda contexts and the budget read one clock that jumps only when every worker
sleeps, so 2 requests a second is exact and nothing sleeps for real. The simulator
enforces MLS Grid's quotas per token (2/s, 7,200/h, 40,000/day: over → violation and
suspension) and counts violations.

``make test`` runs 40 listings a connection, looked up one at a time (41 requests each,
328 in all over ~175 s of virtual time: the budget sees the contention of the big run,
while moto, which takes most of the wall time, writes 320 listings); ``make test-big``
the issue's 2,000 a connection, looked up 50 at a time (MLS Grid allows 100; 50 makes each
connection need several invocations: ``MLS_SYNC_BUDGET_LISTINGS=2000``, ~340 requests,
16,000 listings).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from mls_sync import aws
from mls_sync.dal import ConnectionsRepo
from mls_sync.dal.budget import DynamoBudgetStore
from mls_sync.models import Connection, SyncJob
from mls_sync.pipeline.deps import build_sync_deps
from mls_sync.pipeline.mls_client import replication_client_factory
from mls_sync.pipeline.sync import SyncDeps
from mls_sync.queues import OutgoingMessage
from mls_sync.reso.auth import TokenCache
from mls_sync.reso.budget import SharedBudgets
from mls_sync.reso.profiles import PROFILES
from mls_sync.secrets import SecretStore, mls_secret_name

from mls_sync_local.runtime.context import make_context
from mls_sync_local.sim.mls import MlsSimulator, RequestLog
from tests.support.pipeline import sqs_event
from tests.support.stack import STACK, LocalStack
from tests.support.virtual_time import VirtualTime

LISTINGS = int(os.environ.get("MLS_SYNC_BUDGET_LISTINGS", "40"))
LOOKUP_BATCH = 50 if LISTINGS >= 1000 else 1  # MLS Grid allows ListingId in (...) of 100
WORKERS = 8
PER_SECOND = 2
USER = "u-budget"


class JobQueue:
    """The SyncQueue as the workers see it here: continuations kept per connection (each
    worker thread plays the Lambda invocations of one connection's message group)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, list[SyncJob]] = defaultdict(list)

    def send(self, messages: Sequence[OutgoingMessage]) -> int:
        with self._lock:
            for message in messages:
                job = cast("SyncJob", message.body)
                self._jobs[job.connection_id].append(job)
        return 1

    def take(self, connection_id: str) -> SyncJob | None:
        with self._lock:
            jobs = self._jobs[connection_id]
            return jobs.pop(0) if jobs else None


@dataclass
class Fleet:
    stack: LocalStack
    sim: MlsSimulator
    time: VirtualTime
    budgets: SharedBudgets
    store: DynamoBudgetStore
    queue: JobQueue
    deps: SyncDeps
    invocations: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)


def _seed(stack: LocalStack, sim: MlsSimulator, connections: int, listings: int) -> None:
    """``connections`` MLS Grid connections with one token, each tracking ``listings``
    listings (their ListingId known, as MLS Grid is looked up by it) last changed a month
    ago on the MLS."""
    token = sorted(sim.static_tokens)[0]
    last_month = sim.now - timedelta(days=30)
    repo = ConnectionsRepo(stack.tables.connections)
    # Batch-written (the test measures the sync, not the seed), with the key map that
    # ``ListingsRepo.create`` keeps beside each listing where the stack has one.
    keys_table = getattr(stack.settings, "listing_keys_table", None)
    key_map = aws.dynamodb_resource().Table(keys_table) if keys_table else None
    with stack.tables.listings.batch_writer() as batch, contextlib.ExitStack() as extra:
        keys = extra.enter_context(key_map.batch_writer()) if key_map is not None else None
        for c in range(connections):
            cid = f"c-{c}"
            arn = SecretStore(aws.secrets()).put_json(
                mls_secret_name(f"{STACK}/", cid), {"token": token}
            )
            repo.create(
                Connection(
                    connection_id=cid,
                    user_id=USER,
                    vendor="mlsgrid",
                    base_url=sim.url,
                    originating_system_name=sim.originating_system,
                    credentials_secret_arn=arn,
                    enabled=True,
                )
            )
            for n in range(listings):
                key = f"C{c}K{n:05d}"
                batch.put_item(
                    Item={
                        "listingId": f"l-{c}-{n:05d}",
                        "userId": USER,
                        "connectionId": cid,
                        "listingKey": key,
                        "mlsListingId": key,
                        "status": "active",
                    }
                )
                if keys is not None:
                    keys.put_item(
                        Item={
                            "connectionId": cid,
                            "listingKey": key,
                            "listingId": f"l-{c}-{n:05d}",
                            "newListingOf": cid,
                        }
                    )
                sim.add_listing(key, "Active", listing_id=key, modified=last_month)


@contextlib.contextmanager
def _fleet(stack: LocalStack, listings: int, lookup_batch: int) -> Iterator[Fleet]:
    """Eight MLS Grid connections on one token, each with ``listings`` to read on its first
    sync ``lookup_batch`` at a time, and the worker's dependencies on one virtual clock."""
    with MlsSimulator(vendor="mlsgrid", page_cap=5000) as sim:
        _seed(stack, sim, WORKERS, listings)
        clock = VirtualTime(sim.now)
        sim.follow(clock.time)
        sim.set_token_limits(per_second=PER_SECOND, per_hour=7200, per_day=40_000)
        table = stack.settings.budgets_table
        assert table is not None
        store = DynamoBudgetStore(aws.dynamodb(), table, clock=clock.time)
        budgets = SharedBudgets(store, clock=clock.time, rng=random.Random(21), keep_handles=True)
        deps = build_sync_deps(stack.settings)
        deps.client_factory = replication_client_factory(
            SecretStore(aws.secrets()),
            budgets=budgets,
            clock=clock.datetime,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
            token_cache=TokenCache(),
            profile=PROFILES["mlsgrid"].model_copy(update={"max_in_batch": lookup_batch}),
            rng=random.Random(0),
            allow_loopback=True,
        )
        deps.clock = clock.datetime
        deps.monotonic = clock.monotonic
        deps.by_key_chunk = 2 * lookup_batch  # two requests a chunk, as in production
        queue = JobQueue()
        deps.sync_queue = cast("Any", queue)
        yield Fleet(stack, sim, clock, budgets, store, queue, deps)


@pytest.fixture
def fleet(stack: LocalStack, atomic_writes: None) -> Iterator[Fleet]:
    with _fleet(stack, LISTINGS, LOOKUP_BATCH) as built:
        yield built


@pytest.fixture
def small_fleet(stack: LocalStack, atomic_writes: None) -> Iterator[Fleet]:
    with _fleet(stack, 12, 2) as built:
        yield built


def _invocation_seconds() -> float:
    """A Lambda timeout short enough that a connection served at twice its fair share (an
    eighth of the token's pace) still needs two invocations (its requests take 2.5 times
    what an invocation leaves for them: the timeout less the worker's 60 s reserve and the
    client's 10 s request timeout), yet long enough to outwait the seven others' batches
    ahead of it (7 x 16 slots x 0.53 s), so no invocation goes without a permit."""
    requests = math.ceil(LISTINGS / LOOKUP_BATCH) + 2
    share = requests / (PER_SECOND * 0.95 / WORKERS)
    return 60 + 10 + max(60.0, share / 2.5)


def _run_connection(fleet: Fleet, index: int, timeout: float) -> None:
    from functions.worker.app import handle  # noqa: PLC0415 - after moto is up

    cid = f"c-{index}"
    job: SyncJob | None = SyncJob.model_validate(
        {
            "connectionId": cid,
            "reason": "schedule",
            "slot": "2026-11-28T12:00:00Z",
            "correlationId": f"corr-{index}",
        }
    )
    count = 0
    try:
        while job is not None:
            assert count < 40, f"{cid} never finished"
            context = make_context(
                f"{STACK}-worker",
                timeout_seconds=timeout,
                memory_mb=1024,
                region="us-east-1",
                clock=fleet.time.monotonic,
            )
            response = handle(sqs_event([job]), cast("Any", context), fleet.deps)
            assert response == {"batchItemFailures": []}, f"{cid}: {response}"
            count += 1
            job = fleet.queue.take(cid)
        fleet.invocations[cid] = count
    except BaseException as exc:
        fleet.errors.append(exc)
        fleet.time.fail(exc)
        raise
    finally:
        fleet.time.leave()


def _run_all(fleet: Fleet, timeout: float) -> None:
    threads = [
        threading.Thread(target=_run_connection, args=(fleet, i, timeout), name=f"worker-{i}")
        for i in range(WORKERS)
    ]
    fleet.time.join(WORKERS)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not fleet.errors, fleet.errors[0]


def _synced(fleet: Fleet, cid: str) -> int:
    table = fleet.stack.tables.listings
    kwargs: dict[str, Any] = {
        "IndexName": "byConnectionKey",
        "KeyConditionExpression": "connectionId = :c",
        "FilterExpression": "attribute_exists(syncedAt)",
        "ExpressionAttributeValues": {":c": cid},
        "Select": "COUNT",
    }
    total = 0
    while True:
        page = table.query(**kwargs)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.timeout(1800 if LISTINGS > 500 else 300)
def test_eight_workers_on_one_token_keep_to_its_budget_and_use_it(fleet: Fleet) -> None:
    # Given eight connections on one MLS Grid token, each with a first sync to do, and a
    # Lambda timeout that makes each one take several invocations
    timeout = _invocation_seconds()
    # When eight workers run them at once, each continuation straight after its predecessor
    _run_all(fleet, timeout)
    # Then the simulator saw no request over the token's quotas (nor refused any)
    sim = fleet.sim
    assert sim.limit_violations == []
    assert sim.suspended_refusals == 0
    mls = [entry for entry in sim.log if entry.path == "/Property"]
    assert all(entry.status == 200 for entry in mls)
    # And every connection finished its first sync across continuations
    connections = ConnectionsRepo(fleet.stack.tables.connections)
    for c in range(WORKERS):
        cid = f"c-{c}"
        connection = connections.get(cid)
        assert connection is not None
        assert connection.by_key_phase is None, cid
        assert connection.cursor is not None, cid
        assert _synced(fleet, cid) == LISTINGS, cid
        assert fleet.invocations[cid] >= 2, cid
    # And the token was kept busy: 90-100 % of its 2 requests a second from first to last
    times = [datetime.fromisoformat(entry.at).timestamp() for entry in mls]
    rate = (len(times) - 1) / (max(times) - min(times))
    writes = fleet.store.stats.writes / len(mls)
    print(  # the figures, for the report (pytest -s)
        f"\n{len(mls)} MLS requests in {max(times) - min(times):.1f} s of virtual time: "
        f"{rate:.3f}/s ({rate / PER_SECOND:.1%} of the budget); "
        f"{sum(fleet.invocations.values())} invocations; budget DynamoDB writes "
        f"{fleet.store.stats.writes} ({writes:.3f} per request), reads "
        f"{fleet.store.stats.reads}, lost conditions {fleet.store.stats.conflicts}"
    )
    assert 0.9 * PER_SECOND <= rate <= PER_SECOND
    assert writes <= 1.0


@pytest.mark.timeout(300)
def test_a_429_with_retry_after_stops_every_worker_on_the_token(small_fleet: Fleet) -> None:
    # Given eight workers reading their first syncs on one token, and the MLS answering the
    # 21st request with 429 and Retry-After: 30
    fleet = small_fleet
    seen = 0

    def throttle_once(entry: RequestLog) -> None:
        nonlocal seen
        if entry.path == "/Property":
            seen += 1
            if seen == 20:
                fleet.sim.throttle_next(1, retry_after="30")

    fleet.sim.after_request = throttle_once
    # When they run
    _run_all(fleet, 300)
    # Then one request was refused, and no worker on the token sent anything in the 30 s
    # after it: every request after it went at least 30 s later
    mls = [entry for entry in fleet.sim.log if entry.path == "/Property"]
    refused = [n for n, entry in enumerate(mls) if entry.status == 429]
    assert len(refused) == 1
    at = datetime.fromisoformat(mls[refused[0]].at).timestamp()
    after = [datetime.fromisoformat(e.at).timestamp() - at for e in mls[refused[0] + 1 :]]
    assert after
    assert min(after) >= 30.0
    # And the work went on after the block: every connection finished, nothing broke a quota
    assert fleet.sim.limit_violations == []
    connections = ConnectionsRepo(fleet.stack.tables.connections)
    for c in range(WORKERS):
        connection = connections.get(f"c-{c}")
        assert connection is not None
        assert connection.by_key_phase is None
        assert connection.cursor is not None
