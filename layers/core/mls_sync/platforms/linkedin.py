"""LinkedIn posts: ``DELETE {api}/rest/posts/{url-encoded urn}``, and token refresh.

LinkedIn deletes are idempotent: 204 answers both "deleted now" and "was already gone",
so a 204 is reported as :class:`Deleted` with ``confirmed=False``. Daily limits reset at
00:00 UTC and come without headers.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from mls_sync.platforms.base import (
    AccountRef,
    AlreadyGone,
    Deleted,
    Outcome,
    PermanentError,
    PostRef,
    RateLimited,
    ReauthRequired,
    RefreshError,
    RefreshNotSupported,
    Token,
    Transient,
    check_platform,
)
from mls_sync.platforms.http import (
    PlatformHttp,
    json_body,
    number,
    parse_retry_after,
    scrub,
    seconds_until_next_utc_midnight,
)
from mls_sync.platforms.settings import PlatformSettings


class OAuthApp(BaseModel):
    """The LinkedIn app's credentials (only approved partners get refresh tokens)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    client_secret: SecretStr


class _TokenResponse(BaseModel):
    access_token: SecretStr
    # Documented as always present; a token without it is still a token (expiry unknown,
    # so it is refreshed again when LinkedIn says 401).
    expires_in: int | None = None
    refresh_token: SecretStr | None = None
    refresh_token_expires_in: int | None = None


def _describe(response: httpx.Response, secrets: list[SecretStr | None]) -> str:
    body = json_body(response)
    parts: list[str] = []
    if isinstance(body, dict):
        parts.extend(
            f"{key}={body[key]}"
            for key in ("serviceErrorCode", "code", "error")
            if body.get(key) is not None
        )
        parts.extend(str(body[key]) for key in ("message", "error_description") if body.get(key))
    detail = ": " + " ".join(parts) if parts else ""
    return scrub(f"LinkedIn HTTP {response.status_code}{detail}", secrets)


def _readable_error(response: httpx.Response) -> bool:
    """Whether the answer is one of LinkedIn's error bodies (``{"message",
    "serviceErrorCode", "status"}``, or OAuth's ``{"error", "error_description"}``). Without
    one, only the status is known: a refusal must not be believed from a proxy's page."""
    body = json_body(response)
    return isinstance(body, dict) and any(
        body.get(key) is not None
        for key in ("message", "serviceErrorCode", "status", "code", "error")
    )


def _service_code(response: httpx.Response) -> int | None:
    body = json_body(response)
    value: Any = body.get("serviceErrorCode") if isinstance(body, dict) else None
    code = number(value)
    return int(code) if code is not None and code.is_integer() else None


# Lifetimes beyond this are read as this: datetime arithmetic overflows near year 9999.
_MAX_LIFETIME_SECONDS = 10 * 366 * 86_400


def _after(now: datetime, seconds: int | None) -> datetime | None:
    if seconds is None:
        return None
    return now + timedelta(seconds=min(max(0, seconds), _MAX_LIFETIME_SECONDS))


class AppCredentialsError(RuntimeError):
    """The app's credentials could not be had (their secret unreadable or malformed). The
    message names the secret, never a value."""


AppSource = Callable[[], OAuthApp]
"""Reads the app's credentials when a refresh needs them (raising AppCredentialsError)."""


@dataclass
class LinkedInClient:
    settings: PlatformSettings
    http: PlatformHttp = field(repr=False)
    app: OAuthApp | AppSource | None = None
    """The app's credentials, or where to read them on each refresh (the publisher's: its
    secret through the secrets cache, so a replaced app secret is used within its age, and
    an unreadable one fails LinkedIn refreshes only, not the publisher)."""
    platform: str = "linkedin"

    @property
    def supports_refresh(self) -> bool:
        return self.app is not None

    # --- delete ------------------------------------------------------------------------

    def delete_post(self, account: AccountRef, post: PostRef) -> Outcome:
        check_platform(self.platform, account)
        urn = quote(post.platform_post_id, safe="")
        secrets: list[SecretStr | None] = [account.access_token]
        return self.http.call(
            "DELETE",
            f"{self.settings.linkedin_api_url}/rest/posts/{urn}",
            headers={
                "Authorization": f"Bearer {account.access_token.get_secret_value()}",
                "LinkedIn-Version": self.settings.linkedin_version,
                "X-Restli-Protocol-Version": "2.0.0",
                "X-RestLi-Method": "DELETE",
            },
            classify=lambda r: self._classify_delete(r, secrets),
            secrets=secrets,
        )

    def _classify_delete(
        self, response: httpx.Response, secrets: list[SecretStr | None]
    ) -> Outcome:
        status = response.status_code
        info: dict[str, Any] = {"http_status": status, "error_code": _service_code(response)}
        if status in (200, 202, 204):
            return Deleted(
                confirmed=False,
                reason=(
                    f"LinkedIn answered {status}: the post is gone (LinkedIn answers a repeated"
                    " delete the same way, so this does not prove our call removed it)"
                ),
                **info,
            )
        reason = _describe(response, secrets)
        if status in (404, 410):
            return AlreadyGone(reason=reason, **info)
        if status == 401:
            return ReauthRequired(reason=reason, **info)
        if status == 429:
            return RateLimited(retry_after=self._throttle_wait(response), reason=reason, **info)
        if status == 403:
            return PermanentError(reason=f"no permission on this post: {reason}", **info)
        if status == 426:
            return PermanentError(
                reason=f"LinkedIn-Version {self.settings.linkedin_version} refused: {reason}",
                **info,
            )
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.http.clock())
        if status >= 500 or status == 408:
            return Transient(reason=reason, retry_after=retry_after, **info)
        if not _readable_error(response):
            # An unexpected status without LinkedIn's error body (a proxy's page, a cut-off
            # answer) proves nothing: retried up to the queue's receive limit.
            return Transient(
                reason=f"{reason} (no readable LinkedIn error body)",
                retry_after=retry_after,
                **info,
            )
        return PermanentError(reason=reason, **info)

    def _throttle_wait(self, response: httpx.Response) -> float:
        now = self.http.clock()
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        if retry_after is not None:
            return retry_after
        # Daily per-app and per-member limits reset at midnight UTC and say nothing else.
        return seconds_until_next_utc_midnight(now)

    # --- refresh -----------------------------------------------------------------------

    def refresh(self, account: AccountRef, refresh_token: SecretStr) -> Token:
        check_platform(self.platform, account)
        if self.app is None:
            raise RefreshNotSupported(
                "linkedin: no app credentials configured for refresh (only approved partners"
                " get refresh tokens)"
            )
        try:
            app = self.app() if callable(self.app) else self.app
        except AppCredentialsError as exc:
            # Ours to fix, not the agent's: retried (the queue's receive limit ends it).
            raise RefreshError(Transient(reason=f"linkedin: {exc}")) from None
        secrets: list[SecretStr | None] = [refresh_token, app.client_secret, account.access_token]
        result = self.http.call(
            "POST",
            f"{self.settings.linkedin_oauth_url}/oauth/v2/accessToken",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token.get_secret_value(),
                "client_id": app.client_id,
                "client_secret": app.client_secret.get_secret_value(),
            },
            classify=lambda r: self._classify_refresh(r, refresh_token, secrets),
            secrets=secrets,
        )
        if isinstance(result, Token):
            return result
        raise RefreshError(result)

    def _classify_refresh(
        self,
        response: httpx.Response,
        old_refresh: SecretStr,
        secrets: list[SecretStr | None],
    ) -> Token | Outcome:
        status = response.status_code
        if status == 200:
            try:
                body = _TokenResponse.model_validate(json_body(response))
            except ValidationError:
                return Transient(reason="LinkedIn token endpoint answered 200 without a token")
            now = self.http.clock()
            refresh_expires = _after(now, body.refresh_token_expires_in)
            return Token(
                access_token=body.access_token,
                # Not sliding: LinkedIn returns the same refresh token with its remaining
                # lifetime; keep ours when it returns none.
                refresh_token=body.refresh_token or old_refresh,
                expires_at=_after(now, body.expires_in),
                refresh_expires_at=refresh_expires,
            )
        reason = _describe(response, secrets)
        if status == 429:
            return RateLimited(
                retry_after=self._throttle_wait(response), reason=reason, http_status=status
            )
        if status >= 500 or status == 408:
            return Transient(reason=reason, http_status=status)
        if status != 401 and not _readable_error(response):
            # Not an OAuth error answer: nothing says the refresh token is dead.
            return Transient(
                reason=f"{reason} (no readable OAuth error body)",
                http_status=status,
                retry_after=parse_retry_after(
                    response.headers.get("retry-after"), self.http.clock()
                ),
            )
        # 400 invalid_grant / 401 invalid_client: the refresh token is expired or revoked.
        return ReauthRequired(reason=reason, http_status=status)
