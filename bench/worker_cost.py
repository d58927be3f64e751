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
        self.units: Counter[str] = Counter()
        """Billed units as estimated by ``_units`` (read/write request units, messages...)."""
        self._original: Any = None

    def __enter__(self) -> CallCounter:
        original = getattr(BaseClient, "_make_api_call")  # noqa: B009 - a private hook
        counter = self.calls
        units = self.units

        def counted(client: BaseClient, operation: str, params: Any) -> Any:
            service = client.meta.service_model.service_name
            counter[f"{service}:{operation}"] += 1
            result = original(client, operation, params)
            units.update(_units(service, operation, params, result))
            return result

        self._original = original
        setattr(BaseClient, "_make_api_call", counted)  # noqa: B010
        return self

    def __exit__(self, *_: object) -> None:
        setattr(BaseClient, "_make_api_call", self._original)  # noqa: B010

    def take(self) -> Counter[str]:
        taken = Counter(self.calls)
        self.calls.clear()
        return taken

    def take_units(self) -> Counter[str]:
        taken = Counter(self.units)
        self.units.clear()
        return taken


def _units(service: str, operation: str, params: Any, result: Any) -> dict[str, float]:
    """What a call is billed, approximately (on-demand DynamoDB; every item here is under
    1 KB, so a consistent read of one is 1 RRU, an eventually consistent one 0.5, a write
    1 WRU, a transactional write 2). A query is counted as 1 RRU per 4 KB of ~0.5 KB items."""
    if service == "dynamodb":
        if operation == "GetItem":
            return {"rru": 1.0 if params.get("ConsistentRead") else 0.5}
        if operation == "BatchGetItem":
            total = 0.0
            for request in params["RequestItems"].values():
                total += len(request["Keys"]) * (1.0 if request.get("ConsistentRead") else 0.5)
            return {"rru": total}
        if operation == "Query":
            scanned = int(result.get("ScannedCount", result.get("Count", 0)))
            return {"rru": max(0.5, scanned * 0.5 / 4 * 0.5)}
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            return {"wru": 1.0}
        if operation == "BatchWriteItem":
            return {"wru": float(sum(len(v) for v in params["RequestItems"].values()))}
        if operation == "TransactWriteItems":
            return {"wru": 2.0 * len(params["TransactItems"])}
        return {}
    if service == "sqs":
        return {"sqs_requests": 1.0}
    if service == "events":
        return {"events": float(len(params.get("Entries", [])))}
    if service == "secretsmanager":
        return {"secrets_calls": 1.0}
    return {}


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
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a busy server may not stop on SIGTERM
            process.kill()
            process.wait(timeout=10)


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
    counter.take_units()
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
        units = counter.take_units()
        got = sqs.receive_message(QueueUrl=stack.settings.sync_queue_url, MaxNumberOfMessages=1)
        message = got["Messages"][0]
        sqs.delete_message(
            QueueUrl=stack.settings.sync_queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
        counter.take()
        counter.take_units()
        counter.calls.update(calls)
        counter.units.update(units)
        job = SyncJob.model_validate_json(message["Body"])
    calls = counter.take()
    return {
        "aws_calls": sum(calls.values()),
        "by_operation": dict(sorted(calls.items())),
        "units": {k: round(v, 1) for k, v in sorted(counter.take_units().items())},
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


# List prices, us-east-1, December 2026 (on-demand DynamoDB after the November 2024 cut).
PRICE = {
    "lambda_gb_s": 0.0000133334,  # arm64
    "lambda_request": 0.20 / 1e6,
    "rru": 0.125 / 1e6,
    "wru": 0.625 / 1e6,
    "sqs_request": 0.50 / 1e6,  # FIFO
    "event": 1.00 / 1e6,  # custom events on a bus
    "secret_month": 0.40,
    "secret_call": 0.05 / 1e4,
    "log_gb": 0.50,
}
MLS_LATENCY_S = 0.15
"""Assumed time of one MLS request in AWS (not measured here: the simulator is loopback)."""
AWS_LATENCY_S = 0.008
"""Assumed time of one DynamoDB/SQS/EventBridge call from Lambda."""


def cost_table(rows: list[dict[str, Any]], connections: int = 1000) -> dict[str, Any]:
    """$ a month for ``connections`` connections of 1,000 listings, 96 cycles a day at 1 %
    changed plus a daily reconciliation, from the measured 1,000-listing rows; beside it the
    per-listing design (one MLS request and one consistent read per listing per cycle)."""
    by_cycle = {r["cycle"]: r for r in rows if r["tracked"] == 1000}
    cycle, daily = by_cycle["1 % changed"], by_cycle["daily reconciliation"]
    month = 30
    runs = {"cycle": 96 * month * connections, "daily": month * connections}

    def lambda_s(row: dict[str, Any]) -> float:
        calls = int(row["aws_calls"])
        return (
            float(row["worker_cpu_s"])
            + int(row["mls_requests"]) * MLS_LATENCY_S
            + calls * AWS_LATENCY_S
        )

    ours: dict[str, float] = {}
    ours["Lambda GB-s (1 GB)"] = sum(
        runs[k] * lambda_s(r) * PRICE["lambda_gb_s"]
        for k, r in (("cycle", cycle), ("daily", daily))
    )
    ours["Lambda requests"] = (runs["cycle"] + runs["daily"]) * PRICE["lambda_request"]
    for unit, price in (("rru", "rru"), ("wru", "wru")):
        ours[f"DynamoDB {unit.upper()}"] = sum(
            runs[k] * float(r["units"].get(unit, 0)) * PRICE[price]
            for k, r in (("cycle", cycle), ("daily", daily))
        )
    # SQS: the dispatcher's send (10 to a batch) and the event source's receive and delete.
    ours["SQS"] = sum(
        runs[k] * (0.1 + 2 + float(r["units"].get("sqs_requests", 0))) * PRICE["sqs_request"]
        for k, r in (("cycle", cycle), ("daily", daily))
    )
    ours["EventBridge"] = sum(
        runs[k] * float(r["units"].get("events", 0)) * PRICE["event"]
        for k, r in (("cycle", cycle), ("daily", daily))
    )
    ours["Secrets Manager"] = connections * PRICE["secret_month"] + sum(
        runs[k] * float(r["units"].get("secrets_calls", 0)) * PRICE["secret_call"]
        for k, r in (("cycle", cycle), ("daily", daily))
    )
    ours["CloudWatch Logs (~1 KB a run)"] = (runs["cycle"] + runs["daily"]) * 1e-6 * PRICE["log_gb"]

    per_listing: dict[str, float] = {}
    seconds = 1000 * MLS_LATENCY_S + 1000 * AWS_LATENCY_S
    per_listing["Lambda GB-s (1 GB)"] = runs["cycle"] * seconds * PRICE["lambda_gb_s"]
    per_listing["Lambda requests"] = runs["cycle"] * PRICE["lambda_request"]
    per_listing["DynamoDB RRU"] = runs["cycle"] * 1000 * PRICE["rru"]
    per_listing["DynamoDB WRU"] = runs["cycle"] * 10 * PRICE["wru"]
    per_listing["SQS"] = runs["cycle"] * 2.1 * PRICE["sqs_request"]
    per_listing["EventBridge"] = ours["EventBridge"]
    per_listing["Secrets Manager"] = (
        connections * PRICE["secret_month"] + runs["cycle"] * PRICE["secret_call"]
    )
    per_listing["CloudWatch Logs (~1 KB a run)"] = ours["CloudWatch Logs (~1 KB a run)"]
    return {
        "ours": {k: round(v, 2) for k, v in ours.items()},
        "per_listing": {k: round(v, 2) for k, v in per_listing.items()},
        "ours_total": round(sum(ours.values()), 2),
        "per_listing_total": round(sum(per_listing.values()), 2),
        "per_listing_mls_requests_per_day": 96 * 1000 * connections,
        "ours_mls_requests_per_day": (96 * cycle["mls_requests"] + daily["mls_requests"])
        * connections,
    }


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
    figures: dict[str, Any] = {"rows": rows, "load_1min_at_end": round(load, 2)}
    if any(r["tracked"] == 1000 and r["cycle"] == "1 % changed" for r in rows):
        figures["cost"] = cost_table(rows)
        for side in ("ours", "per_listing"):
            total = figures["cost"][side + "_total"]
            print(f"  $ a month ({side}): {figures['cost'][side]}  total {total}")
    return figures


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        per = (
            f"  ({row['aws_calls_per_changed']}/changed)" if "aws_calls_per_changed" in row else ""
        )
        print(
            f"{row['tracked']:>7,} {row['cycle']:<32} MLS {row['mls_requests']:>4}"
            f"  AWS {row['aws_calls']:>6}{per}  CPU {row['worker_cpu_s']:.3f} s"
            f"  RSS {row['peak_rss_mb']} MB  runs {row['runs']}  {row['units']}",
            flush=True,
        )
