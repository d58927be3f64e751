"""`mls-sync accounts set-token ACCOUNT_ID` end to end (issue 15, part 4): an account whose
token was refused gets a new one, and its ``reauth_required`` posts come down, through the
real PublisherFunction on a moto server with the stack deployed from template.yaml and the
platform simulator standing in for Facebook."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mls_sync import aws
from mls_sync.dal import AccountsRepo, PostsRepo
from mls_sync.models import PostStatus, UnpublishJob
from mls_sync.queues import OutgoingMessage, QueueSender
from mls_sync.secrets import SecretStore

from mls_sync_local.accounts import set_token
from mls_sync_local.cli import main
from mls_sync_local.errors import EXIT_USAGE
from mls_sync_local.portfolio import Portfolio
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.moto_server import moto_server
from mls_sync_local.runtime.pollers import AcceleratedClock
from mls_sync_local.runtime.tick import TickSummary, drain
from mls_sync_local.seed import Seeder, stack_tables
from mls_sync_local.sim.platforms import PlatformSimulator

STACK = "mls-sync-set-token-test"
OLD_TOKEN = "EAAoldPageTokenRevoked01"
NEW_TOKEN = "EAAnewPageTokenFresh0002"
PAGE = "page-1"


@dataclass
class Env:
    endpoint: str
    sim: PlatformSimulator

    def runtime(self) -> LocalRuntime:
        return LocalRuntime.connect(self.endpoint, stack=STACK)

    def posts(self) -> PostsRepo:
        return PostsRepo(stack_tables(STACK).posts)

    def status(self, post_id: str) -> PostStatus:
        post = self.posts().get(post_id)
        assert post is not None
        return post.status

    def account_status(self, account_id: str = "a-fb") -> str:
        account = AccountsRepo(stack_tables(STACK).accounts).get(account_id)
        assert account is not None
        return account.status

    def secret(self, account_id: str = "a-fb") -> dict[str, str]:
        account = AccountsRepo(stack_tables(STACK).accounts).get(account_id)
        assert account is not None
        return SecretStore(aws.secrets()).read_json(account.token_secret_arn)


def _portfolio() -> Portfolio:
    listing = {"userId": "u-1", "connectionId": "c-1"}
    post = {"platform": "facebook", "accountId": "a-fb"}
    return Portfolio.model_validate(
        {
            "users": [{"userId": "u-1"}],
            "connections": [
                {
                    "connectionId": "c-1",
                    "userId": "u-1",
                    "vendor": "reso",
                    "baseUrl": "http://127.0.0.1:9/odata",
                    "credentials": {"token": "mls-token"},
                    "enabled": False,
                }
            ],
            "platformAccounts": [
                {
                    "accountId": "a-fb",
                    "userId": "u-1",
                    "platform": "facebook",
                    "externalId": PAGE,
                    "token": {"accessToken": OLD_TOKEN},
                }
            ],
            "listings": [
                {**listing, "listingId": "l-1", "listingKey": "K1", "status": "sold"},
                {**listing, "listingId": "l-2", "listingKey": "K2", "status": "sold"},
                {**listing, "listingId": "l-3", "listingKey": "K3", "status": "active"},
            ],
            "posts": [
                {**post, "postId": "p-1", "listingId": "l-1", "platformPostId": "111_1"},
                {**post, "postId": "p-2", "listingId": "l-2", "platformPostId": "111_2"},
                {**post, "postId": "p-3", "listingId": "l-3", "platformPostId": "111_3"},
            ],
        }
    )


def _unpublish(runtime: LocalRuntime, *post_ids: str) -> TickSummary:
    """What the worker does for a sale: an unpublish job per post, run to quiescence."""

    def start(_clock: AcceleratedClock, _summary: TickSummary) -> None:
        queue = QueueSender(aws.sqs(), runtime.shared_environment()["UNPUBLISH_QUEUE_URL"])
        posts = PostsRepo(stack_tables(STACK).posts)
        jobs = []
        for post_id in post_ids:
            post = posts.get(post_id)
            assert post is not None
            jobs.append(
                OutgoingMessage(
                    UnpublishJob(
                        post_id=post.post_id,
                        listing_id=post.listing_id,
                        platform=post.platform,
                        correlation_id="corr-sale",
                    )
                )
            )
        queue.send(jobs)

    return drain(runtime, datetime.now(UTC), start, handler_output=io.StringIO())


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with moto_server() as url, PlatformSimulator() as sim:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("MLS_SYNC_STACK", STACK)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        for key, value in sim.env().items():
            monkeypatch.setenv(key, value)
        aws.reset_clients()
        deploy(url, stack=STACK)
        Seeder(stack_tables(STACK), SecretStore(aws.secrets()), STACK).seed(_portfolio())
        sim.add_token("facebook", OLD_TOKEN, account=PAGE)
        for n in (1, 2, 3):
            sim.add_post("facebook", f"111_{n}", token=OLD_TOKEN)
        # The agent revoked the app: the sale's takedowns were refused (Graph 190)
        sim.revoke(OLD_TOKEN)
        environment = Env(url, sim)
        first = _unpublish(environment.runtime(), "p-1", "p-2")
        assert not first.failed
        # The listing l-3 was sold when its post was tried, and relisted since
        stack_tables(STACK).posts.update_item(
            Key={"postId": "p-3"},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": "reauth_required"},
        )
        yield environment
    aws.reset_clients()


def _token_file(tmp_path: Path, value: object) -> str:
    path = tmp_path / "token.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def test_set_token_takes_the_waiting_posts_down_and_reactivates_the_account(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an account in reauth_required with two posts of sold listings waiting for it
    assert env.account_status() == "reauth_required"
    assert env.status("p-1") is PostStatus.REAUTH_REQUIRED
    assert env.status("p-2") is PostStatus.REAUTH_REQUIRED
    assert env.sim.post("facebook", "111_1").state == "exists"
    # And the agent logged in again: the platform issued a new token for the same Page
    env.sim.add_token("facebook", NEW_TOKEN, account=PAGE)
    # When the new token is set (within the 24 h of the first tries' idempotency records)
    token_file = _token_file(tmp_path, {"accessToken": NEW_TOKEN})
    code = main(["accounts", "set-token", "a-fb", "--token-file", token_file, "--json"])
    captured = capsys.readouterr()
    # Then both posts are down, the account is active again
    assert code == 0, captured.err
    assert env.status("p-1") is PostStatus.UNPUBLISHED
    assert env.status("p-2") is PostStatus.UNPUBLISHED
    assert env.sim.post("facebook", "111_1").deletions == 1
    assert env.sim.post("facebook", "111_2").deletions == 1
    assert env.account_status() == "active"
    assert env.secret() == {"accessToken": NEW_TOKEN}
    # And the post of the relisted listing stays up, published again (a later sale takes it)
    assert env.status("p-3") is PostStatus.PUBLISHED
    assert env.sim.post("facebook", "111_3").delete_calls == 0
    # And the summary says so, without the token
    summary = json.loads(captured.out)
    assert summary["accountStatus"] == "active"
    assert sorted(summary["requeued"]) == ["p-1", "p-2"]
    assert summary["restored"] == ["p-3"]
    assert summary["outcomes"] == {"p-1": "unpublished", "p-2": "unpublished"}
    assert summary["postOutcomes"] == {"published": 1, "unpublished": 2}
    for text in (captured.out, captured.err):
        assert NEW_TOKEN not in text
        assert OLD_TOKEN not in text


def test_set_token_again_changes_nothing(env: Env) -> None:
    env.sim.add_token("facebook", NEW_TOKEN, account=PAGE)
    first = set_token(
        env.runtime(), "a-fb", {"accessToken": NEW_TOKEN}, handler_output=io.StringIO()
    )
    assert not first.failed, first.render()
    again = set_token(
        env.runtime(), "a-fb", {"accessToken": NEW_TOKEN}, handler_output=io.StringIO()
    )
    assert not again.failed, again.render()
    assert again.requeued == []
    assert again.tick.post_outcomes == {}
    assert env.sim.post("facebook", "111_1").delete_calls == 1


def test_a_token_that_is_refused_again_exits_1(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a "new" token the platform does not know either
    token_file = _token_file(tmp_path, {"accessToken": "EAAnotValidEither0003"})
    code = main(["accounts", "set-token", "a-fb", "--token-file", token_file])
    captured = capsys.readouterr()
    assert code == 1
    assert "reauth_required" in captured.out
    assert env.status("p-1") is PostStatus.REAUTH_REQUIRED
    assert env.account_status() == "reauth_required"


def test_unknown_account_exits_2_and_writes_nothing(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = _token_file(tmp_path, {"accessToken": NEW_TOKEN})
    code = main(["accounts", "set-token", "a-nobody", "--token-file", token_file])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.strip().count("\n") == 0
    assert "a-nobody" in err
    assert env.secret() == {"accessToken": OLD_TOKEN}


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '["EAAx"]',
        '{"accessToken": ""}',
        '{"refreshToken": "r"}',
        '{"accessToken": "EAAx", "expiresAt": "tomorrow"}',
        '{"accessToken": "EAAx", "scope": "extra field"}',
    ],
)
def test_bad_token_input_exits_2_and_writes_nothing(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    path = tmp_path / "token.json"
    path.write_text(value, encoding="utf-8")
    code = main(["accounts", "set-token", "a-fb", "--token-file", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.strip().count("\n") == 0
    assert "EAAx" not in err
    assert env.secret() == {"accessToken": OLD_TOKEN}
    assert env.account_status() == "reauth_required"


def test_token_from_stdin(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.sim.add_token("facebook", NEW_TOKEN, account=PAGE)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"accessToken": NEW_TOKEN})))
    assert main(["accounts", "set-token", "a-fb"]) == 0
    assert env.status("p-1") is PostStatus.UNPUBLISHED
