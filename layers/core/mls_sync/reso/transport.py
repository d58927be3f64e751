"""One MLS connection's HTTP: auth header, rate limiter, retries with capped exponential
backoff and full jitter, Retry-After and quota headers, circuit breaker and the caller's
deadline, a total time budget and a size cap per response, and the server's clock from its
``Date`` header. Every wait goes through the injected ``sleep``; every time read through the
injected clocks (plus one real-time timer that cuts a socket whose response outlasts its
budget)."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import socket
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

import httpx

from mls_sync import netpolicy
from mls_sync.reso.auth import ClientCredentials, TokenState
from mls_sync.reso.errors import (
    CircuitOpen,
    DeadlineReached,
    InvalidBaseUrl,
    MlsAuthError,
    MlsError,
    MlsMalformedPage,
    MlsPageTooLarge,
    MlsProtocolError,
    MlsQueryRefused,
    MlsRateLimited,
    MlsUnavailable,
)
from mls_sync.reso.limits import (
    CircuitBreaker,
    Limiter,
    Monotonic,
    backoff_delay,
    parse_retry_after,
)
from mls_sync.reso.odata import encode_query, error_detail, www_authenticate_error
from mls_sync.reso.profiles import VendorProfile
from mls_sync.timeutil import Clock

# OAuth2 errors after which the other client-authentication method is worth one try: the
# server did not recognise how we authenticated (RFC 6749 §5.2).
_RETRY_OTHER_METHOD = {"invalid_client", "invalid_request", "unauthorized_client", None}


TOKEN_MAX_BYTES = 1_000_000
"""Largest token endpoint answer read: a token response is a few hundred bytes."""
ERROR_BODY_BYTES = 65_536
"""Of a non-2xx body only this much is read (its message is cut to 200 characters anyway)."""
_PIECE = 65_536
"""Largest piece decoded at once, so a gzip bomb cannot inflate past the cap in one go."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


class _TooSlow(Exception):  # noqa: N818 - internal signal, never escapes the transport
    def __init__(self, budget: float) -> None:
        super().__init__(f"response took longer than {budget:g}s")
        self.budget = budget


class _Undecodable(Exception):  # noqa: N818 - internal signal, never escapes the transport
    pass


class _Watchdog:
    """Shuts a response's socket down when its time budget runs out (real time), so a read
    blocked on a dripping server returns. Without a socket (mock transports) it does
    nothing: the checks between chunks, on the injected clock, still apply."""

    def __init__(self, response: httpx.Response, seconds: float) -> None:
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._sock: socket.socket | None = None
        stream = response.extensions.get("network_stream")
        get_info = getattr(stream, "get_extra_info", None)
        sock = get_info("socket") if callable(get_info) else None
        if isinstance(sock, socket.socket):
            self._sock = sock
            self._timer = threading.Timer(max(0.0, seconds), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done or self._sock is None:
                return
            self.fired = True
            # The plain socket's shutdown (not SSLSocket's, which drops its TLS state under
            # the reading thread): the blocked read returns, the fd stays ours.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def cancel(self) -> bool:
        """Stops the timer; True if it had already cut the socket."""
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()
        return self.fired


def _content_length(headers: httpx.Headers) -> int | None:
    value = (headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _size(limit: int) -> str:
    if limit >= 1_000_000:
        return f"{limit / 1_000_000:g} MB"
    return f"{limit:,} bytes"


def _decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body as it arrives, decoded, in pieces of at most ``_PIECE`` bytes for gzip and
    deflate (httpx would inflate a whole network read at once: up to ~1000x its size)."""
    try:
        content = response.content  # a response already read (mock transports)
    except httpx.ResponseNotRead:
        pass
    else:
        yield content
        return
    coding = (response.headers.get("Content-Encoding") or "").strip().lower()
    if coding in ("", "identity"):
        yield from response.iter_raw()
        return
    if coding not in ("gzip", "x-gzip", "deflate"):
        yield from response.iter_bytes()  # never asked for; httpx decodes it
        return
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding != "deflate" else None
    try:
        for chunk in response.iter_raw():
            if inflater is None:  # deflate: zlib-wrapped (RFC 9110) or raw (seen in practice)
                wrapped = (
                    len(chunk) >= 2
                    and chunk[0] & 0x0F == 8
                    and (chunk[0] << 8 | chunk[1]) % 31 == 0
                )
                inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data = chunk
            while data:
                out = inflater.decompress(data, _PIECE)
                if out:
                    yield out
                elif inflater.unconsumed_tail == data:
                    break
                data = inflater.unconsumed_tail
        if inflater is not None:
            tail = inflater.flush()
            if tail:
                yield tail
    except zlib.error:
        raise _Undecodable(f"{coding} body could not be decoded") from None


class _TokenRefused(Exception):  # noqa: N818 - internal signal, never escapes the transport
    def __init__(self, status: int, error: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def basic_credentials(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret form-urlencoded, then joined and base64-encoded."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _oauth_error(content: bytes) -> str | None:
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, str) else None


def _lifetime(value: object, default: float = 3600.0) -> float:
    """``expires_in`` as seconds: a number or a numeric string (both seen); missing, unreadable
    or non-positive → ``default`` (a 401 still forces a refresh if that guess is long)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float | str):
        try:
            seconds = float(value)
        except ValueError:
            return default
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    return default


def check_url(url: str, *, allow_loopback: bool, what: str = "base URL") -> str:
    """The outbound policy (``mls_sync.netpolicy``): https and a public DNS name; http and
    loopback hosts only when local mode allows loopback. The message names the URL's scheme
    and host, never its query (which may carry a token)."""
    try:
        return netpolicy.check_url(url, allow_loopback=allow_loopback, what=what)
    except netpolicy.OutboundRefusedError as exc:
        raise InvalidBaseUrl(str(exc)) from None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def same_service(url: str, base_url: str) -> str:
    """``url`` if it is on the base URL's origin. A server behind a TLS-terminating proxy may
    write its nextLinks with ``http://`` and the same host: that link is upgraded to https
    (never the reverse). Any other origin is refused, so the token never leaves the MLS."""
    scheme, host, port = _origin(url)
    b_scheme, b_host, b_port = _origin(base_url)
    if host == b_host and scheme == "http" and b_scheme == "https" and port in (80, b_port):
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if parts.port == 80:
            netloc = netloc.rsplit(":", 1)[0]
        return urlunsplit(("https", netloc, parts.path, parts.query, ""))
    if (scheme, host, port) != (b_scheme, b_host, b_port):
        raise MlsProtocolError(f"{b_host} sent a nextLink to another origin ({host}); not followed")
    return url


def build_url(url: str, params: Mapping[str, str] | None) -> str:
    """The request URL: our own encoding of the query (see :func:`encode_query`), never the
    HTTP library's (which writes ``%24filter`` and ``+`` for spaces)."""
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{encode_query(params)}"


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
        self.retries = 0
        self.server_date: datetime | None = None
        """The MLS's clock (aware UTC) from the ``Date`` header of its last response."""
        self._server_date_at: float = 0.0
        if isinstance(tokens.credentials, ClientCredentials):
            check_url(tokens.credentials.token_url, allow_loopback=allow_loopback, what="token URL")

    # ------------------------------------------------------------------ server clock

    def _note_server_date(self, headers: httpx.Headers) -> None:
        """Remembers the MLS's ``Date`` header (RFC 7231 HTTP-date); unreadable ones are
        ignored."""
        value = headers.get("Date")
        if not value:
            return
        try:
            date = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if date.tzinfo is None:  # "-0000" in RFC 5322 terms: UTC, source unknown
            date = date.replace(tzinfo=UTC)
        self.server_date = date.astimezone(UTC)
        self._server_date_at = self.monotonic()

    def server_now(self) -> datetime:
        """The MLS's current time: its last ``Date`` header advanced by the (monotonic) time
        since it arrived; our own clock until the MLS has sent one."""
        if self.server_date is None:
            return self.clock()
        elapsed = max(0.0, self.monotonic() - self._server_date_at)
        try:
            return self.server_date + timedelta(seconds=elapsed)
        except OverflowError:
            return self.server_date

    # ------------------------------------------------------------------ deadline

    def _fits(self, wait: float, deadline: float | None) -> bool:
        """A request may start only if it can also time out before the deadline."""
        return deadline is None or self.monotonic() + wait + self.timeout <= deadline

    # ------------------------------------------------------------------ auth

    def _authorization(self, deadline: float | None) -> str:
        token = self.tokens.cached()
        if token is None:
            token = self._fetch_token(deadline)
        return token

    def _token_methods(self, creds: ClientCredentials) -> list[str]:
        if creds.auth_method != "auto":
            return [creds.auth_method]
        first = self.tokens.cache.method(self.tokens.key) or self.profile.token_auth_first
        return [first, "body" if first == "basic" else "basic"]

    def _fetch_token(self, deadline: float | None) -> str:
        creds = self.tokens.credentials
        assert isinstance(creds, ClientCredentials)
        refused: _TokenRefused | None = None
        for method in self._token_methods(creds):
            form = {"grant_type": "client_credentials"}
            headers: dict[str, str] = {}
            if method == "basic":
                headers["Authorization"] = basic_credentials(
                    creds.client_id, creds.client_secret.get_secret_value()
                )
            else:
                form["client_id"] = creds.client_id
                form["client_secret"] = creds.client_secret.get_secret_value()
            if creds.scope:
                form["scope"] = creds.scope
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
            except _TokenRefused as exc:
                refused = exc
                if exc.status == 401 or exc.error in _RETRY_OTHER_METHOD:
                    continue
                break
            self.tokens.cache.remember_method(self.tokens.key, method)
            return self._accept_token(body)
        assert refused is not None
        raise MlsAuthError(
            f"token endpoint of {self.host} refused the credentials "
            f"({refused.status}: {refused.detail})"
        )

    def _accept_token(self, body: dict[str, Any]) -> str:
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise MlsAuthError(f"token endpoint of {self.host} answered without an access_token")
        kind = body.get("token_type")
        # RFC 6749 §7.1: the type is case-insensitive; we can only send Bearer (RFC 6750).
        if isinstance(kind, str) and kind.strip().lower() != "bearer":
            raise MlsAuthError(
                f"token endpoint of {self.host} issued a {kind.strip()!r} token; only Bearer "
                "tokens are supported"
            )
        self.tokens.store(token, _lifetime(body.get("expires_in")))
        return token

    def _redact(self, text: str) -> str:
        """Server text may echo what we sent; no secret or token reaches a message."""
        secrets: list[str] = []
        creds = self.tokens.credentials
        if isinstance(creds, ClientCredentials):
            secrets.append(creds.client_secret.get_secret_value())
        else:
            secrets.append(creds.token.get_secret_value())
        cached = self.tokens.cached() if isinstance(creds, ClientCredentials) else None
        if cached:
            secrets.append(cached)
        for secret in secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

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
        mls = kind == "mls"
        attempt = 0
        refreshed = False
        last_problem = ""
        last_retry_after: float | None = None
        while True:
            self._admit(mls, deadline)
            sent = {"Accept": "application/json", "Accept-Encoding": "gzip", **(headers or {})}
            token = ""
            if authed:
                token = self._authorization(deadline)
                sent["Authorization"] = f"Bearer {token}"
            if mls:
                self.requests_made += 1
            else:
                self.token_requests += 1
            retry_after: float | None = None
            try:
                answer = self._exchange(
                    method, url, data=data, headers=sent, deadline=deadline, mls=mls
                )
            except httpx.TimeoutException:
                last_problem = "timed out"
            except _TooSlow as exc:
                last_problem = f"response took longer than {exc.budget:g}s (slow server)"
            except httpx.TransportError as exc:
                # The OS's words (refused, not found, the local guard's refusal) name the cause.
                reason = " ".join(str(exc).split())[:160]
                last_problem = f"connection failed ({type(exc).__name__}" + (
                    f": {reason})" if reason else ")"
                )
            except _Undecodable as exc:
                last_problem = f"page is not valid JSON ({exc})"
            else:
                if mls:
                    self._note_headers(answer.headers)
                if answer.status == 401 and authed and not self.tokens.static and not refreshed:
                    # Expired or revoked early: one fresh token, then the same request again.
                    refreshed = True
                    self.tokens.invalidate(token)
                    continue
                outcome = self._judge(answer, authed=authed, as_text=as_text)
                if isinstance(outcome, dict):
                    if mls:
                        self.breaker.success()
                    return outcome
                last_problem = outcome
                if answer.status == 429 or answer.status >= 500:
                    retry_after = parse_retry_after(answer.headers.get("Retry-After"), self.clock())
                    if answer.status == 429:
                        last_retry_after = retry_after
            attempt += 1
            self.retries += 1
            if attempt >= self.max_attempts:
                if mls:
                    self.breaker.failure()
                raise self._give_up(last_problem, last_retry_after, attempt)
            self._wait_to_retry(attempt, retry_after, last_problem, mls=mls, deadline=deadline)

    def _admit(self, mls: bool, deadline: float | None) -> None:
        """Breaker, rate limiter and deadline before one attempt (waits for the limiter)."""
        if not mls:
            if not self._fits(0.0, deadline):
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
        max_wait = None if deadline is None else deadline - self.monotonic() - self.timeout
        if not self.limiter.permit(max_wait, self.sleep):
            raise DeadlineReached(f"no time left for another request to {self.host}")

    def _wait_to_retry(
        self,
        attempt: int,
        retry_after: float | None,
        problem: str,
        *,
        mls: bool,
        deadline: float | None,
    ) -> None:
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
                f"{self.host}: {problem}; no time left to retry before the deadline"
            )
        if delay > 0:
            self.sleep(delay)

    def _note_headers(self, headers: httpx.Headers) -> None:
        """What every MLS answer tells us whatever its status: its clock and its quotas."""
        self._note_server_date(headers)
        self.limiter.note_headers(headers, self.profile.quota_headers, self.clock())

    def _judge(
        self, answer: _Answer, *, authed: bool, as_text: bool = False
    ) -> dict[str, Any] | str:
        """One complete answer: the JSON object of a good page (``{"text": …}`` with
        ``as_text``), a problem worth a retry, or an error raised."""
        status = answer.status
        if not authed and status in (400, 401):
            raise _TokenRefused(status, _oauth_error(answer.body), self._detail(answer))
        if status in (401, 403):
            what = "MLS" if authed else "token endpoint"
            challenge = www_authenticate_error(answer.headers.get("WWW-Authenticate"))
            why = f"{status}, {challenge}" if challenge else str(status)
            raise MlsAuthError(
                f"{what} of {self.host} refused the credentials ({why}: {self._detail(answer)})"
            )
        if 300 <= status < 400:
            location = urlsplit(answer.headers.get("Location", ""))
            raise MlsProtocolError(
                f"{self.host} redirected ({status}) to "
                f"{location.scheme}://{location.hostname}{location.path}; not followed "
                "(fix the base URL)"
            )
        if status == 429 or status >= 500:
            return f"HTTP {status} ({self._detail(answer)})"
        if status >= 400:
            raise MlsQueryRefused(
                f"{self.host} refused the query ({status}): {self._detail(answer)}", status
            )
        if as_text and status != 204:
            return {"text": answer.body.decode("utf-8", errors="replace")}
        if status == 204:
            return "page is not valid JSON (204 No Content)"
        try:
            body = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            return "page is not valid JSON"
        if isinstance(body, dict):
            return body
        return "page is not a JSON object"

    # ------------------------------------------------------------------ one exchange

    def _budget(self, deadline: float | None) -> float:
        """Seconds one request may take in all: the request timeout, or less before the
        caller's deadline."""
        seconds = self.timeout
        if deadline is not None:
            seconds = max(0.001, min(seconds, deadline - self.monotonic()))
        return seconds

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str],
        deadline: float | None,
        mls: bool,
    ) -> _Answer:
        """Sends one request and reads its whole body, within a total time budget and a size
        limit. httpx's timeouts bound each read, not the response: a server dripping a byte
        at a time would hold us for ever. So the body is streamed, the elapsed time checked
        between chunks (injected monotonic clock), and on a real socket a timer shuts the
        socket down when the budget runs out, so no single read can outlast it either."""
        budget = self._budget(deadline)
        started = self.monotonic()
        limit = self.profile.max_page_bytes if mls else TOKEN_MAX_BYTES
        request = self.http.build_request(
            method, url, data=data, headers=headers, timeout=httpx.Timeout(budget)
        )
        response = self.http.send(request, stream=True)
        watchdog: _Watchdog | None = None
        try:
            remaining = budget - (self.monotonic() - started)
            if remaining <= 0:
                raise _TooSlow(budget)
            watchdog = _Watchdog(response, remaining)
            cap = limit if 200 <= response.status_code < 300 else ERROR_BODY_BYTES
            truncate = cap != limit
            declared = _content_length(response.headers)
            if declared is not None and declared > cap and not truncate:
                raise self._too_large(limit, mls, declared=declared)
            body = bytearray()
            try:
                for chunk in _decoded(response):
                    body += chunk
                    if len(body) > cap:
                        if truncate:
                            del body[cap:]
                            break
                        raise self._too_large(limit, mls)
                    if self.monotonic() - started > budget:
                        raise _TooSlow(budget)
            except httpx.TransportError:
                if watchdog.cancel() or self.monotonic() - started > budget:
                    raise _TooSlow(budget) from None
                raise
            if watchdog.cancel():
                raise _TooSlow(budget)  # cut at the budget: the body may be incomplete
            return _Answer(response.status_code, response.headers, bytes(body))
        finally:
            if watchdog is not None:
                watchdog.cancel()
            response.close()

    def _too_large(self, limit: int, mls: bool, *, declared: int | None = None) -> MlsPageTooLarge:
        size = _size(limit)
        said = f" (Content-Length {declared:,})" if declared is not None else ""
        if mls:
            return MlsPageTooLarge(
                f"{self.host}: page larger than {size}{said} (limit max_page_bytes); "
                "ask for smaller pages",
                limit,
            )
        return MlsPageTooLarge(
            f"token endpoint of {self.host} answered more than {size}{said}; not a token",
            limit,
        )

    def _detail(self, answer: _Answer) -> str:
        return self._redact(error_detail(answer.body, answer.headers.get("Content-Type")))

    def _give_up(self, problem: str, retry_after: float | None, attempts: int) -> MlsError:
        message = f"{self.host}: {problem} after {attempts} attempts"
        if problem.startswith("HTTP 429"):
            return MlsRateLimited(message, retry_after)
        if "JSON" in problem:
            return MlsMalformedPage(message)
        return MlsUnavailable(message)
