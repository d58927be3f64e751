"""Answers the clients used to misread (issue 15, part 4): a throttle without an error body
ignoring ``Retry-After``, and an unreadable error body taken as a permanent refusal."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest
from mls_sync.platforms.base import Outcome, RateLimited, RefreshError, Transient
from mls_sync.platforms.facebook import FacebookClient
from mls_sync.platforms.instagram import InstagramClient
from mls_sync.platforms.linkedin import LinkedInClient, OAuthApp
from pydantic import SecretStr

from tests.unit.platforms.helpers import NOW, SETTINGS, Recorder, account, json_response, post

HTTP_DATE_IN_90_S = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
APP = OAuthApp(client_id="app-id", client_secret=SecretStr("app-secret-value"))


def _graph(*responses: httpx.Response, platform: str = "facebook") -> tuple[Outcome, Recorder]:
    rec = Recorder(list(responses))
    if platform == "instagram":
        ig = InstagramClient(settings=SETTINGS, http=rec.http(attempts=1))
        return ig.delete_post(account("instagram", connected_via="facebook_login"), post()), rec
    fb = FacebookClient(settings=SETTINGS, http=rec.http(attempts=1))
    return fb.delete_post(account("facebook"), post()), rec


def _linkedin(*responses: httpx.Response, attempts: int = 1) -> tuple[Outcome, Recorder]:
    rec = Recorder(list(responses))
    client = LinkedInClient(settings=SETTINGS, http=rec.http(attempts=attempts), app=APP)
    return client.delete_post(account("linkedin"), post("urn:li:share:7123")), rec


# --- Graph: 429 --------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["facebook", "instagram"])
@pytest.mark.parametrize("body", [b"", b"<html>Too Many Requests</html>", b"{}"])
def test_graph_429_without_an_error_body_honours_retry_after_seconds(
    platform: str, body: bytes
) -> None:
    outcome, _ = _graph(
        httpx.Response(429, content=body, headers={"Retry-After": "7"}), platform=platform
    )
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 7


def test_graph_429_without_an_error_body_honours_an_http_date() -> None:
    outcome, _ = _graph(httpx.Response(429, headers={"retry-after": HTTP_DATE_IN_90_S}))
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 90


def test_graph_429_without_anything_still_waits_the_default() -> None:
    outcome, _ = _graph(httpx.Response(429))
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 15 * 60


def test_graph_throttle_waits_the_longer_of_retry_after_and_meta_estimate() -> None:
    usage = {"x-app-usage": json.dumps({"call_count": 100, "estimated_time_to_regain_access": 1})}
    error = {"error": {"message": "limit", "code": 4}}
    outcome, _ = _graph(
        json_response(400, error, headers={**usage, "Retry-After": "300"}),
    )
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 300


# --- Graph: unreadable error bodies -----------------------------------------------------------


@pytest.mark.parametrize("platform", ["facebook", "instagram"])
@pytest.mark.parametrize(
    "body",
    [
        b"nonsense",
        b"<html><body>Bad Request</body></html>",
        b'{"error": "not an object"}',
        b'{"message": "no error object"}',
        b'{"error": {"code": 1',  # cut off
        b"",
    ],
)
def test_graph_400_without_a_readable_error_is_transient(platform: str, body: bytes) -> None:
    outcome, _ = _graph(httpx.Response(400, content=body), platform=platform)
    assert isinstance(outcome, Transient)
    assert outcome.http_status == 400


def test_graph_unreadable_answer_carries_retry_after() -> None:
    outcome, _ = _graph(httpx.Response(403, content=b"<html/>", headers={"Retry-After": "12"}))
    assert isinstance(outcome, Transient)
    assert outcome.retry_after == 12


# --- LinkedIn ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"<html>slow down</html>"])
def test_linkedin_429_without_a_body_honours_retry_after(body: bytes) -> None:
    outcome, _ = _linkedin(httpx.Response(429, content=body, headers={"Retry-After": "7"}))
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 7


def test_linkedin_429_honours_an_http_date() -> None:
    outcome, _ = _linkedin(httpx.Response(429, headers={"Retry-After": HTTP_DATE_IN_90_S}))
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 90


@pytest.mark.parametrize(
    "body", [b"nonsense", b"<html>Bad Request</html>", b"", b"[]", b'{"unexpected": 1}']
)
def test_linkedin_400_without_a_readable_error_is_transient(body: bytes) -> None:
    outcome, _ = _linkedin(httpx.Response(400, content=body))
    assert isinstance(outcome, Transient)
    assert outcome.http_status == 400


def test_linkedin_400_with_its_error_body_is_still_a_refusal() -> None:
    outcome, _ = _linkedin(
        json_response(400, {"message": "Invalid URN", "serviceErrorCode": 0, "status": 400})
    )
    assert outcome.kind == "permanent_error"


def test_linkedin_unreadable_400_on_refresh_is_transient_not_reauth() -> None:
    rec = Recorder([httpx.Response(400, content=b"<html>Bad Request</html>")])
    client = LinkedInClient(settings=SETTINGS, http=rec.http(attempts=1), app=APP)
    with pytest.raises(RefreshError) as raised:
        client.refresh(account("linkedin"), SecretStr("AQX-refresh"))
    assert raised.value.outcome.kind == "transient"


def test_linkedin_invalid_grant_on_refresh_is_still_reauth() -> None:
    rec = Recorder([json_response(400, {"error": "invalid_grant", "error_description": "expired"})])
    client = LinkedInClient(settings=SETTINGS, http=rec.http(attempts=1), app=APP)
    with pytest.raises(RefreshError) as raised:
        client.refresh(account("linkedin"), SecretStr("AQX-refresh"))
    assert raised.value.outcome.kind == "reauth_required"
