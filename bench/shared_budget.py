"""The shared MLS request budget (issue 21): DynamoDB calls per MLS request and the time a
permit adds to a request.

The budget's real store (``DynamoBudgetStore``) on a moto server in a process of its own,
over loopback HTTP (as a deployed worker talks to DynamoDB), MLS Grid's quotas (2/s,
7,200/h, 40,000/day), and no MLS: what is measured is the budget. Pacing waits run on a
virtual clock (``tests.support.virtual_time``), so 2 requests a second costs no real time;
the time a permit spends in DynamoDB calls is real (``time.perf_counter``). "Added" is
what a permit adds to its request beyond the pacing: the calls after its last wait (a take
when it held no slot, the check before sending); the DynamoDB time per request also counts
the reads made while waiting in line, which overlap the wait.

Scenarios:
- ``first sync alone``: one worker reads a 20,000-listing first sync by key (200 requests,
  by-key batches of 8 growing to 16);
- ``quiet connections``: 200 connections on one token, one incremental request each (a
  client per run: the everyday cycle of a quiet portfolio);
- ``8 workers, first syncs``: eight workers on one token at once, each one run of 1
  incremental and 40 by-key requests (a 4,000-listing first sync: 328 requests);
- ``8 workers, reconciliations``: eight workers, each 5 runs of 1 incremental and 9 by-key
  requests (a daily reconciliation of 900 listings: 400 requests), the short runs costing
  most per request (a take to start, a place in line, slots given back at the end);

    .venv/bin/python -m bench shared_budget
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from mls_sync.dal.budget import DynamoBudgetStore
from mls_sync.reso.budget import BudgetPolicy, BudgetSettings, SharedBudget, work_for
from mls_sync.reso.profiles import PROFILES

from mls_sync_local.template import table_definitions
from tests.support.virtual_time import VirtualTime

START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
KEY = "mlsgrid#bench"
POLICY = BudgetPolicy.for_quotas(PROFILES["mlsgrid"].quotas, BudgetSettings())


def _client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _handle(
    store: DynamoBudgetStore, clock: VirtualTime, seed: int, holder: str | None = None
) -> SharedBudget:
    assert POLICY is not None
    return SharedBudget(
        store, KEY, POLICY, clock=clock.time, rng=random.Random(seed), holder=holder
    )


def _first_sync(store: DynamoBudgetStore, clock: VirtualTime) -> list[SharedBudget]:
    budget = _handle(store, clock, 1)
    budget.bulk = True
    clock.join()
    try:
        for _ in range(200):
            assert budget.permit(None, clock.sleep)
        budget.release()
    finally:
        clock.leave()
    return [budget]


def _quiet(store: DynamoBudgetStore, clock: VirtualTime) -> list[SharedBudget]:
    handles = []
    clock.join()
    try:
        for n in range(200):
            budget = _handle(store, clock, n)
            assert budget.permit(None, clock.sleep)
            budget.release()
            handles.append(budget)
    finally:
        clock.leave()
    return handles


def _workers(
    store: DynamoBudgetStore, clock: VirtualTime, *, runs: int, by_key: int
) -> list[SharedBudget]:
    """Eight workers on one token, each making ``runs`` runs of one incremental read and
    ``by_key`` by-key reads, a client per run (as the worker makes one per job)."""
    handles: list[SharedBudget] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with work_for("schedule", targeted=False):
                for run in range(runs):
                    budget = _handle(store, clock, index * 100 + run, f"c-{index}")
                    with lock:
                        handles.append(budget)
                    assert budget.permit(None, clock.sleep)  # the incremental read
                    budget.bulk = True
                    for _ in range(by_key):
                        assert budget.permit(None, clock.sleep)
                    budget.release()
        except BaseException as exc:
            errors.append(exc)
            clock.fail(exc)
        finally:
            clock.leave()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    clock.join(len(threads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return handles


SCENARIOS: dict[str, Callable[[DynamoBudgetStore, VirtualTime], list[SharedBudget]]] = {
    "first sync alone": _first_sync,
    "quiet connections": _quiet,
    "8 workers, first syncs": functools.partial(_workers, runs=1, by_key=40),
    "8 workers, reconciliations": functools.partial(_workers, runs=5, by_key=9),
}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one(url: str, name: str, table: str) -> dict[str, Any]:
    clock = VirtualTime(START)
    client = _client(url)
    client.delete_item(TableName=table, Key={"budgetId": {"S": KEY}})
    store = DynamoBudgetStore(client, table, clock=clock.time)
    started = clock.time()
    handles = SCENARIOS[name](store, clock)
    permits = sum(h.stats.permits for h in handles)
    overhead = [s * 1000 for h in handles for s in h.stats.overhead_seconds]
    added = [s * 1000 for h in handles for s in h.stats.added_seconds]
    elapsed = clock.time() - started
    return {
        "scenario": name,
        "requests": permits,
        "ddb_writes": store.stats.writes,
        "writes_per_request": round(store.stats.writes / permits, 3),
        "ddb_reads": store.stats.reads,
        "reads_per_request": round(store.stats.reads / permits, 3),
        "lost_conditions": store.stats.conflicts,
        "rate_per_second": round((permits - 1) / elapsed, 3) if elapsed > 0 else None,
        "added_ms_median": round(statistics.median(added), 2),
        "added_ms_p99": round(_pct(added, 0.99), 2),
        "dynamodb_ms_per_request_median": round(statistics.median(overhead), 2),
        "dynamodb_ms_per_request_p99": round(_pct(overhead, 0.99), 2),
    }


@contextlib.contextmanager
def _moto_process() -> Iterator[str]:
    """A moto server in a process of its own (its CPU is not our GIL's: the latency a permit
    adds is then the round trips, as against a real endpoint)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def run(out: Path) -> dict[str, Any]:
    del out  # bench/__main__ writes the returned figures
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    rows = []
    with _moto_process() as url:
        [budgets] = [t for t in table_definitions("bench") if t["TableName"].endswith("-Budgets")]
        _client(url).create_table(**budgets)
        for name in SCENARIOS:
            row = one(url, name, budgets["TableName"])
            rows.append(row)
            print(
                f"{name:>26}: {row['requests']} requests, "
                f"{row['writes_per_request']} writes and {row['reads_per_request']} reads "
                f"per request ({row['lost_conditions']} lost conditions), "
                f"{row['rate_per_second']}/s, added {row['added_ms_median']} ms median, "
                f"{row['added_ms_p99']} ms p99 (DynamoDB time per request, waits in line "
                f"included: {row['dynamodb_ms_per_request_median']} ms median, "
                f"{row['dynamodb_ms_per_request_p99']} ms p99)",
                flush=True,
            )
    return {
        "goal_writes_per_request": 0.2,
        "rows": rows,
        "store": "moto server in its own process, loopback HTTP",
    }
