"""LinkedIn post deletion and token refresh: each documented answer to one Outcome."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from mls_sync.platforms.base import (
    AlreadyGone,
    Deleted,
    Outcome,
    RateLimited,
    RefreshError,
    RefreshNotSupported,
)
from mls_sync.platforms.linkedin import AppCredentialsError, AppSource, LinkedInClient, OAuthApp
from pydantic import SecretStr

from tests.unit.platforms.helpers import (
    NOW,
    SETTINGS,
    TOKEN,
    Recorder,
    account,
    json_response,
    post,
)

URN = "urn:li:share:7123456789"
APP = OAuthApp(client_id="app-id", client_secret=SecretStr("app-secret-value"))
REFRESH = SecretStr("AQX-refresh-token-value")


def _client(
    rec: Recorder, *, app: OAuthApp | AppSource | None = APP, attempts: int = 1
) -> LinkedInClient:
    return LinkedInClient(settings=SETTINGS, http=rec.http(attempts=attempts), app=app)


def _delete(*responses: httpx.Response, attempts: int = 1) -> tuple[Outcome, Recorder]:
    rec = Recorder(list(responses))
    return _client(rec, attempts=attempts).delete_post(account("linkedin"), post(URN)), rec


def li_error(status: int, code: int, message: str) -> httpx.Response:
    return json_response(status, {"message": message, "serviceErrorCode": code, "status": status})


def test_delete_sends_the_required_headers_to_the_encoded_urn() -> None:
    outcome, rec = _delete(httpx.Response(204))
    (request,) = rec.requests
    assert request.method == "DELETE"
    assert request.url.raw_path == b"/rest/posts/urn%3Ali%3Ashare%3A7123456789"
    assert request.headers["LinkedIn-Version"] == "202608"
    assert request.headers["X-Restli-Protocol-Version"] == "2.0.0"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    # 204 is "gone", not provably "deleted by us"
    assert isinstance(outcome, Deleted)
    assert not outcome.confirmed
    assert "gone" in outcome.reason


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (li_error(404, 0, "Not Found"), "already_gone"),
        (li_error(401, 65600, "Invalid access token"), "reauth_required"),
        (li_error(403, 100, "Not enough permissions to access: DELETE /posts"), "permanent_error"),
        (li_error(426, 0, "Requested version 20230101 is not active"), "permanent_error"),
        (li_error(400, 0, "Invalid URN"), "permanent_error"),
        (li_error(500, 0, "Internal error"), "transient"),
        (httpx.Response(503), "transient"),
        (httpx.Response(504), "transient"),
    ],
)
def test_error_mapping(response: httpx.Response, kind: str) -> None:
    outcome, _ = _delete(response)
    assert outcome.kind == kind


def test_404_is_already_gone() -> None:
    outcome, _ = _delete(li_error(404, 0, "Not Found"))
    assert isinstance(outcome, AlreadyGone)


def test_429_without_headers_waits_until_midnight_utc() -> None:
    outcome, rec = _delete(li_error(429, 0, "Resource level throttle limit reached"), attempts=3)
    assert isinstance(outcome, RateLimited)
    # 17:04:05 UTC → next 00:00 UTC is 6 h 55 min 55 s away
    assert outcome.retry_after == 6 * 3600 + 55 * 60 + 55
    assert len(rec.requests) == 1


def test_429_with_retry_after_honours_it() -> None:
    outcome, _ = _delete(httpx.Response(429, headers={"Retry-After": "30"}))
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 30


def test_refresh_posts_the_documented_form_and_builds_a_token() -> None:
    rec = Recorder(
        [
            json_response(
                200,
                {
                    "access_token": "AQV-new-access",
                    "expires_in": 5_184_000,
                    "refresh_token": "AQX-refresh-token-value",
                    "refresh_token_expires_in": 31_000_000,
                },
            )
        ]
    )
    token = _client(rec).refresh(account("linkedin"), REFRESH)
    (request,) = rec.requests
    assert request.method == "POST"
    assert str(request.url) == "https://www.linkedin.com/oauth/v2/accessToken"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "AQX-refresh-token-value",
        "client_id": "app-id",
        "client_secret": "app-secret-value",
    }
    assert token.access_token.get_secret_value() == "AQV-new-access"
    assert token.expires_at == NOW + timedelta(days=60)
    assert token.refresh_expires_at == NOW + timedelta(seconds=31_000_000)


def test_refresh_keeps_the_old_refresh_token_when_none_is_returned() -> None:
    rec = Recorder([json_response(200, {"access_token": "AQV-new", "expires_in": 60})])
    token = _client(rec).refresh(account("linkedin"), REFRESH)
    assert token.refresh_token == REFRESH


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (
            json_response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The provided refresh token is invalid",
                },
            ),
            "reauth_required",
        ),
        (json_response(401, {"error": "invalid_client"}), "reauth_required"),
        (httpx.Response(429), "rate_limited"),
        (httpx.Response(503), "transient"),
        (json_response(200, {"unexpected": True}), "transient"),
    ],
)
def test_refresh_failures(response: httpx.Response, kind: str) -> None:
    rec = Recorder([response])
    with pytest.raises(RefreshError) as excinfo:
        _client(rec).refresh(account("linkedin"), REFRESH)
    assert excinfo.value.outcome.kind == kind
    text = str(excinfo.value) + repr(excinfo.value)
    assert "AQX-refresh-token-value" not in text
    assert "app-secret-value" not in text


def test_refresh_without_app_credentials_is_not_supported() -> None:
    client = _client(Recorder(), app=None)
    assert not client.supports_refresh
    with pytest.raises(RefreshNotSupported):
        client.refresh(account("linkedin"), REFRESH)


def test_app_credentials_from_a_source_are_read_on_each_refresh_not_before() -> None:
    reads: list[str] = []

    def source() -> OAuthApp:
        reads.append("read")
        return APP

    token = {"access_token": "AQV-new", "expires_in": 60}
    rec = Recorder([json_response(200, token), json_response(200, token)])
    client = _client(rec, app=source)
    assert client.supports_refresh
    assert reads == []  # nothing read to build the client
    client.refresh(account("linkedin"), REFRESH)
    client.refresh(account("linkedin"), REFRESH)
    assert reads == ["read", "read"]  # each time (the source has its own cache)
    form = {k: v[0] for k, v in parse_qs(rec.requests[0].content.decode()).items()}
    assert form["client_secret"] == "app-secret-value"


def test_unreadable_app_credentials_fail_the_refresh_as_transient_without_calling() -> None:
    def source() -> OAuthApp:
        raise AppCredentialsError("app secret arn:...:linkedin-app cannot be read")

    rec = Recorder([])
    with pytest.raises(RefreshError) as excinfo:
        _client(rec, app=source).refresh(account("linkedin"), REFRESH)
    # Ours to fix, retried, not a reason to ask the agent to reconnect
    assert excinfo.value.outcome.kind == "transient"
    assert "linkedin-app cannot be read" in excinfo.value.outcome.reason
    assert rec.requests == []


def test_transient_delete_failures_are_retried() -> None:
    outcome, rec = _delete(httpx.Response(503), httpx.Response(204), attempts=3)
    assert isinstance(outcome, Deleted)
    assert len(rec.requests) == 2
