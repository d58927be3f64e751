"""A connection's health, in words an on-call engineer can act on (pure: no I/O).

Two jobs:
- ``describe_failure``: a failed or partial run's errors (``"Type: message"`` strings, see
  ``pipeline.decisions.describe_error``) become the error's class and one line naming the
  cause: ``MlsUnavailable`` / ``MLS unreachable: connection refused (5 attempts)``.
- ``assess``: a connection's recorded outcome fields become its health flags (``stale``,
  ``failing``, ``braked``, ``disabled``) and its lag, as the dispatcher counts them for the
  metrics and ``mls-sync status`` prints them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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


_TYPED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): (.*)$", re.DOTALL)
_ATTEMPTS = re.compile(r" after (\d+) attempts$")
_HOST_PREFIX = re.compile(r"^[A-Za-z0-9.\-\[\]:]+: ")
_CONNECT = re.compile(r"connection failed \((\w+)(?:: (.*))?\)$", re.DOTALL)
_REFUSED_BY = re.compile(r"\((\d{3})(?:, ([a-z_]+))?")
_NEXT_TRY = re.compile(r"next try in (\d+)s")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_CAUSE else line[: MAX_CAUSE - 1] + "…"


def _connect_reason(kind: str, detail: str | None) -> str:
    """The words for a connection that could not be made (``httpx.ConnectError`` & co)."""
    text = (detail or "").lower()
    if any(n in text for n in ("non-loopback", "not loopback", "not a loopback")):
        return "blocked: not a loopback host"  # the local runtime's guard
    if "refus" in text and ("public" in text or "private" in text or "policy" in text):
        return _one_line(f"blocked: {detail}")  # the outbound URL policy
    if "refused" in text:
        return "MLS unreachable: connection refused"
    if any(n in text for n in ("name or service not known", "nodename nor servname", "resolution")):
        return "MLS unreachable: host not found"
    if "reset" in text:
        return "MLS unreachable: connection reset"
    if "ssl" in text or "certificate" in text:
        return "MLS unreachable: TLS failed"
    return f"MLS unreachable: {kind}" + (f" ({_one_line(detail)})" if detail else "")


def _unavailable(message: str) -> str:
    attempts = _ATTEMPTS.search(message)
    body = message[: attempts.start()] if attempts else message
    body = _HOST_PREFIX.sub("", body, count=1)
    suffix = f" ({attempts.group(1)} attempts)" if attempts else ""
    connect = _CONNECT.search(body)
    if connect:
        reason = _connect_reason(connect.group(1), connect.group(2))
        # A refusal by policy is not retried into success: the count says nothing new.
        return reason if reason.startswith("blocked") else reason + suffix
    if body.startswith("timed out") or "slow server" in body:
        return "MLS unreachable: timed out" + suffix
    if body.startswith("HTTP 5"):
        return f"MLS failing: {body.split(' (', 1)[0]}" + suffix
    if body.startswith("HTTP 429"):
        return "MLS rate limit: HTTP 429" + suffix
    if "JSON" in body:
        return "MLS sent an unreadable page" + suffix
    return f"MLS unavailable: {body}" + suffix


def describe_failure(errors: Sequence[str], *, failed_listings: int = 0) -> Failure:
    """The class and the cause of a failed (or partial) run, from its recorded errors.

    The first error is the run's own when the whole run failed (the worker puts it first);
    a partial run's errors name listings (``K12: ...``)."""
    first = next((e for e in errors if e.strip()), "")
    if first.startswith("takedowns not settled: "):
        return Failure("TakedownsNotSettled", _one_line(first))
    typed = _TYPED.match(first)
    if failed_listings and (typed is None or not typed.group(1).endswith(("Error", "Exception"))):
        return Failure(
            "ListingsFailed",
            _one_line(f"{failed_listings} listing(s) failed" + (f": {first}" if first else "")),
        )
    if typed is None:
        return Failure("Unknown", _one_line(first) or "failed without a recorded error")
    kind, message = typed.group(1), typed.group(2)
    if kind == "MlsAuthError":
        refused = _REFUSED_BY.search(message)
        code = " ".join(g for g in (refused.groups() if refused else ()) if g)
        where = "token endpoint" if message.startswith("token endpoint") else "MLS"
        cause = f"{where} refused the credentials" + (f" ({code})" if code else "")
        return Failure(kind, _one_line(cause))
    if kind in ("MlsUnavailable", "MlsMalformedPage", "MlsRateLimited"):
        return Failure(kind, _one_line(_unavailable(message)))
    if kind == "CircuitOpen":
        wait = _NEXT_TRY.search(message)
        return Failure(
            kind,
            "MLS unreachable: circuit open after repeated failures"
            + (f" (next try in {wait.group(1)} s)" if wait else ""),
        )
    if kind in ("InvalidBaseUrl", "CredentialsError"):
        return Failure(kind, _one_line(f"misconfigured connection: {message}"))
    if kind in ("MlsQueryRefused", "MlsProtocolError", "MlsPageTooLarge"):
        return Failure(kind, _one_line(f"MLS refused or garbled the query: {message}"))
    return Failure(kind, _one_line(message or kind))


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


@dataclass(frozen=True, slots=True)
class Health:
    """A connection's health at one instant."""

    flags: tuple[str, ...]
    """Among ``disabled``, ``braked``, ``stale``, ``failing``; empty when all is well."""
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


def assess(
    *,
    enabled: bool,
    last_success_at: str | None,
    failing_since: str | None,
    last_attempt_at: str | None,
    consecutive_failures: int,
    braked: bool,
    now: datetime,
    period_seconds: int,
) -> Health:
    """Health flags and lag of one connection. A connection never attempted is neither
    stale nor failing (it waits for its first sync); a disabled one is only ``disabled``."""
    if not enabled:
        return Health(("disabled",), None)
    flags: list[str] = []
    if braked:
        flags.append("braked")
    since = _parse(last_success_at) or _parse(failing_since)
    lag = max(0, int((now - since).total_seconds())) if since is not None else None
    if lag is None and _parse(last_attempt_at) is not None and consecutive_failures:
        lag = 0
    if lag is not None and lag > STALE_PERIODS * period_seconds:
        flags.append("stale")
    if consecutive_failures > 0:
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
    "STALE_PERIODS",
    "SUCCESS_OUTCOMES",
    "Failure",
    "Health",
    "assess",
    "describe_failure",
    "format_lag",
    "through_open_circuit",
]
