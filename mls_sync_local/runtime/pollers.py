"""SQS pollers that stand in for Lambda's SQS event source mappings.

What they keep from the real mapping (settings read from template.yaml):
- batches of up to ``BatchSize`` messages, at most ``MaximumConcurrency`` invocations in
  flight per mapping (threads in this process);
- real-shaped events (``Records`` with messageId, receiptHandle, body, attributes incl.
  ApproximateReceiveCount, SentTimestamp and, for FIFO, MessageGroupId /
  MessageDeduplicationId / SequenceNumber, messageAttributes, md5OfBody, eventSource
  ``aws:sqs``, eventSourceARN, awsRegion) and a Lambda-like context with remaining time;
- with ``ReportBatchItemFailures``, only messages not listed in ``batchItemFailures`` are
  deleted; a handler exception, a timeout or an invalid response fails the whole batch;
- failed messages are not touched: they become visible again after the queue's visibility
  timeout, and the queue's own redrive policy moves them to the dead-letter queue after
  ``maxReceiveCount`` receives (moto implements it);
- FIFO: SQS itself never hands out a message group that has messages in flight, so each
  group has at most one batch in flight.

Where they differ: see docs/local-runtime.md. The main one is time. By default the clock is
*accelerated*: when nothing is in flight and only failed messages remain, the poller jumps
its clock to the earliest end of their visibility timeout and makes those messages visible
(ChangeMessageVisibility to 0), instead of waiting minutes. ``accelerate=False`` waits for
real.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mls_sync_local.errors import CommandError
from mls_sync_local.runtime.context import LambdaContext, make_context
from mls_sync_local.runtime.handlers import HandlerRegistry
from mls_sync_local.runtime.stack import (
    DeployedStack,
    FunctionSpec,
    MappingSpec,
    TemplateFacts,
    template_facts,
)

SQS_MAX_RECEIVE = 10
# System attributes the Lambda service passes through in a record's ``attributes``.
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


# ----------------------------------------------------------------------------- time


class AcceleratedClock:
    """Monotonic seconds that can be moved forward: real time plus the jumps taken."""

    def __init__(self, base: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self._offset = 0.0

    def __call__(self) -> float:
        return self._base() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._offset += seconds

    @property
    def skipped(self) -> float:
        return self._offset


# ------------------------------------------------------------------------ event shapes


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _message_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attributes in the event's lowerCamel form."""
    shaped: dict[str, Any] = {}
    for name, value in raw.items():
        item: dict[str, Any] = {
            "stringListValues": list(value.get("StringListValues", [])),
            "binaryListValues": list(value.get("BinaryListValues", [])),
            "dataType": value["DataType"],
        }
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            binary = value["BinaryValue"]
            if isinstance(binary, bytes | bytearray):
                import base64  # noqa: PLC0415 - rare path

                binary = base64.b64encode(binary).decode("ascii")
            item["binaryValue"] = binary
        shaped[name] = item
    return shaped


def sqs_record(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of a Lambda SQS event, from a ReceiveMessage result entry."""
    attributes = message.get("Attributes", {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: str(attributes[k]) for k in _RECORD_ATTRIBUTES if k in attributes},
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody") or _md5(message["Body"]),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def sqs_event(messages: Iterable[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn=queue_arn, region=region) for m in messages]}


@dataclass(frozen=True)
class BatchOutcome:
    failed: frozenset[str]
    problem: str | None = None  # why the whole batch failed, or why items failed


def interpret_response(
    response: Any, batch_ids: Iterable[str], *, report_batch_item_failures: bool
) -> BatchOutcome:
    """Which messages of a batch failed, as Lambda reads a handler's return value.

    Without ReportBatchItemFailures any return is success. With it: None, ``{}``, or an
    empty/null ``batchItemFailures`` is success; an entry whose ``itemIdentifier`` is
    missing, empty or not a message of the batch fails the whole batch, as does a response
    that is not an object.
    """
    ids = frozenset(batch_ids)
    if not report_batch_item_failures or response is None:
        return BatchOutcome(frozenset())
    if not isinstance(response, dict):
        return BatchOutcome(ids, f"invalid response of type {type(response).__name__}")
    failures = response.get("batchItemFailures")
    if not failures:
        return BatchOutcome(frozenset())
    if not isinstance(failures, list):
        return BatchOutcome(ids, "batchItemFailures is not a list")
    failed: set[str] = set()
    for entry in failures:
        item = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(item, str) or item not in ids:
            return BatchOutcome(ids, f"invalid itemIdentifier {item!r}")
        failed.add(item)
    return BatchOutcome(frozenset(failed), f"{len(failed)} reported in batchItemFailures")


# ----------------------------------------------------------------------------- pollers


@dataclass(frozen=True)
class QueueTarget:
    """One event source mapping, resolved against the deployed stack."""

    mapping: MappingSpec
    function: FunctionSpec
    function_name: str
    queue_url: str
    queue_arn: str
    fifo: bool
    visibility_timeout: int
    batch_size: int
    max_concurrency: int


@dataclass(frozen=True)
class Invocation:
    function: str  # logical id
    message_ids: tuple[str, ...]
    failed_ids: frozenset[str]
    problem: str | None
    duration_ms: int


@dataclass
class PollStats:
    invocations: list[Invocation] = field(default_factory=list)
    records: int = 0
    failed_records: int = 0
    clock_skipped_seconds: float = 0.0

    def failures(self) -> list[Invocation]:
        return [i for i in self.invocations if i.failed_ids]


@dataclass
class _Parked:
    target: QueueTarget
    receipt_handle: str
    due: float


def resolve_targets(
    deployed: DeployedStack,
    registry: HandlerRegistry,
    facts: TemplateFacts | None = None,
    *,
    concurrency: int | None = None,
) -> list[QueueTarget]:
    """The mappings whose function has a handler in ``registry``, with live queue facts."""
    facts = facts or template_facts()
    targets = []
    sqs = deployed.client("sqs")
    for mapping in facts.mappings.values():
        if not mapping.enabled or not registry.has(mapping.function):
            continue
        url = deployed.physical(mapping.queue)
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn", "VisibilityTimeout", "FifoQueue"]
        )["Attributes"]
        limit = deployed.resolve_int(mapping.max_concurrency)
        targets.append(
            QueueTarget(
                mapping=mapping,
                function=facts.functions[mapping.function],
                function_name=deployed.physical_ids.get(mapping.function, mapping.function),
                queue_url=url,
                queue_arn=attrs["QueueArn"],
                fifo=str(attrs.get("FifoQueue", "false")).lower() == "true",
                visibility_timeout=int(attrs.get("VisibilityTimeout", 30)),
                batch_size=mapping.batch_size,
                max_concurrency=max(1, min(limit, concurrency) if concurrency else limit),
            )
        )
    return targets


class Pollers:
    """Runs the mappings' queues to quiescence through the handlers."""

    def __init__(
        self,
        deployed: DeployedStack,
        registry: HandlerRegistry,
        *,
        targets: list[QueueTarget] | None = None,
        clock: AcceleratedClock | None = None,
        accelerate: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        idle_poll_seconds: float = 0.2,
        stall_timeout_seconds: float = 60.0,
        on_invocation: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.deployed = deployed
        self.registry = registry
        self.targets = targets if targets is not None else resolve_targets(deployed, registry)
        self.clock = clock or AcceleratedClock()
        self.accelerate = accelerate
        self.sleep = sleep
        self.idle_poll_seconds = idle_poll_seconds
        self.stall_timeout_seconds = stall_timeout_seconds
        self.on_invocation = on_invocation
        self._sqs = deployed.client("sqs")
        self._parked: list[_Parked] = []

    # -- one invocation (runs in a worker thread)

    def _invoke(self, target: QueueTarget, messages: list[dict[str, Any]]) -> Invocation:
        event = sqs_event(messages, queue_arn=target.queue_arn, region=self.deployed.region)
        ids = tuple(r["messageId"] for r in event["Records"])
        context: LambdaContext = make_context(
            target.function_name,
            timeout_seconds=target.function.timeout_seconds,
            memory_mb=target.function.memory_mb,
            region=self.deployed.region,
            clock=self.clock,
        )
        started = time.monotonic()
        try:
            response = self.registry.get(target.function.logical_id)(event, context)
            outcome = interpret_response(
                response, ids, report_batch_item_failures=target.mapping.report_batch_item_failures
            )
        except Exception as exc:  # noqa: BLE001 - a raising handler fails its batch, as in Lambda
            outcome = BatchOutcome(frozenset(ids), f"{type(exc).__name__}: {exc}")
        elapsed = time.monotonic() - started
        if elapsed > target.function.timeout_seconds:
            # Lambda would have stopped the invocation: the whole batch fails.
            outcome = BatchOutcome(
                frozenset(ids), f"timed out after {target.function.timeout_seconds} s"
            )
        return Invocation(
            function=target.function.logical_id,
            message_ids=ids,
            failed_ids=outcome.failed,
            problem=outcome.problem,
            duration_ms=int(elapsed * 1000),
        )

    # -- SQS side (main thread)

    def _receive(self, target: QueueTarget) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < target.batch_size:
            got = self._sqs.receive_message(
                QueueUrl=target.queue_url,
                MaxNumberOfMessages=min(SQS_MAX_RECEIVE, target.batch_size - len(messages)),
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if len(got) < SQS_MAX_RECEIVE:
                break
        return messages

    def _settle(
        self, target: QueueTarget, messages: list[dict[str, Any]], invocation: Invocation
    ) -> None:
        done = [m for m in messages if m["MessageId"] not in invocation.failed_ids]
        for start in range(0, len(done), SQS_MAX_RECEIVE):
            chunk = done[start : start + SQS_MAX_RECEIVE]
            result = self._sqs.delete_message_batch(
                QueueUrl=target.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
            if result.get("Failed"):
                raise CommandError(
                    f"could not delete processed messages from {target.queue_url}: "
                    f"{result['Failed'][0].get('Message')}"
                )
        due = self.clock() + target.visibility_timeout
        for message in messages:
            if message["MessageId"] in invocation.failed_ids:
                self._parked.append(_Parked(target, message["ReceiptHandle"], due))

    def _release_parked(self) -> bool:
        """Failed messages whose visibility timeout has passed on our clock: visible now
        (accelerated mode; otherwise SQS does it by itself). True when any was released."""
        if not self._parked:
            return False
        now = self.clock()
        earliest = min(p.due for p in self._parked)
        if self.accelerate and earliest > now:
            self.clock.advance(earliest - now)
            now = self.clock()
        due = [p for p in self._parked if p.due <= now]
        if not due:
            self.sleep(min(self.idle_poll_seconds, earliest - now))
            return False
        self._parked = [p for p in self._parked if p.due > now]
        if self.accelerate:
            for parked in due:
                try:
                    self._sqs.change_message_visibility(
                        QueueUrl=parked.target.queue_url,
                        ReceiptHandle=parked.receipt_handle,
                        VisibilityTimeout=0,
                    )
                except self._sqs.exceptions.ClientError as exc:
                    # Already visible or already received again: nothing left to release.
                    if "ReceiptHandleIsInvalid" not in str(exc):
                        raise
        return True

    def _backlog(self) -> dict[str, int]:
        """Messages each target queue still holds (visible, in flight, delayed)."""
        counts = {}
        for target in self.targets:
            attrs = self._sqs.get_queue_attributes(
                QueueUrl=target.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            counts[target.queue_url] = sum(int(v) for v in attrs.values())
        return counts

    # -- the loop

    def run_until_quiet(self, *, max_invocations: int = 100_000) -> PollStats:
        """Poll every target until all its queues are empty and nothing is in flight."""
        stats = PollStats()
        executors = {
            t.queue_url: cf.ThreadPoolExecutor(
                max_workers=t.max_concurrency, thread_name_prefix=t.function.short_name
            )
            for t in self.targets
        }
        in_flight: dict[cf.Future[Invocation], tuple[QueueTarget, list[dict[str, Any]]]] = {}
        stalled_since: float | None = None
        try:
            while True:
                started_any = False
                for target in self.targets:
                    running = sum(1 for t, _ in in_flight.values() if t is target)
                    while running < target.max_concurrency:
                        messages = self._receive(target)
                        if not messages:
                            break
                        future = executors[target.queue_url].submit(self._invoke, target, messages)
                        in_flight[future] = (target, messages)
                        running += 1
                        started_any = True
                if in_flight:
                    done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        target, messages = in_flight.pop(future)
                        invocation = future.result()
                        self._settle(target, messages, invocation)
                        stats.invocations.append(invocation)
                        stats.records += len(invocation.message_ids)
                        stats.failed_records += len(invocation.failed_ids)
                        if self.on_invocation:
                            self.on_invocation(invocation)
                    if len(stats.invocations) > max_invocations:
                        raise CommandError(f"more than {max_invocations} invocations: giving up")
                    stalled_since = None
                    continue
                if started_any or self._release_parked():
                    stalled_since = None
                    continue
                if self._parked:
                    continue
                backlog = {url: n for url, n in self._backlog().items() if n}
                if not backlog:
                    break
                # Messages we do not hold: delayed ones, or ones another consumer (or the
                # handler itself) made invisible. Wait for them, for real, up to a limit.
                stalled_since = stalled_since if stalled_since is not None else time.monotonic()
                if time.monotonic() - stalled_since > self.stall_timeout_seconds:
                    raise CommandError(
                        "queues not quiet after "
                        f"{self.stall_timeout_seconds:.0f} s: {json.dumps(backlog)}"
                    )
                self.sleep(self.idle_poll_seconds)
        finally:
            for executor in executors.values():
                executor.shutdown(wait=True, cancel_futures=True)
        stats.clock_skipped_seconds = self.clock.skipped
        return stats
