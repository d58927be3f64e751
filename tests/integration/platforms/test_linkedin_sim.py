"""LinkedIn client against the simulator: deletes, limits and refresh."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mls_sync.platforms.base import (
    AlreadyGone,
    Deleted,
    PermanentError,
    PostRef,
    RateLimited,
    ReauthRequired,
    RefreshError,
    Transient,
)
from mls_sync.platforms.http import PlatformHttp, RetryPolicy
from mls_sync.platforms.linkedin import LinkedInClient, OAuthApp
from mls_sync.platforms.settings import PlatformSettings
from pydantic import SecretStr

from tests.integration.platforms.conftest import NOW, Rig, acct

TOKEN = "sim-li-member-token"
REFRESH = "sim-li-refresh-token"
URN = "urn:li:share:7123456789"
POST = PostRef(platform_post_id=URN)


def li(rig: Rig) -> LinkedInClient:
    client = rig.registry.client("linkedin")
    assert isinstance(client, LinkedInClient)
    return client


def test_delete_and_repeat_both_answer_204(rig: Rig) -> None:
    rig.sim.add_post("linkedin", URN, token=TOKEN)
    first = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    second = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    # 204 twice: reported as deleted-but-unconfirmed, one effect on the platform
    assert isinstance(first, Deleted)
    assert isinstance(second, Deleted)
    assert not first.confirmed
    assert rig.sim.post("linkedin", URN).deletions == 1
    request = rig.sim.requests()[0]
    assert request.path == "/rest/posts/urn%3Ali%3Ashare%3A7123456789"
    assert request.headers["linkedin-version"] == "202608"
    assert request.headers["x-restli-protocol-version"] == "2.0.0"


def test_unknown_urn_is_already_gone(rig: Rig) -> None:
    rig.sim.add_token("linkedin", TOKEN)
    outcome = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    assert isinstance(outcome, AlreadyGone)
    assert outcome.http_status == 404


@pytest.mark.parametrize("action", ["revoke", "expire"])
def test_dead_token_is_401_reauth(rig: Rig, action: str) -> None:
    rig.sim.add_post("linkedin", URN, token=TOKEN)
    getattr(rig.sim, action)(TOKEN)
    outcome = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    assert isinstance(outcome, ReauthRequired)
    assert outcome.http_status == 401


def test_someone_elses_post_is_403_permanent(rig: Rig) -> None:
    rig.sim.add_post("linkedin", URN, token="another-member")
    rig.sim.add_token("linkedin", TOKEN)
    outcome = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    assert isinstance(outcome, PermanentError)
    assert outcome.http_status == 403
    assert rig.sim.post("linkedin", URN).state == "exists"


def test_daily_limit_waits_until_midnight_utc(rig: Rig) -> None:
    rig.sim.linkedin_daily_limit = 0
    rig.sim.add_post("linkedin", URN, token=TOKEN)
    outcome = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    assert isinstance(outcome, RateLimited)
    midnight = (NOW + timedelta(days=1)).replace(hour=0, minute=0, second=0)
    assert outcome.retry_after == (midnight - NOW).total_seconds()
    assert len(rig.sim.requests()) == 1


def test_sunset_version_is_refused(rig: Rig) -> None:
    rig.sim.linkedin_versions = frozenset({"202611"})
    rig.sim.add_post("linkedin", URN, token=TOKEN)
    outcome = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    assert isinstance(outcome, PermanentError)
    assert outcome.http_status == 426
    assert "LINKEDIN_VERSION" in outcome.reason or "202608" in outcome.reason


def test_5xx_then_success(rig: Rig) -> None:
    rig.sim.add_post("linkedin", URN, token=TOKEN)
    rig.sim.fail_next(1, 502, route="linkedin")
    outcome = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    assert isinstance(outcome, Deleted)
    assert len(rig.sleeps) == 1


def test_persistent_5xx_is_transient(rig: Rig) -> None:
    rig.sim.add_post("linkedin", URN, token=TOKEN)
    rig.sim.fail_next(3, 500, {"status": 500, "message": "Internal Server Error"})
    outcome = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    assert isinstance(outcome, Transient)


def test_expired_token_refreshes_and_the_new_token_deletes(rig: Rig) -> None:
    # Given an expired access token with a live refresh token
    rig.sim.add_token("linkedin", TOKEN, account="member-1", refresh_token=REFRESH)
    rig.sim.add_post("linkedin", URN, token=TOKEN)
    rig.sim.expire(TOKEN)
    account = acct("linkedin", TOKEN)
    assert isinstance(li(rig).delete_post(account, POST), ReauthRequired)
    # When the token is refreshed and the delete retried once
    token = li(rig).refresh(account, SecretStr(REFRESH))
    fresh = account.model_copy(update={"access_token": token.access_token})
    outcome = li(rig).delete_post(fresh, POST)
    # Then one refresh call, a 60-day token, and the post is gone
    assert isinstance(outcome, Deleted)
    assert rig.sim.refresh_calls == 1
    assert token.expires_at == NOW + timedelta(days=60)
    assert token.refresh_token is not None
    assert token.refresh_token.get_secret_value() == REFRESH
    assert rig.sim.post("linkedin", URN).state == "deleted"
    oauth = rig.sim.requests("linkedin_oauth")[0]
    assert oauth.form["refresh_token"] == "[REDACTED]"
    assert oauth.form["client_secret"] == "[REDACTED]"
    assert REFRESH not in repr(rig.sim.requests())


def test_revoked_refresh_token_means_reauth(rig: Rig) -> None:
    rig.sim.add_token("linkedin", TOKEN, refresh_token=REFRESH)
    rig.sim.revoke(REFRESH)
    with pytest.raises(RefreshError) as excinfo:
        li(rig).refresh(acct("linkedin", TOKEN), SecretStr(REFRESH))
    assert excinfo.value.outcome.kind == "reauth_required"
    assert REFRESH not in str(excinfo.value)


def test_wrong_app_credentials_are_refused(rig: Rig) -> None:
    rig.sim.add_token("linkedin", TOKEN, refresh_token=REFRESH)
    settings = PlatformSettings.from_env(rig.sim.env())
    with PlatformHttp(retry=RetryPolicy(attempts=1), allow_loopback=True) as http:
        client = LinkedInClient(
            settings=settings,
            http=http,
            app=OAuthApp(client_id="sim-client-id", client_secret=SecretStr("wrong-secret")),
        )
        with pytest.raises(RefreshError) as excinfo:
            client.refresh(acct("linkedin", TOKEN), SecretStr(REFRESH))
    assert excinfo.value.outcome.http_status == 401
    assert "wrong-secret" not in str(excinfo.value)


def test_a_lost_answer_after_the_delete_still_reports_gone(rig: Rig) -> None:
    rig.sim.add_post("linkedin", URN, token=TOKEN)
    rig.sim.fail_next(1, 503, route="linkedin", after_effect=True)
    outcome = li(rig).delete_post(acct("linkedin", TOKEN), POST)
    assert isinstance(outcome, Deleted)
    assert rig.sim.post("linkedin", URN).deletions == 1
    assert [r.status for r in rig.sim.requests()] == [503, 204]
