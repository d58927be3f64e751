"""Token refresh under the account's lease, secrets kept out of every output, and the one
ListingPostsUnpublished announcement per sale."""

from __future__ import annotations

import io
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from mls_sync import aws
from mls_sync.models import PostStatus
from mls_sync.platforms.linkedin import OAuthApp
from mls_sync.platforms.registry import build_registry
from mls_sync.platforms.settings import PlatformSettings
from mls_sync.secrets import SecretStore
from mls_sync.unpublish.tokens import StoredToken, TokenService
from pydantic import SecretStr

from functions.publisher import app
from tests.integration.publisher.conftest import LINKEDIN_APP, NOW, Publisher

# Distinctive values, so that any fragment of one in an output is certainly a leak.
FB_TOKEN = "EAAGm0PZ7xQ2fbTOKENzz91Kq"
LI_TOKEN = "AQVw8ZrT3mLiACCESSqq47Yp"
LI_REFRESH = "AQXk2HnV9sLiREFRESHjj63Wd"
IG_TOKEN = "EAAGq5YuIG7TOKENhh28Lm"


def test_ten_concurrent_refreshers_make_one_token_call(pub: Publisher) -> None:
    # Given a LinkedIn account whose access token was rejected, and ten workers at once
    pub.sim.add_token("linkedin", LI_TOKEN, account="li-member", refresh_token=LI_REFRESH)
    pub.sim.revoke(LI_TOKEN)
    account = pub.account("a-li", "linkedin", {"accessToken": LI_TOKEN, "refreshToken": LI_REFRESH})
    app_creds = OAuthApp(
        client_id=LINKEDIN_APP["clientId"], client_secret=SecretStr(LINKEDIN_APP["clientSecret"])
    )
    client = build_registry(
        PlatformSettings.from_env(pub.env), http=pub.http, linkedin_app=app_creds
    ).client("linkedin")
    stale = StoredToken.model_validate({"accessToken": LI_TOKEN, "refreshToken": LI_REFRESH})
    # Waiters are woken by the secret's update (observed on the real client), not by time.
    written = threading.Event()
    aws.secrets().meta.events.register(
        "after-call.secrets-manager.PutSecretValue", lambda **_: written.set()
    )
    _atomic_dynamodb_writes()
    start = threading.Barrier(10)

    def wake_on_write(seconds: float) -> None:
        written.wait(seconds)

    def worker(i: int) -> StoredToken:
        tokens = TokenService(
            pub.accounts,
            SecretStore(aws.secrets()),
            clock=lambda: NOW,
            sleep=wake_on_write,
            owner=f"worker-{i}",
            wait_seconds=60,
        )
        start.wait()
        return tokens.refreshed(account, client, stale)

    # When all ten refresh at the same moment
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(worker, range(10)))
    # Then one token call was made, and every worker holds the new token
    assert pub.sim.refresh_calls == 1
    [new_token] = [t for t in pub.sim.issued_tokens("li-member") if t != LI_TOKEN]
    assert {r.accessToken.get_secret_value() for r in results} == {new_token}
    assert pub.token_secret("a-li")["accessToken"] == new_token
    stored = pub.accounts.get("a-li")
    assert stored is not None
    assert stored.lease_owner is None


def _atomic_dynamodb_writes() -> None:
    """DynamoDB applies each conditional write atomically; moto's in-process backend has no
    lock, so concurrent threads could both pass a condition. One call at a time restores the
    real service's guarantee (and nothing more) for a test that races threads on it."""
    lock = threading.Lock()
    events = aws.dynamodb_resource().meta.client.meta.events

    def acquire(**_: Any) -> None:  # returning a value would short-circuit the call
        lock.acquire()

    def release(**_: Any) -> None:
        lock.release()

    events.register("before-call.dynamodb", acquire)
    events.register("after-call.dynamodb", release)
    events.register("after-call-error.dynamodb", release)


def _fragments(secret: str, width: int = 10) -> set[str]:
    return {secret[i : i + width] for i in range(len(secret) - width + 1)}


def _scan_all(pub: Publisher) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    ddb = aws.dynamodb()
    for name in ddb.list_tables()["TableNames"]:
        items.extend(ddb.scan(TableName=name)["Items"])
    return items


def test_tokens_never_appear_in_logs_events_items_or_errors(
    pub: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    # Given our loggers and the HTTP client's at DEBUG, the Powertools JSON lines written
    # where we can read them, and jobs that exercise each token path: a LinkedIn token
    # refreshed (first through a token-endpoint 503), a revoked Facebook token, an Instagram
    # 100/33 checked with GET /me
    ours = [
        name
        for name in logging.root.manager.loggerDict
        if name.startswith(("mls-sync", "mls_sync", "httpx", "httpcore"))
    ]
    for name in {"mls-sync", "mls_sync", "httpx", "httpcore", *ours}:
        caplog.set_level(logging.DEBUG, logger=name)  # restored by caplog afterwards
    json_lines = io.StringIO()
    powertools_out = logging.StreamHandler(json_lines)
    powertools_out.setFormatter(app.logger.registered_formatter)
    service_logger = logging.getLogger(app.logger.name)
    service_logger.addHandler(powertools_out)
    pub.listing()
    pub.sim.add_token("linkedin", LI_TOKEN, account="li-member", refresh_token=LI_REFRESH)
    pub.sim.add_post("linkedin", "urn:li:share:7200000000000000001", token=LI_TOKEN)
    pub.sim.revoke(LI_TOKEN)
    pub.sim.fail_next(3, 503, {"error": "temporarily_unavailable"}, route="linkedin_oauth")
    pub.sim.add_post("facebook", "111_900", token=FB_TOKEN)
    pub.sim.revoke(FB_TOKEN)
    pub.sim.add_post("instagram", "17900000000000900", token=IG_TOKEN, state="deleted")
    li = pub.account("a-li", "linkedin", {"accessToken": LI_TOKEN, "refreshToken": LI_REFRESH})
    fb = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    ig = pub.account("a-ig", "instagram", {"accessToken": IG_TOKEN}, connected_via="facebook_login")
    posts = [
        pub.post("p-li", li, "urn:li:share:7200000000000000001"),
        pub.post("p-fb", fb, "111_900"),
        pub.post("p-ig", ig, "17900000000000900"),
    ]
    pub.enqueue(*(pub.job(p) for p in posts))
    # When the jobs run until the queue is empty (the refresh is retried on a redelivery)
    responses = []
    for _ in range(3):
        messages = pub.receive(visibility=0)
        if not messages:
            break
        responses.append(pub.invoke(messages).response)
    try:
        assert pub.queue_depth() == 0
        assert pub.sim.refresh_calls == 4  # 3 x 503 in-process, then the redelivery's refresh
        new_token = pub.token_secret("a-li")["accessToken"]
        assert new_token != LI_TOKEN
        # Then no fragment of any token or of the app secret is in any output
        logged = json_lines.getvalue()
        outputs = {
            "powertools logs": logged,
            "log records": "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records),
            "events": json.dumps(pub.events()),
            "items": json.dumps(_scan_all(pub), default=str),
            "responses": json.dumps(responses),
        }
        assert "unpublish will be retried" in logged  # the logs were captured
        assert "token refresh" in logged  # including the refresh failure's reason
        for secret in (FB_TOKEN, LI_TOKEN, LI_REFRESH, IG_TOKEN, new_token):
            for where, text in outputs.items():
                leaked = [f for f in _fragments(secret) if f in text]
                assert not leaked, f"token fragment in {where}"
        for where, text in outputs.items():
            assert LINKEDIN_APP["clientSecret"] not in text, where
    finally:
        service_logger.removeHandler(powertools_out)


def test_listing_posts_unpublished_is_announced_once_when_the_last_post_is_down(
    pub: Publisher,
) -> None:
    # Given a sold listing with posts on three platforms (one needs a person) and a draft
    pub.listing()
    pub.sim.add_post("facebook", "111_800", token=FB_TOKEN)
    pub.sim.add_post("linkedin", "urn:li:share:7300000000000000001", token=LI_TOKEN)
    fb = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    li = pub.account("a-li", "linkedin", {"accessToken": LI_TOKEN})
    ig = pub.account(
        "a-ig", "instagram", {"accessToken": IG_TOKEN}, connected_via="instagram_login"
    )
    jobs = [
        pub.job(pub.post("p-fb", fb, "111_800"), "corr-sold"),
        pub.job(pub.post("p-ig", ig, "17900000000000800", permalink="https://ig/p/x"), "corr-sold"),
        pub.job(pub.post("p-li", li, "urn:li:share:7300000000000000001"), "corr-sold"),
    ]
    pub.post("p-draft", fb, "111_801", status=PostStatus.DRAFT)
    # When the jobs run one batch each
    for index, job in enumerate(jobs):
        pub.enqueue(job)
        pub.deliver()
        # Then nothing is announced while a post is still up
        if index < len(jobs) - 1:
            assert pub.events("ListingPostsUnpublished") == []
    # and exactly one announcement when the last one came down, with per-platform outcomes
    [announced] = pub.events("ListingPostsUnpublished")
    assert announced["detail"] == {
        "listingId": "l-1",
        "userId": "u-1",
        "outcomes": {
            "facebook": {"unpublished": 1},
            "instagram": {"manual_action_required": 1},
            "linkedin": {"unpublished": 1},
        },
        "at": "2026-11-28T17:04:05.000000Z",
        "correlationId": "corr-sold",
    }
    assert len(pub.events("PostUnpublishOutcome")) == 3
    # When a duplicate of the last job arrives
    pub.enqueue(jobs[-1])
    pub.deliver()
    # Then it is not announced again
    assert len(pub.events("ListingPostsUnpublished")) == 1


def test_listing_posts_unpublished_once_for_a_whole_batch(pub: Publisher) -> None:
    # Given a sold listing with two Facebook posts whose jobs arrive in one batch
    pub.listing()
    pub.sim.add_post("facebook", "111_701", token=FB_TOKEN)
    pub.sim.add_post("facebook", "111_702", token=FB_TOKEN)
    fb = pub.account("a-fb", "facebook", {"accessToken": FB_TOKEN})
    pub.enqueue(pub.job(pub.post("p-1", fb, "111_701")), pub.job(pub.post("p-2", fb, "111_702")))
    # When they run
    run = pub.deliver()
    # Then one announcement counts both
    assert run.failed_ids == set()
    [announced] = pub.events("ListingPostsUnpublished")
    assert announced["detail"]["outcomes"] == {"facebook": {"unpublished": 2}}
