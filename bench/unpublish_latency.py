"""Unpublish latency: a job's time from enqueue to its post's status written.

The real PublisherFunction handler (``functions.publisher.app.handle``) with the real
collaborators (``mls_sync.unpublish.deps.build``) against moto in-process (tables, the
UnpublishQueue, the bus) and the platform simulator on loopback, with no and with injected
platform latency. One poller, as a single concurrent Lambda would: receive up to 10, call
the handler, delete what it did not report failed. Latency is read from the post item
(``updatedAt``, written by the service's clock) minus the wall-clock time of the enqueue.

Two loads per platform latency: a burst (every job enqueued at once: latency includes the
backlog ahead of a job) and isolated jobs (one at a time: the floor a job pays).

    .venv/bin/python -m bench unpublish_latency
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext
from mls_sync import aws
from mls_sync.config import read_settings
from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo
from mls_sync.models import Listing, PlatformAccount, Post, PostStatus, UnpublishJob
from mls_sync.secrets import SecretStore, platform_secret_name
from mls_sync.status import Status
from mls_sync.timeutil import parse_utc
from mls_sync.unpublish.deps import PublisherDeps, build
from mls_sync.unpublish.settings import PublisherSettings

from functions.publisher import app
from mls_sync_local.runtime.context import make_context
from mls_sync_local.sim.platforms import PlatformSimulator
from tests.support.stack import LocalStack, moto_stack

BURST_JOBS = 300
ISOLATED_JOBS = 30
PLATFORM_LATENCIES = (0.0, 0.05)
REGION = "us-east-1"
PLATFORMS = ("facebook", "instagram", "linkedin")


@dataclass
class World:
    stack: LocalStack
    sim: PlatformSimulator
    deps: PublisherDeps
    accounts: dict[str, PlatformAccount]
    queue_arn: str
    next_id: int = 0


_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "POWERTOOLS_METRICS_NAMESPACE": "mls-sync-bench",
    "POWERTOOLS_SERVICE_NAME": "mls-sync",
}


@contextmanager
def _fake_aws_environment() -> Iterator[None]:
    """moto's fake credentials, so nothing here can ever reach a real account."""
    saved = dict(os.environ)
    os.environ.update(_FAKE_AWS)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _world(latency: float) -> Iterator[World]:
    # Quiet: the handler's INFO lines per job would dominate the run's output and its time.
    app.logger.setLevel("WARNING")
    with PlatformSimulator(latency=latency) as sim, moto_stack() as stack:
        env = {**stack.env, **sim.env()}
        store = SecretStore(aws.secrets())
        repo = AccountsRepo(stack.tables.accounts)
        accounts: dict[str, PlatformAccount] = {}
        for platform in PLATFORMS:
            token = f"bench-{platform}-token-0001"
            sim.add_token(platform, token, account=f"sim-{platform}")
            arn = store.put_json(
                platform_secret_name("bench/", f"a-{platform}"), {"accessToken": token}
            )
            account = PlatformAccount.model_validate(
                {
                    "accountId": f"a-{platform}",
                    "userId": "u-1",
                    "platform": platform,
                    "externalId": f"ext-{platform}",
                    "connectedVia": "facebook_login" if platform == "instagram" else None,
                    "tokenSecretArn": arn,
                }
            )
            repo.create(account)
            accounts[platform] = account
        queue_arn = aws.sqs().get_queue_attributes(
            QueueUrl=stack.settings.unpublish_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        deps = build(read_settings(PublisherSettings, {**env, "UNPUBLISH_MAX_RECEIVES": "5"}))
        yield World(stack, sim, deps, accounts, queue_arn)


def _seed_jobs(world: World, n: int) -> list[UnpublishJob]:
    """n sold listings with one published post each, spread over the three platforms."""
    listings = ListingsRepo(
        world.stack.tables.listings,
        aws.dynamodb(),
        world.stack.settings.history_table,
        world.stack.settings.listing_keys_table,
    )
    posts = PostsRepo(world.stack.tables.posts)
    jobs = []
    for _ in range(n):
        i = world.next_id
        world.next_id += 1
        platform = PLATFORMS[i % len(PLATFORMS)]
        account = world.accounts[platform]
        platform_post_id = (
            f"urn:li:share:{7_000_000_000 + i}" if platform == "linkedin" else f"{1000 + i}_{i}"
        )
        world.sim.add_post(platform, platform_post_id, token=f"bench-{platform}-token-0001")
        listings.create(
            Listing(
                listing_id=f"l-{i}",
                user_id="u-1",
                connection_id="c-1",
                listing_key=f"K{i}",
                status=Status.SOLD,
                mls_modified_at="2026-11-28T16:00:00Z",
            )
        )
        posts.create(
            Post(
                post_id=f"p-{i}",
                listing_id=f"l-{i}",
                platform=account.platform,
                account_id=account.account_id,
                platform_post_id=platform_post_id,
                status=PostStatus.PUBLISHED,
            )
        )
        jobs.append(
            UnpublishJob(
                post_id=f"p-{i}",
                listing_id=f"l-{i}",
                platform=account.platform,
                correlation_id=f"bench-{i}",
            )
        )
    return jobs


def _enqueue(world: World, jobs: list[UnpublishJob]) -> dict[str, float]:
    sent: dict[str, float] = {}
    url = world.stack.settings.unpublish_queue_url
    for start in range(0, len(jobs), 10):
        chunk = jobs[start : start + 10]
        at = time.time()
        aws.sqs().send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(k), "MessageBody": json.dumps(job.to_item())}
                for k, job in enumerate(chunk)
            ],
        )
        sent.update({job.post_id: at for job in chunk})
    return sent


def _drain(world: World) -> tuple[int, float]:
    """Polls until the queue is empty; returns (handler invocations, seconds in handlers)."""
    url = world.stack.settings.unpublish_queue_url
    sqs = aws.sqs()
    invocations = 0
    busy = 0.0
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return invocations, busy
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": world.queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
        context = make_context("bench-publisher", timeout_seconds=30, memory_mb=512, region=REGION)
        started = time.perf_counter()
        response = app.handle({"Records": records}, cast("LambdaContext", context), world.deps)
        busy += time.perf_counter() - started
        app.metrics.clear_metrics()  # lambda_handler's log_metrics does this per invocation
        invocations += 1
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        if failed:
            bodies = [m["Body"] for m in messages if m["MessageId"] in failed]
            raise RuntimeError(f"{len(failed)} job(s) failed in the benchmark: {bodies}")
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(messages)
            ],
        )


def _latencies(world: World, sent: dict[str, float]) -> list[float]:
    posts = PostsRepo(world.stack.tables.posts)
    out = []
    for post_id, at in sent.items():
        post = posts.get(post_id)
        if post is None or post.status is not PostStatus.UNPUBLISHED or post.updated_at is None:
            raise RuntimeError(f"post {post_id} was not unpublished")
        written = parse_utc(post.updated_at).timestamp()
        out.append(written - at)
    return out


def _summary(latencies: list[float], elapsed: float, busy: float, calls: int) -> dict[str, Any]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    return {
        "jobs": len(ordered),
        "latency_ms": {
            "median": round(statistics.median(ordered) * 1000, 1),
            "p95": round(p95 * 1000, 1),
            "max": round(ordered[-1] * 1000, 1),
        },
        "throughput_jobs_per_s": round(len(ordered) / elapsed, 1),
        "handler_ms_per_job": round(busy / len(ordered) * 1000, 1),
        "handler_invocations": calls,
    }


def _burst(latency: float, n: int) -> dict[str, Any]:
    with _world(latency) as world:
        jobs = _seed_jobs(world, n)
        started = time.time()
        sent = _enqueue(world, jobs)
        calls, busy = _drain(world)
        lat = _latencies(world, sent)
        elapsed = max(sent[p] + v for p, v in zip(sent, lat, strict=True)) - started
        deletes = sum(1 for r in world.sim.requests() if r.method == "DELETE")
        result = _summary(lat, elapsed, busy, calls)
        result["platform_delete_calls"] = deletes
        return result


def _isolated(latency: float, n: int) -> dict[str, Any]:
    with _world(latency) as world:
        jobs = _seed_jobs(world, n)
        lat: list[float] = []
        busy_total = 0.0
        calls_total = 0
        started = time.time()
        for job in jobs:
            sent = _enqueue(world, [job])
            calls, busy = _drain(world)
            busy_total += busy
            calls_total += calls
            lat.extend(_latencies(world, sent))
        return _summary(lat, time.time() - started, busy_total, calls_total)


def run(out: Path) -> dict[str, Any]:
    """Figures for docs/performance.md ("Unpublish latency")."""
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "setup": (
            "real handler + deps.build() against moto in-process and the platform simulator "
            "on loopback; one poller (receive 10, handle, delete); jobs spread over "
            "facebook/instagram/linkedin"
        ),
        "runs": [],
    }
    with _fake_aws_environment():
        for latency in PLATFORM_LATENCIES:
            _run_latency(latency, figures)
    (out / "unpublish_latency.detail.json").write_text(
        json.dumps(figures, indent=2) + "\n", encoding="utf-8"
    )
    return figures


def _run_latency(latency: float, figures: dict[str, Any]) -> None:
    for load, result in (
        (f"isolated x{ISOLATED_JOBS}", _isolated(latency, ISOLATED_JOBS)),
        (f"burst of {BURST_JOBS}", _burst(latency, BURST_JOBS)),
    ):
        row = {"platform_latency_ms": round(latency * 1000), "load": load, **result}
        figures["runs"].append(row)
        lat = result["latency_ms"]
        print(
            f"  platform +{row['platform_latency_ms']:>3} ms  {load:<14} "
            f"median {lat['median']:>7} ms  p95 {lat['p95']:>7} ms  max {lat['max']:>7} ms  "
            f"{result['throughput_jobs_per_s']:>6} jobs/s  "
            f"handler {result['handler_ms_per_job']} ms/job",
            flush=True,
        )
