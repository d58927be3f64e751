"""Answers a server written from the platforms' public documentation may give, that our
simulator does not: legacy bodies, codes spelled as strings, other throttle codes, a server
that only reads the ``access_token`` parameter, absurd waits, a server that never answers."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

import httpx
import pytest
from mls_sync.platforms.base import (
    MAX_WAIT_SECONDS,
    AlreadyGone,
    Deleted,
    Outcome,
    PermanentError,
    RateLimited,
    ReauthRequired,
    Transient,
)
from mls_sync.platforms.facebook import FacebookClient
from mls_sync.platforms.http import PlatformHttp, RetryPolicy, meta_wait_seconds
from mls_sync.platforms.instagram import InstagramClient
from mls_sync.platforms.linkedin import LinkedInClient, OAuthApp
from pydantic import SecretStr

from tests.unit.platforms.helpers import (
    NOW,
    SETTINGS,
    TOKEN,
    Recorder,
    account,
    graph_error,
    json_response,
    post,
)


def _fb(*responses: httpx.Response | Exception, attempts: int = 1) -> tuple[Outcome, Recorder]:
    rec = Recorder(list(responses))
    client = FacebookClient(settings=SETTINGS, http=rec.http(attempts=attempts))
    return client.delete_post(account("facebook"), post()), rec


def _li(*responses: httpx.Response, attempts: int = 1) -> tuple[Outcome, Recorder]:
    rec = Recorder(list(responses))
    client = LinkedInClient(settings=SETTINGS, http=rec.http(attempts=attempts))
    return client.delete_post(account("linkedin"), post("urn:li:share:7123")), rec


def _raw_graph_error(status: int, error: object) -> httpx.Response:
    return httpx.Response(status, content=json.dumps({"error": error}).encode())


# --- Graph: bodies ------------------------------------------------------------------------


def test_a_bare_true_body_is_a_delete() -> None:
    # Older Graph versions answer DELETE with the JSON literal `true`, not {"success": true}
    outcome, _ = _fb(httpx.Response(200, content=b"true"))
    assert isinstance(outcome, Deleted)


def test_a_bare_false_body_is_a_refusal() -> None:
    outcome, _ = _fb(httpx.Response(200, content=b"false"))
    assert isinstance(outcome, PermanentError)


def test_instagram_accepts_a_bare_true_too() -> None:
    rec = Recorder([httpx.Response(200, content=b"true")])
    client = InstagramClient(settings=SETTINGS, http=rec.http(attempts=1))
    outcome = client.delete_post(account("instagram", connected_via="facebook_login"), post("1"))
    assert isinstance(outcome, Deleted)


@pytest.mark.parametrize("content", [b"", b"   ", b"<html>OK</html>", b"null", b"[]"])
def test_an_empty_or_unreadable_200_is_retried_not_believed(content: bytes) -> None:
    # A 200 that says nothing may or may not have deleted: the retry finds out (100/33)
    outcome, rec = _fb(httpx.Response(200, content=content), json_response(200, {"success": True}))
    assert isinstance(outcome, Transient)
    assert len(rec.requests) == 1


def test_an_empty_200_then_success_on_retry() -> None:
    outcome, rec = _fb(
        httpx.Response(200, content=b""), json_response(200, {"success": True}), attempts=2
    )
    assert isinstance(outcome, Deleted)
    assert len(rec.requests) == 2


def test_an_error_object_inside_a_200_is_read_as_the_error() -> None:
    outcome, _ = _fb(json_response(200, {"error": {"code": 190, "error_subcode": 463}}))
    assert isinstance(outcome, ReauthRequired)
    assert outcome.error_code == 190


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_html_is_transient(status: int) -> None:
    outcome, _ = _fb(
        httpx.Response(status, text="<!DOCTYPE html><title>Error</title>"),
    )
    assert isinstance(outcome, Transient)
    assert outcome.http_status == status


def test_an_error_that_is_a_string_is_unreadable_so_transient() -> None:
    # Not Graph's error object: nothing says the post cannot be deleted (issue 15).
    outcome, _ = _fb(_raw_graph_error(400, "bad request"))
    assert isinstance(outcome, Transient)


# --- Graph: how codes are spelled --------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"code": "190", "error_subcode": "463"}, "reauth_required"),
        ({"code": " 190 "}, "reauth_required"),
        ({"code": 190.0}, "reauth_required"),
        ({"code": "4", "is_transient": True}, "rate_limited"),
        ({"code": "368"}, "permanent_error"),
        ({"code": "2207073"}, "not_supported"),
        ({"code": 999, "is_transient": "true"}, "transient"),
        ({"code": 999, "is_transient": "false"}, "permanent_error"),
        ({"code": None}, "permanent_error"),
        ({"code": "abc"}, "permanent_error"),
    ],
)
def test_codes_spelled_as_strings_or_floats(error: dict[str, object], kind: str) -> None:
    outcome, _ = _fb(_raw_graph_error(400, {"message": "x", **error}))
    assert outcome.kind == kind


def test_100_33_spelled_as_strings_is_still_checked_against_the_token() -> None:
    outcome, _ = _fb(
        _raw_graph_error(400, {"code": "100", "error_subcode": "33"}),
        json_response(200, {"id": "1"}),
    )
    assert isinstance(outcome, AlreadyGone)


@pytest.mark.parametrize("code", [341, 80000, 80004, 80014])
def test_other_documented_throttle_codes(code: int) -> None:
    outcome, _ = _fb(graph_error(code))
    assert isinstance(outcome, RateLimited)


def test_803_does_not_exist_is_checked_against_the_token() -> None:
    outcome, rec = _fb(
        graph_error(803, message="Some of the aliases you requested do not exist"),
        json_response(200, {"id": "1"}),
    )
    assert isinstance(outcome, AlreadyGone)
    assert rec.requests[1].url.path == "/v25.0/me"


# --- Graph: where the token goes ---------------------------------------------------------


def test_a_server_that_did_not_see_the_header_gets_the_access_token_parameter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a server that reads only the documented access_token parameter (code 104)
    caplog.set_level(logging.DEBUG)
    outcome, rec = _fb(
        graph_error(104, message="An access token is required to request this resource."),
        json_response(200, {"success": True}),
    )
    # Then the second call carries it as the parameter, without the header, and succeeds
    assert isinstance(outcome, Deleted)
    first, second = rec.requests
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in first.url.params
    assert second.url.params["access_token"] == TOKEN
    assert "Authorization" not in second.headers
    # And no log line (ours or httpx's URL line) carries the token
    assert TOKEN not in caplog.text


def test_a_token_refused_both_ways_is_a_permanent_error_not_a_loop() -> None:
    outcome, rec = _fb(graph_error(104), graph_error(104), attempts=3)
    assert isinstance(outcome, PermanentError)
    assert outcome.error_code == 104
    assert len(rec.requests) == 2


def test_the_token_check_falls_back_to_the_parameter_too() -> None:
    outcome, rec = _fb(
        graph_error(100, 33),
        graph_error(104),
        json_response(200, {"id": "1"}),
    )
    assert isinstance(outcome, AlreadyGone)
    assert rec.requests[2].url.params["access_token"] == TOKEN
    assert rec.requests[2].url.params["fields"] == "id"


def test_httpx_url_log_lines_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    # Given the filter PlatformHttp installs on the httpx logger
    Recorder().http()
    caplog.set_level(logging.INFO, logger="httpx")
    # When httpx logs a URL with a token in it
    logging.getLogger("httpx").info(
        'HTTP Request: %s %s "%s"', "DELETE", f"https://g.test/v1/1?access_token={TOKEN}", "200"
    )
    # Then the token is gone from the record
    assert TOKEN not in caplog.text
    assert "access_token=[REDACTED]" in caplog.text


# --- Usage headers and waits ---------------------------------------------------------------


def test_usage_headers_in_any_case_and_with_numbers_as_strings() -> None:
    headers = httpx.Headers(
        {
            "X-BUSINESS-USE-CASE-USAGE": json.dumps(
                {
                    "1234": {
                        "type": "pages",
                        "call_count": "100",
                        "estimated_time_to_regain_access": "9",
                    }
                }
            ),
        }
    )
    assert meta_wait_seconds(headers, NOW, default=900) == 9 * 60


def test_page_usage_regain_time_is_used() -> None:
    headers = {
        "x-page-usage": json.dumps({"call_count": 100, "estimated_time_to_regain_access": 3})
    }
    outcome, _ = _fb(graph_error(32, headers=headers))
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 180


@pytest.mark.parametrize("regain", ["1e300", "Infinity", "NaN", "-5", "999999999999999"])
def test_absurd_regain_estimates_stay_finite_and_bounded(regain: str) -> None:
    raw = '{"1": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": %s}]}'
    headers = {"X-Business-Use-Case-Usage": raw % regain}
    outcome, _ = _fb(graph_error(80001, headers=headers))
    assert isinstance(outcome, RateLimited)
    assert 0 < outcome.retry_after <= MAX_WAIT_SECONDS
    assert int(outcome.retry_after) >= 0  # what the publisher does with it must not raise


@pytest.mark.parametrize(
    "value", ["99999999999999999999", "1e400", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
def test_a_huge_retry_after_is_capped(value: str) -> None:
    outcome, _ = _li(httpx.Response(429, headers={"retry-after": value}))
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after <= MAX_WAIT_SECONDS
    int(outcome.retry_after)


def test_outcomes_clamp_non_finite_waits() -> None:
    assert RateLimited(retry_after=float("inf")).retry_after == MAX_WAIT_SECONDS
    assert Transient(retry_after=float("inf")).retry_after == MAX_WAIT_SECONDS
    assert Transient(retry_after=float("nan")).retry_after is None


def test_a_5xx_asking_for_a_long_pause_is_left_to_the_queue() -> None:
    outcome, rec = _li(
        httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(204), attempts=3
    )
    assert isinstance(outcome, Transient)
    assert outcome.retry_after == 3600
    assert len(rec.requests) == 1
    assert rec.sleeps == []


# --- Timeouts -----------------------------------------------------------------------------


def test_a_server_that_never_answers_is_given_up_on_within_the_deadline() -> None:
    # Given a server where every attempt times out after the full read timeout
    now = [0.0]
    timeouts: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        read = request.extensions["timeout"]["read"]
        timeouts.append(read)
        now[0] += read
        raise httpx.ReadTimeout("no answer", request=request)

    http = PlatformHttp(
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(attempts=3, deadline=12.0),
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: NOW,
        rng=lambda: 1.0,
        monotonic=lambda: now[0],
    )
    outcome = FacebookClient(settings=SETTINGS, http=http).delete_post(account(), post())
    # Then the call ends by the deadline: the second attempt only gets what was left
    assert isinstance(outcome, Transient)
    assert "timeout" in outcome.reason
    assert timeouts[0] == 10.0
    assert len(timeouts) == 2
    assert timeouts[1] == pytest.approx(12.0 - 10.0 - 0.2)
    assert now[0] <= 12.0


# --- LinkedIn -------------------------------------------------------------------------------


def test_ugc_post_urns_are_encoded_whole() -> None:
    rec = Recorder([httpx.Response(204)])
    client = LinkedInClient(settings=SETTINGS, http=rec.http(attempts=1))
    client.delete_post(account("linkedin"), post("urn:li:ugcPost:7099"))
    assert rec.requests[0].url.raw_path == b"/rest/posts/urn%3Ali%3AugcPost%3A7099"


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(401), "reauth_required"),
        (httpx.Response(404, text="<html>Not Found</html>"), "already_gone"),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "transient"),
        (httpx.Response(204, content=b""), "deleted"),
        (
            json_response(403, {"message": "denied", "serviceErrorCode": "100", "status": 403}),
            "permanent_error",
        ),
    ],
)
def test_linkedin_answers_without_the_usual_body(response: httpx.Response, kind: str) -> None:
    outcome, _ = _li(response)
    assert outcome.kind == kind


def test_linkedin_service_error_code_as_a_string_is_kept() -> None:
    outcome, _ = _li(
        json_response(401, {"message": "x", "serviceErrorCode": "65600", "status": 401})
    )
    assert outcome.error_code == 65600


APP = OAuthApp(client_id="app-id", client_secret=SecretStr("app-secret-value"))


def test_refresh_without_expires_in_still_yields_a_token() -> None:
    rec = Recorder([json_response(200, {"access_token": "AQV-new"})])
    client = LinkedInClient(settings=SETTINGS, http=rec.http(attempts=1), app=APP)
    token = client.refresh(account("linkedin"), SecretStr("AQX-refresh"))
    assert token.access_token.get_secret_value() == "AQV-new"
    assert token.expires_at is None


def test_refresh_with_absurd_lifetimes_does_not_overflow() -> None:
    rec = Recorder(
        [
            json_response(
                200,
                {
                    "access_token": "AQV-new",
                    "expires_in": 10**15,
                    "refresh_token_expires_in": 10**15,
                },
            )
        ]
    )
    client = LinkedInClient(settings=SETTINGS, http=rec.http(attempts=1), app=APP)
    token = client.refresh(account("linkedin"), SecretStr("AQX-refresh"))
    assert token.expires_at is not None
    assert token.expires_at.year < 2100
    form = parse_qs(rec.requests[0].content.decode())
    assert form["grant_type"] == ["refresh_token"]
