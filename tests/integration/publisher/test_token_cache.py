"""Platform tokens are read through the publisher's secret cache (a max age): a warm
publisher asks Secrets Manager once per account, not once per job; a token an admin
replaced while the old one is cached is re-read when the platform refuses the cached one."""

from __future__ import annotations

from typing import Any

from mls_sync import aws
from mls_sync.models import PostStatus
from mls_sync.secrets import SecretStore

from tests.integration.publisher.conftest import Publisher

FB_TOKEN = "EAAfbPageTokenAbc123"
NEW_TOKEN = "EAAfbPageTokenNew999"


def _secret_reads(pub: Publisher) -> list[str]:
    reads: list[str] = []

    def spy(params: dict[str, Any], **_: Any) -> None:
        reads.append(params["SecretId"])

    aws.secrets().meta.events.register("provide-client-params.secrets-manager.GetSecretValue", spy)
    return reads


def _status(pub: Publisher, post_id: str) -> PostStatus:
    post = pub.posts.get(post_id)
    assert post is not None
    return post.status


def test_a_warm_publisher_reads_an_accounts_token_once_for_many_jobs(pub: Publisher) -> None:
    # Given three posts of one Facebook Page
    pub.listing()
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    posts = []
    for i in range(3):
        pub.sim.add_post("facebook", f"1_{i}", token=FB_TOKEN)
        posts.append(pub.post(f"p-{i}", account, f"1_{i}"))
    reads = _secret_reads(pub)
    # When their jobs run in two deliveries
    pub.enqueue(pub.job(posts[0]))
    pub.deliver()
    pub.enqueue(pub.job(posts[1]), pub.job(posts[2]))
    pub.deliver()
    # Then every post came down and the token secret was read once
    assert [_status(pub, f"p-{i}") for i in range(3)] == [PostStatus.UNPUBLISHED] * 3
    assert reads == [account.token_secret_arn]


def test_a_token_replaced_while_the_old_one_is_cached_is_re_read_when_refused(
    pub: Publisher,
) -> None:
    # Given a Page whose token the publisher has read (and caches) for a first job
    pub.listing()
    pub.sim.add_token("facebook", FB_TOKEN, account="page-1")
    pub.sim.add_token("facebook", NEW_TOKEN, account="page-1")
    account = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    pub.sim.add_post("facebook", "1_1", token=FB_TOKEN)
    pub.sim.add_post("facebook", "1_2", token=FB_TOKEN)
    first = pub.post("p-1", account, "1_1")
    second = pub.post("p-2", account, "1_2")
    pub.enqueue(pub.job(first))
    pub.deliver()
    # And since then the agent revoked it and an admin stored a new one (another process)
    pub.sim.revoke(FB_TOKEN)
    SecretStore(aws.secrets()).update_json(account.token_secret_arn, {"accessToken": NEW_TOKEN})
    pub.sim.clear_log()
    reads = _secret_reads(pub)
    # When the next job runs in the same warm publisher
    pub.enqueue(pub.job(second))
    run = pub.deliver()
    # Then the cached token was refused, the new one read afresh, and the post came down
    assert run.failed_ids == set()
    assert [(r.route, r.status) for r in pub.sim.requests()] == [
        ("facebook", 400),
        ("facebook", 200),
    ]
    assert reads == [account.token_secret_arn]
    assert _status(pub, "p-2") is PostStatus.UNPUBLISHED
    stored = pub.accounts.get("a-fb")
    assert stored is not None
    assert stored.status != "reauth_required"
