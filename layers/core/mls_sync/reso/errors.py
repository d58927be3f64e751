"""Errors of the RESO client. Messages name the connection's host and what happened, never a
token or secret; what health and metrics need is on the error as typed fields, so nothing
downstream reads the message."""

from __future__ import annotations

from typing import Literal

from mls_sync.http.failures import Problem


class MlsError(Exception):
    """Base of every error the RESO client raises. ``problem`` is the last failed attempt
    and ``attempts`` how many were made, when retries were given up."""

    def __init__(
        self, message: str, *, problem: Problem | None = None, attempts: int | None = None
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.attempts = attempts


class InvalidBaseUrl(MlsError, ValueError):  # noqa: N818 - names from the issue's contract
    """A base or token URL that is not https (loopback allowed only in local mode)."""


class MlsAuthError(MlsError):
    """Credentials were refused (401/403 after one refresh, or the token endpoint said no).
    ``status`` and ``error_code`` (RFC 6749 §5.2 / RFC 6750 §3.1) are what the server said,
    when it said it; ``endpoint`` is who refused."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: Literal["MLS", "token endpoint"] = "MLS",
        status: int | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.error_code = error_code


class MlsRateLimited(MlsError):  # noqa: N818 - names from the issue's contract
    """The MLS kept answering 429, or the wait it asked for does not fit the deadline."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        problem: Problem | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(message, problem=problem, attempts=attempts)
        self.retry_after = retry_after


class MlsUnavailable(MlsError):  # noqa: N818 - names from the issue's contract
    """5xx, timeouts or unreadable pages persisted through every retry."""


class MlsMalformedPage(MlsUnavailable):
    """A page that is not valid JSON or not a RESO collection; the cursor never passes it."""


class MlsProtocolError(MlsError):
    """The server answered in a way the cursor cannot trust (e.g. unordered page, 400)."""


class MlsPageTooLarge(MlsProtocolError):  # noqa: N818 - beside MlsProtocolError
    """A response body larger than the limit (``VendorProfile.max_page_bytes`` for pages, a
    small fixed cap for the token endpoint). Reading stopped at the limit; not retried, since
    the same query would bring the same page: ask for smaller pages."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class MlsQueryRefused(MlsProtocolError):  # noqa: N818 - beside MlsProtocolError
    """The server refused a query as such (4xx other than auth), e.g. an operator it lacks."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CircuitOpen(MlsError):  # noqa: N818 - names from the issue's contract
    """The connection failed repeatedly; no request is sent until the breaker cools down."""

    def __init__(self, message: str, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class DeadlineReached(MlsError):  # noqa: N818 - names from the issue's contract
    """No further request fits before the caller's deadline. Pages already yielded stand."""
