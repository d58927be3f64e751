"""Shared HTTP plumbing for the platform clients.

One :class:`PlatformHttp` per process: an ``httpx.Client`` with timeouts, retries of
transient failures only (``mls_sync.http``'s capped full-jitter backoff, within a deadline),
and helpers to read how long a platform asks us to wait. Sleep, clock and randomness are
injected so tests run without waiting.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from mls_sync.http.redact import install_log_scrubbing, scrub
from mls_sync.http.retry import Backoff, Deadline
from mls_sync.http.retry_after import clamp_wait, parse_retry_after
from mls_sync.netpolicy import loopback_allowed_from_env
from mls_sync.platforms.base import Transient
from mls_sync.timeutil import Clock, utc_now

logger = logging.getLogger(__name__)

R = TypeVar("R")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
PLATFORM_BACKOFF = Backoff(base=0.2, cap=2.0)
"""Between two attempts at one platform call: 0.2 s, 0.4 s ... up to 2 s, fully jittered."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """In-process retries of transient failures. Longer waits belong to the queue."""

    attempts: int = 3
    backoff: Backoff = PLATFORM_BACKOFF
    # A platform that asks for a longer pause than this is not waited for in-process.
    max_in_process_wait: float = 5.0
    # Wall-clock budget for one logical call, all attempts and pauses included. Without it a
    # server that accepts connections and never answers holds us 3 x 10 s + backoff, longer
    # than the publisher's 30 s Lambda timeout. Each attempt's timeouts shrink to what is left.
    deadline: float = 12.0


# --- Bodies ----------------------------------------------------------------------------


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when there is none or it is not JSON."""
    if not response.content.strip():
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def number(value: Any) -> float | None:
    """A finite number from JSON that may spell it as a string (``"100"``); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


# --- Waits the platforms ask for ---------------------------------------------------------


def seconds_until_next_utc_midnight(now: datetime) -> float:
    now = now.astimezone(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


META_USAGE_HEADERS = ("x-app-usage", "x-page-usage", "x-business-use-case-usage")


@dataclass(frozen=True, slots=True)
class MetaUsage:
    """What Meta's usage headers say: the highest usage percentage seen and the longest
    ``estimated_time_to_regain_access`` (given in minutes, kept here in seconds)."""

    max_percent: float | None = None
    regain_seconds: float | None = None

    @property
    def exhausted(self) -> bool:
        return self.max_percent is not None and self.max_percent >= 100


def _usage_entries(header: str, raw: str) -> list[Mapping[str, Any]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    if header != "x-business-use-case-usage":
        return [data]
    # {"<business-object-id>": [{"type": "pages", "call_count": 100, ...}, ...], ...}
    # Documented as a list per business object; a lone object is read the same way.
    found: list[Mapping[str, Any]] = []
    for value in data.values():
        entries = [value] if isinstance(value, dict) else value
        if isinstance(entries, list):
            found.extend(entry for entry in entries if isinstance(entry, dict))
    return found


def parse_meta_usage(headers: Mapping[str, str]) -> MetaUsage:
    percents: list[float] = []
    regains: list[float] = []
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in META_USAGE_HEADERS:
        raw = lowered.get(name)
        if not raw:
            continue
        for entry in _usage_entries(name, raw):
            for field in ("call_count", "total_cputime", "total_time", "acc_id_util_pct"):
                value = number(entry.get(field))
                if value is not None:
                    percents.append(value)
            regain = number(entry.get("estimated_time_to_regain_access"))
            if regain is not None:
                wait = clamp_wait(regain * 60.0)
                if wait is not None:
                    regains.append(wait)
    return MetaUsage(
        max_percent=max(percents) if percents else None,
        regain_seconds=max(regains) if regains else None,
    )


def meta_wait_seconds(headers: Mapping[str, str], now: datetime, *, default: float) -> float:
    """How long to stay away after a Meta throttle, whatever the body said (or did not).

    The longer of Meta's own estimate and ``Retry-After`` (seconds or HTTP-date) when either
    is present, so a wait the server asked for is always honoured; else ``default`` (Meta's
    windows are rolling: one hour for app limits, 24 h for Page limits, so a guess of
    minutes is safe).
    """
    usage = parse_meta_usage(headers)
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = parse_retry_after(lowered.get("retry-after"), now)
    waits = [w for w in (usage.regain_seconds or None, retry_after) if w is not None]
    return max(waits) if waits else default


# --- The client ------------------------------------------------------------------------


class PlatformHttp:
    """Sends one logical request, retrying transient failures within :class:`RetryPolicy`.

    ``classify`` turns a response into the caller's result; a :class:`Transient` result is
    retried, anything else is returned at once (throttles are never retried in-process).
    """

    def __init__(
        self,
        *,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = utc_now,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        allow_loopback: bool | None = None,
    ) -> None:
        self._loopback = loopback_allowed_from_env() if allow_loopback is None else allow_loopback
        self._client = client
        self._transport = transport
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.monotonic = monotonic
        install_log_scrubbing()

    def _http(self) -> httpx.Client:
        # Made on the first call, not with this object: the publisher builds it at init,
        # and the guarded transport brings httpcore and an SSL context (~0.1 s of a cold
        # start) that only a takedown needs.
        if self._client is None:
            from mls_sync.nettransport import GuardedTransport  # noqa: PLC0415

            self._client = httpx.Client(
                timeout=self.timeout,
                # Connections only where the outbound policy allows, checked on the
                # resolved address (a test's mock transport stands in when given).
                transport=self._transport or GuardedTransport(allow_loopback=self._loopback),
                follow_redirects=False,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> PlatformHttp:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        url: str,
        *,
        classify: Callable[[httpx.Response], R],
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        secrets: Iterable[SecretStr | str | None] = (),
    ) -> R | Transient:
        secret_list = list(secrets)
        path = httpx.URL(url).path
        attempts = max(1, self.retry.attempts)
        result: R | Transient = Transient(reason="not attempted")
        deadline = Deadline.after(self.retry.deadline, self.monotonic)
        for attempt in range(attempts):
            if deadline.left() <= 0:
                return result
            result = self._attempt(
                method,
                url,
                classify=classify,
                headers=headers,
                params=params,
                data=data,
                secrets=secret_list,
                timeout=self._attempt_timeout(deadline),
                attempt=attempt,
            )
            if not isinstance(result, Transient) or attempt + 1 >= attempts:
                return result
            delay = self._pause(attempt, result, deadline)
            if delay is None:
                return result
            logger.info(
                "retrying transient platform failure",
                extra={
                    "path": path,
                    "attempt": attempt + 1,
                    "delay": round(delay, 3),
                    "reason": result.reason,
                },
            )
            self.sleep(delay)
        return result

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        classify: Callable[[httpx.Response], R],
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        secrets: list[SecretStr | str | None],
        timeout: httpx.Timeout,
        attempt: int,
    ) -> R | Transient:
        """One request and its classified answer; a failure to get one is transient."""
        path = httpx.URL(url).path
        try:
            response = self._http().request(
                method, url, headers=headers, params=params, data=data, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            return Transient(reason=f"timeout ({type(exc).__name__}) on {method} {path}")
        except httpx.TransportError as exc:
            detail = scrub(str(exc), secrets)
            return Transient(reason=f"network error ({type(exc).__name__}): {detail}")
        logger.debug(
            "platform call",
            extra={
                "method": method,
                "path": path,
                "status": response.status_code,
                "attempt": attempt + 1,
            },
        )
        return classify(response)

    def _pause(self, attempt: int, result: Transient, deadline: Deadline) -> float | None:
        """The pause before the next attempt, or None when that attempt is the queue's to
        make: the platform asked for a longer wait than is worth holding a Lambda for, or no
        time would be left after the pause."""
        delay = self.retry.backoff.delay(attempt, self.rng)
        if result.retry_after is not None:
            if result.retry_after > self.retry.max_in_process_wait:
                return None
            delay = max(delay, result.retry_after)
        return delay if deadline.allows(delay) else None

    def _attempt_timeout(self, deadline: Deadline) -> httpx.Timeout:
        """The configured timeouts, each shortened to what is left before the deadline."""

        def cap(value: float | None) -> float:
            return deadline.cap(math.inf if value is None else value)

        t = self.timeout
        return httpx.Timeout(
            connect=cap(t.connect), read=cap(t.read), write=cap(t.write), pool=cap(t.pool)
        )


__all__ = [
    "DEFAULT_TIMEOUT",
    "META_USAGE_HEADERS",
    "MetaUsage",
    "PlatformHttp",
    "RetryPolicy",
    "json_body",
    "meta_wait_seconds",
    "number",
    "parse_meta_usage",
    "parse_retry_after",
    "scrub",
    "seconds_until_next_utc_midnight",
]
