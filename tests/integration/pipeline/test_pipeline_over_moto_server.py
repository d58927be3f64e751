"""The whole pipeline over HTTP: moto server (loopback, free port) and the MLS simulator.
Schedule event → dispatcher → real SyncQueue messages → worker → Listings, history, events,
UnpublishQueue."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from mls_sync import aws
from mls_sync.dal import ConnectionsRepo
from mls_sync.models import PostStatus
from mls_sync.queues import QueueSender
from mls_sync.status import Status

from functions.dispatcher import app as dispatcher
from functions.worker import app as worker
from mls_sync_local.runtime.moto_server import moto_server
from mls_sync_local.sim.mls import MlsSimulator
from tests.support.clock import FakeMonotonic
from tests.support.pipeline import CONNECTION, World, event_tap, load_event
from tests.support.stack import create_stack_resources


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with moto_server() as url, MlsSimulator(vendor="trestle") as sim:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        aws.reset_clients()
        stack = create_stack_resources()
        for key, value in stack.env.items():
            monkeypatch.setenv(key, value)
        yield World(
            stack=stack,
            sim=sim,
            mono=FakeMonotonic(),
            events_tap_url=event_tap(stack.settings.event_bus_name),
        )
    aws.reset_clients()


def _receive_as_lambda_event(queue_url: str) -> dict[str, Any]:
    """What the SQS event source would hand the worker: the received messages, in the
    Lambda record shape."""
    sqs = boto3.client("sqs")
    got = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", [])
    template = load_event("worker.sqs.json")["Records"][0]
    records = []
    for message in got:
        records.append(
            {
                **template,
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {**template["attributes"], **message["Attributes"]},
                "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),
            }
        )
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return {"Records": records}


def _tick(world: World, time: str) -> dict[str, Any]:
    event = load_event("dispatcher.schedule.json")
    event["time"] = time
    deps = dispatcher.DispatcherDeps(
        connections=ConnectionsRepo(world.stack.tables.connections),
        sync_queue=QueueSender(aws.sqs(), world.stack.settings.sync_queue_url),
        period_seconds=world.stack.settings.period_seconds,
    )
    dispatcher.handle(event, world.context(), deps)  # type: ignore[arg-type]
    batch = _receive_as_lambda_event(world.stack.settings.sync_queue_url)
    result: dict[str, Any] = worker.handle(batch, world.context(), world.deps)  # type: ignore[arg-type]
    return {"jobs": len(batch["Records"]), **result}


def test_a_listing_that_sells_takes_its_published_posts_down(world: World) -> None:
    # Given a connection tracking two listings, one with posts
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE)
    world.track("l-2", "K2", Status.PENDING, mls_status="Pending")
    world.post("p-fb", "l-1", PostStatus.PUBLISHED, "facebook")
    world.post("p-draft", "l-1", PostStatus.DRAFT, "linkedin")
    first = _tick(world, "2026-11-28T12:00:00Z")
    assert first == {"jobs": 1, "batchItemFailures": []}
    # When the MLS sells one and restores the other, and the schedule fires (twice)
    world.sim.advance(120)
    world.sim.set_status("K1", "Closed")
    world.sim.set_status("K2", "Active")
    second = _tick(world, "2026-11-28T12:15:00Z")
    again = _tick(world, "2026-11-28T12:15:30Z")
    # Then each change happened once, with its event, and one unpublish job
    assert second == {"jobs": 1, "batchItemFailures": []}
    # (SQS drops the repeat within its window; past it, the sync run makes it a no-op)
    assert again["batchItemFailures"] == []
    assert again["jobs"] in (0, 1)
    assert world.status("l-1") is Status.SOLD
    assert world.status("l-2") is Status.ACTIVE
    kinds = sorted(e["detail-type"] for e in world.events())
    assert kinds == ["ListingRestored", "ListingStatusChanged"]
    assert [j["postId"] for j in world.unpublish_jobs()] == ["p-fb"]
    runs = world.runs.list_for_connection(CONNECTION)
    assert {r.outcome for r in runs} == {"succeeded"}
