"""The dispatcher and the manual entry points, called with the files in events/."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import pytest
from mls_sync.dal import ConnectionsRepo, ListingsRepo
from mls_sync.models import Connection, Listing
from mls_sync.queues import QueueSender
from mls_sync.status import Status

from functions.dispatcher import app as dispatcher
from functions.manual_sync import app as manual_sync
from mls_sync_local.runtime.context import make_context
from tests.support.clock import FakeMonotonic
from tests.support.pipeline import load_event
from tests.support.stack import LocalStack

NOW = datetime(2026, 11, 28, 17, 4, 5, tzinfo=UTC)


def _context(timeout: float = 300, mono: FakeMonotonic | None = None) -> Any:
    return make_context(
        "dispatcher",
        timeout_seconds=timeout,
        memory_mb=512,
        region="us-east-1",
        clock=mono or FakeMonotonic(),
    )


def _seed(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    for cid, user, enabled in [
        ("c-ada-actris", "u-ada", True),
        ("c-ada-second", "u-ada", True),
        ("c-ben-trestle", "u-ben", True),
        ("c-off", "u-ben", False),
    ]:
        repo.create(
            Connection(
                connection_id=cid,
                user_id=user,
                vendor="reso",
                base_url="https://mls.example.com",
                credentials_secret_arn="arn:secret",
                enabled=enabled,
            )
        )
    listings = ListingsRepo(
        stack.tables.listings,
        boto3.client("dynamodb"),
        "unused",
        stack.settings.listing_keys_table,
    )
    listings.create(
        Listing(
            listing_id="l-1",
            user_id="u-ada",
            connection_id="c-ada-actris",
            listing_key="ACT1001",
            status=Status.ACTIVE,
        )
    )
    listings.create(
        Listing(
            listing_id="l-x",
            user_id="u-ada",
            connection_id="c-ada-actris",
            listing_key="ACT1009",
            status=Status.ACTIVE,
            sync_excluded=True,
        )
    )


def _queued(stack: LocalStack) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=stack.settings.sync_queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append({**json.loads(m["Body"]), "_group": m["Attributes"]["MessageGroupId"]})
            sqs.delete_message(
                QueueUrl=stack.settings.sync_queue_url, ReceiptHandle=m["ReceiptHandle"]
            )


def _dispatcher_deps(stack: LocalStack) -> dispatcher.DispatcherDeps:
    return dispatcher.DispatcherDeps(
        connections=ConnectionsRepo(stack.tables.connections),
        sync_queue=QueueSender(boto3.client("sqs"), stack.settings.sync_queue_url),
        period_seconds=stack.settings.period_seconds,
    )


def test_schedule_enqueues_one_job_per_enabled_connection(stack: LocalStack) -> None:
    # Given three enabled connections and a disabled one
    _seed(stack)
    event = load_event("dispatcher.schedule.json")
    # When the schedule fires
    result = dispatcher.handle(event, _context(), _dispatcher_deps(stack))
    # Then one schedule job per enabled connection is queued, grouped by connection
    assert result["connections"] == 3
    jobs = _queued(stack)
    assert sorted(j["connectionId"] for j in jobs) == [
        "c-ada-actris",
        "c-ada-second",
        "c-ben-trestle",
    ]
    assert {j["_group"] for j in jobs} == {j["connectionId"] for j in jobs}
    assert {(j["reason"], j["slot"]) for j in jobs} == {("schedule", "2026-11-28T17:00:00.000000Z")}


def test_a_schedule_firing_delivered_twice_adds_no_work(stack: LocalStack) -> None:
    _seed(stack)
    event = load_event("dispatcher.schedule.json")
    late_copy = copy.deepcopy(event)
    late_copy["time"] = "2026-11-28T17:00:42Z"  # a retry, same slot
    dispatcher.handle(event, _context(), _dispatcher_deps(stack))
    dispatcher.handle(late_copy, _context(), _dispatcher_deps(stack))
    assert len(_queued(stack)) == 3
    # And the next period's firing is new work
    next_one = copy.deepcopy(event)
    next_one["time"] = "2026-11-28T17:15:00Z"
    dispatcher.handle(next_one, _context(), _dispatcher_deps(stack))
    assert len(_queued(stack)) == 3


def test_dispatch_short_of_time_fails_so_the_retry_finishes(stack: LocalStack) -> None:
    _seed(stack)
    with pytest.raises(dispatcher.DispatchIncompleteError, match="retry sends the rest"):
        dispatcher.handle(
            load_event("dispatcher.schedule.json"), _context(timeout=10), _dispatcher_deps(stack)
        )


def test_dispatch_sends_in_batches_of_ten(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    for n in range(45):
        repo.create(
            Connection(
                connection_id=f"c-{n:03d}",
                user_id="u",
                vendor="reso",
                base_url="https://mls.example.com",
                credentials_secret_arn="arn:s",
            )
        )
    result = dispatcher.handle(
        load_event("dispatcher.schedule.json"), _context(), _dispatcher_deps(stack)
    )
    assert result["connections"] == 45
    assert result["batches"] == 5
    assert len(_queued(stack)) == 45


@pytest.mark.parametrize(
    ("name", "connections", "keys"),
    [
        ("manual_sync.listing.json", ["c-ada-actris"], ["ACT1001"]),
        ("manual_sync.connection.json", ["c-ben-trestle"], None),
        ("manual_sync.user.json", ["c-ada-actris", "c-ada-second"], None),
    ],
)
def test_manual_direct_invocations(
    stack: LocalStack, name: str, connections: list[str], keys: list[str] | None
) -> None:
    _seed(stack)
    answer = manual_sync.handle(load_event(name), _context(), clock=lambda: NOW)
    assert answer["statusCode"] == 202
    assert answer["body"]["connectionIds"] == connections
    jobs = _queued(stack)
    assert sorted(j["connectionId"] for j in jobs) == connections
    assert all(j["reason"] == "manual" for j in jobs)
    assert all(j.get("listingKeys") == keys for j in jobs)
    assert all(j["slot"] == "2026-11-28T17:04:00.000000Z" for j in jobs)


def test_manual_pressed_twice_within_a_minute_is_one_job(stack: LocalStack) -> None:
    _seed(stack)
    event = load_event("manual_sync.connection.json")
    manual_sync.handle(event, _context(), clock=lambda: NOW)
    manual_sync.handle(event, _context(), clock=lambda: NOW)
    assert len(_queued(stack)) == 1


def test_manual_http_call(stack: LocalStack) -> None:
    _seed(stack)
    answer = manual_sync.handle(load_event("manual_sync.http.json"), _context(), clock=lambda: NOW)
    assert answer["statusCode"] == 202
    body = json.loads(cast("str", answer["body"]))
    assert body["connectionIds"] == ["c-ada-actris"]
    assert body["correlationId"] == "8f2c6a3e-1b4d-4c9e-9a7f-6d5e4c3b2a10"


def test_manual_http_base64_body(stack: LocalStack) -> None:
    _seed(stack)
    event = load_event("manual_sync.http.json")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert manual_sync.handle(event, _context(), clock=lambda: NOW)["statusCode"] == 202


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"action": "sync_everything"}, 400, "action: expected one of"),
        ({"action": "sync_listing"}, 400, "listingId: Field required"),
        ({"action": "sync_user", "userId": ""}, 400, "userId: String should have at least"),
        ({"action": "sync_user", "userId": "u", "extra": 1}, 400, "extra: Extra inputs"),
        ({"action": "sync_listing", "listingId": "nope"}, 404, "listing nope not found"),
        ({"action": "sync_listing", "listingId": "l-x"}, 409, "excluded from sync"),
        ({"action": "sync_connection", "connectionId": "c-off"}, 409, "disabled"),
        ({"action": "sync_user", "userId": "u-nobody"}, 404, "no enabled connection"),
    ],
)
def test_manual_refusals_are_clear(
    stack: LocalStack, payload: dict[str, Any], status: int, message: str
) -> None:
    _seed(stack)
    answer = manual_sync.handle(payload, _context(), clock=lambda: NOW)
    assert answer["statusCode"] == status
    assert message in answer["body"]["error"]
    assert _queued(stack) == []


def test_manual_http_refusals(stack: LocalStack) -> None:
    _seed(stack)
    event = load_event("manual_sync.http.json")
    get = copy.deepcopy(event)
    get["requestContext"]["http"]["method"] = "GET"
    assert manual_sync.handle(get, _context())["statusCode"] == 405
    broken = copy.deepcopy(event)
    broken["body"] = "{not json"
    answer = manual_sync.handle(broken, _context())
    assert answer["statusCode"] == 400
    assert "not JSON" in json.loads(answer["body"])["error"]
