"""`mls-sync brake release|discard CONNECTION_ID [--json]`: the operator's decision on the
takedowns a braked connection holds (the mass-change brake, docs/pipeline.md).

The decision is the ManualSyncFunction admin action, invoked in this process with the
function's own template environment (the same handler and path as a direct invocation in
AWS: ``{"action": "brake_release"|"brake_discard", "connectionId"}``). Then the pollers run
the queues to quiescence through the real handlers, as `tick` and `reconcile` do: released
takedowns are unpublished by the PublisherFunction, a discard's by-key re-read is run by the
WorkerFunction. Local runtime only (loopback endpoints).

Exit 0 when decided and done, 1 when the work ran and something failed, 2 when nothing is
held (the connection is not braked) or the connection does not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from mls_sync.run_counts import RunCounts

from mls_sync_local.errors import EXIT_FAILED, CommandError, UsageError
from mls_sync_local.runtime.handlers import handler_output_to
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.pollers import AcceleratedClock
from mls_sync_local.runtime.tick import TickSummary, drain

MANUAL_SYNC = "ManualSyncFunction"
DECISIONS = ("release", "discard")
_BAD_OUTCOMES = frozenset({"failed", "partial", "running"})


@dataclass
class BrakeSummary:
    connection_id: str
    decision: str
    detail: dict[str, Any]
    """The MassChangeReleased detail the function answered with."""
    tick: TickSummary
    outcomes: list[str] = field(default_factory=list)
    """Outcome of each sync run of the connection after the decision (a discard's re-read)."""
    counts: RunCounts = field(default_factory=RunCounts)

    @property
    def posts_sent(self) -> int:
        return int(self.detail.get("postsSent", 0))

    @property
    def listings_reread(self) -> int:
        return self.counts.read_by_key

    @property
    def failed(self) -> bool:
        return self.tick.failed or any(o in _BAD_OUTCOMES for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "connectionId": self.connection_id,
            "decision": self.decision,
            "runKey": self.detail.get("runKey"),
            "postsSent": self.posts_sent,
            "listingsReread": self.listings_reread,
            **self.tick.to_json(),
        }

    def render(self) -> str:
        tick = self.tick

        def pairs(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

        if self.decision == "release":
            what = f"{self.posts_sent} held takedown(s) sent to the publisher"
        else:
            what = (
                "held takedowns dropped, nothing sent; "
                f"{self.listings_reread} listing(s) re-read by key"
            )
        lines = [
            f"brake {self.decision} {self.connection_id} "
            f"(held since run {self.detail.get('runKey')}): {what}",
            f"  {tick.records_read} record(s) read, {tick.mls_requests} MLS request(s), "
            f"{tick.duration_ms} ms",
            f"  status changes:    {pairs(tick.status_changes)}",
            f"  posts unpublished: {pairs(tick.posts_unpublished)}",
            f"  post outcomes:     {pairs(tick.post_outcomes)}",
            f"  failures: {tick.failures}, dead letters: {tick.dead_letters}",
        ]
        lines.extend(f"  ! {note}" for note in tick.failure_notes[:10])
        lines.extend(
            f"  ! {error}" for run in self.runs() for error in (run.get("errors") or [])[:5]
        )
        return "\n".join(lines)

    def runs(self) -> list[dict[str, Any]]:
        return [r for r in self.tick.sync_runs if r.get("connectionId") == self.connection_id]


def decide_locally(
    runtime: LocalRuntime,
    connection_id: str,
    decision: str,
    *,
    handler_output: TextIO | None = None,
) -> dict[str, Any]:
    """Invokes ManualSyncFunction with the admin action, in its own environment; returns the
    MassChangeReleased detail. Nothing held or an unknown connection: UsageError (exit 2)."""
    if decision not in DECISIONS:
        raise UsageError(f"decision: expected release or discard, got {decision!r}")
    event = {"action": f"brake_{decision}", "connectionId": connection_id}
    with handler_output_to(handler_output or sys.stderr):
        answer = runtime.invoke(MANUAL_SYNC, event)
    status = int(answer.get("statusCode", 0)) if isinstance(answer, dict) else 0
    body = answer.get("body") if isinstance(answer, dict) else None
    if status == 200 and isinstance(body, dict):
        return body
    error = body.get("error") if isinstance(body, dict) else None
    message = str(error or f"{MANUAL_SYNC} answered {answer!r}")
    if status in (400, 404, 409):
        raise UsageError(message)
    raise CommandError(f"{MANUAL_SYNC} answered {status}: {message}")


def run_brake(
    runtime: LocalRuntime,
    connection_id: str,
    decision: str,
    *,
    handler_output: TextIO | None = None,
    clock: AcceleratedClock | None = None,
    accelerate: bool = True,
) -> BrakeSummary:
    """Decides, then runs what the decision queued to quiescence (the publisher's takedowns,
    or the worker's re-read by key)."""
    detail = decide_locally(runtime, connection_id, decision, handler_output=handler_output)
    tick = drain(
        runtime,
        datetime.now(UTC),
        lambda _clock, _summary: None,  # the decision already queued the work
        handler_output=handler_output,
        clock=clock,
        accelerate=accelerate,
    )
    summary = BrakeSummary(connection_id=connection_id, decision=decision, detail=detail, tick=tick)
    for run in sorted(summary.runs(), key=lambda r: str(r.get("startedAt", ""))):
        summary.outcomes.append(str(run.get("outcome")))
        summary.counts += RunCounts.from_stored(run.get("counts") or {})
    return summary


# ------------------------------------------------------------------------------ CLI


def _run(args: argparse.Namespace) -> int:
    runtime = LocalRuntime.connect()
    summary = run_brake(runtime, args.connection_id, args.decision, accelerate=not args.real_time)
    print(json.dumps(summary.to_json()) if args.json else summary.render())
    return EXIT_FAILED if summary.failed else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "brake",
        help="release or discard the takedowns the mass-change brake holds for a connection",
        description="release: the held unpublish jobs are sent (exactly those) and run by the "
        "publisher; discard: none is sent, the listings are looked up by key again. Either way "
        "the brake is lifted. Exit 2 when nothing is held.",
    )
    parser.add_argument("decision", choices=DECISIONS, metavar="release|discard")
    parser.add_argument("connection_id", metavar="CONNECTION_ID")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="wait out visibility timeouts for real instead of skipping ahead",
    )
    parser.set_defaults(run=_run)
