"""The publisher's outbox (issue 15, part 3): an outcome written on the post is announced at
least once, whatever fails after the write, and a sale is announced exactly once.

Before: when PutEvents (or the account-status write) failed after the post's status write,
the retry found the post no longer ``published`` and skipped it, so ``PostUnpublishOutcome``
and ``ListingPostsUnpublished`` were never sent.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from mls_sync.models import PostStatus, UnpublishJob

from tests.integration.publisher.conftest import Publisher

FB_TOKEN = "EAAfbPageTokenOutbox1"
LI_TOKEN = "AQVliMemberTokenOutbox2"
LI_URN = "urn:li:share:7400000000000000001"


class FlakyBus:
    """An EventBridge client that cannot be reached for the next ``failures`` PutEvents calls
    (``None``: until ``recover()``), then passes calls through to the real one."""

    def __init__(self, real: Any, failures: int | None) -> None:
        self._real = real
        self.failures = failures
        self.refused = 0

    def recover(self) -> None:
        self.failures = 0

    def put_events(self, **kwargs: Any) -> Any:
        if self.failures is None or self.failures > 0:
            if self.failures is not None:
                self.failures -= 1
            self.refused += 1
            raise EndpointConnectionError(endpoint_url="https://events.us-east-1.amazonaws.com")
        return self._real.put_events(**kwargs)


def _flaky_bus(pub: Publisher, monkeypatch: pytest.MonkeyPatch, failures: int | None) -> FlakyBus:
    publisher: Any = pub.deps.service._delivery.events
    bus = FlakyBus(publisher.client, failures)
    monkeypatch.setattr(publisher, "client", bus)
    return bus


def _sold_listing_with_two_posts(pub: Publisher) -> list[UnpublishJob]:
    pub.listing()
    pub.sim.add_post("facebook", "111_901", token=FB_TOKEN)
    pub.sim.add_post("linkedin", LI_URN, token=LI_TOKEN)
    fb = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    li = pub.account("a-li", "linkedin", {"accessToken": LI_TOKEN})
    return [
        pub.job(pub.post("p-fb", fb, "111_901"), "corr-sale"),
        pub.job(pub.post("p-li", li, LI_URN), "corr-sale"),
    ]


def _deliver_until_empty(pub: Publisher, *, rounds: int = 6) -> None:
    for _ in range(rounds):
        messages = pub.receive(visibility=0)
        if not messages:
            return
        pub.invoke(messages)
    assert pub.queue_depth() == 0


def _outcomes_by_post(pub: Publisher) -> Counter[str]:
    return Counter(e["detail"]["postId"] for e in pub.events("PostUnpublishOutcome"))


def _pending(pub: Publisher, post_id: str) -> frozenset[str]:
    settled = pub.posts.get_settled(post_id)
    assert settled is not None
    return settled.pending


@pytest.mark.parametrize("failures", [1, 2, None], ids=["first-put", "first-two", "whole-run"])
def test_put_events_failing_after_the_status_write_is_delivered_on_redelivery(
    pub: Publisher, monkeypatch: pytest.MonkeyPatch, failures: int | None
) -> None:
    # Given a sold listing with two posts, and a bus unreachable after the status writes
    pub.enqueue(*_sold_listing_with_two_posts(pub))
    bus = _flaky_bus(pub, monkeypatch, failures)
    # When both jobs run: the posts come down, some events cannot be sent
    first = pub.invoke(pub.receive(visibility=0))
    assert bus.refused >= 1
    assert first.failed_ids, "a job whose events are pending must be retried"
    assert pub.posts.get("p-fb").status is PostStatus.UNPUBLISHED  # type: ignore[union-attr]
    assert pub.posts.get("p-li").status is PostStatus.UNPUBLISHED  # type: ignore[union-attr]
    # And once the bus is back, SQS redelivers the failed jobs (and a stray duplicate)
    bus.recover()
    pub.enqueue(*(pub.job(p, "corr-dup") for p in (pub.posts.get("p-fb"),) if p is not None))
    _deliver_until_empty(pub)
    # Then each post's outcome arrived exactly once, and the sale was announced once
    assert _outcomes_by_post(pub) == {"p-fb": 1, "p-li": 1}
    [announced] = pub.events("ListingPostsUnpublished")
    assert announced["detail"]["outcomes"] == {
        "facebook": {"unpublished": 1},
        "linkedin": {"unpublished": 1},
    }
    assert announced["detail"]["correlationId"] == "corr-sale"
    # And the platforms saw one delete each; nothing is left pending
    assert pub.sim.post("facebook", "111_901").delete_calls == 1
    assert pub.sim.post("linkedin", LI_URN).delete_calls == 1
    assert _pending(pub, "p-fb") == frozenset()
    assert _pending(pub, "p-li") == frozenset()


def test_outcome_events_carry_what_was_recorded_not_the_redelivery(
    pub: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a post whose outcome event could not be sent
    pub.listing()
    pub.sim.add_post("facebook", "111_902", token=FB_TOKEN)
    fb = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", fb, "111_902")
    bus = _flaky_bus(pub, monkeypatch, None)
    pub.enqueue(pub.job(post, "corr-original"))
    pub.invoke(pub.receive(visibility=0))
    bus.recover()
    # When the retry that delivers it is another job for the same post
    _deliver_until_empty(pub)
    pub.enqueue(pub.job(post, "corr-later"))
    _deliver_until_empty(pub)
    # Then the event is the recorded outcome's, once
    [event] = pub.events("PostUnpublishOutcome")
    assert event["detail"]["correlationId"] == "corr-original"
    assert event["detail"]["outcome"] == "unpublished"
    assert event["detail"]["at"] == "2026-11-28T17:04:05.000000Z"
    assert len(pub.events("ListingPostsUnpublished")) == 1


def test_account_status_write_failing_after_the_status_write_is_retried(
    pub: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a revoked Page token, and the account-status write failing once
    pub.listing()
    pub.sim.add_post("facebook", "111_903", token=FB_TOKEN)
    pub.sim.revoke(FB_TOKEN)
    fb = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    post = pub.post("p-1", fb, "111_903")
    accounts: Any = pub.deps.service.accounts
    real_set_status = accounts.set_status
    failures: list[str] = []

    def fail_once(*args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append("x")
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        real_set_status(*args, **kwargs)

    monkeypatch.setattr(accounts, "set_status", fail_once)
    pub.enqueue(pub.job(post))
    # When the job runs: the post is recorded, the account write fails
    first = pub.deliver(visibility=0)
    assert len(first.failed_ids) == 1
    assert pub.posts.get("p-1").status is PostStatus.REAUTH_REQUIRED  # type: ignore[union-attr]
    assert pub.accounts.get("a-fb").status == "active"  # type: ignore[union-attr]
    assert _pending(pub, "p-1") == {"account"}
    # And SQS redelivers it
    _deliver_until_empty(pub)
    # Then the account is marked, and the events were sent once each
    assert pub.accounts.get("a-fb").status == "reauth_required"  # type: ignore[union-attr]
    assert _outcomes_by_post(pub) == {"p-1": 1}
    [announced] = pub.events("ListingPostsUnpublished")
    assert announced["detail"]["outcomes"] == {"facebook": {"reauth_required": 1}}
    assert _pending(pub, "p-1") == frozenset()
    assert [r.route for r in pub.sim.requests()] == ["facebook"]  # one call, not repeated


def test_only_the_claiming_post_announces_even_when_its_announcement_failed(
    pub: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two posts whose jobs run in separate batches; the announcement of the last one
    # fails (the bus refuses its second call: the outcome went out, the announcement not)
    fb_job, li_job = _sold_listing_with_two_posts(pub)
    pub.enqueue(fb_job)
    pub.deliver()
    bus = _flaky_bus(pub, monkeypatch, 0)
    real_put = bus.put_events
    calls: list[int] = []

    def refuse_second(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise EndpointConnectionError(endpoint_url="https://events.us-east-1.amazonaws.com")
        return real_put(**kwargs)

    monkeypatch.setattr(bus, "put_events", refuse_second)
    pub.enqueue(li_job)
    last = pub.deliver(visibility=0)
    assert len(last.failed_ids) == 1
    assert _pending(pub, "p-li") == {"announce"}
    assert pub.events("ListingPostsUnpublished") == []
    # When the other post's job is delivered again (a duplicate) before the retry
    pub.enqueue(fb_job.model_copy(update={"correlation_id": "corr-dup"}))
    # and then everything is redelivered
    _deliver_until_empty(pub)
    # Then the sale was announced once, by the post that claimed it
    [announced] = pub.events("ListingPostsUnpublished")
    assert announced["detail"]["correlationId"] == "corr-sale"
    listing = pub.listings.get_raw("l-1")
    assert listing is not None
    assert listing["postsDownBy"] == "p-li"
    assert _outcomes_by_post(pub) == {"p-fb": 1, "p-li": 1}
