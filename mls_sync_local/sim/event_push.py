"""RCP-028 push from the simulator: events POSTed to a consumer's endpoint as they happen.

A background thread sends the events appended to the log in batches, as RCP-028 batch
bodies (``{"@reso.context": "urn:reso:metadata:2.0:resource:entityevent", "value": [...]}``)
or, for vendor-style webhooks, ``{"listingKeys": [...]}``, with ``Authorization: Bearer``.
It is polite as RCP-028 asks: a ``429`` waits for its ``Retry-After`` (seconds or an
HTTP-date), a 5xx or no answer is retried with backoff, and after ``max_attempts`` the batch
is given up (a producer "MAY stop the flow"). Every attempt is logged for tests to read.
Loopback only: the simulator never sends anything off this machine.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from mls_sync_local.sim.entity_events import SimEvent

PushStyle = Literal["reso", "keys"]
RESO_CONTEXT = "urn:reso:metadata:2.0:resource:entityevent"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class PushAttempt:
    status: int | None
    """The consumer's answer; None when there was none (refused, timed out)."""
    count: int
    """Events (``reso``) or keys (``keys``) in the batch."""
    outcome: Literal["delivered", "retry", "gave_up"]
    wait: float = 0.0
    """Seconds waited before the next attempt (Retry-After, or backoff)."""


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """RFC 9110 ``Retry-After``: delta-seconds or an HTTP-date (None when absent or
    unreadable). The simulator keeps its own reading: it stands for a producer we did not
    write, so it does not borrow the consumer's code."""
    text = (value or "").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def loopback_url(url: str) -> str:
    """``url`` when it names a loopback host over http(s); ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in _LOOPBACK:
        raise ValueError("the simulator pushes to loopback URLs only")
    return url


class EventPusher:
    """Sends appended events to one consumer URL from its own thread."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        style: PushStyle = "reso",
        batch: int = 100,
        source: str | None = None,
        max_attempts: int = 8,
        timeout: float = 5.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        seed: int = 0,
    ) -> None:
        if batch < 1 or max_attempts < 1:
            raise ValueError("batch and max_attempts must be at least 1")
        self.url = loopback_url(url)
        self.style: PushStyle = style
        self.batch = batch
        self.max_attempts = max_attempts
        self.attempts: list[PushAttempt] = []
        self.delivered = 0
        """Events (or keys) the consumer accepted."""
        self.given_up = 0
        """Events (or keys) abandoned after the last attempt or a refusal."""
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if source:
            self._headers["EntityEventSource"] = source  # RCP-028's optional feed label
        self._http = httpx.Client(timeout=timeout, trust_env=False)
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self._stopping = threading.Event()
        self._sleep: Callable[[float], object] = sleep or self._stopping.wait
        self._queue: list[SimEvent] = []
        self._busy = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="mls-sim-push", daemon=True)
        self._thread.start()

    def enqueue(self, events: list[SimEvent]) -> None:
        with self._cond:
            self._queue.extend(events)
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until everything queued was delivered or given up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self) -> None:
        """Stops the thread; what is still queued is dropped (a producer going away)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._http.close()

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stopping.is_set())
                if self._stopping.is_set():
                    self._queue.clear()
                    self._cond.notify_all()
                    return
                batch = self._queue[: self.batch]
                del self._queue[: self.batch]
                self._busy = True
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _body(self, events: list[SimEvent]) -> tuple[dict[str, Any], int]:
        if self.style == "keys":
            keys = list(dict.fromkeys(e.key for e in events if e.resource == "Property"))
            return {"listingKeys": keys}, len(keys)
        return {"@reso.context": RESO_CONTEXT, "value": [e.record() for e in events]}, len(events)

    def _deliver(self, events: list[SimEvent]) -> None:
        body, count = self._body(events)
        if not count:
            return  # only other resources' events: nothing for a keys webhook
        data = json.dumps(body).encode()
        for attempt in range(self.max_attempts):
            status: int | None = None
            retry_after: float | None = None
            try:
                response = self._http.post(self.url, content=data, headers=self._headers)
            except httpx.HTTPError:
                pass
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self.attempts.append(PushAttempt(status, count, "delivered"))
                    self.delivered += count
                    return
                if status == 429:
                    retry_after = retry_after_seconds(
                        response.headers.get("Retry-After"), self._clock()
                    )
                elif status < 500:
                    # Refused as such (bad credentials, a body it cannot take): retrying the
                    # same request cannot help.
                    break
            if attempt + 1 >= self.max_attempts:
                break
            # Exponential backoff with full jitter (0.2 s doubling, at most 5 s) when the
            # consumer named no wait.
            wait = (
                retry_after
                if retry_after is not None
                else self._rng.uniform(0.0, min(5.0, 0.2 * 2**attempt))
            )
            self.attempts.append(PushAttempt(status, count, "retry", wait))
            self._sleep(wait)
            if self._stopping.is_set():
                return
        self.attempts.append(PushAttempt(status, count, "gave_up"))
        self.given_up += count
