"""The dispatcher's domain: one sync job per enabled connection for one schedule firing.

Arithmetic for 100,000 connections (see docs/pipeline.md): the sparse ``byEnabled`` index
is read keys-only, 1,000 ids per query page (~100 pages, ~10 ms each: ~1 s); the jobs go out
in SendMessageBatch calls of ten (10,000 calls). One call takes ~15-30 ms, so sequentially
that is 150-300 s, too close to the 300 s timeout; ``SEND_THREADS`` (8) calls in flight bring
it to ~20-40 s. The loop also watches the invocation's remaining time and, when it runs
short, stops with ``complete=False`` (the handler then fails the invocation so EventBridge's
retry re-runs it; every job already sent is deduplicated by its id and by SyncRuns).
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime

from aws_lambda_powertools import Logger

from mls_sync.dal.connection_health import ConnectionHealthFields
from mls_sync.health import FLAGS, Flag, Health
from mls_sync.models import SyncJob
from mls_sync.pipeline.keys import dedup_id, group_id, slot_of
from mls_sync.queues import OutgoingMessage, QueueSender

logger = Logger(child=True)

SEND_THREADS = 8
"""SendMessageBatch calls in flight at once (boto3 clients are thread-safe)."""

RESERVE_MS = 30_000
"""Stop taking new batches when less than this remains: time for the in-flight batches
(each may retry with backoff) to finish and for the result to be logged."""


@dataclass(frozen=True, slots=True)
class TimeLeft:
    """The invocation's remaining time (Lambda's ``get_remaining_time_in_millis``) and the
    part of it kept in reserve: a loop stops taking more work once it runs short."""

    remaining_ms: Callable[[], int]
    reserve_ms: int = RESERVE_MS

    def short(self) -> bool:
        return self.remaining_ms() < self.reserve_ms


@dataclass(frozen=True, slots=True)
class DispatchResult:
    slot: str
    connections: int
    messages: int
    batches: int
    complete: bool


def _chunks(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(ids)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def jobs_for(connection_ids: list[str], slot: str, correlation_id: str) -> list[OutgoingMessage]:
    messages: list[OutgoingMessage] = []
    for cid in connection_ids:
        job = SyncJob(
            connection_id=cid, reason="schedule", slot=slot, correlation_id=correlation_id
        )
        messages.append(OutgoingMessage(job, group_id=group_id(cid), dedup_id=dedup_id(job)))
    return messages


def dispatch(
    connection_ids: Iterable[str],
    sender: QueueSender,
    *,
    fired_at: datetime,
    period_seconds: int,
    correlation_id: str,
    time_left: TimeLeft | None = None,
    threads: int = SEND_THREADS,
) -> DispatchResult:
    """Enqueues one ``schedule`` job per connection id for the slot of ``fired_at``.

    A firing delivered twice computes the same slot and so the same deduplication ids: SQS
    drops the repeats within five minutes, and the worker's conditional SyncRuns create
    makes any later repeat a no-op."""
    slot = slot_of(fired_at, period_seconds)
    sent = 0
    batches = 0
    complete = True
    in_flight: set[Future[int]] = set()
    sizes: dict[Future[int], int] = {}

    def collect(done: Iterable[Future[int]]) -> None:
        nonlocal sent, batches
        for future in done:
            batches += future.result()  # a batch that finally failed raises here
            sent += sizes.pop(future)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for chunk in _chunks(connection_ids, 10):
            if time_left is not None and time_left.short():
                complete = False
                logger.warning("dispatch stopped before the deadline", extra={"slot": slot})
                break
            if len(in_flight) >= threads * 2:
                done, in_flight = _wait_some(in_flight)
                collect(done)
            future = pool.submit(sender.send, jobs_for(chunk, slot, correlation_id))
            sizes[future] = len(chunk)
            in_flight.add(future)
        done, _ = wait(in_flight)
        collect(done)
    return DispatchResult(
        slot=slot, connections=sent, messages=sent, batches=batches, complete=complete
    )


def _wait_some(futures: set[Future[int]]) -> tuple[set[Future[int]], set[Future[int]]]:
    done, pending = wait(futures, return_when=FIRST_COMPLETED)
    return set(done), set(pending)


# ------------------------------------------------------------------------ health census

DETAIL_LIMIT = 200
"""Unhealthy connections logged one line each per firing (the worst by lag first): enough
for the dashboard's "top stale connections", bounded when a whole vendor is down."""


@dataclass(frozen=True, slots=True)
class Unhealthy:
    connection_id: str
    health: Health
    consecutive_failures: int
    error_class: str | None
    cause: str | None


@dataclass(frozen=True, slots=True)
class HealthCensus:
    """Every connection's health at one firing, counted: the dispatcher's metrics."""

    connections: int = 0
    flagged: Counter[Flag] = field(default_factory=Counter)
    """Connections by health flag (a connection counts once under each of its flags)."""
    worst: tuple[Unhealthy, ...] = ()
    """Up to ``DETAIL_LIMIT`` stale, failing or braked connections, the longest lag first."""
    complete: bool = True

    def by_flag(self) -> dict[str, int]:
        """Every flag's count, zeros included, in the order of ``FLAGS``."""
        return {flag: self.flagged[flag] for flag in FLAGS}


def health_census(
    connections: Iterable[ConnectionHealthFields],
    *,
    now: datetime,
    period_seconds: int,
    time_left: TimeLeft | None = None,
    detail_limit: int = DETAIL_LIMIT,
) -> HealthCensus:
    """Counts stale, failing, braked and disabled connections (low-cardinality figures for
    metrics) and keeps the worst few for the log (high-cardinality detail). Stops with
    ``complete=False`` when the invocation runs short of time: partial counts are not
    published (a metric that undercounts reads as a recovery)."""
    counted = 0
    flagged: Counter[Flag] = Counter()
    worst: list[tuple[int, str, Unhealthy]] = []  # a min-heap on lag: the top N survive
    for index, fields in enumerate(connections):
        if time_left is not None and index % 1000 == 0 and time_left.short():
            return HealthCensus(complete=False)
        health = fields.health(now, period_seconds)
        counted += 1
        flagged.update(health.flags)
        if not health.flags or health.flags == ("disabled",):
            continue
        entry = Unhealthy(
            fields.connection_id,
            health,
            fields.consecutive_failures,
            fields.error_class if fields.consecutive_failures else None,
            fields.cause if fields.consecutive_failures else None,
        )
        key = (health.lag_seconds or 0, fields.connection_id, entry)
        if len(worst) < detail_limit:
            heapq.heappush(worst, key)
        elif key[:2] > worst[0][:2]:
            heapq.heapreplace(worst, key)
    ordered = sorted(worst, key=lambda k: (-k[0], k[1]))
    return HealthCensus(counted, flagged, tuple(k[2] for k in ordered))
