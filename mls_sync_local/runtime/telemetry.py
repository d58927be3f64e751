"""What CloudWatch does with a Lambda's output, done locally: the handlers' EMF metrics and
structured logs are captured and put into the moto server's CloudWatch and CloudWatch Logs,
with the metrics the Lambda and SQS services would publish beside them.

How it is captured: while handlers run, stdout goes to one process-wide ``TAP`` (Powertools
prints EMF with ``print``, and its loggers' stream handlers are pointed at the tap too, since
Powertools binds a logger's stream when the logger is created). The tap forwards everything
to the command's handler output (stderr, or the demo's log file) and hands each complete line
to the active captures. A JSON line with ``_aws.CloudWatchMetrics`` is a metric record (each
value a datapoint, dimensions as declared); any other JSON line is a log event.

Time: a tick stands for one schedule firing, which may be a slot other than now (``tick
--time``, the demo's successive periods). Captured datapoints and log events are restamped to
the firing's time plus their offset into the tick, so what a tick emitted charts at the slot
it ran, as the dashboard's 5-minute periods would show it.

Lambda metrics are derived from the invocations the pollers made (``Invocations``,
``Errors`` for a crash, a timeout or an invalid answer, not for records reported in
``batchItemFailures``; ``Duration``); SQS metrics are sampled after the dispatch (the
queues' peak) and after quiescence (``ApproximateNumberOfMessagesVisible``, and
``ApproximateAgeOfOldestMessage`` as 0 for an empty queue; a queue still holding messages
has no age here, since reading it would change its messages' receive counts).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from mls_sync_local.runtime.pollers import PollStats
    from mls_sync_local.runtime.stack import DeployedStack, TemplateFacts

MAX_DATUMS_PER_CALL = 500
MAX_EVENTS_PER_CALL = 2_000


@dataclass(frozen=True)
class Datum:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    values: tuple[float, ...]
    unit: str
    at_ms: int


@dataclass(frozen=True)
class LogEvent:
    function: str | None
    """The logical id of the function that wrote it, when known."""
    at_ms: int
    message: str


def emf_datums(record: dict[str, Any], *, at_ms: int | None = None) -> list[Datum]:
    """The datapoints of one EMF record (CloudWatch's embedded metric format)."""
    meta = record.get("_aws")
    if not isinstance(meta, dict):
        return []
    stamp = int(meta.get("Timestamp") or at_ms or time.time() * 1000)
    datums = []
    for directive in meta.get("CloudWatchMetrics") or []:
        namespace = str(directive.get("Namespace", ""))
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics") or []:
            name = str(metric.get("Name", ""))
            raw = record.get(name)
            values = raw if isinstance(raw, list) else [raw]
            numbers = tuple(float(v) for v in values if isinstance(v, int | float))
            if not name or not numbers:
                continue
            for dimension_set in dimension_sets:
                dims = tuple((str(d), str(record.get(d, ""))) for d in dimension_set)
                datums.append(
                    Datum(namespace, name, dims, numbers, str(metric.get("Unit", "None")), stamp)
                )
    return datums


class Capture:
    """What the handlers wrote while it was active: metric datapoints and log events."""

    def __init__(self, thread_functions: dict[str, str] | None = None) -> None:
        self.datums: list[Datum] = []
        self.logs: list[LogEvent] = []
        self.started_ms = int(time.time() * 1000)
        self._threads = dict(thread_functions or {})  # thread-name prefix -> logical id
        self._lock = threading.Lock()

    def function_of(self, thread_name: str) -> str | None:
        prefix = thread_name.rsplit("_", 1)[0]
        return self._threads.get(prefix)

    def take(self, line: str, thread_name: str) -> None:
        text = line.strip()
        if not text.startswith("{"):
            return
        try:
            record = json.loads(text)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        now_ms = int(time.time() * 1000)
        with self._lock:
            if "_aws" in record:
                self.datums.extend(emf_datums(record, at_ms=now_ms))
            else:
                self.logs.append(LogEvent(self.function_of(thread_name), now_ms, text))

    def add(self, datum: Datum) -> None:
        with self._lock:
            self.datums.append(datum)


class _Tap(io.TextIOBase):
    """stdout while handlers run: forwards to the current sink, feeds complete lines to the
    active captures. Lines are assembled per thread (``print`` writes text and newline in
    two calls, and handlers run in several threads)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._sinks: list[TextIO] = []
        self._captures: list[Capture] = []
        self._partial: dict[int, str] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            if self._sinks:
                self._sinks[-1].write(text)
            if self._captures:
                ident = threading.get_ident()
                buffered = self._partial.pop(ident, "") + text
                *lines, rest = buffered.split("\n")
                if rest:
                    self._partial[ident] = rest
                name = threading.current_thread().name
                for line in lines:
                    for capture in self._captures:
                        capture.take(line, name)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._sinks:
                self._sinks[-1].flush()

    @contextlib.contextmanager
    def sink(self, stream: TextIO) -> Iterator[None]:
        with self._lock:
            self._sinks.append(stream)
        try:
            yield
        finally:
            with self._lock:
                self._sinks.remove(stream)

    @contextlib.contextmanager
    def capture(self, capture: Capture) -> Iterator[Capture]:
        with self._lock:
            self._captures.append(capture)
        try:
            yield capture
        finally:
            with self._lock:
                self._captures.remove(capture)
                if not self._captures:
                    self._partial.clear()


TAP = _Tap()


def _powertools_handlers() -> list[logging.StreamHandler[Any]]:
    """The stream handlers of Powertools' loggers (bound to whatever stdout was when the
    logger was created)."""
    found = []
    loggers = [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]
    for logger in loggers:
        for handler in logger.handlers:
            formatter = type(handler.formatter).__name__ if handler.formatter else ""
            if isinstance(handler, logging.StreamHandler) and "Powertools" in formatter:
                found.append(handler)
    return found


@contextlib.contextmanager
def routed_to(stream: TextIO) -> Iterator[None]:
    """Handler output (prints, EMF, Powertools logs) goes to ``stream`` through the tap."""
    handlers = _powertools_handlers()
    saved = [(h, h.stream) for h in handlers if h.stream is not TAP]
    with TAP.sink(stream), contextlib.redirect_stdout(TAP):
        for handler, _ in saved:
            handler.setStream(TAP)
        try:
            yield
        finally:
            for handler, previous in saved:
                handler.setStream(previous)


def thread_functions(facts: TemplateFacts) -> dict[str, str]:
    """Poller thread-name prefix (the function's short name) -> logical id."""
    return {spec.short_name: spec.logical_id for spec in facts.functions.values()}


# ----------------------------------------------------------------- service metrics


def lambda_datums(stats: PollStats, deployed: DeployedStack, *, at_ms: int) -> list[Datum]:
    """What the Lambda service publishes for the invocations the pollers made."""
    datums = []
    for invocation in stats.invocations:
        name = deployed.physical_ids.get(invocation.function, invocation.function)
        dims = (("FunctionName", name),)
        crashed = bool(invocation.failed_ids) and not str(invocation.problem or "").endswith(
            "in batchItemFailures"
        )
        datums += [
            Datum("AWS/Lambda", "Invocations", dims, (1.0,), "Count", at_ms),
            Datum("AWS/Lambda", "Errors", dims, (1.0 if crashed else 0.0,), "Count", at_ms),
            Datum(
                "AWS/Lambda",
                "Duration",
                dims,
                (float(invocation.duration_ms),),
                "Milliseconds",
                at_ms,
            ),
        ]
    return datums


def invocation_datums(function_name: str, *, ok: bool, duration_ms: int, at_ms: int) -> list[Datum]:
    """One direct invocation (the schedule's dispatcher, an admin invoke)."""
    dims = (("FunctionName", function_name),)
    return [
        Datum("AWS/Lambda", "Invocations", dims, (1.0,), "Count", at_ms),
        Datum("AWS/Lambda", "Errors", dims, (0.0 if ok else 1.0,), "Count", at_ms),
        Datum("AWS/Lambda", "Duration", dims, (float(duration_ms),), "Milliseconds", at_ms),
    ]


def queue_datums(deployed: DeployedStack, facts: TemplateFacts) -> list[Datum]:
    """SQS's queue metrics now: visible messages of every queue; the oldest message's age
    as 0 where the queue is empty."""
    from mls_sync_local.template import resources_of_type  # noqa: PLC0415

    sqs = deployed.client("sqs")
    now_ms = int(time.time() * 1000)
    datums = []
    for logical_id in sorted(resources_of_type(facts.translated, "AWS::SQS::Queue")):
        url = deployed.physical_ids.get(logical_id)
        if not url:
            continue
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        visible = float(attrs.get("ApproximateNumberOfMessages", 0))
        dims = (("QueueName", url.rstrip("/").rsplit("/", 1)[-1]),)
        datums.append(
            Datum(
                "AWS/SQS", "ApproximateNumberOfMessagesVisible", dims, (visible,), "Count", now_ms
            )
        )
        if visible == 0 and float(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)) == 0:
            datums.append(
                Datum("AWS/SQS", "ApproximateAgeOfOldestMessage", dims, (0.0,), "Seconds", now_ms)
            )
    return datums


# ------------------------------------------------------------------------ publishing


@dataclass
class Published:
    datums: int = 0
    log_events: int = 0
    groups: set[str] = field(default_factory=set)


def publish(capture: Capture, deployed: DeployedStack, *, fired_at: datetime) -> Published:
    """Puts what ``capture`` holds into the local CloudWatch (metrics) and CloudWatch Logs
    (each function's log group), restamped to the firing's time (see the module's doc)."""
    base_ms = int(fired_at.astimezone(UTC).timestamp() * 1000)

    def restamp(at_ms: int) -> int:
        return base_ms + max(0, at_ms - capture.started_ms)

    done = Published()
    cloudwatch = deployed.client("cloudwatch")
    data = [
        {
            "MetricName": d.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in d.dimensions],
            "Values": list(d.values),
            "Counts": [1.0] * len(d.values),
            "Unit": d.unit if d.unit in _UNITS else "None",
            "Timestamp": datetime.fromtimestamp(restamp(d.at_ms) / 1000, UTC),
        }
        for d in capture.datums
    ]
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for datum, entry in zip(capture.datums, data, strict=True):
        by_namespace.setdefault(datum.namespace, []).append(entry)
    for namespace, metric_data in by_namespace.items():
        for start in range(0, len(metric_data), MAX_DATUMS_PER_CALL):
            batch = metric_data[start : start + MAX_DATUMS_PER_CALL]
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=batch)
            done.datums += len(batch)
    logs = deployed.client("logs")
    stream = f"{fired_at.astimezone(UTC):%Y/%m/%d}/[local]{uuid.uuid4().hex}"
    by_group: dict[str, list[LogEvent]] = {}
    for event in capture.logs:
        group = _group_of(event, deployed)
        by_group.setdefault(group, []).append(event)
    for group, events in by_group.items():
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        ordered = sorted(events, key=lambda e: e.at_ms)
        for start in range(0, len(ordered), MAX_EVENTS_PER_CALL):
            chunk = ordered[start : start + MAX_EVENTS_PER_CALL]
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": restamp(e.at_ms), "message": e.message} for e in chunk],
            )
            done.log_events += len(chunk)
        done.groups.add(group)
    return done


_UNITS = {"Count", "Seconds", "Milliseconds", "Percent", "Bytes", "None"}


def _group_of(event: LogEvent, deployed: DeployedStack) -> str:
    function = event.function
    if function is None:
        # The main thread (a direct invoke): the record's own function_name, when it has one.
        try:
            name = json.loads(event.message).get("function_name")
        except ValueError:
            name = None
        if isinstance(name, str) and name:
            return f"/aws/lambda/{name}"
        return f"/aws/lambda/{deployed.name}-local"
    return f"/aws/lambda/{deployed.physical_ids.get(function, function)}"


__all__ = [
    "TAP",
    "Capture",
    "Datum",
    "LogEvent",
    "Published",
    "emf_datums",
    "invocation_datums",
    "lambda_datums",
    "publish",
    "queue_datums",
    "routed_to",
    "thread_functions",
]
