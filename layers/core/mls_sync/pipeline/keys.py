"""Deterministic names: schedule slots, SQS group and deduplication ids, sync run keys.

Everything here is derived from the job itself, never from a clock reading at delivery time,
so a message delivered twice (EventBridge and SQS are at-least-once) maps to the same slot,
the same deduplication id and the same SyncRuns item, and the duplicate adds no work.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from mls_sync.models import Cursor, SyncJob
from mls_sync.timeutil import format_utc

_SQS_ID_MAX = 128
# What SQS accepts in MessageGroupId / MessageDeduplicationId: alphanumerics and punctuation.
_SQS_ID_OK = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]+")


def slot_of(fired_at: datetime, period_seconds: int) -> str:
    """The firing's time rounded down to the schedule period, in our timestamp form.

    EventBridge stamps a scheduled event with its nominal time (whole minutes), and a retry
    or a duplicate carries the same stamp; rounding down to the period also absorbs a firing
    that arrives a few seconds late."""
    if period_seconds <= 0:
        raise ValueError("period_seconds must be positive")
    if fired_at.tzinfo is None:
        raise ValueError("fired_at must be timezone-aware")
    epoch = int(fired_at.astimezone(UTC).timestamp())
    floored = epoch - epoch % period_seconds
    return format_utc(datetime.fromtimestamp(floored, tz=UTC))


def manual_slot(now: datetime) -> str:
    """Manual syncs are bucketed by the minute: a button pressed twice within a minute makes
    one job, a press a minute later makes a new one."""
    return slot_of(now, 60)


def digest(*parts: str, length: int = 16) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()[:length]


def sqs_id(text: str) -> str:
    """``text`` when SQS accepts it as a group/deduplication id, else a stable digest."""
    # fullmatch: with match and "$", "c-1\n" passed (a newline SQS refuses).
    if len(text) <= _SQS_ID_MAX and _SQS_ID_OK.fullmatch(text):
        return text
    return "h-" + digest(text, length=64)


def group_id(connection_id: str) -> str:
    """One FIFO message group per connection: SQS hands out a group's next message only once
    the previous one is deleted, so no two syncs of one connection ever run at once."""
    return sqs_id(connection_id)


def keys_digest(listing_keys: Iterable[str] | None) -> str:
    keys = sorted(set(listing_keys or ()))
    return digest(*keys) if keys else ""


def cursor_digest(cursor: Cursor | None, progress: str = "") -> str:
    """Where a continuation starts: the stored cursor and, during a by-key phase, the last
    key it applied (so each continuation of a long first sync is a new run)."""
    if cursor is None and not progress:
        return "start"
    parts = (cursor.timestamp, cursor.listing_key) if cursor is not None else ("start",)
    if progress:
        parts = (*parts, "phase", progress)
    return digest(*parts)


def dedup_id(job: SyncJob, cursor: Cursor | None = None, progress: str = "") -> str:
    """The SQS deduplication id of a job.

    schedule/reconcile: ``{connectionId}#{slot}`` (plus the reason for reconcile), so a
    firing delivered twice adds no message within SQS's 5-minute window; beyond it the
    SyncRuns conditional create makes the duplicate a no-op. continuation: from the cursor
    reached, so the same continuation enqueued twice is one message. manual: the minute slot
    and the listing keys, so a double click is one job. push: the push inbox's generation."""
    cid = job.connection_id
    match job.reason:
        case "schedule":
            text = f"{cid}#{job.slot}"
        case "reconcile":
            text = f"{cid}#{job.slot}#reconcile"
        case "continuation":
            text = f"{cid}#{job.slot}#c#{cursor_digest(cursor, progress)}"
        case "manual":
            text = f"{cid}#{job.slot}#m#{keys_digest(job.listing_keys)}"
        case "push":
            # ``progress`` is the push inbox's generation: one job per opening of the inbox,
            # however many pushes (or retried sends) led to it.
            text = f"{cid}#push#{progress or job.slot}"
    return sqs_id(text)


def run_key(job: SyncJob, cursor: Cursor | None = None, progress: str = "") -> str:
    """The SyncRuns sort key of a job's run: slot first, so runs list newest first.

    A continuation's key includes the cursor it starts from (the connection's stored cursor
    when it runs) and the progress of a by-key phase: the same continuation delivered twice
    finds its own run, while the next continuation of the same slot gets a new one."""
    base = f"{job.slot}#{job.reason}"
    match job.reason:
        case "continuation":
            return f"{base}#{cursor_digest(cursor, progress)}"
        case "manual":
            keys = keys_digest(job.listing_keys)
            return f"{base}#{keys}" if keys else base
        case "push":
            # Each push job is its own run (pushes within one second are distinct jobs); a
            # redelivery carries the same correlation id and finds its run.
            return f"{base}#{digest(job.correlation_id)}"
        case _:
            return base
