"""Platform answers the publisher used to misread (issue 15, part 4), through the real
handler and the simulator: a bodiless Graph 429 waits what ``Retry-After`` says, and an
unreadable error is retried up to the receive limit instead of failing the post at once."""

from __future__ import annotations

import pytest
from mls_sync.models import PostStatus

from tests.integration.publisher.conftest import Publisher

FB_TOKEN = "EAAfbPageTokenUnreadable1"
LI_TOKEN = "AQVliMemberTokenUnreadable2"
LI_URN = "urn:li:share:7500000000000000001"


def _status(pub: Publisher, post_id: str) -> PostStatus:
    post = pub.posts.get(post_id)
    assert post is not None
    return post.status


def test_bodiless_graph_429_hides_the_message_for_retry_after(pub: Publisher) -> None:
    # Given Graph answers the next delete 429 with no body, asking for 7 seconds
    pub.listing()
    pub.sim.add_post("facebook", "111_961", token=FB_TOKEN)
    pub.sim.fail_next(1, 429, None, headers={"Retry-After": "7"}, route="facebook")
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    pub.enqueue(pub.job(pub.post("p-1", account, "111_961")))
    # When the job runs
    run = pub.deliver()
    # Then the message is hidden for 7 s (not 15 minutes), the post untouched
    assert len(run.failed_ids) == 1
    assert [c["VisibilityTimeout"] for c in pub.visibility_changes] == [7]
    assert _status(pub, "p-1") is PostStatus.PUBLISHED


@pytest.mark.parametrize(
    ("platform", "platform_post_id", "token", "body"),
    [
        ("facebook", "111_962", FB_TOKEN, b"<html><body>400 Bad Request</body></html>"),
        ("facebook", "111_963", FB_TOKEN, b'{"message": "no error object"}'),
        ("linkedin", LI_URN, LI_TOKEN, b"<html>Bad Request</html>"),
    ],
)
def test_unreadable_400_is_retried_and_the_post_comes_down(
    pub: Publisher, platform: str, platform_post_id: str, token: str, body: bytes
) -> None:
    # Given the platform answers the next 3 deletes (every in-process attempt) with an
    # unreadable 400
    pub.listing()
    pub.sim.add_post(platform, platform_post_id, token=token)
    pub.sim.fail_next(3, 400, body, route=platform)
    account = pub.account("a-1", platform, {"accessToken": token})
    pub.enqueue(pub.job(pub.post("p-1", account, platform_post_id)))
    # When the job runs
    first = pub.deliver(visibility=0)
    # Then it is not failed: the queue retries it
    assert len(first.failed_ids) == 1
    assert _status(pub, "p-1") is PostStatus.PUBLISHED
    assert pub.events("PostUnpublishOutcome") == []
    # And the redelivery takes the post down
    second = pub.deliver()
    assert second.failed_ids == set()
    assert _status(pub, "p-1") is PostStatus.UNPUBLISHED
    assert pub.sim.post(platform, platform_post_id).deletions == 1


def test_unreadable_answers_until_the_receive_limit_fail_the_post(pub: Publisher) -> None:
    # Given Graph answers every delete with an unreadable 400
    pub.listing()
    pub.sim.add_post("facebook", "111_964", token=FB_TOKEN)
    pub.sim.fail_next(1000, 400, b"garbage", route="facebook")
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    pub.enqueue(pub.job(pub.post("p-1", account, "111_964")))
    # When SQS delivers it up to the receive limit
    for _ in range(pub.deps.max_receives - 1):
        pub.deliver(visibility=0)
        assert _status(pub, "p-1") is PostStatus.PUBLISHED
    last = pub.deliver(visibility=0)
    # Then on the last receive the post is failed, with the reason, and announced
    assert len(last.failed_ids) == 1
    post = pub.posts.get("p-1")
    assert post is not None
    assert post.status is PostStatus.FAILED
    assert post.outcome_reason is not None
    assert f"gave up after {pub.deps.max_receives} tries" in post.outcome_reason
    [event] = pub.events("PostUnpublishOutcome")
    assert event["detail"]["outcome"] == "failed"
