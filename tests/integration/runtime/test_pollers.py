"""The pollers behave as Lambda's SQS event source mapping does, against moto's queues.

Handlers here are small test handlers (the real ones are tested elsewhere); they run
through the same registry the real ones do.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsModel

from mls_sync_local.runtime.dlq import dead_letter_counts, list_dead_letters, redrive
from mls_sync_local.runtime.handlers import Handler
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.stack import DeployedStack
from tests.integration.runtime.conftest import STACK


def _runtime(deployed: DeployedStack, handlers: dict[str, Handler]) -> LocalRuntime:
    return LocalRuntime.connect(deployed.endpoint_url, stack=STACK, handlers=handlers)


def _send_unpublish(deployed: DeployedStack, *bodies: str) -> None:
    sqs = deployed.client("sqs")
    for body in bodies:
        sqs.send_message(QueueUrl=deployed.physical("UnpublishQueue"), MessageBody=body)


def _send_sync(deployed: DeployedStack, *pairs: tuple[str, str]) -> None:
    sqs = deployed.client("sqs")
    for group, body in pairs:
        sqs.send_message(
            QueueUrl=deployed.physical("SyncQueue"),
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=f"{group}-{body}",
        )


def _queue_size(deployed: DeployedStack, logical_id: str) -> int:
    attrs = deployed.client("sqs").get_queue_attributes(
        QueueUrl=deployed.physical(logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


class Recorder:
    """A test handler: records every delivery; fails the bodies ``fail`` says to."""

    def __init__(self, fail: Any = lambda body, receive_count: False, raise_on: str = "") -> None:
        self.fail = fail
        self.raise_on = raise_on
        self.deliveries: list[tuple[str, int]] = []
        self.batches: list[list[str]] = []
        self.events: list[dict[str, Any]] = []
        self.remaining: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        with self._lock:
            self.events.append(event)
            self.remaining.append(context.get_remaining_time_in_millis())
            self.batches.append([r["body"] for r in event["Records"]])
            for record in event["Records"]:
                count = int(record["attributes"]["ApproximateReceiveCount"])
                self.deliveries.append((record["body"], count))
        for record in event["Records"]:
            if self.raise_on and record["body"] == self.raise_on:
                raise RuntimeError("boom")
            count = int(record["attributes"]["ApproximateReceiveCount"])
            if self.fail(record["body"], count):
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}


def test_partial_batch_failure_redelivers_only_the_failed_message(
    deployed: DeployedStack,
) -> None:
    # Given four unpublish jobs, one of which fails on its first delivery only
    _send_unpublish(deployed, "a", "b", "c", "d")
    handler = Recorder(fail=lambda body, n: body == "b" and n == 1)
    runtime = _runtime(deployed, {"PublisherFunction": handler})
    # When the pollers run to quiescence
    stats = runtime.pollers().run_until_quiet()
    # Then the failed one came back (receive count 2) and the others were delivered once
    counts = Counter(body for body, _ in handler.deliveries)
    assert counts == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert ("b", 2) in handler.deliveries
    assert stats.failed_records == 1
    # And nothing is left anywhere, and the clock jumped over the visibility timeout
    assert _queue_size(deployed, "UnpublishQueue") == 0
    assert dead_letter_counts(deployed)["UnpublishDLQ"] == 0
    assert stats.clock_skipped_seconds > 170  # 180 s timeout less real time spent


def test_poison_message_reaches_the_dlq_after_max_receive_count_without_blocking_its_batch(
    deployed: DeployedStack,
) -> None:
    # Given sync jobs for three connections and one that always fails, in one batch
    _send_sync(deployed, ("c-1", "job-1"), ("c-p", "poison"), ("c-2", "job-2"), ("c-3", "job-3"))
    handler = Recorder(fail=lambda body, n: body == "poison")
    runtime = _runtime(deployed, {"WorkerFunction": handler})
    # When the pollers run to quiescence
    runtime.pollers().run_until_quiet()
    # Then the good jobs were processed once, in the first batch, beside the poison
    assert set(handler.batches[0]) == {"job-1", "poison", "job-2", "job-3"}
    counts = Counter(body for body, _ in handler.deliveries)
    assert counts == {"job-1": 1, "job-2": 1, "job-3": 1, "poison": 3}  # maxReceiveCount 3
    # And the poison is in the dead-letter queue, the source queue empty
    assert _queue_size(deployed, "SyncQueue") == 0
    listing = {e["queue"]: e for e in list_dead_letters(deployed)}
    assert listing["SyncDLQ"]["count"] == 1
    assert listing["SyncDLQ"]["peek"] == ["poison"]


def test_handler_exception_fails_the_whole_batch(deployed: DeployedStack) -> None:
    # Given two jobs delivered together, the handler raising on one of them the first time
    _send_unpublish(deployed, "x", "y")
    raised = {"done": False}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not raised["done"]:
            raised["done"] = True
            raise RuntimeError("boom")
        return {"batchItemFailures": []}

    seen: list[str] = []

    def recording(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(r["body"] for r in event["Records"])
        return handler(event, context)

    runtime = _runtime(deployed, {"PublisherFunction": recording})
    # When the pollers run
    stats = runtime.pollers().run_until_quiet()
    # Then both were delivered again after the exception
    assert Counter(seen) == {"x": 2, "y": 2}
    assert stats.failed_records == 2
    assert "RuntimeError: boom" in (stats.failures()[0].problem or "")


def test_redrive_moves_dead_letters_back_and_they_are_processed(deployed: DeployedStack) -> None:
    # Given a poison job that reached the dead-letter queue
    _send_sync(deployed, ("c-9", "poison"))
    _runtime(
        deployed, {"WorkerFunction": Recorder(fail=lambda b, n: True)}
    ).pollers().run_until_quiet()
    assert dead_letter_counts(deployed)["SyncDLQ"] == 1
    # When it is redriven (the bug fixed) and the pollers run again
    moved = redrive(deployed, "SyncDLQ")
    handler = Recorder()
    _runtime(deployed, {"WorkerFunction": handler}).pollers().run_until_quiet()
    # Then it went back to its queue, kept its message group, and was processed once
    assert moved == {"SyncDLQ": 1}
    assert [b for b, _ in handler.deliveries] == ["poison"]
    group = handler.events[0]["Records"][0]["attributes"]["MessageGroupId"]
    assert group == "c-9"
    assert dead_letter_counts(deployed)["SyncDLQ"] == 0


def test_fifo_keeps_order_within_a_group_and_one_batch_per_group_in_flight(
    deployed: DeployedStack,
) -> None:
    # Given ten jobs in each of two groups, more than one batch each
    for i in range(10):
        _send_sync(deployed, ("g-a", f"a{i}"), ("g-b", f"b{i}"))
    in_flight: Counter[str] = Counter()
    overlap: list[str] = []
    order: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        with lock:
            for g in groups:
                in_flight[g] += 1
                if in_flight[g] > 1:
                    overlap.append(g)
            for r in event["Records"]:
                order[r["attributes"]["MessageGroupId"]].append(r["body"])
        with lock:
            for g in groups:
                in_flight[g] -= 1
        return {}

    # When the pollers run with the template's concurrency
    _runtime(deployed, {"WorkerFunction": handler}).pollers().run_until_quiet()
    # Then each group was processed in send order, never two batches of a group at once
    assert order["g-a"] == [f"a{i}" for i in range(10)]
    assert order["g-b"] == [f"b{i}" for i in range(10)]
    assert overlap == []


def test_several_worker_invocations_run_at_once(deployed: DeployedStack) -> None:
    # Given eight connections' jobs, more than one batch (the template's batch size is 5)
    for i in range(8):
        _send_sync(deployed, (f"c-{i}", f"job-{i}"))
    cond = threading.Condition()
    in_flight = [0]
    peak = [0]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Each invocation waits (a while) for another to be in flight with it (issue 21:
        # several workers share one MLS token's budget in the local runtime too).
        with cond:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            cond.notify_all()
            cond.wait_for(lambda: peak[0] >= 2, timeout=10)
            in_flight[0] -= 1
        return {}

    # When the pollers run with the template's concurrency
    _runtime(deployed, {"WorkerFunction": handler}).pollers().run_until_quiet()
    # Then two invocations were in flight at once, and every job was done
    assert peak[0] >= 2
    assert _queue_size(deployed, "SyncQueue") == 0


def test_records_have_the_real_event_source_shape(deployed: DeployedStack) -> None:
    # Given one FIFO job with a message attribute
    deployed.client("sqs").send_message(
        QueueUrl=deployed.physical("SyncQueue"),
        MessageBody=json.dumps({"connectionId": "c-1"}),
        MessageGroupId="c-1",
        MessageDeduplicationId="d-1",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "sync"}},
    )
    handler = Recorder()
    # When it is delivered
    _runtime(deployed, {"WorkerFunction": handler}).pollers().run_until_quiet()
    # Then the record is shaped as Lambda shapes it (Powertools' own model accepts it)
    event = handler.events[0]
    parsed = SqsModel.model_validate(event)
    record = event["Records"][0]
    assert parsed.Records[0].attributes.MessageGroupId == "c-1"
    assert record["attributes"]["MessageDeduplicationId"] == "d-1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "sync"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":mls-sync-test-sync.fifo")
    assert record["awsRegion"] == "us-east-1"
    # And the context counts down from the worker's template timeout (300 s)
    assert 290_000 < handler.remaining[0] <= 300_000
