"""Facebook Page post deletion: every documented Graph answer maps to one Outcome."""

from __future__ import annotations

import json

import httpx
import pytest
from mls_sync.platforms.base import (
    AlreadyGone,
    Deleted,
    NotSupported,
    Outcome,
    PermanentError,
    RateLimited,
    ReauthRequired,
    RefreshNotSupported,
    Transient,
    WrongPlatformError,
)
from mls_sync.platforms.facebook import FacebookClient

from tests.unit.platforms.helpers import (
    SETTINGS,
    TOKEN,
    Recorder,
    account,
    graph_error,
    json_response,
    post,
)

BUC = {
    "X-Business-Use-Case-Usage": json.dumps(
        {
            "1234567890": [
                {
                    "type": "pages",
                    "call_count": 100,
                    "total_cputime": 10,
                    "total_time": 10,
                    "estimated_time_to_regain_access": 7,
                }
            ]
        }
    )
}


def _delete(*responses: httpx.Response | Exception, attempts: int = 1) -> tuple[Outcome, Recorder]:
    rec = Recorder(list(responses))
    client = FacebookClient(settings=SETTINGS, http=rec.http(attempts=attempts))
    return client.delete_post(account("facebook"), post()), rec


def test_success_sends_a_versioned_delete_with_the_token_in_a_header() -> None:
    outcome, rec = _delete(json_response(200, {"success": True}))
    assert isinstance(outcome, Deleted)
    assert outcome.confirmed
    (request,) = rec.requests
    assert request.method == "DELETE"
    assert str(request.url) == "https://graph.facebook.com/v25.0/1234567890_987"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    # The token never rides in the URL, where logs and traces would keep it
    assert TOKEN not in str(request.url)


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (json_response(200, {"success": False}), "permanent_error"),
        (graph_error(190, 463, message="Session has expired"), "reauth_required"),
        (graph_error(190, 460), "reauth_required"),
        (graph_error(190, 458), "reauth_required"),
        (graph_error(190, 459), "reauth_required"),
        (graph_error(190, 464), "reauth_required"),
        (graph_error(190, 467), "reauth_required"),
        (graph_error(190), "reauth_required"),
        (graph_error(102), "reauth_required"),
        (graph_error(10, message="Application does not have permission"), "reauth_required"),
        (graph_error(200, status=403), "reauth_required"),
        (graph_error(299), "reauth_required"),
        (graph_error(368, message="temporarily blocked for policy violations"), "permanent_error"),
        (graph_error(1, status=500, message="An unknown error occurred"), "transient"),
        (graph_error(2, status=503, message="Service temporarily unavailable"), "transient"),
        (graph_error(999, is_transient=True), "transient"),
        (graph_error(100, 1487, message="Invalid parameter"), "permanent_error"),
        (graph_error(100), "permanent_error"),
        (httpx.Response(502, text="<html>Bad gateway</html>"), "transient"),
        (httpx.Response(401), "reauth_required"),
        (httpx.Response(400, text="nonsense"), "transient"),
        (httpx.Response(200, text="not json"), "transient"),
    ],
)
def test_error_mapping(response: httpx.Response, kind: str) -> None:
    outcome, _ = _delete(response)
    assert outcome.kind == kind


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
def test_throttle_codes_wait_as_long_as_meta_estimates(code: int) -> None:
    # Given a throttle error that Graph also flags is_transient (it does for code 4)
    outcome, rec = _delete(graph_error(code, is_transient=True, headers=BUC), attempts=3)
    # Then it is a rate limit with Meta's estimate, and no retry went out
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 7 * 60
    assert outcome.error_code == code
    assert len(rec.requests) == 1


def test_throttle_without_usage_headers_waits_the_default() -> None:
    outcome, _ = _delete(graph_error(613))
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 15 * 60


def test_transient_errors_are_retried_then_reported() -> None:
    outcome, rec = _delete(graph_error(2, status=503), graph_error(1, status=500), attempts=2)
    assert isinstance(outcome, Transient)
    assert len(rec.requests) == 2
    assert len(rec.sleeps) == 1


def test_timeout_then_success() -> None:
    outcome, rec = _delete(
        httpx.ReadTimeout("read timed out"), json_response(200, {"success": True}), attempts=3
    )
    assert isinstance(outcome, Deleted)
    assert len(rec.requests) == 2


def test_100_33_with_a_healthy_token_is_already_gone() -> None:
    # Given 100/33, and GET /me with the same token answers
    outcome, rec = _delete(graph_error(100, 33), json_response(200, {"id": "1234567890"}))
    # Then the post is gone, after exactly one token check with the same token
    assert isinstance(outcome, AlreadyGone)
    me = rec.requests[1]
    assert me.method == "GET"
    assert me.url.path == "/v25.0/me"
    assert me.headers["Authorization"] == f"Bearer {TOKEN}"


def test_100_33_with_a_dead_token_needs_reauth() -> None:
    outcome, _ = _delete(graph_error(100, 33), graph_error(190, 460))
    assert isinstance(outcome, ReauthRequired)
    assert outcome.error_code == 100
    assert outcome.error_subcode == 33


def test_100_33_when_the_token_check_fails_is_transient_not_gone() -> None:
    outcome, _ = _delete(graph_error(100, 33), httpx.Response(500))
    assert isinstance(outcome, Transient)


def test_graph_has_no_refresh() -> None:
    client = FacebookClient(settings=SETTINGS, http=Recorder().http())
    assert not client.supports_refresh
    with pytest.raises(RefreshNotSupported):
        client.refresh(account("facebook"), account().access_token)


def test_an_account_of_another_platform_is_refused() -> None:
    client = FacebookClient(settings=SETTINGS, http=Recorder().http())
    with pytest.raises(WrongPlatformError):
        client.delete_post(account("linkedin"), post())


def test_outcome_types_are_the_expected_ones() -> None:
    # A guard on the table above: the kinds used there exist as types.
    kinds = {
        t.model_fields["kind"].default
        for t in (
            Deleted,
            AlreadyGone,
            NotSupported,
            ReauthRequired,
            RateLimited,
            Transient,
            PermanentError,
        )
    }
    assert kinds == {
        "deleted",
        "already_gone",
        "not_supported",
        "reauth_required",
        "rate_limited",
        "transient",
        "permanent_error",
    }
