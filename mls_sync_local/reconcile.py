"""`mls-sync reconcile CONNECTION_ID [--json]`: a reconciliation by key, now.

A ``reconcile`` SyncJob is enqueued through the same domain code as the manual syncs
(``mls_sync.pipeline.manual.request_reconcile``), on the connection's message group, and
the pollers run the queues to quiescence through the real handlers, as `tick` does. The
summary comes from what the handlers wrote (tick's figures), plus the reconcile run's own
outcome and counts (how many listings were checked, how many could not be asked about).
"""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from mls_sync.run_counts import RunCounts

from mls_sync_local.errors import EXIT_FAILED, UsageError
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.pollers import AcceleratedClock
from mls_sync_local.runtime.tick import TickSummary, drain

_BAD_OUTCOMES = frozenset({"failed", "partial", "running"})


@dataclass
class ReconcileSummary:
    connection_id: str
    slot: str
    tick: TickSummary
    outcomes: list[str] = field(default_factory=list)
    """Outcome of each run the reconciliation made (a long one hands over to continuations)."""
    counts: RunCounts = field(default_factory=RunCounts)
    """The runs' counts, added up."""

    @property
    def outcome(self) -> str:
        if not self.outcomes:
            return "not run"
        bad = [o for o in self.outcomes if o in _BAD_OUTCOMES]
        return bad[-1] if bad else self.outcomes[-1]

    @property
    def failed(self) -> bool:
        return self.tick.failed or self.outcome != "succeeded"

    def to_json(self) -> dict[str, Any]:
        return {
            "connectionId": self.connection_id,
            "outcome": self.outcome,
            "counts": dict(sorted(self.counts.to_stored().items())),
            **self.tick.to_json(),
        }

    def render(self) -> str:
        tick = self.tick
        changes = ", ".join(f"{k} {v}" for k, v in sorted(tick.status_changes.items())) or "none"
        lines = [
            f"reconcile {self.connection_id}: {self.outcome}, "
            f"{self.counts.tracked} tracked listing(s), "
            f"{self.counts.not_reconcilable} not reconcilable, "
            f"{tick.records_read} record(s) read, {tick.mls_requests} MLS request(s), "
            f"{tick.duration_ms} ms",
            f"  status changes: {changes}",
            f"  failures: {tick.failures}, dead letters: {tick.dead_letters}",
        ]
        lines.extend(f"  ! {note}" for note in tick.failure_notes[:10])
        lines.extend(
            f"  ! {error}" for run in self.runs() for error in (run.get("errors") or [])[:5]
        )
        return "\n".join(lines)

    def runs(self) -> list[dict[str, Any]]:
        return [
            run
            for run in self.tick.sync_runs
            if run.get("connectionId") == self.connection_id
            and str(run.get("runKey", "")).startswith(f"{self.slot}#")
        ]


def run_reconcile(
    runtime: LocalRuntime,
    connection_id: str,
    *,
    now: datetime | None = None,
    handler_output: TextIO | None = None,
    clock: AcceleratedClock | None = None,
    accelerate: bool = True,
) -> ReconcileSummary:
    """Enqueues a reconcile job for ``connection_id`` and runs it to quiescence. An unknown
    or disabled connection is a UsageError (exit 2), and nothing is enqueued."""
    from mls_sync.pipeline.deps import build_manual_deps  # noqa: PLC0415 - needs the environment
    from mls_sync.pipeline.manual import ManualSyncError, request_reconcile  # noqa: PLC0415

    when = now or datetime.now(UTC)
    requested: list[Any] = []

    def enqueue(_clock: AcceleratedClock, _summary: TickSummary) -> None:
        try:
            requested.append(
                request_reconcile(
                    connection_id,
                    build_manual_deps(),
                    now=when,
                    correlation_id=f"reconcile-{uuid.uuid4()}",
                )
            )
        except ManualSyncError as exc:
            raise UsageError(exc.message) from None

    tick = drain(
        runtime,
        when,
        enqueue,
        handler_output=handler_output,
        clock=clock,
        accelerate=accelerate,
    )
    request = requested[0]
    summary = ReconcileSummary(connection_id=connection_id, slot=request.slot, tick=tick)
    runs = sorted(summary.runs(), key=lambda r: str(r.get("startedAt", "")))
    for run in runs:
        summary.outcomes.append(str(run.get("outcome")))
        summary.counts += RunCounts.from_stored(run.get("counts") or {})
    return summary


# ------------------------------------------------------------------------------ CLI


def _run(args: argparse.Namespace) -> int:
    runtime = LocalRuntime.connect()
    summary = run_reconcile(runtime, args.connection_id, accelerate=not args.real_time)
    print(json.dumps(summary.to_json()) if args.json else summary.render())
    return EXIT_FAILED if summary.failed else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="a reconciliation by key of one connection now, run through the real handlers",
    )
    parser.add_argument("connection_id", metavar="CONNECTION_ID")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="wait out visibility timeouts for real instead of skipping ahead",
    )
    parser.set_defaults(run=_run)
