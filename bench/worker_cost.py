"""What one worker cycle costs in AWS calls, CPU and memory, by tracked listings and kind of cycle.

The real worker core (``sync_connection`` with ``build_sync_deps``) runs against a moto
server in a thread of this process (its CPU is not the worker's: CPU is the worker thread's
own ``thread_time``) and the MLS simulator on loopback, trestle profile (OAuth; the token
request is counted once per client). AWS calls are counted exactly, per operation, by
wrapping botocore's ``BaseClient._make_api_call``.

Rows:
- first sync of N tracked listings (all its continuations summed);
- a quiet cycle (nothing changed since the cursor);
- 1 % changed: 60 % re-stamped with the same status, 25 % to pending, 15 % sold with one
  published post each (their takedowns are settled in the same run);
- the next cycle reading the same changes again inside the overlap window;
- the daily reconciliation by key;
- a quiet cycle at 100,000 tracked listings (stored as already synced, so no first sync).

Peak RSS is the process's own high-water mark after the row (``ru_maxrss``); moto's tables
live in the same process, so it over-counts the worker (the figure is an upper bound).
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient

# The worker logs one line per run at INFO: not what this benchmark prints.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

CYCLE = timedelta(minutes=15)
STACK = "mls-sync-bench"
CONNECTION = "c-bench"
USER = "u-bench"


class CallCounter:
    """Counts every AWS API call made through botocore in this process, by operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._original: Any = None

    def __enter__(self) -> CallCounter:
        original = getattr(BaseClient, "_make_api_call")  # noqa: B009 - a private hook
        counter = self.calls

        def counted(client: BaseClient, operation: str, params: Any) -> Any:
            counter[f"{client.meta.service_model.service_name}:{operation}"] += 1
            return original(client, operation, params)

        self._original = original
        setattr(BaseClient, "_make_api_call", counted)  # noqa: B010
        return self

    def __exit__(self, *_: object) -> None:
        setattr(BaseClient, "_make_api_call", self._original)  # noqa: B010

    def take(self) -> Counter[str]:
        taken = Counter(self.calls)
        self.calls.clear()
        return taken


_MOTO = """
import sys
from mls_sync_local.runtime.moto_patches import transactions_copy_tables_once
transactions_copy_tables_once()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"""


@contextlib.contextmanager
def _moto_process() -> Iterator[str]:
    """A moto server in a process of its own: its CPU, its memory and its GIL are not the
    worker's (the worker's RSS and CPU are then the worker's and the simulator's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def _world(size: int, *, synced: bool) -> Iterator[Any]:
    from mls_sync import aws  # noqa: PLC0415 - after the endpoint is set
    from mls_sync.models import Connection  # noqa: PLC0415
    from mls_sync.secrets import SecretStore, mls_secret_name  # noqa: PLC0415

    from mls_sync_local.sim import MlsSimulator  # noqa: PLC0415
    from tests.support.stack import create_stack_resources  # noqa: PLC0415

    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")}
    with _moto_process() as url, MlsSimulator(page_cap=5000) as sim:
        os.environ["AWS_ENDPOINT_URL"] = url
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        aws.reset_clients()
        try:
            stack = create_stack_resources(STACK)
            sim.set_time(sim.now - timedelta(days=1))
            keys = sim.add_many(size)
            modified = sim.now
            sim.set_time(sim.now + timedelta(days=1))
            arn = SecretStore(aws.secrets()).put_json(
                mls_secret_name(f"{STACK}/", CONNECTION),
                {
                    "clientId": sim.client_id,
                    "clientSecret": sim.client_secret,
                    "tokenUrl": sim.token_url,
                },
            )
            connection = Connection(
                connection_id=CONNECTION,
                user_id=USER,
                vendor="trestle",
                base_url=sim.url,
                credentials_secret_arn=arn,
                enabled=True,
            )
            from mls_sync.dal import ConnectionsRepo  # noqa: PLC0415

            ConnectionsRepo(stack.tables.connections).create(connection)
            _store_listings(stack, keys, synced=synced, modified=modified, now=sim.now)
            if synced:
                from mls_sync.models import Cursor  # noqa: PLC0415
                from mls_sync.timeutil import format_utc  # noqa: PLC0415

                ConnectionsRepo(stack.tables.connections).advance_cursor(
                    CONNECTION,
                    Cursor(timestamp=format_utc(sim.now - timedelta(minutes=1)), listing_key=""),
                    expected=None,
                    synced_at=format_utc(sim.now),
                )
                ConnectionsRepo(stack.tables.connections).mark_reconciled(
                    CONNECTION, format_utc(sim.now)
                )
            yield stack, sim, keys
        finally:
            aws.reset_clients()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _store_listings(stack: Any, keys: list[str], *, synced: bool, modified: Any, now: Any) -> None:
    from mls_sync.dal.listing_keys import key_item  # noqa: PLC0415
    from mls_sync.timeutil import Instant, format_utc  # noqa: PLC0415

    ddb = boto3.client("dynamodb")
    table: str = stack.settings.listings_table
    keys_table: str = stack.settings.listing_keys_table
    stamp = Instant.from_datetime(modified)
    for start in range(0, len(keys), 25):
        # The key map beside each listing, as ListingsRepo.create writes it.
        ddb.batch_write_item(
            RequestItems={
                keys_table: [
                    {
                        "PutRequest": {
                            "Item": key_item(CONNECTION, key, f"l-{index:06d}", new=not synced)
                        }
                    }
                    for index, key in enumerate(keys[start : start + 25], start)
                ]
            }
        )
        requests: list[Any] = []
        for index, key in enumerate(keys[start : start + 25], start):
            item: dict[str, Any] = {
                "listingId": {"S": f"l-{index:06d}"},
                "userId": {"S": USER},
                "connectionId": {"S": CONNECTION},
                "listingKey": {"S": key},
                "status": {"S": "active"},
            }
            if synced:
                item.update(
                    {
                        "standardStatus": {"S": "Active"},
                        "mlsStatus": {"S": "Active"},
                        "mlsModifiedAt": {"S": stamp.iso_micro()},
                        "mlsModifiedKey": {"S": stamp.sort_key()},
                        "syncedAt": {"S": format_utc(now)},
                    }
                )
            requests.append({"PutRequest": {"Item": item}})
        ddb.batch_write_item(RequestItems={table: requests})


def _posts(stack: Any, listing_ids: list[str]) -> None:
    from mls_sync.dal import PostsRepo  # noqa: PLC0415
    from mls_sync.models import Post  # noqa: PLC0415

    posts = PostsRepo(stack.tables.posts)
    for listing_id in listing_ids:
        posts.create(
            Post.model_validate(
                {
                    "postId": f"p-{listing_id}",
                    "listingId": listing_id,
                    "platform": "facebook",
                    "accountId": "a-facebook",
                    "platformPostId": f"pp-{listing_id}",
                    "status": "published",
                }
            )
        )


def _deps(stack: Any, sim: Any) -> Any:
    from mls_sync import aws  # noqa: PLC0415
    from mls_sync.pipeline.deps import build_sync_deps  # noqa: PLC0415
    from mls_sync.pipeline.sync import replication_client_factory  # noqa: PLC0415
    from mls_sync.reso.limits import CircuitBreaker, RateLimiter  # noqa: PLC0415
    from mls_sync.reso.profiles import Quotas  # noqa: PLC0415
    from mls_sync.secrets import SecretStore  # noqa: PLC0415

    deps = build_sync_deps(stack.settings)
    deps.client_factory = replication_client_factory(
        SecretStore(aws.secrets()),
        clock=sim.clock,
        sleep=lambda _s: None,
        limiter=RateLimiter(Quotas()),
        breaker=CircuitBreaker(),
        allow_loopback=True,
    )
    deps.clock = sim.clock
    return deps


def _cycle(stack: Any, sim: Any, counter: CallCounter, reason: str = "schedule") -> dict[str, Any]:
    """One job and all its continuations; AWS calls, CPU and MLS requests summed."""
    from mls_sync.models import SyncJob  # noqa: PLC0415
    from mls_sync.pipeline.sync import sync_connection  # noqa: PLC0415
    from mls_sync.timeutil import format_utc  # noqa: PLC0415

    deps = _deps(stack, sim)
    job = SyncJob.model_validate(
        {
            "connectionId": CONNECTION,
            "reason": reason,
            "slot": format_utc(sim.now),
            "correlationId": "bench",
        }
    )
    counter.take()
    cpu = 0.0
    mls = 0
    runs = 0
    outcomes: list[str] = []
    sqs = boto3.client("sqs")
    while True:
        gc.collect()
        started = time.thread_time()
        result = sync_connection(job, deps, lambda: 840_000)
        cpu += time.thread_time() - started
        mls += result.mls_requests
        runs += 1
        outcomes.append(result.outcome)
        if os.environ.get("BENCH_VERBOSE"):
            print("   run", result.outcome, result.counts, result.errors[:2], flush=True)
        if result.outcome != "continued":
            break
        # The continuation the run queued: taken off the queue outside the count.
        calls = counter.take()
        got = sqs.receive_message(QueueUrl=stack.settings.sync_queue_url, MaxNumberOfMessages=1)
        message = got["Messages"][0]
        sqs.delete_message(
            QueueUrl=stack.settings.sync_queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
        counter.calls.update(calls)
        job = SyncJob.model_validate_json(message["Body"])
    calls = counter.take()
    return {
        "aws_calls": sum(calls.values()),
        "by_operation": dict(sorted(calls.items())),
        "worker_cpu_s": round(cpu, 3),
        "mls_requests": mls,
        "runs": runs,
        "outcomes": outcomes,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _change(sim: Any, keys: list[str], share: float) -> tuple[list[int], dict[str, int]]:
    """Changes ``share`` of the listings (spread evenly); returns their indexes and the mix."""
    count = max(1, int(len(keys) * share))
    step = len(keys) // count
    picked = list(range(0, step * count, step))
    mix: Counter[str] = Counter()
    for n, index in enumerate(picked):
        key = keys[index]
        bucket = n * 20 // count
        if bucket < 12:
            sim.touch(key)
            mix["re-stamped"] += 1
        elif bucket < 17:
            sim.set_status(key, "Pending")
            mix["pending"] += 1
        else:
            sim.set_status(key, "Closed")
            mix["sold"] += 1
    return picked, dict(mix)


def _sold_ids(picked: list[int]) -> list[str]:
    return [f"l-{index:06d}" for n, index in enumerate(picked) if n * 20 // len(picked) >= 17]


def measure(size: int, counter: CallCounter) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with _world(size, synced=False) as (stack, sim, keys):
        row = _cycle(stack, sim, counter)
        rows.append({"tracked": size, "cycle": "first sync", **row})
        _print(rows[-1:])
        sim.advance(CYCLE.total_seconds())
        rows.append({"tracked": size, "cycle": "quiet", **_cycle(stack, sim, counter)})
        sim.advance(CYCLE.total_seconds() - 120)
        picked, mix = _change(sim, keys, 0.01)
        _posts(stack, _sold_ids(picked))
        counter.take()
        sim.advance(120)
        row = _cycle(stack, sim, counter)
        row["changed"] = len(picked)
        row["mix"] = mix
        row["aws_calls_per_changed"] = round(row["aws_calls"] / len(picked), 2)
        rows.append({"tracked": size, "cycle": "1 % changed", **row})
        sim.advance(60)
        row = _cycle(stack, sim, counter)
        row["re_read"] = len(picked)
        rows.append({"tracked": size, "cycle": "overlap re-read of the changes", **row})
        sim.advance(CYCLE.total_seconds())
        rows.append(
            {
                "tracked": size,
                "cycle": "daily reconciliation",
                **_cycle(stack, sim, counter, "reconcile"),
            }
        )
    return rows


def measure_quiet(size: int, counter: CallCounter, repeats: int = 5) -> dict[str, Any]:
    with _world(size, synced=True) as (stack, sim, _keys):
        samples = []
        for _ in range(repeats):
            sim.advance(CYCLE.total_seconds())
            samples.append(_cycle(stack, sim, counter))
    row = dict(samples[-1])
    row["worker_cpu_s"] = round(statistics.median(s["worker_cpu_s"] for s in samples), 3)
    row["worker_cpu_samples"] = [s["worker_cpu_s"] for s in samples]
    return {"tracked": size, "cycle": "quiet (stored synced)", **row}


def run(out: Path) -> dict[str, Any]:  # noqa: ARG001 - figures are returned
    sizes = [int(s) for s in os.environ.get("BENCH_WORKER_SIZES", "1000,10000").split(",")]
    quiet_sizes = [
        int(s) for s in os.environ.get("BENCH_WORKER_QUIET_SIZES", "10000,100000").split(",")
    ]
    rows: list[dict[str, Any]] = []
    with CallCounter() as counter:
        for size in sizes:
            rows.extend(measure(size, counter))
            _print(rows[-5:])
        for size in quiet_sizes:
            rows.append(measure_quiet(size, counter))
            _print(rows[-1:])
    load = os.getloadavg()[0]
    return {"rows": rows, "load_1min_at_end": round(load, 2)}


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        per = (
            f"  ({row['aws_calls_per_changed']}/changed)" if "aws_calls_per_changed" in row else ""
        )
        print(
            f"{row['tracked']:>7,} {row['cycle']:<32} MLS {row['mls_requests']:>4}"
            f"  AWS {row['aws_calls']:>6}{per}  CPU {row['worker_cpu_s']:.3f} s"
            f"  RSS {row['peak_rss_mb']} MB  runs {row['runs']}",
            flush=True,
        )
