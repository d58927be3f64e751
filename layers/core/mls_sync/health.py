"""A connection's health, in words an on-call engineer can act on (pure: no I/O).

Two jobs:
- ``describe_failure``: a failed or partial run's errors become the error's class and one
  line naming the cause: ``MlsUnavailable`` / ``MLS unreachable: connection refused (5
  attempts)``. The cause is read from the run's typed failure (``mls_sync.run_failure``:
  the error's category, the last attempt's kind, the attempt count), not from its words.
- ``HealthFacts.health``: a connection's recorded outcome fields become its health flags
  (``stale``, ``failing``, ``braked``, ``disabled``) and its lag, as the dispatcher counts
  them for the metrics and ``mls-sync status`` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from mls_sync.http.failures import FailureKind
from mls_sync.run_failure import (
    Category,
    CircuitWait,
    Exhausted,
    Refusal,
    RunFailure,
    typed_failure,
)
from mls_sync.timeutil import TimestampError, parse_utc

STALE_PERIODS = 2
"""A connection is stale when its last success is more than this many schedule periods
old: a status change may then go undetected for longer than the product promises (one)."""

MAX_CAUSE = 160
"""Characters of a cause kept on the connection and in a log line."""

# Healthy runs: the replication moved on (a continuation read the changes first).
SUCCESS_OUTCOMES = frozenset({"succeeded", "continued"})
FAILURE_OUTCOMES = frozenset({"failed", "partial"})


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a run failed: the error's class and one readable line."""

    error_class: str
    cause: str


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_CAUSE else line[: MAX_CAUSE - 1] + "…"


_REACHED_NOT = {
    FailureKind.REFUSED: "MLS unreachable: connection refused",
    FailureKind.HOST_NOT_FOUND: "MLS unreachable: host not found",
    FailureKind.RESET: "MLS unreachable: connection reset",
    FailureKind.TLS: "MLS unreachable: TLS failed",
    FailureKind.TIMED_OUT: "MLS unreachable: timed out",
    FailureKind.SLOW_SERVER: "MLS unreachable: timed out",
    FailureKind.RATE_LIMITED: "MLS rate limit: HTTP 429",
    FailureKind.UNREADABLE: "MLS sent an unreadable page",
}


def _unavailable(failure: RunFailure) -> str:
    exhausted = failure.cause if isinstance(failure.cause, Exhausted) else Exhausted(None)
    problem = exhausted.problem
    if problem is None:
        words = f"MLS unavailable: {failure.message}"
    elif problem.kind is FailureKind.NOT_LOOPBACK:
        return "blocked: not a loopback host"  # the local runtime's guard
    elif problem.kind is FailureKind.BLOCKED:
        # A refusal by policy is not retried into success: the count says nothing new.
        return f"blocked: {problem.detail}"  # the outbound URL policy
    elif problem.kind is FailureKind.SERVER_ERROR:
        words = f"MLS failing: HTTP {problem.status}"
    elif problem.kind is FailureKind.CONNECT:
        words = f"MLS unreachable: {problem.error}" + (
            f" ({_one_line(problem.detail)})" if problem.detail else ""
        )
    else:
        words = _REACHED_NOT[problem.kind]
    return words + (f" ({exhausted.attempts} attempts)" if exhausted.attempts else "")


def _cause(failure: RunFailure) -> str:
    """The on-call engineer's words for a typed failure."""
    match failure.category:
        case Category.AUTH:
            cause = failure.cause
            refusal = cause if isinstance(cause, Refusal) else Refusal("MLS", None, None)
            said = (refusal.status, refusal.error_code)
            code = " ".join(str(part) for part in said if part is not None)
            return f"{refusal.endpoint} refused the credentials" + (f" ({code})" if code else "")
        case Category.UNAVAILABLE:
            return _unavailable(failure)
        case Category.CIRCUIT:
            wait = failure.cause.retry_in if isinstance(failure.cause, CircuitWait) else None
            return "MLS unreachable: circuit open after repeated failures" + (
                f" (next try in {wait:.0f} s)" if wait is not None else ""
            )
        case Category.MISCONFIGURED:
            return f"misconfigured connection: {failure.message}"
        case Category.PROTOCOL:
            return f"MLS refused or garbled the query: {failure.message}"
        case _:
            return failure.message or failure.error_class


def describe_failure(errors: Sequence[str], *, failed_listings: int = 0) -> Failure:
    """The class and the cause of a failed (or partial) run, from its recorded errors.

    The first error is the run's own when the whole run failed (the worker puts it first,
    typed: :class:`~mls_sync.run_failure.FailureText`); a partial run's errors name
    listings (``K12: ...``)."""
    first = next((e for e in errors if e.strip()), "")
    if first.startswith("takedowns not settled: "):
        return Failure("TakedownsNotSettled", _one_line(first))
    failure = typed_failure(first)
    if failed_listings and (
        failure is None or not failure.error_class.endswith(("Error", "Exception"))
    ):
        return Failure(
            "ListingsFailed",
            _one_line(f"{failed_listings} listing(s) failed" + (f": {first}" if first else "")),
        )
    if failure is None:
        return Failure("Unknown", _one_line(first) or "failed without a recorded error")
    return Failure(failure.error_class, _one_line(_cause(failure)))


CIRCUIT_NOTE = "; circuit open, no request sent"


def through_open_circuit(failure: Failure, previous: Failure | None) -> Failure:
    """A run refused by the open circuit breaker says nothing new about the MLS: the cause
    stays the one that opened it (``MLS unreachable: connection refused (5 attempts); circuit
    open, no request sent``), so the on-call engineer sees the root cause, not the breaker."""
    if failure.error_class != "CircuitOpen" or previous is None:
        return failure
    root = previous.cause.split(CIRCUIT_NOTE, 1)[0]
    if previous.error_class == "CircuitOpen" or not root:
        return failure
    return Failure(previous.error_class, _one_line(root + CIRCUIT_NOTE))


# ------------------------------------------------------------------------------ assessment


Flag = Literal["stale", "failing", "braked", "disabled"]
FLAGS: tuple[Flag, ...] = get_args(Flag)
"""Every health flag, in the order the dispatcher reports them."""


@dataclass(frozen=True, slots=True)
class Health:
    """A connection's health at one instant."""

    flags: tuple[Flag, ...]
    """Its flags (``disabled`` alone, or among ``braked``, ``stale``, ``failing``); empty
    when all is well."""
    lag_seconds: int | None
    """Seconds since the last success (or since the first failed attempt of a connection
    that never succeeded); None before any attempt."""

    @property
    def label(self) -> str:
        return ",".join(self.flags) or "ok"

    @property
    def unhealthy(self) -> bool:
        """Stale or failing: what makes `mls-sync status` exit 1 and pages nobody alone."""
        return "stale" in self.flags or "failing" in self.flags


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_utc(value)
    except TimestampError:
        return None


@dataclass(frozen=True, slots=True)
class HealthFacts:
    """The outcome fields recorded on a connection that its health is judged from (the
    dispatcher's and ``mls-sync status``'s :class:`~mls_sync.dal.connections.ConnectionHealthFields`
    add what they print)."""

    enabled: bool
    braked: bool
    last_attempt_at: str | None
    last_success_at: str | None
    failing_since: str | None
    consecutive_failures: int

    def health(self, now: datetime, period_seconds: int) -> Health:
        """Health flags and lag at ``now``. A connection never attempted is neither stale nor
        failing (it waits for its first sync); a disabled one is only ``disabled``."""
        if not self.enabled:
            return Health(("disabled",), None)
        flags: list[Flag] = []
        if self.braked:
            flags.append("braked")
        since = _parse(self.last_success_at) or _parse(self.failing_since)
        lag = max(0, int((now - since).total_seconds())) if since is not None else None
        if lag is None and _parse(self.last_attempt_at) is not None and self.consecutive_failures:
            lag = 0
        if lag is not None and lag > STALE_PERIODS * period_seconds:
            flags.append("stale")
        if self.consecutive_failures > 0:
            flags.append("failing")
        return Health(tuple(flags), lag)


def format_lag(seconds: int | None) -> str:
    """``-``, ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


__all__ = [
    "CIRCUIT_NOTE",
    "FAILURE_OUTCOMES",
    "FLAGS",
    "STALE_PERIODS",
    "SUCCESS_OUTCOMES",
    "Failure",
    "Flag",
    "Health",
    "HealthFacts",
    "describe_failure",
    "format_lag",
    "through_open_circuit",
]
