"""Each platform answer becomes the right post status, event and queue behaviour, through
the real handler, moto and the platform simulator."""

from __future__ import annotations

import json

import pytest
from mls_sync import aws
from mls_sync.models import PostStatus
from mls_sync.secrets import SecretStore

from tests.integration.publisher.conftest import Publisher, lambda_context

FB_TOKEN = "EAAfbPageTokenAbc123"
IG_TOKEN = "EAAigUserTokenDef456"
LI_TOKEN = "AQVliMemberTokenGhi789"
LI_REFRESH = "AQXliRefreshTokenJkl012"


def _status(pub: Publisher, post_id: str) -> PostStatus:
    post = pub.posts.get(post_id)
    assert post is not None
    return post.status


def test_moto_in_process_lets_loopback_http_reach_the_simulator(pub: Publisher) -> None:
    # Given a Facebook post, moto mocking AWS in-process
    pub.listing()
    pub.sim.add_post("facebook", "1_1", token=FB_TOKEN)
    post = pub.post("p-1", pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN}), "1_1")
    # When the job runs
    pub.enqueue(pub.job(post))
    pub.deliver()
    # Then the delete really went over loopback HTTP to the simulator
    assert [(r.method, r.route, r.status) for r in pub.sim.requests()] == [
        ("DELETE", "facebook", 200)
    ]


@pytest.mark.parametrize(
    ("platform", "platform_post_id", "token", "via"),
    [
        ("facebook", "111_222", FB_TOKEN, None),
        ("instagram", "17900000000000001", IG_TOKEN, "facebook_login"),
        ("linkedin", "urn:li:share:7000000000000000001", LI_TOKEN, None),
    ],
)
def test_deleted_post_becomes_unpublished_with_event(
    pub: Publisher, platform: str, platform_post_id: str, token: str, via: str | None
) -> None:
    # Given a published post of a sold listing that exists on the platform
    pub.listing()
    pub.sim.add_post(platform, platform_post_id, token=token)
    account = pub.account("a-1", platform, {"accessToken": token}, connected_via=via)
    post = pub.post("p-1", account, platform_post_id)
    # When its job runs
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then the platform deleted it once, the post is unpublished with time and reason
    assert run.failed_ids == set()
    assert pub.sim.post(platform, platform_post_id).deletions == 1
    stored = pub.posts.get("p-1")
    assert stored is not None
    assert stored.status is PostStatus.UNPUBLISHED
    assert stored.unpublished_at == "2026-11-28T17:04:05.000000Z"
    assert stored.outcome_reason
    # and the outcome is announced
    [event] = pub.events("PostUnpublishOutcome")
    assert event["detail"]["postId"] == "p-1"
    assert event["detail"]["platform"] == platform
    assert event["detail"]["outcome"] == "unpublished"
    assert event["detail"]["correlationId"] == "corr-1"
    assert pub.queue_depth() == 0


@pytest.mark.parametrize(
    ("platform", "platform_post_id", "token", "answer"),
    [
        ("facebook", "111_333", FB_TOKEN, 400),  # Graph 100/33, then GET /me is healthy
        ("instagram", "17900000000000002", IG_TOKEN, 400),
        ("linkedin", "urn:li:share:7000000000000000002", LI_TOKEN, 404),
    ],
)
def test_post_already_gone_becomes_unpublished(
    pub: Publisher, platform: str, platform_post_id: str, token: str, answer: int
) -> None:
    # Given a post the agent already deleted by hand (Graph: deleted; LinkedIn: unknown URN)
    pub.listing()
    pub.sim.add_token(platform, token)
    if platform != "linkedin":
        pub.sim.add_post(platform, platform_post_id, token=token, state="deleted")
    via = "facebook_login" if platform == "instagram" else None
    account = pub.account("a-1", platform, {"accessToken": token}, connected_via=via)
    post = pub.post("p-1", account, platform_post_id)
    # When its job runs
    pub.enqueue(pub.job(post))
    pub.deliver()
    # Then it is recorded as unpublished (gone), not as a failure
    assert _status(pub, "p-1") is PostStatus.UNPUBLISHED
    assert pub.sim.requests()[0].status == answer
    if platform != "linkedin":
        # the ambiguous 100/33 was only trusted after the token proved healthy
        assert [r.route for r in pub.sim.requests()] == [platform, "graph_me"]


def test_instagram_login_post_needs_manual_action_with_permalink(pub: Publisher) -> None:
    # Given an Instagram account connected through Instagram Login (cannot delete via API)
    pub.listing()
    account = pub.account(
        "a-ig", "instagram", {"accessToken": IG_TOKEN}, connected_via="instagram_login"
    )
    permalink = "https://www.instagram.com/p/FAKE1/"
    post = pub.post("p-1", account, "17900000000000009", permalink=permalink)
    # When its job runs
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then nothing is sent to the platform, the post waits for a person
    assert run.failed_ids == set()
    assert pub.sim.requests() == []
    assert _status(pub, "p-1") is PostStatus.MANUAL_ACTION_REQUIRED
    # and the app is told, with the permalink to open
    [event] = pub.events("PostUnpublishOutcome")
    assert event["detail"]["outcome"] == "manual_action_required"
    assert event["detail"]["permalink"] == permalink
    assert "by hand" in event["detail"]["reason"]


def test_linkedin_rejected_token_is_refreshed_and_the_delete_retried_once(
    pub: Publisher,
) -> None:
    # Given a LinkedIn post whose access token was revoked, with a live refresh token
    pub.listing()
    pub.sim.add_token("linkedin", LI_TOKEN, account="li-member", refresh_token=LI_REFRESH)
    urn = "urn:li:share:7000000000000000003"
    pub.sim.add_post("linkedin", urn, token=LI_TOKEN)
    pub.sim.revoke(LI_TOKEN)
    account = pub.account("a-li", "linkedin", {"accessToken": LI_TOKEN, "refreshToken": LI_REFRESH})
    post = pub.post("p-1", account, urn)
    # When its job runs
    pub.enqueue(pub.job(post))
    pub.deliver()
    # Then one refresh, one retried delete, and the post is down
    assert pub.sim.refresh_calls == 1
    assert [(r.route, r.status) for r in pub.sim.requests()] == [
        ("linkedin", 401),
        ("linkedin_oauth", 200),
        ("linkedin", 204),
    ]
    assert _status(pub, "p-1") is PostStatus.UNPUBLISHED
    # and the new token was written back to Secrets Manager, refresh token kept
    secret = pub.token_secret("a-li")
    assert secret["accessToken"] != LI_TOKEN
    assert secret["accessToken"] in pub.sim.issued_tokens("li-member")
    assert secret["refreshToken"] == LI_REFRESH
    stored = pub.accounts.get("a-li")
    assert stored is not None
    assert stored.status == "active"
    assert stored.lease_owner is None  # lease released
    assert stored.token_expires_at is not None


def test_linkedin_rejected_token_with_dead_refresh_token_asks_for_reauth(pub: Publisher) -> None:
    # Given both LinkedIn tokens revoked
    pub.listing()
    pub.sim.add_token("linkedin", LI_TOKEN, account="li-member", refresh_token=LI_REFRESH)
    urn = "urn:li:share:7000000000000000004"
    pub.sim.add_post("linkedin", urn, token=LI_TOKEN)
    pub.sim.revoke(LI_TOKEN)
    pub.sim.revoke(LI_REFRESH)
    account = pub.account("a-li", "linkedin", {"accessToken": LI_TOKEN, "refreshToken": LI_REFRESH})
    post = pub.post("p-1", account, urn)
    # When its job runs
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then the post and the account both say the agent must reconnect; no retry loop
    assert run.failed_ids == set()
    assert _status(pub, "p-1") is PostStatus.REAUTH_REQUIRED
    stored = pub.accounts.get("a-li")
    assert stored is not None
    assert stored.status == "reauth_required"
    assert pub.sim.refresh_calls == 1


def test_facebook_rejected_token_marks_post_and_account_reauth_required(pub: Publisher) -> None:
    # Given a Facebook Page token the agent revoked (Graph 190/460; no refresh exists)
    pub.listing()
    pub.sim.add_post("facebook", "111_444", token=FB_TOKEN)
    pub.sim.revoke(FB_TOKEN)
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", account, "111_444")
    # When its job runs
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then no refresh is attempted, the post and the account need the agent
    assert run.failed_ids == set()
    assert [r.route for r in pub.sim.requests()] == ["facebook"]
    assert _status(pub, "p-1") is PostStatus.REAUTH_REQUIRED
    stored = pub.accounts.get("a-fb")
    assert stored is not None
    assert stored.status == "reauth_required"
    [event] = pub.events("PostUnpublishOutcome")
    assert event["detail"]["outcome"] == "reauth_required"
    assert "190" in event["detail"]["reason"]


def test_facebook_throttle_hides_the_message_for_the_platforms_wait(pub: Publisher) -> None:
    # Given Graph throttles the next call (code 4, BUC header: regain access in 7 minutes)
    pub.listing()
    pub.sim.add_post("facebook", "111_555", token=FB_TOKEN)
    pub.sim.throttle_next(1, platform="facebook", code=4, regain_minutes=7)
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", account, "111_555")
    # When its job runs
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then the record is reported failed (SQS keeps it), hidden for Meta's 7 minutes,
    # not retried in-process, and the post is still published
    assert run.failed_ids == {run.records[0]["messageId"]}
    assert [c["VisibilityTimeout"] for c in pub.visibility_changes] == [420]
    assert pub.visibility_changes[0]["ReceiptHandle"] == run.records[0]["receiptHandle"]
    assert len(pub.sim.requests()) == 1
    assert pub.receive() == []  # invisible now
    assert _status(pub, "p-1") is PostStatus.PUBLISHED
    assert pub.events() == []


def test_linkedin_daily_limit_hides_the_message_until_midnight_utc(pub: Publisher) -> None:
    # Given LinkedIn's header-less 429 (daily limits reset at 00:00 UTC)
    pub.listing()
    urn = "urn:li:share:7000000000000000005"
    pub.sim.add_post("linkedin", urn, token=LI_TOKEN)
    pub.sim.throttle_next(1, platform="linkedin")
    account = pub.account("a-li", "linkedin", {"accessToken": LI_TOKEN})
    post = pub.post("p-1", account, urn)
    # When its job runs at 17:04:05 UTC
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then the message is hidden until midnight: 6 h 55 min 55 s
    assert len(run.failed_ids) == 1
    assert [c["VisibilityTimeout"] for c in pub.visibility_changes] == [6 * 3600 + 55 * 60 + 55]
    assert _status(pub, "p-1") is PostStatus.PUBLISHED


def test_5xx_is_retried_then_failed_on_the_last_receive_and_sent_to_the_dlq(
    pub: Publisher,
) -> None:
    # Given Graph answers 503 to everything
    pub.listing()
    pub.sim.add_post("facebook", "111_666", token=FB_TOKEN)
    pub.sim.fail_next(100, 503, route="facebook")
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", account, "111_666")
    pub.enqueue(pub.job(post))
    # When the job is received 4 times: each is retried in-process (3 attempts), then left
    # to SQS (no visibility change: the queue's own timeout paces the retries)
    for receive in range(1, 5):
        run = pub.deliver(visibility=0)
        assert run.records[0]["attributes"]["ApproximateReceiveCount"] == str(receive)
        assert len(run.failed_ids) == 1
        assert _status(pub, "p-1") is PostStatus.PUBLISHED
    assert len(pub.sim.requests()) == 12
    assert pub.sleeps[:2] == [0.1, 0.2]  # capped exponential backoff, jitter fixed at 0.5
    assert pub.visibility_changes == []
    # and the 5th (ApproximateReceiveCount = maxReceiveCount) also fails
    run = pub.deliver(visibility=0)
    # Then the post is failed with the reason, and the record is still reported failed
    assert len(run.failed_ids) == 1
    stored = pub.posts.get("p-1")
    assert stored is not None
    assert stored.status is PostStatus.FAILED
    assert stored.outcome_reason is not None
    assert stored.outcome_reason.startswith("gave up after 5 tries")
    [event] = pub.events("PostUnpublishOutcome")
    assert event["detail"]["outcome"] == "failed"
    # so that SQS moves the message to the dead-letter queue on its next receive
    assert pub.receive() == []
    dead = pub.receive_from(pub.dlq_url())
    assert [json.loads(m["Body"]) for m in dead] == [pub.job(post).to_item()]


def test_timeout_after_the_platform_deleted_converges_to_unpublished(pub: Publisher) -> None:
    # Given Graph deletes the post but the answer never arrives (client timeout)
    pub.listing()
    pub.sim.add_post("facebook", "111_777", token=FB_TOKEN)
    pub.sim.timeout_next(1, seconds=2.0, route="facebook", after_effect=True)
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", account, "111_777")
    # When the job runs (the in-process retry asks again)
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then the retry hears "gone", the token is healthy, and the post is unpublished:
    # one effective delete
    assert run.failed_ids == set()
    assert _status(pub, "p-1") is PostStatus.UNPUBLISHED
    assert pub.sim.post("facebook", "111_777").deletions == 1


def test_a_job_that_cannot_finish_in_time_goes_back_to_the_queue_untouched(
    pub: Publisher,
) -> None:
    # Given a published post of a sold listing
    pub.listing()
    pub.sim.add_post("facebook", "1_7", token=FB_TOKEN)
    post = pub.post("p-7", pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN}), "1_7")
    pub.enqueue(pub.job(post))
    # When the invocation has less time left than one job may need
    messages = pub.receive()
    run = pub.invoke(messages, context=lambda_context(timeout_seconds=10))
    # Then the job is handed back (reported failed, hidden for a second, not the full
    # visibility timeout) without any call to the platform
    assert len(run.failed_ids) == 1
    assert pub.sim.requests() == []
    assert _status(pub, "p-7") is PostStatus.PUBLISHED
    assert pub.receive() == []
    # And once that second has passed, an invocation with time to spare takes it down
    aws.sqs().change_message_visibility(
        QueueUrl=pub.stack.settings.unpublish_queue_url,
        ReceiptHandle=messages[0]["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    pub.deliver()
    assert _status(pub, "p-7") is PostStatus.UNPUBLISHED


def test_a_malformed_linkedin_app_secret_retries_linkedin_only(pub: Publisher) -> None:
    # Given the LinkedIn app's secret replaced by one without a clientSecret (an operator's
    # slip), a LinkedIn post whose token was revoked, and a Facebook post of the same sale
    SecretStore(aws.secrets()).put_json(
        "mls-sync-test/platform/linkedin-app", {"clientId": "only-the-id"}
    )
    pub.listing()
    pub.sim.add_token("linkedin", LI_TOKEN, account="li-member", refresh_token=LI_REFRESH)
    urn = "urn:li:share:7000000000000000009"
    pub.sim.add_post("linkedin", urn, token=LI_TOKEN)
    pub.sim.revoke(LI_TOKEN)
    pub.sim.add_post("facebook", "111_999", token=FB_TOKEN)
    li = pub.account("a-li", "linkedin", {"accessToken": LI_TOKEN, "refreshToken": LI_REFRESH})
    fb = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    # When both jobs run (the publisher was built without reading the app secret)
    pub.enqueue(pub.job(pub.post("p-li", li, urn)))
    pub.enqueue(pub.job(pub.post("p-fb", fb, "111_999")))
    run = pub.deliver()
    # Then the Facebook post is down, and the LinkedIn job is left to retry: no refresh
    # call went out, nobody is asked to reconnect (the fault is ours, not the agent's)
    assert _status(pub, "p-fb") is PostStatus.UNPUBLISHED
    assert len(run.failed_ids) == 1
    assert _status(pub, "p-li") is not PostStatus.REAUTH_REQUIRED
    stored = pub.accounts.get("a-li")
    assert stored is not None
    assert stored.status == "active"
    assert pub.sim.refresh_calls == 0
    assert ("linkedin_oauth", 200) not in [(r.route, r.status) for r in pub.sim.requests()]
