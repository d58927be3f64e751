"""Shared HTTP plumbing for the platform clients.

One :class:`PlatformHttp` per process: an ``httpx.Client`` with timeouts, retries of
transient failures only (capped exponential backoff with full jitter), and helpers to read
how long a platform asks us to wait. Sleep, clock and randomness are injected so tests run
without waiting.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from mls_sync.netpolicy import loopback_allowed_from_env
from mls_sync.nettransport import GuardedTransport
from mls_sync.platforms.base import Transient, clamp_wait
from mls_sync.timeutil import Clock, utc_now

logger = logging.getLogger(__name__)

R = TypeVar("R")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
MAX_REASON_CHARS = 300
REDACTED = "[REDACTED]"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """In-process retries of transient failures. Longer waits belong to the queue."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    # A platform that asks for a longer pause than this is not waited for in-process.
    max_in_process_wait: float = 5.0
    # Wall-clock budget for one logical call, all attempts and pauses included. Without it a
    # server that accepts connections and never answers holds us 3 x 10 s + backoff, longer
    # than the publisher's 30 s Lambda timeout. Each attempt's timeouts shrink to what is left.
    deadline: float = 12.0

    def backoff(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        ceiling = min(self.max_delay, self.base_delay * (2.0**attempt))
        return rng() * ceiling


# --- Secrets ---------------------------------------------------------------------------

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer|oauth)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:access|refresh)_token|client_secret|appsecret_proof)"
        r"([\"']?\s*[=:]\s*[\"']?)[^\s\"'&,}]+"
    ),
)


def scrub(text: str, secrets: Iterable[SecretStr | str | None] = ()) -> str:
    """Remove known secret values and anything shaped like a credential, then shorten."""
    for secret in secrets:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if raw and len(raw) >= 4:
            text = text.replace(raw, REDACTED)
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = " ".join(text.split())
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 1] + "…"
    return text


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


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return clamp_wait(seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return clamp_wait((when - now).total_seconds())
    except OverflowError:
        return None


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


# --- Keeping tokens out of library logs ----------------------------------------------------


class _ScrubFilter(logging.Filter):
    """httpx logs every request URL at INFO. Ours never carry a token, except the Graph
    fallback that passes ``access_token`` as a query parameter: scrub it here, whatever
    level the Lambda's logging runs at."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_SCRUB_FILTER = _ScrubFilter()


def _install_log_scrubbing() -> None:
    for name in ("httpx", "httpcore"):
        lib_logger = logging.getLogger(name)
        if _SCRUB_FILTER not in lib_logger.filters:
            lib_logger.addFilter(_SCRUB_FILTER)


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
        loopback = loopback_allowed_from_env() if allow_loopback is None else allow_loopback
        self._client = client or httpx.Client(
            timeout=timeout,
            # Connections only where the outbound policy allows, checked on the resolved
            # address (a test's mock transport stands in when given).
            transport=transport or GuardedTransport(allow_loopback=loopback),
            follow_redirects=False,
        )
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.monotonic = monotonic
        _install_log_scrubbing()

    def close(self) -> None:
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
        started = self.monotonic()
        for attempt in range(attempts):
            remaining = self.retry.deadline - (self.monotonic() - started)
            if remaining <= 0:
                return result
            try:
                response = self._client.request(
                    method,
                    url,
                    headers=headers,
                    params=params,
                    data=data,
                    timeout=self._attempt_timeout(remaining),
                )
            except httpx.TimeoutException as exc:
                result = Transient(reason=f"timeout ({type(exc).__name__}) on {method} {path}")
            except httpx.TransportError as exc:
                detail = scrub(str(exc), secret_list)
                result = Transient(reason=f"network error ({type(exc).__name__}): {detail}")
            else:
                result = classify(response)
                logger.debug(
                    "platform call",
                    extra={
                        "method": method,
                        "path": path,
                        "status": response.status_code,
                        "attempt": attempt + 1,
                    },
                )
            if not isinstance(result, Transient) or attempt + 1 >= attempts:
                return result
            delay = self.retry.backoff(attempt, self.rng)
            if result.retry_after is not None:
                if result.retry_after > self.retry.max_in_process_wait:
                    return result
                delay = max(delay, result.retry_after)
            if self.monotonic() - started + delay >= self.retry.deadline:
                # No time left for another attempt after this pause: the queue retries.
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

    def _attempt_timeout(self, remaining: float) -> httpx.Timeout:
        def cap(value: float | None) -> float:
            return remaining if value is None else min(value, remaining)

        t = self.timeout
        return httpx.Timeout(
            connect=cap(t.connect), read=cap(t.read), write=cap(t.write), pool=cap(t.pool)
        )
