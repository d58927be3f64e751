"""Instagram media deletion on the Facebook Login path, and the manual fallback."""

from __future__ import annotations

import httpx
import pytest
from mls_sync.platforms.base import (
    AlreadyGone,
    Deleted,
    NotSupported,
    Outcome,
    RateLimited,
    ReauthRequired,
)
from mls_sync.platforms.instagram import InstagramClient

from tests.unit.platforms.helpers import (
    SETTINGS,
    Recorder,
    account,
    graph_error,
    json_response,
    post,
)

PERMALINK = "https://www.instagram.com/p/Cabc123/"


def _delete(
    *responses: httpx.Response, connected_via: str | None = "facebook_login"
) -> tuple[Outcome, Recorder]:
    rec = Recorder(list(responses))
    client = InstagramClient(settings=SETTINGS, http=rec.http(attempts=1))
    outcome = client.delete_post(
        account("instagram", connected_via=connected_via),
        post("17895695668004550", permalink=PERMALINK),
    )
    return outcome, rec


def test_success_with_deleted_id() -> None:
    outcome, rec = _delete(json_response(200, {"success": True, "deleted_id": "17895695668004550"}))
    assert isinstance(outcome, Deleted)
    assert rec.requests[0].url.path == "/v25.0/17895695668004550"
    assert rec.requests[0].url.host == "graph.facebook.com"


@pytest.mark.parametrize("via", ["instagram_login", None])
def test_instagram_login_accounts_go_to_manual_action_without_any_call(via: str | None) -> None:
    outcome, rec = _delete(connected_via=via)
    assert isinstance(outcome, NotSupported)
    assert outcome.permalink == PERMALINK
    assert rec.requests == []


@pytest.mark.parametrize(
    "response",
    [
        graph_error(2207073, message="media cannot be deleted"),
        graph_error(100, 2207073, message="media cannot be deleted"),
    ],
)
def test_undeletable_media_is_manual_action_with_permalink(response: httpx.Response) -> None:
    outcome, _ = _delete(response)
    assert isinstance(outcome, NotSupported)
    assert outcome.permalink == PERMALINK


def test_buc_throttle_80002() -> None:
    outcome, _ = _delete(
        graph_error(
            80002,
            headers={
                "X-Business-Use-Case-Usage": '{"17841400000000000": [{"type": "instagram",'
                ' "call_count": 100, "estimated_time_to_regain_access": 2}]}'
            },
        )
    )
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 120


def test_190_is_reauth() -> None:
    outcome, _ = _delete(graph_error(190))
    assert isinstance(outcome, ReauthRequired)


def test_100_33_with_healthy_token_is_gone() -> None:
    outcome, _ = _delete(graph_error(100, 33), json_response(200, {"id": "1"}))
    assert isinstance(outcome, AlreadyGone)
