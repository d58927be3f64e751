"""Why a run failed, as a type: the error's class, its category and what the error itself
carried, as one :data:`Cause` (the last attempt's :class:`~mls_sync.http.failures.Problem`
and the attempt count, the refused credential's HTTP status and OAuth error code, or the
breaker's wait). Health names the cause from it (``mls_sync.health``), never from the
message.

A run's errors are recorded as text (the SyncRun item, the worker's log); the run's own
error is a :class:`FailureText`, a ``str`` that also carries its :class:`RunFailure`, so
every reader of the text keeps working and the typed readers take the type. Text recorded
before there was a type (older SyncRun items) is read back into one by
:func:`read_failure`, the only place that parses an error's words."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

from mls_sync.http.failures import FailureKind, Problem
from mls_sync.reso.errors import CircuitOpen, MlsAuthError, MlsError


class Category(StrEnum):
    """What an on-call engineer does about it."""

    AUTH = "auth"  # fix the credentials
    UNAVAILABLE = "unavailable"  # the MLS is down, slow or throttling: wait, or ask the vendor
    CIRCUIT = "circuit"  # no request sent: the cause is the failure that opened the breaker
    MISCONFIGURED = "misconfigured"  # fix the connection's settings
    PROTOCOL = "protocol"  # the MLS refused or garbled a query: a vendor quirk to handle
    OTHER = "other"


_CATEGORIES = {
    "MlsAuthError": Category.AUTH,
    "MlsUnavailable": Category.UNAVAILABLE,  # and MlsMalformedPage, below it
    "MlsRateLimited": Category.UNAVAILABLE,
    "CircuitOpen": Category.CIRCUIT,
    "InvalidBaseUrl": Category.MISCONFIGURED,
    "CredentialsError": Category.MISCONFIGURED,
    "MlsProtocolError": Category.PROTOCOL,  # and MlsQueryRefused, MlsPageTooLarge
}
_KIND_OF_CLASS = {
    "MlsRateLimited": FailureKind.RATE_LIMITED,
    "MlsMalformedPage": FailureKind.UNREADABLE,
}


def _category(names: list[str]) -> Category:
    """The category of the first class (the error's own, then its bases) that has one."""
    return next((_CATEGORIES[n] for n in names if n in _CATEGORIES), Category.OTHER)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Credentials refused: by whom, with the HTTP status and the OAuth error code (RFC 6749
    §5.2 / RFC 6750 §3.1) when the server said them."""

    endpoint: str
    """``MLS`` or ``token endpoint``."""
    status: int | None
    error_code: str | None


@dataclass(frozen=True, slots=True)
class Exhausted:
    """A request that ran out of retries: the last attempt's problem (None when the error
    named no kind) and how many attempts were made, as the error carried them."""

    problem: Problem | None
    attempts: int | None = None


@dataclass(frozen=True, slots=True)
class CircuitWait:
    """No request sent: the breaker is open; ``retry_in`` seconds until its trial request."""

    retry_in: float | None


Cause = Exhausted | Refusal | CircuitWait
"""What the error carried besides its words: one of the three, never two."""


@dataclass(frozen=True, slots=True)
class RunFailure:
    error_class: str
    category: Category
    message: str
    cause: Cause | None = None

    @property
    def kind(self) -> FailureKind | None:
        cause = self.cause
        if isinstance(cause, Exhausted) and cause.problem is not None:
            return cause.problem.kind
        return None


def failure_of(exc: BaseException) -> RunFailure:
    """The typed failure of an exception that ended a run."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    base = RunFailure(type(exc).__name__, _category(names), str(exc))
    if isinstance(exc, MlsAuthError):
        return replace(base, cause=Refusal(exc.endpoint, exc.status, exc.error_code))
    if isinstance(exc, CircuitOpen):
        return replace(base, cause=CircuitWait(exc.retry_in))
    if not isinstance(exc, MlsError):
        return base
    problem = exc.problem
    if problem is None:
        # An error raised without a request's problem (a page or $metadata we cannot read):
        # its class says the kind, its message the words
        kind = next((_KIND_OF_CLASS[n] for n in names if n in _KIND_OF_CLASS), None)
        problem = Problem(kind, str(exc)) if kind is not None else None
    return replace(base, cause=Exhausted(problem, exc.attempts))


class FailureText(str):
    """An error's text (``"Type: message"``, bounded) that also carries its typed failure."""

    __slots__ = ("failure",)
    failure: RunFailure

    def __new__(cls, text: str, failure: RunFailure) -> FailureText:
        made = super().__new__(cls, text)
        made.failure = failure
        return made


# ------------------------------------------------------------------ text recorded untyped

_TYPED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): (.*)$", re.DOTALL)
_ATTEMPTS = re.compile(r" after (\d+) attempts$")
_HOST_PREFIX = re.compile(r"^[A-Za-z0-9.\-\[\]:]+: ")
_CONNECT = re.compile(r"connection failed \((\w+)(?:: (.*))?\)$", re.DOTALL)
_REFUSED_BY = re.compile(r"\((\d{3})(?:, ([a-z_]+))?")
_NEXT_TRY = re.compile(r"next try in (\d+)s")


def _connect_kind(detail: str) -> FailureKind:
    text = detail.lower()
    if any(n in text for n in ("non-loopback", "not loopback", "not a loopback")):
        return FailureKind.NOT_LOOPBACK
    if "refus" in text and ("public" in text or "private" in text or "policy" in text):
        return FailureKind.BLOCKED
    if "refused" in text:
        return FailureKind.REFUSED
    if any(n in text for n in ("name or service not known", "nodename nor servname", "resolution")):
        return FailureKind.HOST_NOT_FOUND
    if "reset" in text:
        return FailureKind.RESET
    if "ssl" in text or "certificate" in text:
        return FailureKind.TLS
    return FailureKind.CONNECT


def _read_unavailable(failure: RunFailure) -> RunFailure:
    """The transport wrote ``"<host>: <problem's text> after <n> attempts"``: the problem is
    read back from its text."""
    attempts = _ATTEMPTS.search(failure.message)
    text = failure.message[: attempts.start()] if attempts else failure.message
    text = _HOST_PREFIX.sub("", text, count=1)
    count = int(attempts.group(1)) if attempts else None
    connect = _CONNECT.search(text)
    problem: Problem | None = None
    if connect:
        detail = connect.group(2)
        kind = _connect_kind(detail or "")
        problem = Problem(kind, text, error=connect.group(1), detail=detail)
    elif text.startswith("timed out") or "slow server" in text:
        problem = Problem(FailureKind.TIMED_OUT, text)
    elif text.startswith(("HTTP 5", "HTTP 429")):
        status = int(text[5:8])
        kind = FailureKind.RATE_LIMITED if status == 429 else FailureKind.SERVER_ERROR
        problem = Problem(kind, text, status=status)
    elif "JSON" in text:
        problem = Problem(FailureKind.UNREADABLE, text)
    if problem is None:
        # No kind to read: the words, less the host and the count the cause states itself
        cause = Exhausted(None, count) if count is not None else None
        return replace(failure, message=text, cause=cause)
    return replace(failure, cause=Exhausted(problem, count))


def read_failure(text: str) -> RunFailure | None:
    """The typed failure of an error recorded as text only (``"Type: message"``); None when
    the text names no type."""
    typed = _TYPED.match(text)
    if typed is None:
        return None
    kind, message = typed.group(1), typed.group(2)
    failure = RunFailure(kind, _category([kind]), message)
    if failure.category is Category.AUTH:
        refused = _REFUSED_BY.search(message)
        status, code = refused.groups() if refused else (None, None)
        endpoint = "token endpoint" if message.startswith("token endpoint") else "MLS"
        refusal = Refusal(endpoint, int(status) if status else None, code)
        return replace(failure, cause=refusal)
    if failure.category is Category.CIRCUIT:
        wait = _NEXT_TRY.search(message)
        return replace(failure, cause=CircuitWait(float(wait.group(1)) if wait else None))
    if failure.category is Category.UNAVAILABLE:
        return _read_unavailable(failure)
    return failure


def typed_failure(text: str) -> RunFailure | None:
    """The failure an error's text carries, or the one read back from its words."""
    return text.failure if isinstance(text, FailureText) else read_failure(text)


__all__ = [
    "Category",
    "Cause",
    "CircuitWait",
    "Exhausted",
    "FailureText",
    "Refusal",
    "RunFailure",
    "failure_of",
    "read_failure",
    "typed_failure",
]
