"""`mls-sync tick [--json]`: one schedule firing, run to quiescence through the handlers.

The dispatcher gets a real scheduled event; then the pollers run every SQS-triggered
function until all queues are empty and nothing is in flight. The summary comes from what
the handlers wrote: SyncRuns items written or changed during the tick, Posts whose status
changed during the tick (both found by comparing before and after, so no clock needs to
agree), and the dead-letter queues' growth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from mls_sync.run_counts import RunCounts

from mls_sync_local.errors import EXIT_FAILED, UsageError
from mls_sync_local.runtime.context import make_context
from mls_sync_local.runtime.dlq import dead_letter_counts
from mls_sync_local.runtime.handlers import handler_output_to, process_environment
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.pollers import AcceleratedClock, Invocation, PollStats
from mls_sync_local.runtime.telemetry import (
    TAP,
    Capture,
    invocation_datums,
    lambda_datums,
    publish,
    queue_datums,
    thread_functions,
)
from mls_sync_local.template import resources_of_type

DISPATCHER = "DispatcherFunction"


@dataclass
class TickSummary:
    connections: int = 0
    records_read: int = 0
    mls_requests: int = 0
    status_changes: dict[str, int] = field(default_factory=dict)
    posts_unpublished: dict[str, int] = field(default_factory=dict)
    post_outcomes: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    dead_letters: int = 0
    duration_ms: int = 0
    # Beside the contract's figures, for people and for `demo`:
    fired_at: str = ""
    failure_notes: list[str] = field(default_factory=list)
    sync_runs: list[dict[str, Any]] = field(default_factory=list)
    changed_posts: list[dict[str, Any]] = field(default_factory=list)
    clock_skipped_seconds: float = 0.0
    capture: Capture | None = field(default=None, repr=False)
    """The handlers' metrics and logs while the tick ran (published to the local
    CloudWatch when it ends)."""

    @property
    def failed(self) -> bool:
        return self.failures > 0 or self.dead_letters > 0

    def to_json(self) -> dict[str, Any]:
        """Exactly the object of CONTRACT section 2."""
        return {
            "connections": self.connections,
            "recordsRead": self.records_read,
            "mlsRequests": self.mls_requests,
            "statusChanges": dict(sorted(self.status_changes.items())),
            "postsUnpublished": dict(sorted(self.posts_unpublished.items())),
            "postOutcomes": dict(sorted(self.post_outcomes.items())),
            "failures": self.failures,
            "deadLetters": self.dead_letters,
            "durationMs": self.duration_ms,
        }

    def render(self) -> str:
        def pairs(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

        lines = [
            f"tick {self.fired_at}: {self.connections} connection(s), "
            f"{self.records_read} record(s) read, {self.mls_requests} MLS request(s), "
            f"{self.duration_ms} ms",
            f"  status changes:   {pairs(self.status_changes)}",
            f"  posts unpublished: {pairs(self.posts_unpublished)}",
            f"  post outcomes:    {pairs(self.post_outcomes)}",
            f"  failures: {self.failures}, dead letters: {self.dead_letters}",
        ]
        lines.extend(f"  ! {note}" for note in self.failure_notes[:10])
        return "\n".join(lines)


def scheduled_event(runtime: LocalRuntime, fired_at: datetime) -> dict[str, Any]:
    """The event EventBridge sends the dispatcher for one firing of its schedule rule."""
    deployed = runtime.deployed
    rules = [
        name
        for name, res in resources_of_type(runtime.facts.translated, "AWS::Events::Rule").items()
        if any(
            t.get("Arn", {}).get("Fn::GetAtt", [None])[0] == DISPATCHER
            for t in res["Properties"].get("Targets", [])
        )
    ]
    account = str(deployed.client("sts").get_caller_identity()["Account"])
    resources = [
        f"arn:aws:events:{deployed.region}:{account}:rule/{deployed.physical(rule)}"
        for rule in rules
    ]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": fired_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": deployed.region,
        "resources": resources,
        "detail": {},
    }


def _scan(runtime: LocalRuntime, logical_id: str) -> list[dict[str, Any]]:
    table = runtime.deployed.physical(logical_id)
    dynamodb = runtime.deployed.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        items.extend(_plain(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415 - boto3 is loaded already

    deserializer = TypeDeserializer()
    return {k: _numbers(deserializer.deserialize(v)) for k, v in item.items()}


def _numbers(value: Any) -> Any:
    from decimal import Decimal  # noqa: PLC0415

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def _snapshot(runtime: LocalRuntime) -> tuple[dict[tuple[str, str], Any], dict[str, Any]]:
    runs = {(i["connectionId"], i["runKey"]): i for i in _scan(runtime, "SyncRunsTable")}
    posts = {i["postId"]: i for i in _scan(runtime, "PostsTable")}
    return runs, posts


def summarise(
    before: tuple[dict[tuple[str, str], Any], dict[str, Any]],
    after: tuple[dict[tuple[str, str], Any], dict[str, Any]],
    stats: PollStats,
    summary: TickSummary,
    read_connections: Callable[[set[str]], dict[str, dict[str, Any]]] = lambda _ids: {},
) -> TickSummary:
    runs_before, posts_before = before
    runs_after, posts_after = after
    runs = [item for key, item in runs_after.items() if runs_before.get(key) != item]
    connections = {item["connectionId"] for item in runs}
    transitions: Counter[str] = Counter()
    records = requests = 0
    for item in runs:
        counts = RunCounts.from_stored(item.get("counts") or {})
        records += counts.records_read
        requests += int(item.get("mlsRequests", 0))
        transitions.update(counts.named_transitions())
    changed = [
        post
        for post_id, post in posts_after.items()
        if posts_before.get(post_id, {}).get("status") != post.get("status")
    ]
    unpublished = Counter(p["platform"] for p in changed if p.get("status") == "unpublished")
    outcomes = Counter(str(p.get("status")) for p in changed)
    summary.connections = len(connections)
    summary.records_read = records
    summary.mls_requests = requests
    summary.status_changes = dict(transitions)
    summary.posts_unpublished = dict(unpublished)
    summary.post_outcomes = dict(outcomes)
    summary.failures += stats.failed_records
    failing = {
        str(r.get("connectionId")) for r in runs if r.get("outcome") in ("failed", "partial")
    }
    summary.failure_notes.extend(
        failure_lines(runs, changed, stats.failures(), read_connections(failing) if failing else {})
    )
    summary.sync_runs = runs
    summary.changed_posts = changed
    summary.clock_skipped_seconds = stats.clock_skipped_seconds
    return summary


def failure_lines(
    runs: list[dict[str, Any]],
    posts: list[dict[str, Any]],
    failed: list[Invocation],
    connections: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """One line per thing that failed, naming it and the cause: each connection whose run
    ended failed or partial (``c-zoe: MLS unreachable: connection refused (5 attempts)``, the
    cause the worker recorded on the connection for that run, else read from the run's
    errors), each post recorded ``failed``, then the invocations no such line explains."""
    from mls_sync.health import FAILURE_OUTCOMES, describe_failure  # noqa: PLC0415

    lines = []
    for run in sorted(runs, key=lambda r: (str(r.get("connectionId")), str(r.get("runKey")))):
        if run.get("outcome") not in FAILURE_OUTCOMES:
            continue
        recorded = ((connections or {}).get(str(run.get("connectionId"))) or {}).get("lastError")
        if isinstance(recorded, dict) and recorded.get("runKey") == run.get("runKey"):
            cause = str(recorded.get("message"))
        else:
            cause = describe_failure(
                [str(e) for e in run.get("errors") or []],
                failed_listings=RunCounts.from_stored(run.get("counts") or {}).failed,
            ).cause
        lines.append(f"{run.get('connectionId')}: {cause}")
    for post in sorted(posts, key=lambda p: str(p.get("postId"))):
        if post.get("status") == "failed":
            reason = " ".join(str(post.get("outcomeReason") or "no reason recorded").split())
            lines.append(
                f"{post.get('postId')} ({post.get('platform')}): unpublish failed: {reason}"
            )
    explained = {"WorkerFunction"} if lines else set()
    lines.extend(
        f"{i.function}: {len(i.failed_ids)} of {len(i.message_ids)} failed: {i.problem}"
        for i in failed
        if not (i.function in explained and str(i.problem).endswith("in batchItemFailures"))
    )
    return lines


def drain(
    runtime: LocalRuntime,
    when: datetime,
    start: Callable[[AcceleratedClock, TickSummary], None],
    *,
    handler_output: TextIO | None = None,
    clock: AcceleratedClock | None = None,
    accelerate: bool = True,
    on_invocation: Callable[[Invocation], None] | None = None,
) -> TickSummary:
    """Calls ``start`` (which puts work on the queues) in the functions' environment, runs
    the pollers until every queue is empty, and summarises what the handlers wrote: the one
    loop behind `tick`, `reconcile` and `demo`."""
    started = time.monotonic()
    summary = TickSummary(fired_at=when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    dlq_before = dead_letter_counts(runtime.deployed)
    before = _snapshot(runtime)
    clock = clock or AcceleratedClock()
    capture = summary.capture = Capture(thread_functions(runtime.facts))
    with (
        handler_output_to(handler_output or sys.stderr),
        TAP.capture(capture),
        process_environment(runtime.shared_environment()),
    ):
        start(clock, summary)
        for datum in queue_datums(runtime.deployed, runtime.facts):  # the dispatch's peak
            capture.add(datum)
        stats = runtime.pollers(
            clock=clock, accelerate=accelerate, on_invocation=on_invocation
        ).run_until_quiet()
    for datum in [
        *lambda_datums(stats, runtime.deployed, at_ms=int(time.time() * 1000)),
        *queue_datums(runtime.deployed, runtime.facts),
    ]:
        capture.add(datum)
    publish(capture, runtime.deployed, fired_at=when)

    def connections(ids: set[str]) -> dict[str, dict[str, Any]]:
        return {
            str(i["connectionId"]): i
            for i in _scan(runtime, "ConnectionsTable")
            if i.get("connectionId") in ids
        }

    summarise(before, _snapshot(runtime), stats, summary, connections)
    dlq_after = dead_letter_counts(runtime.deployed)
    summary.dead_letters = sum(max(0, n - dlq_before.get(q, 0)) for q, n in dlq_after.items())
    summary.duration_ms = int((time.monotonic() - started) * 1000)
    return summary


def run_tick(
    runtime: LocalRuntime,
    *,
    fired_at: datetime | None = None,
    handler_output: TextIO | None = None,
    clock: AcceleratedClock | None = None,
    accelerate: bool = True,
    on_invocation: Callable[[Invocation], None] | None = None,
) -> TickSummary:
    """One schedule firing at ``fired_at`` (default now), to quiescence. ``demo`` calls this
    with successive firing times, so each tick falls in its own schedule slot."""
    when = fired_at or datetime.now(UTC)

    def fire(clock: AcceleratedClock, summary: TickSummary) -> None:
        if not runtime.registry.has(DISPATCHER):
            return
        spec = runtime.facts.functions[DISPATCHER]
        context = make_context(
            runtime.deployed.physical(DISPATCHER),
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
            region=runtime.deployed.region,
            clock=clock,
        )
        invoked = time.monotonic()
        ok = True
        try:
            runtime.registry.get(DISPATCHER)(scheduled_event(runtime, when), context)
        except Exception as exc:  # noqa: BLE001 - reported as the tick's failure
            ok = False
            summary.failures += 1
            summary.failure_notes.append(f"{DISPATCHER}: {type(exc).__name__}: {exc}")
        if summary.capture is not None:
            for datum in invocation_datums(
                runtime.deployed.physical(DISPATCHER),
                ok=ok,
                duration_ms=int((time.monotonic() - invoked) * 1000),
                at_ms=int(time.time() * 1000),
            ):
                summary.capture.add(datum)

    return drain(
        runtime,
        when,
        fire,
        handler_output=handler_output,
        clock=clock,
        accelerate=accelerate,
        on_invocation=on_invocation,
    )


# ------------------------------------------------------------------------------ CLI


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--time {text!r}: expected an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


MAX_SLOTS_AHEAD = 10_000


def fired_slots(runtime: LocalRuntime) -> set[str]:
    """The schedule slots that have fired: those some connection has a SyncRuns item for
    (a firing's jobs write ``{slot}#schedule`` runs; continuations ``{slot}#continuation…``)."""
    slots = set()
    for item in _scan(runtime, "SyncRunsTable"):
        slot, _, reason = str(item.get("runKey", "")).partition("#")
        if reason.startswith(("schedule", "continuation")):
            slots.add(slot)
    return slots


def next_unfired(runtime: LocalRuntime, now: datetime, err: TextIO | None = None) -> datetime:
    """``now`` when its schedule slot has not fired yet; otherwise the start of the first
    later slot that has not, said on ``err`` (``slot 02:15 already fired; firing 02:30``)."""
    from mls_sync.config import schedule_period_seconds  # noqa: PLC0415
    from mls_sync.pipeline.keys import slot_of  # noqa: PLC0415
    from mls_sync.timeutil import parse_utc  # noqa: PLC0415

    expression = runtime.function_environment(DISPATCHER).get("SCHEDULE_EXPRESSION", "")
    period = schedule_period_seconds(expression or "rate(15 minutes)")
    fired = fired_slots(runtime)
    current = slot_of(now, period)
    if current not in fired:
        return now
    start = parse_utc(current)
    for n in range(1, MAX_SLOTS_AHEAD + 1):
        candidate = start + timedelta(seconds=n * period)
        if slot_of(candidate, period) not in fired:
            print(
                f"slot {_short(start, candidate)} already fired; firing {_short(candidate, start)}",
                file=err or sys.stderr,
            )
            return candidate
    raise UsageError(f"the next {MAX_SLOTS_AHEAD} schedule slots have fired: pass --time")


def _short(when: datetime, other: datetime) -> str:
    """HH:MM, with the date when the two instants fall on different days."""
    when, other = when.astimezone(UTC), other.astimezone(UTC)
    if when.date() == other.date():
        return when.strftime("%H:%M")
    return when.strftime("%H:%M") + f" on {when.date().isoformat()}"


def _run(args: argparse.Namespace) -> int:
    fired_at = _parse_time(args.time)
    runtime = LocalRuntime.connect()
    if fired_at is None:
        # Without --time: the current slot, or the next one that has not fired yet (a second
        # tick in the same slot would dispatch nothing new: the jobs are deduplicated).
        fired_at = next_unfired(runtime, datetime.now(UTC))
    summary = run_tick(runtime, fired_at=fired_at, accelerate=not args.real_time)
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        print(summary.render())
    return EXIT_FAILED if summary.failed else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tick", help="one schedule firing, run to quiescence through the real handlers"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--time",
        help="the firing's time (ISO 8601); default now, or the next slot that has not fired",
    )
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="wait out visibility timeouts for real instead of skipping ahead",
    )
    parser.set_defaults(run=_run)
