"""Facebook and Instagram clients against the Graph simulator, one outcome at a time."""

from __future__ import annotations

import httpx
import pytest
from mls_sync.platforms.base import (
    AlreadyGone,
    Deleted,
    NotSupported,
    PermanentError,
    PostRef,
    RateLimited,
    ReauthRequired,
    Transient,
)
from mls_sync.platforms.facebook import FacebookClient
from mls_sync.platforms.graph import GraphClient
from mls_sync.platforms.instagram import InstagramClient

from tests.integration.platforms.conftest import Rig, acct

TOKEN = "sim-page-token-1"
FB_POST = PostRef(platform_post_id="111_222", permalink="https://facebook.com/111/posts/222")
IG_POST = PostRef(platform_post_id="17890000000001", permalink="https://instagram.com/p/abc/")


def fb(rig: Rig) -> GraphClient:
    client = rig.registry.client("facebook")
    assert isinstance(client, FacebookClient)
    return client


def ig(rig: Rig) -> GraphClient:
    client = rig.registry.client("instagram")
    assert isinstance(client, InstagramClient)
    return client


def test_facebook_delete_then_repeat_is_already_gone(rig: Rig) -> None:
    # Given a published post
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    # When it is deleted twice
    first = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    second = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    # Then one effect; the repeat is 100/33 and, the token being healthy, "already gone"
    assert isinstance(first, Deleted)
    assert isinstance(second, AlreadyGone)
    assert second.error_subcode == 33
    assert rig.sim.post("facebook", FB_POST.platform_post_id).deletions == 1
    assert [r.route for r in rig.sim.requests()] == ["facebook", "facebook", "graph_me"]


def test_100_33_with_a_dead_token_is_reauth(rig: Rig) -> None:
    # Given the platform answers 100/33 and the token has since been revoked
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    body = {
        "error": {
            "message": "does not exist",
            "type": "GraphMethodException",
            "code": 100,
            "error_subcode": 33,
        }
    }
    rig.sim.fail_next(1, 400, body, route="facebook")
    rig.sim.revoke(TOKEN)
    # When
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    # Then GET /me failed, so this is not "gone" but a re-authorisation
    assert isinstance(outcome, ReauthRequired)
    assert rig.sim.requests()[-1].route == "graph_me"
    assert rig.sim.requests()[-1].status == 400
    assert rig.sim.post("facebook", FB_POST.platform_post_id).state == "exists"


def test_a_post_another_token_cannot_see_is_ambiguous_and_resolved_by_me(rig: Rig) -> None:
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token="other-page-token")
    rig.sim.add_token("facebook", TOKEN)
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    # Documented ambiguity: a healthy token that cannot see the post reads as gone.
    assert isinstance(outcome, AlreadyGone)


@pytest.mark.parametrize(("action", "subcode"), [("revoke", 460), ("expire", 463)])
def test_dead_tokens_need_reauth(rig: Rig, action: str, subcode: int) -> None:
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    getattr(rig.sim, action)(TOKEN)
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    assert isinstance(outcome, ReauthRequired)
    assert (outcome.error_code, outcome.error_subcode) == (190, subcode)


def test_unknown_token_is_reauth(rig: Rig) -> None:
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    outcome = fb(rig).delete_post(acct("facebook", "never-issued"), FB_POST)
    assert isinstance(outcome, ReauthRequired)


def test_success_false_is_a_permanent_failure(rig: Rig) -> None:
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN, state="not_deletable")
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    assert isinstance(outcome, PermanentError)
    assert "success" in outcome.reason


def test_call_budget_exhausted_gives_80001_with_meta_wait(rig: Rig) -> None:
    # Given a budget of one call
    rig.sim.graph_call_limit = 1
    rig.sim.graph_regain_minutes = 12
    rig.sim.add_post("facebook", "1_1", token=TOKEN)
    rig.sim.add_post("facebook", "1_2", token=TOKEN)
    # When two posts are deleted
    first = fb(rig).delete_post(acct("facebook", TOKEN), PostRef(platform_post_id="1_1"))
    second = fb(rig).delete_post(acct("facebook", TOKEN), PostRef(platform_post_id="1_2"))
    # Then the second waits as long as the BUC header says, without an in-process retry
    assert isinstance(first, Deleted)
    assert isinstance(second, RateLimited)
    assert second.error_code == 80001
    assert second.retry_after == 12 * 60
    assert len(rig.sim.requests()) == 2
    assert rig.sleeps == []


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_injected_throttles(rig: Rig, code: int) -> None:
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    rig.sim.throttle_next(1, platform="facebook", code=code, regain_minutes=3)
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 180


def test_5xx_is_retried_with_backoff_then_succeeds(rig: Rig) -> None:
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    rig.sim.fail_next(
        2, 503, {"error": {"message": "Service unavailable", "code": 2, "is_transient": True}}
    )
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    assert isinstance(outcome, Deleted)
    assert len(rig.sim.requests()) == 3
    assert rig.sleeps == [pytest.approx(0.1), pytest.approx(0.2)]


def test_persistent_5xx_ends_transient(rig: Rig) -> None:
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    rig.sim.fail_next(5, 500, b"<html>oops</html>")
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    assert isinstance(outcome, Transient)
    assert len(rig.sim.requests()) == 3
    assert rig.sim.post("facebook", FB_POST.platform_post_id).state == "exists"


def test_a_timeout_is_retried(rig: Rig) -> None:
    # Given the first answer is held back past the client's 0.5 s read timeout
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    rig.sim.timeout_next(1, seconds=3.0)
    # When / Then the retry deletes it
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    assert isinstance(outcome, Deleted)
    assert len(rig.sleeps) == 1


def test_instagram_facebook_login_delete(rig: Rig) -> None:
    rig.sim.add_post("instagram", IG_POST.platform_post_id, token=TOKEN)
    outcome = ig(rig).delete_post(acct("instagram", TOKEN, via="facebook_login"), IG_POST)
    assert isinstance(outcome, Deleted)
    assert rig.sim.post("instagram", IG_POST.platform_post_id).state == "deleted"
    assert rig.sim.requests()[0].path == f"/v25.0/{IG_POST.platform_post_id}"


def test_instagram_login_makes_no_call(rig: Rig) -> None:
    rig.sim.add_post("instagram", IG_POST.platform_post_id, token=TOKEN)
    outcome = ig(rig).delete_post(acct("instagram", TOKEN, via="instagram_login"), IG_POST)
    assert isinstance(outcome, NotSupported)
    assert outcome.permalink == IG_POST.permalink
    assert rig.sim.requests() == []
    assert rig.sim.post("instagram", IG_POST.platform_post_id).state == "exists"


def test_instagram_undeletable_media_needs_a_person(rig: Rig) -> None:
    rig.sim.add_post("instagram", IG_POST.platform_post_id, token=TOKEN, state="not_deletable")
    outcome = ig(rig).delete_post(acct("instagram", TOKEN, via="facebook_login"), IG_POST)
    assert isinstance(outcome, NotSupported)
    assert outcome.permalink == IG_POST.permalink
    assert outcome.error_subcode == 2207073


def test_instagram_throttle_is_80002(rig: Rig) -> None:
    rig.sim.graph_call_limit = 0
    rig.sim.add_post("instagram", IG_POST.platform_post_id, token=TOKEN)
    outcome = ig(rig).delete_post(acct("instagram", TOKEN, via="facebook_login"), IG_POST)
    assert isinstance(outcome, RateLimited)
    assert outcome.error_code == 80002


def test_request_log_holds_no_secrets(rig: Rig) -> None:
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    httpx.delete(f"{rig.sim.url}/v25.0/111_222?access_token={TOKEN}")
    log = repr(rig.sim.requests()) + repr(rig.sim.snapshot())
    assert TOKEN not in log
    assert all("authorization" not in r.headers for r in rig.sim.requests())
    assert rig.sim.requests()[0].token is not None


def test_a_timeout_after_the_delete_converges_to_already_gone(rig: Rig) -> None:
    # Given Graph deletes the post but the answer never arrives
    rig.sim.add_post("facebook", FB_POST.platform_post_id, token=TOKEN)
    rig.sim.timeout_next(1, seconds=3.0, after_effect=True)
    # When the client retries
    outcome = fb(rig).delete_post(acct("facebook", TOKEN), FB_POST)
    # Then the retry sees 100/33, the token checks out, and there was one effect
    assert isinstance(outcome, AlreadyGone)
    assert rig.sim.post("facebook", FB_POST.platform_post_id).deletions == 1
