"""Why one attempt at a call failed, as a type rather than words: the transport decides
what to raise from it and health names the cause from it, so neither reads message text.

A connection that could not be made is classified by the exceptions that caused it (httpx
and httpcore chain the OS error with ``raise ... from``), never by their wording. An
exception class may declare its own kind with a ``failure_kind`` class attribute (the
outbound policy's refusal does, and so does the local runtime's loopback guard)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    """What went wrong with one attempt (all worth a retry, but for the two ``blocked``
    kinds, which the transport still counts like any failure to connect)."""

    TIMED_OUT = "timed_out"
    """No answer within the request's timeout."""
    SLOW_SERVER = "slow_server"
    """An answer that kept coming for longer than the request's whole time budget."""
    REFUSED = "refused"
    HOST_NOT_FOUND = "host_not_found"
    RESET = "reset"
    TLS = "tls"
    BLOCKED = "blocked"
    """The outbound policy refused the address the host resolved to."""
    NOT_LOOPBACK = "not_loopback"
    """The local runtime refused a host that is not this machine."""
    CONNECT = "connect"
    """Any other failure to connect or to exchange bytes."""
    RATE_LIMITED = "rate_limited"
    """HTTP 429."""
    SERVER_ERROR = "server_error"
    """HTTP 5xx."""
    UNREADABLE = "unreadable"
    """A body that does not decode, is not JSON, or not a JSON object."""

    @property
    def blocked(self) -> bool:
        """A refusal by policy: retrying it cannot succeed."""
        return self in (FailureKind.BLOCKED, FailureKind.NOT_LOOPBACK)

    @property
    def unreachable(self) -> bool:
        """The server could not be reached at all (as against answering badly)."""
        return self in _UNREACHABLE


_UNREACHABLE = frozenset(
    {
        FailureKind.TIMED_OUT,
        FailureKind.SLOW_SERVER,
        FailureKind.REFUSED,
        FailureKind.HOST_NOT_FOUND,
        FailureKind.RESET,
        FailureKind.TLS,
        FailureKind.CONNECT,
    }
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One failed attempt: its kind, the words a message uses for it, and what else is
    known: the HTTP status and the wait the server asked for (``Retry-After``), or, for a
    failure to connect, the exception's class name and its own words (already free of
    secrets: they name hosts and addresses)."""

    kind: FailureKind
    text: str
    status: int | None = None
    retry_after: float | None = None
    error: str | None = None
    detail: str | None = None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def connect_kind(exc: BaseException) -> FailureKind:
    """The kind of a failure to connect, from ``exc`` and the exceptions behind it."""
    for link in _causes(exc):
        declared = getattr(type(link), "failure_kind", None)
        if isinstance(declared, FailureKind):
            return declared
        if isinstance(link, ssl.SSLError):
            return FailureKind.TLS
        if isinstance(link, socket.gaierror):
            return FailureKind.HOST_NOT_FOUND
        if isinstance(link, ConnectionRefusedError):
            return FailureKind.REFUSED
        if isinstance(link, ConnectionResetError):
            return FailureKind.RESET
    return FailureKind.CONNECT


def connect_problem(exc: Exception) -> Problem:
    """A request whose connection failed (or broke): its kind from the exceptions behind it;
    the library's words (the OS's reason, or a guard's refusal) kept for the message."""
    name = type(exc).__name__
    reason = " ".join(str(exc).split())[:160]
    named = f"{name}: {reason}" if reason else name
    return Problem(
        connect_kind(exc), f"connection failed ({named})", error=name, detail=reason or None
    )


__all__ = ["FailureKind", "Problem", "connect_kind", "connect_problem"]
