"""One MLS connection's HTTP: auth header, rate limiter, retries with capped exponential
backoff and full jitter, Retry-After and quota headers, circuit breaker and the caller's
deadline. Every wait goes through the injected ``sleep``; every time read through the
injected clocks."""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from mls_sync.reso.auth import ClientCredentials, TokenState
from mls_sync.reso.errors import (
    CircuitOpen,
    DeadlineReached,
    InvalidBaseUrl,
    MlsAuthError,
    MlsError,
    MlsMalformedPage,
    MlsProtocolError,
    MlsRateLimited,
    MlsUnavailable,
)
from mls_sync.reso.limits import (
    CircuitBreaker,
    Monotonic,
    RateLimiter,
    backoff_delay,
    parse_retry_after,
    quota_wait,
)
from mls_sync.reso.profiles import VendorProfile
from mls_sync.timeutil import Clock

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_loopback: bool, what: str = "base URL") -> str:
    """Only https; http and loopback hosts only when local mode allows loopback. The message
    names the URL's scheme and host, never its query (which may carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise InvalidBaseUrl(f"{what} has no host")
    loopback = is_loopback_host(host)
    if loopback and not allow_loopback:
        raise InvalidBaseUrl(f"{what} {parts.scheme}://{host} is a loopback host (local mode only)")
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise InvalidBaseUrl(f"{what} must be https, got {parts.scheme or 'no'} scheme for {host}")
    if parts.username or parts.password:
        raise InvalidBaseUrl(f"{what} must not carry credentials ({host})")
    return url.rstrip("/")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class Transport:
    """Sends requests for one connection. Counts MLS requests and token requests apart."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        base_url: str,
        profile: VendorProfile,
        tokens: TokenState,
        limiter: RateLimiter,
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
        self.retries = 0
        if isinstance(tokens.credentials, ClientCredentials):
            check_url(tokens.credentials.token_url, allow_loopback=allow_loopback, what="token URL")

    # ------------------------------------------------------------------ deadline

    def _fits(self, wait: float, deadline: float | None) -> bool:
        """A request may start only if it can also time out before the deadline."""
        return deadline is None or self.monotonic() + wait + self.timeout <= deadline

    def _request_timeout(self, deadline: float | None) -> httpx.Timeout:
        seconds = self.timeout
        if deadline is not None:
            seconds = max(0.001, min(seconds, deadline - self.monotonic()))
        return httpx.Timeout(seconds)

    # ------------------------------------------------------------------ auth

    def _authorization(self, deadline: float | None) -> str:
        token = self.tokens.cached()
        if token is None:
            token = self._fetch_token(deadline)
        return token

    def _fetch_token(self, deadline: float | None) -> str:
        creds = self.tokens.credentials
        assert isinstance(creds, ClientCredentials)
        form = {
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret.get_secret_value(),
        }
        if creds.scope:
            form["scope"] = creds.scope
        body = self._send(
            "POST", creds.token_url, data=form, deadline=deadline, authed=False, kind="token"
        )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise MlsAuthError(f"token endpoint of {self.host} answered without an access_token")
        expires_in = body.get("expires_in", 3600)
        try:
            lifetime = float(expires_in)
        except (TypeError, ValueError):
            lifetime = 3600.0
        self.tokens.store(token, lifetime)
        return token

    # ------------------------------------------------------------------ requests

    def get_json(
        self, url: str, params: Mapping[str, str] | None, *, deadline: float | None
    ) -> dict[str, Any]:
        """GET one MLS page (a URL we built, or a nextLink on the same origin)."""
        if _origin(url) != _origin(self.base_url):
            raise MlsProtocolError(f"{self.host} sent a nextLink to another origin; not followed")
        return self._send("GET", url, params=params, deadline=deadline, authed=True, kind="mls")

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        deadline: float | None,
        authed: bool,
        kind: str,
    ) -> dict[str, Any]:
        attempt = 0
        refreshed = False
        last_problem = ""
        last_retry_after: float | None = None
        while True:
            mls = kind == "mls"
            if mls:
                retry_in = self.breaker.retry_in()
                if retry_in > 0:
                    raise CircuitOpen(
                        f"circuit open for {self.host} after repeated failures; "
                        f"next try in {retry_in:.0f}s",
                        retry_in,
                    )
                wait = self.limiter.reserve()
                if not self._fits(wait, deadline):
                    self.limiter.refund()
                    raise DeadlineReached(f"no time left for another request to {self.host}")
                if wait > 0:
                    self.sleep(wait)
            elif not self._fits(0.0, deadline):
                raise DeadlineReached(f"no time left for a token request to {self.host}")
            headers = {"Accept": "application/json"}
            token = ""
            if authed:
                token = self._authorization(deadline)
                headers["Authorization"] = f"Bearer {token}"
            if mls:
                self.requests_made += 1
            else:
                self.token_requests += 1
            retry_after: float | None = None
            try:
                response = self.http.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=self._request_timeout(deadline),
                )
            except httpx.TimeoutException:
                last_problem = "timed out"
            except httpx.TransportError as exc:
                last_problem = f"connection failed ({type(exc).__name__})"
            else:
                status = response.status_code
                if mls:
                    hold = quota_wait(response.headers, self.profile.quota_headers, self.clock())
                    if hold:
                        self.limiter.block_for(hold)
                if status == 401 and authed and not self.tokens.static and not refreshed:
                    # Expired or revoked early: one fresh token, then the same request again.
                    refreshed = True
                    self.tokens.invalidate(token)
                    continue
                if status in (401, 403):
                    detail = "token endpoint" if not authed else "MLS"
                    raise MlsAuthError(
                        f"{detail} of {self.host} refused the credentials ({status})"
                    )
                if status == 429 or status >= 500:
                    retry_after = parse_retry_after(
                        response.headers.get("Retry-After"), self.clock()
                    )
                    last_problem = f"HTTP {status}"
                    if status == 429:
                        last_retry_after = retry_after
                elif status >= 400:
                    if not authed and status in (400, 401):
                        raise MlsAuthError(f"token endpoint of {self.host} refused ({status})")
                    raise MlsProtocolError(
                        f"{self.host} refused the query ({status}): {response.text[:200]!r}"
                    )
                else:
                    try:
                        body = json.loads(response.content)
                    except (ValueError, UnicodeDecodeError):
                        last_problem = "page is not valid JSON"
                    else:
                        if isinstance(body, dict):
                            if mls:
                                self.breaker.success()
                            return body
                        last_problem = "page is not a JSON object"
            attempt += 1
            self.retries += 1
            if attempt >= self.max_attempts:
                if mls:
                    self.breaker.failure()
                raise self._give_up(last_problem, last_retry_after, attempt)
            if retry_after is not None and mls:
                # The limiter carries the wait, so every connection on this token honours it.
                self.limiter.block_for(retry_after)
                delay = 0.0
            elif retry_after is not None:
                delay = retry_after
            else:
                delay = backoff_delay(attempt - 1, self.rng)
            if not self._fits(delay, deadline):
                raise DeadlineReached(
                    f"{self.host}: {last_problem}; no time left to retry before the deadline"
                )
            if delay > 0:
                self.sleep(delay)

    def _give_up(self, problem: str, retry_after: float | None, attempts: int) -> MlsError:
        message = f"{self.host}: {problem} after {attempts} attempts"
        if problem == "HTTP 429":
            return MlsRateLimited(message, retry_after)
        if "JSON" in problem:
            return MlsMalformedPage(message)
        return MlsUnavailable(message)
