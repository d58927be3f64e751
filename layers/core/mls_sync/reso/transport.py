"""One MLS connection's HTTP: auth header, rate limiter, retries with capped exponential
backoff and full jitter, Retry-After and quota headers, circuit breaker and the caller's
deadline, and the server's clock from its ``Date`` header. Every wait goes through the
injected ``sleep``; every time read through the injected clocks.

Each failed attempt is a typed :class:`~mls_sync.http.failures.Problem`; the error raised
when retries run out is chosen from its kind and carries it, so nothing reads message text.
One exchange (time budget, size cap, decoding) is ``reso.exchange``; the token grant is
``reso.oauth``; which URLs may be called is ``reso.urls``."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from mls_sync.http.failures import FailureKind, Problem, connect_problem
from mls_sync.http.redact import scrub
from mls_sync.http.retry import Deadline
from mls_sync.http.retry_after import parse_retry_after
from mls_sync.reso.auth import ClientCredentials, TokenState
from mls_sync.reso.errors import (
    CircuitOpen,
    DeadlineReached,
    MlsAuthError,
    MlsError,
    MlsMalformedPage,
    MlsProtocolError,
    MlsQueryRefused,
    MlsRateLimited,
    MlsUnavailable,
)
from mls_sync.reso.exchange import (
    ERROR_BODY_BYTES,
    Answer,
    TooSlow,
    Undecodable,
    exchange,
    too_large,
)
from mls_sync.reso.limits import CircuitBreaker, Limiter, Monotonic, backoff_delay
from mls_sync.reso.oauth import (
    TOKEN_MAX_BYTES,
    TokenRefused,
    accept_token,
    basic_credentials,
    methods_to_try,
    oauth_error,
    token_request,
)
from mls_sync.reso.odata import error_detail, www_authenticate_error
from mls_sync.reso.profiles import VendorProfile
from mls_sync.reso.server_clock import ServerClock
from mls_sync.reso.urls import build_url, check_url, same_service
from mls_sync.timeutil import Clock

Outcome = dict[str, Any] | Problem
"""What one attempt comes to: the JSON object of a good answer, or why it failed."""


class Transport:
    """Sends requests for one connection. Counts MLS requests and token requests apart."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        base_url: str,
        profile: VendorProfile,
        tokens: TokenState,
        limiter: Limiter,
        breaker: CircuitBreaker,
        clock: Clock,
        sleep: Callable[[float], None],
        monotonic: Monotonic,
        rng: random.Random,
        timeout: float,
        max_attempts: int,
        allow_loopback: bool,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.host = urlsplit(base_url).hostname or "?"
        self.profile = profile
        self.tokens = tokens
        self.limiter = limiter
        self.breaker = breaker
        self.clock = clock
        self.sleep = sleep
        self.monotonic = monotonic
        self.rng = rng
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.allow_loopback = allow_loopback
        self.requests_made = 0
        self.token_requests = 0
        self._server_clock = ServerClock(clock, monotonic)
        if isinstance(tokens.credentials, ClientCredentials):
            check_url(tokens.credentials.token_url, allow_loopback=allow_loopback, what="token URL")

    @property
    def server_date(self) -> datetime | None:
        """The MLS's clock (aware UTC) from the ``Date`` header of its last response."""
        return self._server_clock.date

    def server_now(self) -> datetime:
        """The MLS's current time (see :class:`ServerClock`)."""
        return self._server_clock.now()

    # ------------------------------------------------------------------ auth

    def _fetch_token(self, deadline: float | None) -> str:
        creds = self.tokens.credentials
        assert isinstance(creds, ClientCredentials)
        refused: TokenRefused | None = None
        remembered = self.tokens.cache.method(self.tokens.key)
        for method in methods_to_try(creds, remembered, self.profile.token_auth_first):
            form, headers = token_request(creds, method)
            try:
                body = self._send(
                    "POST",
                    creds.token_url,
                    data=form,
                    headers=headers,
                    deadline=deadline,
                    authed=False,
                    kind="token",
                )
            except TokenRefused as exc:
                refused = exc
                if exc.other_method_may_do:
                    continue
                break
            self.tokens.cache.remember_method(self.tokens.key, method)
            token, seconds = accept_token(body, self.host)
            self.tokens.store(token, seconds)
            return token
        assert refused is not None
        raise refused.as_error(self.host)

    def _secrets(self) -> list[str]:
        """What must never reach a message: the client secret or static token, and the
        access token in use."""
        creds = self.tokens.credentials
        if not isinstance(creds, ClientCredentials):
            return [creds.token.get_secret_value()]
        cached = self.tokens.cached()
        return [creds.client_secret.get_secret_value(), *([cached] if cached else [])]

    # ------------------------------------------------------------------ requests

    def get_json(
        self,
        url: str,
        params: Mapping[str, str] | None,
        *,
        deadline: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """GET one MLS page (a URL we built, or an absolute nextLink on the same origin);
        ``headers`` are sent as well (e.g. ``Prefer: odata.maxpagesize``)."""
        # A nextLink is the server's to write: same origin as the base URL, and the outbound
        # policy again (the connection itself is checked on the resolved address).
        link = same_service(url, self.base_url)
        check_url(link, allow_loopback=self.allow_loopback, what="nextLink")
        target = build_url(link, params)
        return self._send(
            "GET", target, headers=headers, deadline=deadline, authed=True, kind="mls"
        )

    def get_text(self, url: str, *, deadline: float | None, accept: str = "application/xml") -> str:
        """GET one MLS document that is not a JSON page (``$metadata``'s CSDL XML), with the
        same guards, retries and counting as a page; the body decoded as UTF-8."""
        link = same_service(url, self.base_url)
        check_url(link, allow_loopback=self.allow_loopback, what="document URL")
        body = self._send(
            "GET",
            link,
            headers={"Accept": accept},
            deadline=deadline,
            authed=True,
            kind="mls",
            as_text=True,
        )
        return str(body["text"])

    def _send(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None,
        authed: bool,
        kind: str,
        as_text: bool = False,
    ) -> dict[str, Any]:
        """Attempts until an answer is good, an error is final, or the attempts (or the
        deadline) run out. A 401 with a refreshable token is tried once more, uncounted."""
        mls = kind == "mls"
        failures = 0
        refreshed = False
        throttled_for: float | None = None
        while True:
            self._admit(mls, deadline)
            sent = {"Accept": "application/json", "Accept-Encoding": "gzip", **(headers or {})}
            token = (self.tokens.cached() or self._fetch_token(deadline)) if authed else ""
            if authed:
                sent["Authorization"] = f"Bearer {token}"
            answer = self._attempt(method, url, data=data, headers=sent, deadline=deadline, mls=mls)
            if isinstance(answer, Problem):
                outcome: Outcome = answer
            elif answer.status == 401 and authed and not self.tokens.static and not refreshed:
                # Expired or revoked early: one fresh token, then the same request again.
                refreshed = True
                self.tokens.invalidate(token)
                continue
            else:
                outcome = self._judge(answer, authed=authed, as_text=as_text)
            if isinstance(outcome, dict):
                if mls:
                    self.breaker.success()
                return outcome
            failures += 1
            if outcome.kind is FailureKind.RATE_LIMITED:
                throttled_for = outcome.retry_after
            if failures >= self.max_attempts:
                if mls:
                    self.breaker.failure()
                raise self._give_up(outcome, throttled_for, failures)
            self._wait_to_retry(failures, outcome, mls=mls, deadline=deadline)

    def _admit(self, mls: bool, deadline: float | None) -> None:
        """Breaker, rate limiter and deadline before one attempt (waits for the limiter)."""
        left = Deadline(deadline, self.monotonic)
        if not mls:
            # A request may start only if it can also time out before the deadline.
            if not left.allows(0.0, then=self.timeout):
                raise DeadlineReached(f"no time left for a token request to {self.host}")
            return
        retry_in = self.breaker.retry_in()
        if retry_in > 0:
            raise CircuitOpen(
                f"circuit open for {self.host} after repeated failures; "
                f"next try in {retry_in:.0f}s",
                retry_in,
            )
        # The permit (per process, or shared by every worker on the credential) waits at most
        # until the request could still time out before the deadline.
        max_wait = None if deadline is None else left.left() - self.timeout
        if not self.limiter.permit(max_wait, self.sleep):
            raise DeadlineReached(f"no time left for another request to {self.host}")

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str],
        deadline: float | None,
        mls: bool,
    ) -> Answer | Problem:
        """One request: its complete answer, or why none came."""
        if mls:
            self.requests_made += 1
        else:
            self.token_requests += 1
        limit = self.profile.max_page_bytes if mls else TOKEN_MAX_BYTES
        try:
            answer = exchange(
                self.http,
                method,
                url,
                data=data,
                headers=headers,
                budget=Deadline(deadline, self.monotonic).cap(self.timeout, floor=0.001),
                limit=limit,
                monotonic=self.monotonic,
                too_large=lambda declared: too_large(self.host, limit, declared, page=mls),
            )
        except httpx.TimeoutException:
            return Problem(FailureKind.TIMED_OUT, "timed out")
        except TooSlow as exc:
            text = f"response took longer than {exc.budget:g}s (slow server)"
            return Problem(FailureKind.SLOW_SERVER, text)
        except httpx.TransportError as exc:
            return connect_problem(exc)
        except Undecodable as exc:
            return Problem(FailureKind.UNREADABLE, f"page is not valid JSON ({exc})")
        if mls:
            # What every MLS answer tells us whatever its status: its clock and its quotas.
            self._server_clock.note(answer.headers.get("Date"))
            self.limiter.note_headers(answer.headers, self.profile.quota_headers, self.clock())
        return answer

    def _wait_to_retry(
        self, failures: int, problem: Problem, *, mls: bool, deadline: float | None
    ) -> None:
        if problem.retry_after is not None and mls:
            # The limiter carries the wait, so every connection on this token honours it.
            self.limiter.block_for(problem.retry_after)
            delay = 0.0
        elif problem.retry_after is not None:
            delay = problem.retry_after
        else:
            delay = backoff_delay(failures - 1, self.rng)
        # A retry may start only if it can also time out before the deadline.
        if not Deadline(deadline, self.monotonic).allows(delay, then=self.timeout):
            raise DeadlineReached(
                f"{self.host}: {problem.text}; no time left to retry before the deadline"
            )
        if delay > 0:
            self.sleep(delay)

    def _judge(self, answer: Answer, *, authed: bool, as_text: bool = False) -> Outcome:
        """One complete answer: the JSON object of a good page (``{"text": …}`` with
        ``as_text``), a problem worth a retry, or an error raised."""
        status = answer.status
        if not authed and status in (400, 401):
            raise TokenRefused(status, oauth_error(answer.body), self._detail(answer))
        if status in (401, 403):
            self._refused(answer, authed=authed)
        if 300 <= status < 400:
            location = urlsplit(answer.headers.get("Location", ""))
            raise MlsProtocolError(
                f"{self.host} redirected ({status}) to "
                f"{location.scheme}://{location.hostname}{location.path}; not followed "
                "(fix the base URL)"
            )
        if status == 429 or status >= 500:
            return Problem(
                FailureKind.RATE_LIMITED if status == 429 else FailureKind.SERVER_ERROR,
                f"HTTP {status} ({self._detail(answer)})",
                status=status,
                retry_after=parse_retry_after(answer.headers.get("Retry-After"), self.clock()),
            )
        if status >= 400:
            raise MlsQueryRefused(
                f"{self.host} refused the query ({status}): {self._detail(answer)}", status
            )
        if as_text and status != 204:
            return {"text": answer.body.decode("utf-8", errors="replace")}
        if status == 204:
            return Problem(FailureKind.UNREADABLE, "page is not valid JSON (204 No Content)")
        try:
            body = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            return Problem(FailureKind.UNREADABLE, "page is not valid JSON")
        if isinstance(body, dict):
            return body
        return Problem(FailureKind.UNREADABLE, "page is not a JSON object")

    def _refused(self, answer: Answer, *, authed: bool) -> None:
        """A 401 or 403 that a fresh token did not cure (or that no token can)."""
        what: Literal["MLS", "token endpoint"] = "MLS" if authed else "token endpoint"
        challenge = www_authenticate_error(answer.headers.get("WWW-Authenticate"))
        why = f"{answer.status}, {challenge}" if challenge else str(answer.status)
        raise MlsAuthError(
            f"{what} of {self.host} refused the credentials ({why}: {self._detail(answer)})",
            endpoint=what,
            status=answer.status,
            error_code=challenge,
        )

    def _detail(self, answer: Answer) -> str:
        """The server's own words about an error, with our secrets taken out (it may echo
        what we sent)."""
        text = error_detail(answer.body, answer.headers.get("Content-Type"))
        return scrub(text, self._secrets())

    def _give_up(self, problem: Problem, throttled_for: float | None, attempts: int) -> MlsError:
        message = f"{self.host}: {problem.text} after {attempts} attempts"
        if problem.kind is FailureKind.RATE_LIMITED:
            return MlsRateLimited(message, throttled_for, problem=problem, attempts=attempts)
        if problem.kind is FailureKind.UNREADABLE:
            return MlsMalformedPage(message, problem=problem, attempts=attempts)
        return MlsUnavailable(message, problem=problem, attempts=attempts)


__all__ = [
    "ERROR_BODY_BYTES",
    "TOKEN_MAX_BYTES",
    "Transport",
    "basic_credentials",
    "build_url",
    "check_url",
    "same_service",
]
