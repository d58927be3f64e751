"""What Facebook and Instagram (Facebook Login path) share: the Graph API error vocabulary.

Error codes are data (:class:`GraphErrorCodes`), not branches scattered through the code:
Meta adds and renumbers codes, and a wrong guess should cost a configuration change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from mls_sync.platforms.base import (
    AccountRef,
    AlreadyGone,
    Deleted,
    NotSupported,
    Outcome,
    PermanentError,
    PostRef,
    RateLimited,
    ReauthRequired,
    RefreshNotSupported,
    Token,
    TokenCheckError,
    Transient,
    check_platform,
)
from mls_sync.platforms.http import (
    PlatformHttp,
    json_body,
    meta_wait_seconds,
    parse_retry_after,
    scrub,
)
from mls_sync.platforms.settings import PlatformSettings

DEFAULT_THROTTLE_WAIT = 15 * 60.0

_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class GraphErrorCodes:
    """Graph error codes by meaning (domain.md Part 3)."""

    # 4 app, 17 user, 32 Page, 613 custom, 341 application limit; 80000-80014 are the
    # Business Use Case throttles (80001 Pages, 80002 Instagram, the rest other products).
    rate_limited: frozenset[int] = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})
    token_dead: frozenset[int] = frozenset({190, 102})
    permission: frozenset[int] = frozenset({10, *range(200, 300)})
    transient: frozenset[int] = frozenset({1, 2})
    policy_block: frozenset[int] = frozenset({368})
    # Media the API cannot delete (Instagram: ads, carousel children). Seen as a code or
    # as a subcode, so both are checked.
    not_deletable: frozenset[int] = frozenset({2207073})
    # (code, subcode): "does not exist, cannot be loaded due to missing permissions, or
    # does not support this operation": gone, or invisible to this token.
    ambiguous_missing: frozenset[tuple[int, int]] = frozenset({(100, 33)})
    # Codes meaning the same without a subcode: 803 "Some of the aliases you requested do
    # not exist".
    ambiguous_codes: frozenset[int] = frozenset({803})
    # 104 "An access token is required": the server did not read our Authorization header.
    token_not_seen: frozenset[int] = frozenset({104})


@dataclass(frozen=True, slots=True)
class GraphError:
    code: int | None
    subcode: int | None
    message: str
    is_transient: bool
    http_status: int

    def describe(self) -> str:
        sub = f"/{self.subcode}" if self.subcode is not None else ""
        return f"Graph error {self.code}{sub} (HTTP {self.http_status}): {self.message}"


def _int(value: Any) -> int | None:
    """Graph codes are documented as numbers; some servers spell them "190" or 190.0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def parse_graph_error(response: httpx.Response, secrets: list[SecretStr]) -> GraphError | None:
    body = json_body(response)
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    err = body["error"]
    message = " ".join(
        str(err[k]) for k in ("message", "error_user_title", "error_user_msg") if err.get(k)
    )
    return GraphError(
        code=_int(err.get("code")),
        subcode=_int(err.get("error_subcode")),
        message=scrub(message, secrets),
        is_transient=_flag(err.get("is_transient")),
        http_status=response.status_code,
    )


class _Ambiguous:
    """100/33: the caller must check the token before calling it gone."""

    def __init__(self, error: GraphError) -> None:
        self.error = error


class _TokenNotSeen:
    """104: the server wants the token as the ``access_token`` parameter."""

    def __init__(self, error: GraphError) -> None:
        self.error = error


@dataclass
class GraphClient:
    """Graph API DELETE of one object (a Page post or an IG media), shared by both
    Graph-based platforms. Subclasses set ``platform`` and what counts as success."""

    settings: PlatformSettings
    http: PlatformHttp = field(repr=False)
    codes: GraphErrorCodes = field(default_factory=GraphErrorCodes, repr=False)
    throttle_default_wait: float = DEFAULT_THROTTLE_WAIT
    platform: str = "graph"
    supports_refresh: bool = False

    # --- interface -------------------------------------------------------------------

    def delete_post(self, account: AccountRef, post: PostRef) -> Outcome:
        check_platform(self.platform, account)
        early = self._before_delete(account, post)
        if early is not None:
            return early
        secrets = [account.access_token]
        result = self._send(
            "DELETE",
            post.platform_post_id,
            account.access_token,
            classify=lambda r: self._classify_delete(r, post, secrets),
        )
        if isinstance(result, _Ambiguous):
            return self._resolve_ambiguous(account, result.error)
        if isinstance(result, _TokenNotSeen):
            return PermanentError(
                reason=f"{result.error.describe()}; the token was refused in both places",
                http_status=result.error.http_status,
                error_code=result.error.code,
                error_subcode=result.error.subcode,
            )
        return result

    def refresh(self, account: AccountRef, refresh_token: SecretStr) -> Token:  # noqa: ARG002
        raise RefreshNotSupported(
            f"{self.platform}: Graph Page tokens have no refresh token; the agent must log in again"
        )

    def verify_token(self, account: AccountRef) -> bool:
        """``GET /me`` with the token: 200 → alive; a token or permission error → dead."""
        check_platform(self.platform, account)
        secrets = [account.access_token]
        result = self._send(
            "GET",
            "me",
            account.access_token,
            params={"fields": "id"},
            classify=lambda r: self._classify_me(r, secrets),
        )
        if isinstance(result, bool):
            return result
        if isinstance(result, _TokenNotSeen):
            raise TokenCheckError(f"{self.platform}: token check failed: {result.error.describe()}")
        raise TokenCheckError(f"{self.platform}: token check failed: {result.reason}")

    # --- hooks -------------------------------------------------------------------------

    def _before_delete(self, account: AccountRef, post: PostRef) -> Outcome | None:  # noqa: ARG002
        return None

    def _success(self, body: dict[str, Any], post: PostRef) -> bool:  # noqa: ARG002
        return body.get("success") is True

    # --- internals ---------------------------------------------------------------------

    def _object_url(self, object_id: str) -> str:
        return (
            f"{self.settings.facebook_graph_url}/{self.settings.facebook_graph_version}/"
            f"{quote(object_id, safe='')}"
        )

    @staticmethod
    def _auth(token: SecretStr) -> dict[str, str]:
        # Header, not the access_token query parameter: URLs end up in logs and traces.
        return {"Authorization": f"Bearer {token.get_secret_value()}"}

    def _send(
        self,
        method: str,
        object_id: str,
        token: SecretStr,
        *,
        classify: Callable[[httpx.Response], _R],
        params: Mapping[str, str] | None = None,
    ) -> _R | Transient:
        """One Graph call, token in the Authorization header; when the server answers 104
        (no token seen), once more with the documented ``access_token`` query parameter.

        Graph's reference pages show the token as the ``access_token`` parameter; graph.facebook.com
        also reads ``Authorization: Bearer``, which keeps the token out of URLs. A server that
        only knows the parameter says 104, so this costs one extra call there and none here.
        The parameter rides in the URL: our logs record paths only, and httpx's URL log line
        is scrubbed (``mls_sync.http.redact``).
        """
        url = self._object_url(object_id)
        secrets = [token]
        result = self.http.call(
            method,
            url,
            headers=self._auth(token),
            params=params,
            classify=classify,
            secrets=secrets,
        )
        if not isinstance(result, _TokenNotSeen):
            return result
        return self.http.call(
            method,
            url,
            params={**(params or {}), "access_token": token.get_secret_value()},
            classify=classify,
            secrets=secrets,
        )

    def _classify_delete(
        self, response: httpx.Response, post: PostRef, secrets: list[SecretStr]
    ) -> Outcome | _Ambiguous | _TokenNotSeen:
        status = response.status_code
        if status == 200:
            body = json_body(response)
            # Older Graph versions (and some servers still) answer a bare JSON `true`/`false`.
            if body is True or (isinstance(body, dict) and self._success(body, post)):
                return Deleted(reason="deleted by our call", http_status=200)
            if body is False or (isinstance(body, dict) and body.get("success") is False):
                return PermanentError(
                    reason="Graph answered success false: the post was not deleted",
                    http_status=200,
                )
            if not isinstance(body, dict) or "error" not in body:
                # Empty or unreadable: maybe deleted, maybe not. A retry finds out (100/33).
                return Transient(reason="Graph answered 200 without a result", http_status=200)
        error = parse_graph_error(response, secrets)
        if error is None:
            return self._classify_bare_status(response)
        return self._classify_error(error, response, post)

    def _classify_error(
        self, error: GraphError, response: httpx.Response, post: PostRef
    ) -> Outcome | _Ambiguous | _TokenNotSeen:
        c = self.codes
        info = {
            "reason": error.describe(),
            "http_status": error.http_status,
            "error_code": error.code,
            "error_subcode": error.subcode,
        }
        code, sub = error.code, error.subcode
        # Throttle codes come flagged is_transient too: they must win, never be retried.
        if code in c.rate_limited or sub in c.rate_limited or error.http_status == 429:
            wait = meta_wait_seconds(
                response.headers, self.http.clock(), default=self.throttle_default_wait
            )
            return RateLimited(retry_after=wait, **info)
        if code in c.token_dead:
            return ReauthRequired(**info)
        if code in c.not_deletable or sub in c.not_deletable:
            return NotSupported(permalink=post.permalink, **info)
        if code is not None and sub is not None and (code, sub) in c.ambiguous_missing:
            return _Ambiguous(error)
        if code in c.ambiguous_codes:
            return _Ambiguous(error)
        if code in c.token_not_seen:
            return _TokenNotSeen(error)
        if code in c.permission:
            return ReauthRequired(**info)
        if code in c.policy_block:
            return PermanentError(**info)
        if error.is_transient or code in c.transient or error.http_status >= 500:
            return Transient(retry_after=self._retry_after(response), **info)
        return PermanentError(**info)

    def _retry_after(self, response: httpx.Response) -> float | None:
        return parse_retry_after(response.headers.get("retry-after"), self.http.clock())

    def _classify_bare_status(self, response: httpx.Response) -> Outcome:
        """An error answer without a readable Graph error object (not JSON, no ``error``).

        Graph puts an error's meaning in its body; without one only the status is known.
        401 is a rejected token and 429 a throttle (its wait from the usage headers or
        ``Retry-After``, seconds or HTTP-date, else the default). Anything else (a proxy's
        HTML, a truncated body) proves nothing about the post, so it is ``transient``: the
        queue retries it up to its receive limit, and only then is the post ``failed``.
        """
        status = response.status_code
        reason = f"HTTP {status} without a readable Graph error body"
        if status == 401:
            return ReauthRequired(reason=reason, http_status=status)
        if status == 429:
            wait = meta_wait_seconds(
                response.headers, self.http.clock(), default=self.throttle_default_wait
            )
            return RateLimited(retry_after=wait, reason=reason, http_status=429)
        return Transient(reason=reason, http_status=status, retry_after=self._retry_after(response))

    def _classify_me(
        self, response: httpx.Response, secrets: list[SecretStr]
    ) -> bool | Transient | _TokenNotSeen:
        error = parse_graph_error(response, secrets)
        if response.status_code == 200 and error is None:
            body = json_body(response)
            if isinstance(body, dict) and "id" in body:
                return True
            return Transient(reason="GET /me answered 200 without an id", http_status=200)
        if error is None:
            if response.status_code in (401, 403):
                return False
            return Transient(
                reason=f"GET /me: HTTP {response.status_code}", http_status=response.status_code
            )
        c = self.codes
        if error.code in c.token_not_seen:
            return _TokenNotSeen(error)
        if error.code in c.token_dead or error.code in c.permission:
            return False
        return Transient(reason=error.describe(), http_status=error.http_status)

    def _resolve_ambiguous(self, account: AccountRef, error: GraphError) -> Outcome:
        info = {
            "http_status": error.http_status,
            "error_code": error.code,
            "error_subcode": error.subcode,
        }
        try:
            healthy = self.verify_token(account)
        except TokenCheckError as exc:
            return Transient(reason=f"{error.describe()}; {exc}", **info)
        if healthy:
            return AlreadyGone(
                reason=f"{error.describe()}; the token is healthy (GET /me), so the post is gone",
                **info,
            )
        return ReauthRequired(
            reason=f"{error.describe()}; the token failed GET /me, so it cannot see the post",
            **info,
        )
