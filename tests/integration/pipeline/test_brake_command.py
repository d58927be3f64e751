"""`mls-sync brake release|discard CONNECTION_ID` end to end (issue 15): a connection braked
by a mass sale, on a moto server with the stack deployed from template.yaml, the MLS
simulator and the platform simulator standing in for Facebook. The decision goes through the
ManualSyncFunction admin action; released takedowns are unpublished by the real
PublisherFunction."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from mls_sync import aws
from mls_sync.dal import ConnectionsRepo, PostsRepo
from mls_sync.models import Connection, PostStatus
from mls_sync.secrets import SecretStore

from mls_sync_local.cli import main
from mls_sync_local.errors import EXIT_USAGE
from mls_sync_local.portfolio import Portfolio
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.moto_server import moto_server
from mls_sync_local.runtime.tick import TickSummary, run_tick
from mls_sync_local.seed import Seeder, stack_tables
from mls_sync_local.sim.mls import MlsSimulator
from mls_sync_local.sim.platforms import PlatformSimulator

STACK = "mls-sync-brake-test"
CONNECTION = "c-1"
TOKEN = "EAApageToken0001"
PAGE = "page-1"
LISTINGS = 30
SOLD = 12  # > brakeMinListings (10) and > brakeShare (20 %) of 30: the brake trips


@dataclass
class Env:
    endpoint: str
    mls: MlsSimulator
    platforms: PlatformSimulator
    fired: datetime

    def tick(self) -> TickSummary:
        self.fired += timedelta(minutes=15)
        runtime = LocalRuntime.connect(self.endpoint, stack=STACK)
        return run_tick(runtime, fired_at=self.fired, handler_output=io.StringIO())

    def post_status(self, n: int) -> PostStatus:
        post = PostsRepo(stack_tables(STACK).posts).get(f"p-{n:02d}")
        assert post is not None
        return post.status

    def connection(self) -> Connection:
        connection = ConnectionsRepo(stack_tables(STACK).connections).get(CONNECTION)
        assert connection is not None
        return connection


def _portfolio(mls: MlsSimulator) -> Portfolio:
    return Portfolio.model_validate(
        {
            "users": [{"userId": "u-1"}],
            "connections": [
                {
                    "connectionId": CONNECTION,
                    "userId": "u-1",
                    "vendor": "reso",
                    "baseUrl": mls.url,
                    "credentials": {"token": sorted(mls.static_tokens)[0]},
                }
            ],
            "platformAccounts": [
                {
                    "accountId": "a-fb",
                    "userId": "u-1",
                    "platform": "facebook",
                    "externalId": PAGE,
                    "token": {"accessToken": TOKEN},
                }
            ],
            "listings": [
                {
                    "listingId": f"l-{n:02d}",
                    "userId": "u-1",
                    "connectionId": CONNECTION,
                    "listingKey": f"K{n:02d}",
                    "status": "active",
                }
                for n in range(LISTINGS)
            ],
            "posts": [
                {
                    "postId": f"p-{n:02d}",
                    "listingId": f"l-{n:02d}",
                    "platform": "facebook",
                    "accountId": "a-fb",
                    "platformPostId": f"111_{n}",
                }
                for n in range(LISTINGS)
            ],
        }
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    now = datetime.now(UTC)
    with (
        moto_server() as url,
        MlsSimulator(vendor="reso", start=now) as mls,
        PlatformSimulator() as platforms,
    ):
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("MLS_SYNC_STACK", STACK)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        for key, value in platforms.env().items():
            monkeypatch.setenv(key, value)
        aws.reset_clients()
        deploy(url, stack=STACK)
        platforms.add_token("facebook", TOKEN, account=PAGE)
        for n in range(LISTINGS):
            mls.add_listing(f"K{n:02d}", "Active", modified=now - timedelta(days=1))
            platforms.add_post("facebook", f"111_{n}", token=TOKEN)
        Seeder(stack_tables(STACK), SecretStore(aws.secrets()), STACK).seed(_portfolio(mls))
        environment = Env(url, mls, platforms, fired=now - timedelta(minutes=15))
        first = environment.tick()  # the first sync: every listing read by key
        assert not first.failed, first.render()
        yield environment
    aws.reset_clients()


def _mass_sale(env: Env) -> None:
    """``SOLD`` listings sell at once: the next cycle records them and holds their takedowns."""
    env.mls.set_time(datetime.now(UTC))
    for n in range(SOLD):
        env.mls.advance(1)
        env.mls.set_status(f"K{n:02d}", "Closed")
    held = env.tick()
    assert held.status_changes == {"active>sold": SOLD}, held.render()
    assert held.posts_unpublished == {}
    assert env.connection().braked is not None
    assert all(env.post_status(n) is PostStatus.PUBLISHED for n in range(LISTINGS))


def test_release_unpublishes_exactly_the_held_posts(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a connection whose mass sale is held by the brake
    _mass_sale(env)
    # When the operator releases it
    code = main(["brake", "release", CONNECTION, "--json"])
    captured = capsys.readouterr()
    # Then the publisher took exactly the sold listings' posts down, once each
    assert code == 0, captured.err
    for n in range(LISTINGS):
        sold = n < SOLD
        assert env.post_status(n) is (PostStatus.UNPUBLISHED if sold else PostStatus.PUBLISHED)
        assert env.platforms.post("facebook", f"111_{n}").deletions == (1 if sold else 0)
    assert env.connection().braked is None
    # And the summary says so, with tick's figures
    summary = json.loads(captured.out)
    assert summary["decision"] == "release"
    assert summary["postsSent"] == SOLD
    assert summary["postsUnpublished"] == {"facebook": SOLD}
    assert summary["failures"] == 0
    assert summary["deadLetters"] == 0
    # And asking again: nothing is held, exit 2, one line
    assert main(["brake", "release", CONNECTION]) == EXIT_USAGE
    *handler_logs, err = capsys.readouterr().err.strip().splitlines()
    assert err == f"mls-sync: error: connection {CONNECTION} is not braked: nothing is held"
    assert all(line.startswith("{") for line in handler_logs)  # the admin invoke's own log


def test_discard_sends_nothing_and_re_reads_the_listings(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    _mass_sale(env)
    code = main(["brake", "discard", CONNECTION])
    out = capsys.readouterr().out
    assert code == 0, out
    assert all(env.post_status(n) is PostStatus.PUBLISHED for n in range(LISTINGS))
    assert env.platforms.post("facebook", "111_0").delete_calls == 0
    assert env.connection().braked is None
    assert f"brake discard {CONNECTION}" in out
    assert f"{SOLD} listing(s) re-read by key" in out


def test_nothing_held_or_an_unknown_connection_is_exit_2(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["brake", "discard", CONNECTION]) == EXIT_USAGE
    assert "nothing is held" in capsys.readouterr().err
    assert main(["brake", "release", "c-nope"]) == EXIT_USAGE
    # the last line on stderr (the admin invoke's own log comes before it)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "mls-sync: error: connection c-nope not found"
