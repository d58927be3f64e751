"""A loopback simulator of the platform APIs that the publisher calls.

One HTTP server plays three hosts, told apart by path:

- Graph API (Facebook Page posts and Instagram media, Facebook Login path):
  ``DELETE /{version}/{object-id}`` and ``GET /{version}/me``;
- LinkedIn REST: ``DELETE /rest/posts/{url-encoded urn}``;
- LinkedIn OAuth: ``POST /oauth/v2/accessToken`` (``grant_type=refresh_token``).

It answers with the documented payloads (domain.md Part 3): Graph error objects with codes
and subcodes, Meta usage headers, LinkedIn's ``serviceErrorCode`` bodies and header-less
429s, OAuth ``invalid_grant``. State is scriptable from tests in-process (``add_post``,
``revoke``, ``fail_next``...) and, for a simulator in another process, through a small JSON
API under ``/_sim/``. Every request is logged without its secrets.

Run in-process::

    with PlatformSimulator() as sim:
        sim.add_post("facebook", "123_456", token="page-token")
        env = sim.env()   # FACEBOOK_GRAPH_URL=..., MLS_SYNC_ALLOW_LOOPBACK=true, ...
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from mls_sync.timeutil import Clock, utc_now

from mls_sync_local.serving import Serving
from mls_sync_local.sim.stack_source import StackSource

Family = Literal["graph", "linkedin"]
PostState = Literal["exists", "deleted", "not_deletable"]
TokenState = Literal["active", "revoked", "expired"]
# Where the Graph side reads the access token. "any" (default) is what graph.facebook.com
# does; "query" plays a server written from reference pages that only show ?access_token=.
GraphAuthFrom = Literal["any", "header", "query"]
Route = Literal[
    "facebook", "instagram", "graph", "graph_me", "linkedin", "linkedin_oauth", "admin", "unknown"
]

PLATFORM_FAMILY: dict[str, Family] = {
    "facebook": "graph",
    "instagram": "graph",
    "linkedin": "linkedin",
}
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
SECRET_FIELDS = frozenset({"access_token", "refresh_token", "client_secret", "appsecret_proof"})
LINKEDIN_ACCESS_SECONDS = 60 * 86_400
LINKEDIN_REFRESH_SECONDS = 365 * 86_400
_GRAPH_PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)$")


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a token, for logs and assertions."""
    return hashlib.sha256(secret.encode()).hexdigest()[:10]


@dataclass
class SimToken:
    family: Family
    account: str
    state: TokenState = "active"
    expires_at: datetime | None = None


@dataclass
class SimRefreshToken:
    account: str
    state: TokenState = "active"
    expires_at: datetime | None = None


@dataclass
class SimPost:
    platform: str
    post_id: str
    account: str
    state: PostState = "exists"
    permalink: str | None = None
    delete_calls: int = 0
    deletions: int = 0  # effective deletes: 1 at most, unless the post is re-added


@dataclass
class Fault:
    remaining: int
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    route: str | None = None
    # True: the real request is carried out first (the post really goes), only the answer
    # is lost or replaced, as when a platform times out after doing the work.
    after_effect: bool = False


@dataclass(frozen=True)
class RequestRecord:
    at: datetime
    method: str
    path: str
    route: str
    headers: dict[str, str]
    query: dict[str, str]
    form: dict[str, str]
    token: str | None  # fingerprint of the bearer token, never the token
    status: int = 0


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def _graph_error(
    status: int, code: int, message: str, subcode: int | None = None, **extra: Any
) -> _Response:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "SimTrace0001",
        **extra,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return _Response(status, {"error": error})


def _linkedin_error(status: int, message: str, code: str, service_code: int) -> _Response:
    return _Response(
        status,
        {"status": status, "serviceErrorCode": service_code, "code": code, "message": message},
    )


def _redact_fields(values: Mapping[str, str]) -> dict[str, str]:
    return {k: ("[REDACTED]" if k.lower() in SECRET_FIELDS else v) for k, v in values.items()}


class PlatformSimulator:
    """The simulator's state and server. Thread-safe; use as a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = utc_now,
        graph_call_limit: int | None = None,
        graph_regain_minutes: int = 5,
        linkedin_daily_limit: int | None = None,
        linkedin_versions: frozenset[str] | None = None,
        linkedin_client: tuple[str, str] = ("sim-client-id", "sim-client-secret"),
        latency: float = 0.0,
        graph_auth_from: GraphAuthFrom = "any",
        graph_bool_bodies: bool = False,
        source: StackSource | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"the simulator binds to loopback only, not {host!r}")
        self.clock = clock
        # Rate limits: Graph counts calls per token (percent of this limit in the usage
        # headers); LinkedIn counts calls per UTC day and answers 429 without headers.
        self.graph_call_limit = graph_call_limit
        self.graph_regain_minutes = graph_regain_minutes
        self.linkedin_daily_limit = linkedin_daily_limit
        self.linkedin_versions = linkedin_versions
        self.linkedin_client = linkedin_client
        # Seconds every platform answer is held back (benchmarks: a platform's own latency).
        self.latency = latency
        # Variants of documented behaviour, off by default (conformance tests turn them on).
        self.graph_auth_from: GraphAuthFrom = graph_auth_from
        # True: a successful Graph DELETE answers the bare JSON `true` of older versions.
        self.graph_bool_bodies = graph_bool_bodies
        # None (strict, the default in-process): only tokens and posts added by the scripting
        # API exist. Otherwise what the source lists is learnt on a miss (stack_source.py).
        self.source = source
        self.source_errors = 0
        self._lock = threading.RLock()
        self._tokens: dict[str, SimToken] = {}
        self._refresh_tokens: dict[str, SimRefreshToken] = {}
        self._posts: dict[tuple[str, str], SimPost] = {}
        self._faults: list[Fault] = []
        self._log: list[RequestRecord] = []
        self._graph_calls: dict[str, int] = {}
        self._linkedin_calls: dict[str, int] = {}
        self._ids = itertools.count(1)
        self.refresh_calls = 0
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._serving = Serving(self._server, name="platform-sim", poll_interval=0.02)

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        host_text = f"[{text}]" if ":" in text else text
        return f"http://{host_text}:{port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point the platform clients here (local mode)."""
        return {
            "FACEBOOK_GRAPH_URL": self.url,
            "LINKEDIN_API_URL": self.url,
            "LINKEDIN_OAUTH_URL": self.url,
            "MLS_SYNC_ALLOW_LOOPBACK": "true",
        }

    def start(self) -> PlatformSimulator:
        self._serving.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._serving.stop()

    def __enter__(self) -> PlatformSimulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- scripting: tokens ---------------------------------------------------------------

    def add_token(
        self,
        platform: str,
        token: str,
        *,
        account: str | None = None,
        refresh_token: str | None = None,
        expires_at: datetime | None = None,
        refresh_expires_at: datetime | None = None,
    ) -> str:
        """Register an access token (and optionally its refresh token). Returns the token."""
        family = PLATFORM_FAMILY[platform]
        with self._lock:
            owner = account or f"acct-{fingerprint(token)}"
            self._tokens[token] = SimToken(family, owner, expires_at=expires_at)
            if refresh_token is not None:
                expiry = refresh_expires_at or self.clock() + timedelta(
                    seconds=LINKEDIN_REFRESH_SECONDS
                )
                self._refresh_tokens[refresh_token] = SimRefreshToken(owner, expires_at=expiry)
        return token

    def revoke(self, token: str) -> None:
        """The agent revoked access: the token (access or refresh) stops working."""
        with self._lock:
            if token in self._tokens:
                self._tokens[token].state = "revoked"
            if token in self._refresh_tokens:
                self._refresh_tokens[token].state = "revoked"

    def expire(self, token: str) -> None:
        with self._lock:
            if token in self._tokens:
                self._tokens[token].state = "expired"
            if token in self._refresh_tokens:
                self._refresh_tokens[token].state = "expired"

    def issued_tokens(self, account: str) -> list[str]:
        """Access tokens of an account, oldest first (refresh adds new ones)."""
        with self._lock:
            return [t for t, info in self._tokens.items() if info.account == account]

    # --- scripting: posts ----------------------------------------------------------------

    def add_post(
        self,
        platform: str,
        post_id: str,
        *,
        token: str,
        state: PostState = "exists",
        permalink: str | None = None,
    ) -> SimPost:
        """A published post that ``token`` (or any token of its account) may delete."""
        with self._lock:
            if token not in self._tokens:
                self.add_token(platform, token)
            sim_post = SimPost(platform, post_id, self._tokens[token].account, state, permalink)
            self._posts[(platform, post_id)] = sim_post
            return sim_post

    def post(self, platform: str, post_id: str) -> SimPost:
        with self._lock:
            return self._posts[(platform, post_id)]

    # --- scripting: faults and limits -----------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        delay: float = 0.0,
        after_effect: bool = False,
    ) -> None:
        """The next ``n`` matching requests get this answer instead of the real one.

        ``route`` narrows the match: facebook, instagram, graph (both and /me), graph_me,
        linkedin, linkedin_oauth. ``delay`` holds the answer back (use it to cause client
        timeouts; it ends early when the simulator stops). ``after_effect`` carries the
        request out before answering with the fault.
        """
        with self._lock:
            self._faults.append(
                Fault(n, status, body, dict(headers or {}), delay, route, after_effect)
            )

    def timeout_next(
        self,
        n: int,
        *,
        seconds: float = 5.0,
        route: str | None = None,
        after_effect: bool = False,
    ) -> None:
        self.fail_next(
            n,
            504,
            {"error": "sim timeout"},
            route=route,
            delay=seconds,
            after_effect=after_effect,
        )

    def throttle_next(
        self, n: int, *, platform: str = "facebook", code: int = 4, regain_minutes: int = 5
    ) -> None:
        """Graph throttle errors with a BUC usage header, or a LinkedIn header-less 429."""
        if PLATFORM_FAMILY[platform] == "linkedin":
            body = _linkedin_error(
                429, "Resource level throttle APPLICATION DAY limit reached", "TOO_MANY_REQUESTS", 0
            ).body
            self.fail_next(n, 429, body, route="linkedin")
            return
        resp = _graph_error(400, code, "Application request limit reached", is_transient=True)
        headers = self._usage_headers(100, regain_minutes)
        self.fail_next(n, resp.status, resp.body, headers=headers, route=platform)

    def reset_usage(self) -> None:
        with self._lock:
            self._graph_calls.clear()
            self._linkedin_calls.clear()

    # --- inspection ------------------------------------------------------------------------

    def requests(self, route: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._log if route is None or r.route == route]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "url": self.url,
                "refreshCalls": self.refresh_calls,
                "posts": [asdict(p) for p in self._posts.values()],
                "tokens": [
                    {
                        "token": fingerprint(t),
                        "family": i.family,
                        "account": i.account,
                        "state": i.state,
                    }
                    for t, i in self._tokens.items()
                ],
                "requests": len(self._log),
            }

    # --- request handling ------------------------------------------------------------------

    def _route(self, method: str, path: str) -> Route:
        if path.startswith("/_sim/"):
            return "admin"
        if path.startswith("/rest/posts/"):
            return "linkedin"
        if path == "/oauth/v2/accessToken":
            return "linkedin_oauth"
        m = _GRAPH_PATH.match(path)
        if m is None:
            return "unknown"
        if m.group(2) == "me" and method == "GET":
            return "graph_me"
        object_id = unquote(m.group(2))
        with self._lock:
            for platform in ("facebook", "instagram"):
                if (platform, object_id) in self._posts:
                    return platform
        return "graph"

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                graph_like = fault.route == "graph" and route in (
                    "facebook",
                    "instagram",
                    "graph",
                    "graph_me",
                )
                if fault.route is None or fault.route == route or graph_like:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> _Response:
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        lowered = {k.lower(): v for k, v in headers.items()}
        form: dict[str, str] = {}
        if "application/x-www-form-urlencoded" in lowered.get("content-type", ""):
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        route = self._route(method, path)
        bearer = self._bearer(lowered, query, form, self._auth_from(route))
        if route == "admin":
            return self._admin(method, path, body)
        if self.source is not None and self._unknown(route, path, bearer, form):
            self.learn()
            route = self._route(method, path)
        fault = self._take_fault(route)
        if fault is not None and not fault.after_effect:
            resp = _Response(fault.status, fault.body, fault.headers, fault.delay)
        elif route == "linkedin_oauth":
            resp = self._linkedin_oauth(method, form)
        elif route == "linkedin":
            resp = self._linkedin_delete(method, path, lowered, bearer)
        elif route == "graph_me":
            resp = self._graph_me(bearer)
        elif route in ("facebook", "instagram", "graph"):
            resp = self._graph_delete(method, path, bearer)
        else:
            resp = _Response(404, {"error": f"simulator has no route {method} {path}"})
        if fault is not None and fault.after_effect:
            resp = _Response(fault.status, fault.body, fault.headers, fault.delay)
        if self.latency and not resp.delay:
            resp.delay = self.latency
        if route == "linkedin_oauth":
            with self._lock:
                self.refresh_calls += 1
        record = RequestRecord(
            at=self.clock(),
            method=method,
            path=path,
            route=route,
            headers={k: v for k, v in lowered.items() if k not in SECRET_HEADERS},
            query=_redact_fields(query),
            form=_redact_fields(form),
            token=fingerprint(bearer) if bearer else None,
            status=resp.status,
        )
        with self._lock:
            self._log.append(record)
        return resp

    def _unknown(
        self, route: Route, path: str, bearer: str | None, form: Mapping[str, str]
    ) -> bool:
        """Does the request name a token, refresh token or post the simulator lacks?"""
        with self._lock:
            if bearer is not None and bearer not in self._tokens:
                return True
            if route == "graph":  # a Graph object id that is no known post
                return True
            if route == "linkedin":
                return ("linkedin", unquote(path[len("/rest/posts/") :])) not in self._posts
            if route == "linkedin_oauth":
                return form.get("refresh_token", "") not in self._refresh_tokens
            return False

    def learn(self) -> None:
        """Adds what the source lists and the simulator does not know yet (never overriding
        what it knows: a deleted post stays deleted, a revoked token revoked)."""
        if self.source is None:
            return
        try:
            contents = self.source()
        except Exception:  # noqa: BLE001 - no stack (yet): strict for this request
            with self._lock:
                self.source_errors += 1
            return
        with self._lock:
            for known in contents.tokens:
                family = PLATFORM_FAMILY.get(known.platform)
                if family is None:
                    continue
                if known.token not in self._tokens:
                    self._tokens[known.token] = SimToken(
                        family, known.account, expires_at=known.expires_at
                    )
                if known.refresh_token and known.refresh_token not in self._refresh_tokens:
                    self._refresh_tokens[known.refresh_token] = SimRefreshToken(
                        known.account,
                        expires_at=self.clock() + timedelta(seconds=LINKEDIN_REFRESH_SECONDS),
                    )
            for post in contents.posts:
                key = (post.platform, post.post_id)
                if post.platform in PLATFORM_FAMILY and key not in self._posts:
                    self._posts[key] = SimPost(
                        post.platform, post.post_id, post.account, permalink=post.permalink
                    )

    def _auth_from(self, route: str) -> GraphAuthFrom:
        graph = route in ("facebook", "instagram", "graph", "graph_me")
        return self.graph_auth_from if graph else "any"

    @staticmethod
    def _bearer(
        headers: Mapping[str, str],
        query: Mapping[str, str],
        form: Mapping[str, str],
        via: GraphAuthFrom = "any",
    ) -> str | None:
        if via in ("any", "header"):
            auth = headers.get("authorization", "")
            for scheme in ("Bearer ", "OAuth "):
                if auth.startswith(scheme):
                    return auth[len(scheme) :].strip() or None
        if via in ("any", "query"):
            return query.get("access_token") or form.get("access_token")
        return None

    def _token_state(self, token: str | None, family: Family) -> TokenState | None:
        """None when unknown; otherwise the state, with expiry by the clock."""
        if token is None:
            return None
        info = self._tokens.get(token)
        if info is None or info.family != family:
            return None
        if (
            info.state == "active"
            and info.expires_at is not None
            and info.expires_at <= self.clock()
        ):
            return "expired"
        return info.state

    # --- Graph ---------------------------------------------------------------------------

    def _usage_headers(self, percent: int, regain_minutes: int) -> dict[str, str]:
        usage = {
            "call_count": percent,
            "total_cputime": min(percent, 5),
            "total_time": min(percent, 5),
        }
        buc = {
            "sim-business": [
                {"type": "pages", **usage, "estimated_time_to_regain_access": regain_minutes}
            ]
        }
        return {"X-App-Usage": json.dumps(usage), "X-Business-Use-Case-Usage": json.dumps(buc)}

    def _graph_auth_error(self, token: str | None) -> _Response | None:
        state = self._token_state(token, "graph")
        if token is None:
            return _graph_error(400, 104, "An access token is required to request this resource.")
        if state is None:
            return _graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if state == "revoked":
            return _graph_error(
                400,
                190,
                "Error validating access token: The session has been invalidated "
                "because the user changed their password or Facebook has changed the session "
                "for security reasons.",
                460,
            )
        if state == "expired":
            return _graph_error(
                400, 190, "Error validating access token: Session has expired.", 463
            )
        return None

    def _graph_delete(self, method: str, path: str, token: str | None) -> _Response:
        m = _GRAPH_PATH.match(path)
        if method != "DELETE" or m is None:
            return _graph_error(400, 100, "Unsupported request - method type: " + method.lower())
        object_id = unquote(m.group(2))
        with self._lock:
            auth_error = self._graph_auth_error(token)
            if auth_error is not None:
                return auth_error
            assert token is not None
            account = self._tokens[token].account
            calls = self._graph_calls.get(account, 0) + 1
            self._graph_calls[account] = calls
            sim_post = self._posts.get(("facebook", object_id)) or self._posts.get(
                ("instagram", object_id)
            )
            platform = sim_post.platform if sim_post else "facebook"
            limit = self.graph_call_limit
            percent = min(100, calls * 100 // limit) if limit else 1
            if limit is not None and calls > limit:
                code = 80002 if platform == "instagram" else 80001
                resp = _graph_error(
                    400,
                    code,
                    "There have been too many calls to this account. Wait a bit and try again.",
                    is_transient=True,
                )
                resp.headers.update(self._usage_headers(100, self.graph_regain_minutes))
                return resp
            headers = self._usage_headers(percent, 0)
            if sim_post is not None:
                sim_post.delete_calls += 1
            if sim_post is None or sim_post.state == "deleted" or sim_post.account != account:
                resp = _graph_error(
                    400,
                    100,
                    f"Unsupported delete request. Object with ID '{object_id}' does not exist, "
                    "cannot be loaded due to missing permissions, or does not support this "
                    "operation.",
                    33,
                )
                resp.headers.update(headers)
                return resp
            if sim_post.state == "not_deletable":
                if platform == "instagram":
                    resp = _graph_error(
                        400,
                        100,
                        "This media cannot be deleted",
                        2207073,
                        error_user_title="Cannot delete media",
                    )
                else:
                    resp = _Response(200, {"success": False})
                resp.headers.update(headers)
                return resp
            sim_post.state = "deleted"
            sim_post.deletions += 1
            if self.graph_bool_bodies:
                return _Response(200, b"true", headers)
            body: dict[str, Any] = {"success": True}
            if platform == "instagram":
                body["deleted_id"] = object_id
            return _Response(200, body, headers)

    def _graph_me(self, token: str | None) -> _Response:
        with self._lock:
            auth_error = self._graph_auth_error(token)
            if auth_error is not None:
                return auth_error
            assert token is not None
            return _Response(200, {"id": self._tokens[token].account, "name": "Sim Page"})

    # --- LinkedIn -------------------------------------------------------------------------

    def _linkedin_delete(
        self, method: str, path: str, headers: Mapping[str, str], token: str | None
    ) -> _Response:
        if method != "DELETE":
            return _linkedin_error(405, f"Method {method} not allowed", "METHOD_NOT_ALLOWED", 0)
        version = headers.get("linkedin-version")
        if not version:
            return _linkedin_error(
                400,
                "A version must be present. Please specify a version "
                "by adding the LinkedIn-Version header.",
                "VERSION_MISSING",
                0,
            )
        if (self.linkedin_versions is not None and version not in self.linkedin_versions) or (
            not re.fullmatch(r"\d{6}(\.\d{2})?", version)
        ):
            return _linkedin_error(
                426, f"Requested version {version} is not active", "NONEXISTENT_VERSION", 0
            )
        if headers.get("x-restli-protocol-version") != "2.0.0":
            return _linkedin_error(
                400, "X-Restli-Protocol-Version 2.0.0 is required", "INVALID_PROTOCOL_VERSION", 0
            )
        urn = unquote(path[len("/rest/posts/") :])
        with self._lock:
            state = self._token_state(token, "linkedin")
            if state is None:
                return _linkedin_error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
            if state == "expired":
                return _linkedin_error(
                    401, "The token used in the request has expired", "EXPIRED_ACCESS_TOKEN", 65601
                )
            if state == "revoked":
                return _linkedin_error(
                    401,
                    "The token used in the request has been revoked by the user",
                    "REVOKED_ACCESS_TOKEN",
                    65602,
                )
            assert token is not None
            account = self._tokens[token].account
            day = self.clock().astimezone(UTC).date().isoformat()
            calls = self._linkedin_calls.get(day, 0) + 1
            self._linkedin_calls[day] = calls
            if self.linkedin_daily_limit is not None and calls > self.linkedin_daily_limit:
                # LinkedIn sends no Retry-After or quota headers: the limit resets at 00:00 UTC.
                return _linkedin_error(
                    429,
                    "Resource level throttle APPLICATION DAY limit for "
                    "calls to this resource is reached.",
                    "TOO_MANY_REQUESTS",
                    0,
                )
            sim_post = self._posts.get(("linkedin", urn))
            if sim_post is None:
                return _linkedin_error(404, f"Not Found: {urn}", "NOT_FOUND", 0)
            sim_post.delete_calls += 1
            if sim_post.account != account or sim_post.state == "not_deletable":
                return _linkedin_error(
                    403,
                    "Not enough permissions to access: partnerApiPostsExternal.DELETE",
                    "ACCESS_DENIED",
                    100,
                )
            if sim_post.state == "exists":
                sim_post.state = "deleted"
                sim_post.deletions += 1
            # Deletes are idempotent: an already-deleted post answers 204 too.
            return _Response(204)

    def _linkedin_oauth(self, method: str, form: Mapping[str, str]) -> _Response:
        if method != "POST":
            return _Response(405, {"error": "invalid_request"})
        if form.get("grant_type") != "refresh_token":
            return _Response(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "only refresh_token is simulated",
                },
            )
        client_id, client_secret = self.linkedin_client
        if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
            return _Response(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
        refresh = form.get("refresh_token", "")
        with self._lock:
            info = self._refresh_tokens.get(refresh)
            now = self.clock()
            if (
                info is None
                or info.state != "active"
                or (info.expires_at is not None and info.expires_at <= now)
            ):
                return _Response(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "The provided authorization grant or refresh token "
                        "is invalid, expired or revoked.",
                    },
                )
            new_token = f"sim-li-access-{next(self._ids)}"
            self._tokens[new_token] = SimToken(
                "linkedin",
                info.account,
                expires_at=now + timedelta(seconds=LINKEDIN_ACCESS_SECONDS),
            )
            # Not sliding: the same refresh token, with what is left of its year.
            remaining = (
                int((info.expires_at - now).total_seconds())
                if info.expires_at
                else LINKEDIN_REFRESH_SECONDS
            )
            return _Response(
                200,
                {
                    "access_token": new_token,
                    "expires_in": LINKEDIN_ACCESS_SECONDS,
                    "refresh_token": refresh,
                    "refresh_token_expires_in": remaining,
                },
            )

    # --- admin API (for a simulator in another process) ------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> _Response:
        try:
            payload = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return _Response(400, {"error": "body is not JSON"})
        if not isinstance(payload, dict):
            return _Response(400, {"error": "body must be a JSON object"})
        try:
            if method == "GET" and path == "/_sim/state":
                return _Response(200, self.snapshot())
            if method == "GET" and path == "/_sim/requests":
                return _Response(
                    200, [{**asdict(r), "at": r.at.isoformat()} for r in self.requests()]
                )
            if method == "POST" and path == "/_sim/tokens":
                self.add_token(
                    payload["platform"],
                    payload["token"],
                    account=payload.get("account"),
                    refresh_token=payload.get("refreshToken"),
                )
                return _Response(204)
            if method == "POST" and path == "/_sim/posts":
                self.add_post(
                    payload["platform"],
                    payload["id"],
                    token=payload["token"],
                    state=payload.get("state", "exists"),
                    permalink=payload.get("permalink"),
                )
                return _Response(204)
            if method == "POST" and path == "/_sim/revoke":
                self.revoke(payload["token"])
                return _Response(204)
            if method == "POST" and path == "/_sim/fail":
                self.fail_next(
                    int(payload["n"]),
                    int(payload["status"]),
                    payload.get("body"),
                    headers=payload.get("headers"),
                    route=payload.get("route"),
                    delay=float(payload.get("delay", 0)),
                )
                return _Response(204)
        except (KeyError, TypeError, ValueError) as exc:
            return _Response(400, {"error": f"bad admin request: {exc}"})
        return _Response(404, {"error": f"no admin route {method} {path}"})

    def wait(self, seconds: float) -> None:
        """Hold an answer back; returns early when the simulator stops."""
        self._stopping.wait(seconds)


def _make_handler(sim: PlatformSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mls-sync-platform-sim/1"
        # Headers and body leave in one segment: unbuffered writes on a keep-alive connection
        # meet Nagle and the client's delayed ACK, adding ~40 ms to every answer after the
        # first (a latency no real platform has, which would swamp the benchmarks).
        wbufsize = -1
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            resp = sim.handle(self.command, self.path, dict(self.headers.items()), body)
            if resp.delay:
                sim.wait(resp.delay)
            payload = b""
            if resp.body is not None and resp.status != 204:
                payload = (
                    resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode()
                )
            try:
                self.send_response(resp.status, _reason(resp.status))
                if payload:
                    self.send_header("Content-Type", "application/json")
                for name, value in resp.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout we caused on purpose).
                self.close_connection = True

        do_GET = do_POST = do_DELETE = do_PUT = _serve  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
            # The simulator keeps its own redacted log; stderr noise helps nobody.
            return

    return Handler


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ready: Callable[[PlatformSimulator], None] | None = None,
    stop: threading.Event | None = None,
    source: StackSource | None = None,
) -> None:
    """Run the simulator in the foreground (``mls-sync sim platforms``).

    ``ready`` is called with the running simulator (default: print its URL and the
    ``export`` lines that point clients at it). ``source``: see ``PlatformSimulator``.
    Returns when ``stop`` is set or on Ctrl-C.
    """
    sim = PlatformSimulator(host=host, port=port, source=source)
    with sim:
        if ready is None:
            print(f"# platform simulator at {sim.url}", flush=True)
            for name, value in sim.env().items():
                print(f"export {name}={value}", flush=True)
        else:
            ready(sim)
        waiter = stop or threading.Event()
        try:
            while not waiter.wait(0.5):
                pass
        except KeyboardInterrupt:
            return
