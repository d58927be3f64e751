"""`invoke` and `tick` run handlers in this process with their template environment; tick's
summary comes from what the handlers wrote."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.stack import DeployedStack, find_function
from mls_sync_local.runtime.tick import run_tick
from tests.integration.runtime.conftest import STACK


def test_invoke_gives_the_handler_its_template_environment_and_context(
    deployed: DeployedStack,
) -> None:
    # Given a handler that reports what it sees
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "event": event,
            "posts": os.environ["POSTS_TABLE"],
            "graph": os.environ["FACEBOOK_GRAPH_URL"],
            "endpoint": os.environ["AWS_ENDPOINT_URL"],
            "name": context.function_name,
            "remaining": context.get_remaining_time_in_millis(),
        }

    runtime = LocalRuntime.connect(
        deployed.endpoint_url, stack=STACK, handlers={"PublisherFunction": handler}
    )
    # When the publisher is invoked with an event
    result = runtime.invoke("publisher", {"hello": 1})
    # Then it saw its own environment from the template, resolved against the stack
    assert result["event"] == {"hello": 1}
    assert result["posts"] == f"{STACK}-Posts"
    assert result["graph"] == "https://graph.facebook.com"
    assert result["endpoint"] == deployed.endpoint_url
    assert result["name"] == f"{STACK}-publisher"
    timeout_ms = find_function("publisher").timeout_seconds * 1000  # the template's
    assert timeout_ms - 1_000 < result["remaining"] <= timeout_ms
    # And the environment is restored afterwards
    assert os.environ.get("POSTS_TABLE") != f"{STACK}-Posts"


def test_the_callers_platform_urls_replace_the_templates_real_ones(
    deployed: DeployedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a shell that exported a platform simulator's URLs (`mls-sync sim platforms`)
    sim = "http://127.0.0.1:5999"
    for name in ("FACEBOOK_GRAPH_URL", "LINKEDIN_API_URL", "LINKEDIN_OAUTH_URL"):
        monkeypatch.setenv(name, sim)

    def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
        names = ("FACEBOOK_GRAPH_URL", "LINKEDIN_API_URL", "LINKEDIN_OAUTH_URL")
        return {name: os.environ[name] for name in names}

    runtime = LocalRuntime.connect(
        deployed.endpoint_url, stack=STACK, handlers={"PublisherFunction": handler}
    )
    # When the publisher runs
    seen = runtime.invoke("publisher", {})
    # Then it goes to the simulator, not to graph.facebook.com / api.linkedin.com
    assert seen == dict.fromkeys(seen, sim)
    assert len(seen) == 3


def test_cli_invoke_prints_only_the_result_on_stdout(deployed: DeployedStack) -> None:
    # Given the real dispatcher and the sample scheduled event, with no connections seeded
    env = {**os.environ, "AWS_ENDPOINT_URL": deployed.endpoint_url, "MLS_SYNC_STACK": STACK}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mls_sync_local.cli",
            "invoke",
            "dispatcher",
            "--event",
            "events/dispatcher.schedule.json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it succeeds and stdout is the handler's JSON result alone (logs on stderr)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), dict)


def _table(name: str) -> Any:
    return boto3.resource("dynamodb").Table(os.environ[name])


def _fake_pipeline(fail_publisher: bool = False) -> dict[str, Any]:
    """Dispatcher, worker and publisher doing the minimum the real ones do, through the
    environment the runtime gives them."""

    def dispatcher(event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert event["detail-type"] == "Scheduled Event"
        assert event["resources"][0].startswith("arn:aws:events:us-east-1:")
        sqs = boto3.client("sqs")
        for connection in ("c-1", "c-2"):
            sqs.send_message(
                QueueUrl=os.environ["SYNC_QUEUE_URL"],
                MessageBody=json.dumps({"connectionId": connection}),
                MessageGroupId=connection,
                MessageDeduplicationId=f"{connection}-{event['time']}",
            )
        return {}

    def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in event["Records"]:
            connection = json.loads(record["body"])["connectionId"]
            counts = {"recordsRead": 10, "active>sold": 1} if connection == "c-1" else {}
            _table("SYNC_RUNS_TABLE").put_item(
                Item={
                    "connectionId": connection,
                    "runKey": "2026-11-28T18:00:00.000000Z",
                    "counts": counts,
                    "mlsRequests": 2,
                    "outcome": "succeeded",
                }
            )
            if counts:
                boto3.client("sqs").send_message(
                    QueueUrl=os.environ["UNPUBLISH_QUEUE_URL"],
                    MessageBody=json.dumps({"postId": "p-1"}),
                )
        return {"batchItemFailures": []}

    def publisher(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if fail_publisher:
            return {
                "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]
            }
        for record in event["Records"]:
            post_id = json.loads(record["body"])["postId"]
            _table("POSTS_TABLE").update_item(
                Key={"postId": post_id},
                UpdateExpression="SET #s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": "unpublished"},
            )
        return {}

    return {
        "DispatcherFunction": dispatcher,
        "WorkerFunction": worker,
        "PublisherFunction": publisher,
    }


def _seed_post(deployed: DeployedStack) -> None:
    deployed.client("dynamodb").put_item(
        TableName=deployed.physical("PostsTable"),
        Item={
            "postId": {"S": "p-1"},
            "listingId": {"S": "l-1"},
            "platform": {"S": "facebook"},
            "status": {"S": "published"},
        },
    )


def test_tick_runs_schedule_to_quiescence_and_summarises_what_handlers_wrote(
    deployed: DeployedStack,
) -> None:
    # Given one published post and a pipeline that sells its listing
    _seed_post(deployed)
    runtime = LocalRuntime.connect(deployed.endpoint_url, stack=STACK, handlers=_fake_pipeline())
    # When one schedule firing runs to quiescence
    summary = run_tick(
        runtime, fired_at=datetime(2026, 11, 28, 18, 0, tzinfo=UTC), handler_output=io.StringIO()
    )
    # Then the summary holds the contract's figures from SyncRuns, Posts and DLQs
    figures = summary.to_json()
    assert {k: v for k, v in figures.items() if k != "durationMs"} == {
        "connections": 2,
        "recordsRead": 10,
        "mlsRequests": 4,
        "statusChanges": {"active>sold": 1},
        "postsUnpublished": {"facebook": 1},
        "postOutcomes": {"unpublished": 1},
        "failures": 0,
        "deadLetters": 0,
    }
    assert not summary.failed


def test_tick_counts_failures_and_dead_letters(deployed: DeployedStack) -> None:
    # Given a publisher that always fails (UnpublishQueue: maxReceiveCount 5)
    _seed_post(deployed)
    runtime = LocalRuntime.connect(
        deployed.endpoint_url, stack=STACK, handlers=_fake_pipeline(fail_publisher=True)
    )
    # When a firing runs
    summary = run_tick(runtime, handler_output=io.StringIO())
    # Then five failed deliveries and one dead letter are reported, and the tick failed
    assert summary.failures == 5
    assert summary.dead_letters == 1
    assert summary.posts_unpublished == {}
    assert summary.failed
    assert "PublisherFunction: 1 of 1 failed" in summary.failure_notes[0]
