"""Posts come down at most once, only when they should: duplicates, crashes between the
delete and the write, posts not published, relisted listings."""

from __future__ import annotations

from typing import Any

import pytest
from mls_sync.models import PostStatus
from mls_sync.status import Status

from tests.integration.publisher.conftest import Publisher

FB_TOKEN = "EAAfbPageTokenAbc123"
LI_TOKEN = "AQVliMemberTokenGhi789"


def _status(pub: Publisher, post_id: str) -> PostStatus:
    post = pub.posts.get(post_id)
    assert post is not None
    return post.status


@pytest.mark.parametrize(
    "status",
    [
        PostStatus.DRAFT,
        PostStatus.SCHEDULED,
        PostStatus.UNPUBLISHED,
        PostStatus.MANUAL_ACTION_REQUIRED,
        PostStatus.REAUTH_REQUIRED,
        PostStatus.FAILED,
    ],
)
def test_post_that_is_not_published_is_never_touched(pub: Publisher, status: PostStatus) -> None:
    # Given a post of a sold listing that is not (or no longer) published
    pub.listing()
    pub.sim.add_post("facebook", "111_001", token=FB_TOKEN)
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", account, "111_001", status=status)
    # When a job for it runs
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then no request reaches the platform, nothing is written or announced
    assert run.failed_ids == set()
    assert pub.sim.requests() == []
    assert _status(pub, "p-1") is status
    assert pub.events() == []
    assert pub.queue_depth() == 0


def test_relisted_listing_keeps_its_posts_and_a_later_sale_still_takes_them_down(
    pub: Publisher,
) -> None:
    # Given a listing that sold, then was relisted before its unpublish job ran
    pub.listing(status=Status.ACTIVE)
    pub.sim.add_post("facebook", "111_002", token=FB_TOKEN)
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", account, "111_002")
    # When the job runs
    pub.enqueue(pub.job(post, "corr-sale-1"))
    run = pub.deliver()
    # Then the post stays up and the platform is not called
    assert run.failed_ids == set()
    assert pub.sim.requests() == []
    assert _status(pub, "p-1") is PostStatus.PUBLISHED
    # When the listing sells again (within the idempotency window) and a new job runs
    pub.set_listing_status("l-1", Status.SOLD, "2026-11-28T17:00:00.000000000Z")
    pub.enqueue(pub.job(post, "corr-sale-2"))
    pub.deliver()
    # Then the skip was not remembered: the post comes down
    assert _status(pub, "p-1") is PostStatus.UNPUBLISHED
    assert pub.sim.post("facebook", "111_002").deletions == 1


def test_same_job_twice_in_one_batch_makes_one_delete_call(pub: Publisher) -> None:
    # Given the same job delivered twice (standard queues deliver at least once)
    pub.listing()
    pub.sim.add_post("facebook", "111_003", token=FB_TOKEN)
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", account, "111_003")
    pub.enqueue(pub.job(post), pub.job(post))
    # When both arrive in one batch
    messages = pub.receive()
    assert len(messages) == 2
    run = pub.invoke(messages)
    # Then both records succeed and the platform saw one delete
    assert run.failed_ids == set()
    assert pub.sim.post("facebook", "111_003").delete_calls == 1
    assert _status(pub, "p-1") is PostStatus.UNPUBLISHED
    assert len(pub.events("PostUnpublishOutcome")) == 1


@pytest.mark.parametrize(
    ("platform", "platform_post_id", "token"),
    [("facebook", "111_004", FB_TOKEN), ("linkedin", "urn:li:share:7100000000000000004", LI_TOKEN)],
)
def test_same_job_in_two_batches_makes_one_delete_call(
    pub: Publisher, platform: str, platform_post_id: str, token: str
) -> None:
    # Given a job that was already carried out
    pub.listing()
    pub.sim.add_post(platform, platform_post_id, token=token)
    account = pub.account("a-1", platform, {"accessToken": token})
    post = pub.post("p-1", account, platform_post_id)
    pub.enqueue(pub.job(post))
    pub.deliver()
    # When a duplicate of it arrives in a later batch
    pub.enqueue(pub.job(post))
    run = pub.deliver()
    # Then it succeeds without calling the platform again
    assert run.failed_ids == set()
    assert pub.sim.post(platform, platform_post_id).delete_calls == 1
    assert len(pub.events("PostUnpublishOutcome")) == 1


def test_duplicate_reaching_the_idempotent_section_gets_the_stored_result(
    pub: Publisher,
) -> None:
    # Given a job carried out, and a duplicate whose precheck ran before the first one's
    # status write (so it reaches the idempotent section while the post looked published)
    pub.listing()
    pub.sim.add_post("facebook", "111_005", token=FB_TOKEN)
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", account, "111_005")
    pub.enqueue(pub.job(post))
    pub.deliver()
    service: Any = pub.deps.service
    original = service.precheck
    service.precheck = lambda job: None  # the stale precheck's answer
    try:
        pub.enqueue(pub.job(post))
        run = pub.deliver()
    finally:
        service.precheck = original
    # Then Powertools idempotency answers from the record keyed on (platform, postId)
    assert run.failed_ids == set()
    assert run.response == {"batchItemFailures": []}
    assert pub.sim.post("facebook", "111_005").delete_calls == 1
    assert len(pub.events("PostUnpublishOutcome")) == 1


@pytest.mark.parametrize(
    ("platform", "platform_post_id", "token"),
    [("facebook", "111_006", FB_TOKEN), ("linkedin", "urn:li:share:7100000000000000006", LI_TOKEN)],
)
def test_crash_between_delete_and_status_write_converges_without_a_second_effect(
    pub: Publisher,
    monkeypatch: pytest.MonkeyPatch,
    platform: str,
    platform_post_id: str,
    token: str,
) -> None:
    # Given the status write fails once, right after the platform deleted the post
    pub.listing()
    sim_post = pub.sim.add_post(platform, platform_post_id, token=token)
    account = pub.account("a-1", platform, {"accessToken": token})
    post = pub.post("p-1", account, platform_post_id)
    posts_repo: Any = pub.deps.service.posts
    real_record = posts_repo.record_outcome
    crashes: list[int] = []

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        if not crashes:
            assert sim_post.deletions == 1  # the platform already did the work
            crashes.append(1)
            raise ConnectionError("simulated crash before the status write")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(posts_repo, "record_outcome", crash_once)
    pub.enqueue(pub.job(post))
    # When the job runs, crashes, and SQS delivers it again
    first = pub.deliver(visibility=0)
    assert len(first.failed_ids) == 1
    assert _status(pub, "p-1") is PostStatus.PUBLISHED
    second = pub.deliver()
    # Then the re-run hears "already gone" and converges to unpublished; one effect
    assert second.failed_ids == set()
    assert _status(pub, "p-1") is PostStatus.UNPUBLISHED
    assert sim_post.delete_calls == 2
    assert sim_post.deletions == 1
    assert len(pub.events("PostUnpublishOutcome")) == 1
    assert pub.queue_depth() == 0
