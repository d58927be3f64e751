"""The clients against simulator variants that play documented behaviour our default
simulator does not: a Graph server that reads the token only from ``access_token``, and one
that answers a delete with the bare ``true`` of older Graph versions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from mls_sync.platforms.base import AlreadyGone, Deleted, PermanentError, PostRef
from mls_sync.platforms.http import PlatformHttp, RetryPolicy
from mls_sync.platforms.registry import PlatformRegistry, build_registry
from mls_sync.platforms.settings import PlatformSettings

from mls_sync_local.sim.platforms import GraphAuthFrom, PlatformSimulator, fingerprint
from tests.integration.platforms.conftest import NOW, acct

TOKEN = "sim-page-token-conformance"
POST = PostRef(platform_post_id="111_333")


@contextmanager
def _rig(
    *, via: GraphAuthFrom = "any", bool_bodies: bool = False
) -> Iterator[tuple[PlatformSimulator, PlatformRegistry]]:
    with PlatformSimulator(
        clock=lambda: NOW, graph_auth_from=via, graph_bool_bodies=bool_bodies
    ) as sim:
        http = PlatformHttp(
            allow_loopback=True,  # the simulator listens on 127.0.0.1
            timeout=httpx.Timeout(0.5, connect=0.5),
            retry=RetryPolicy(attempts=3),
            sleep=lambda _s: None,
            clock=lambda: NOW,
            rng=lambda: 0.0,
        )
        try:
            yield sim, build_registry(PlatformSettings.from_env(sim.env()), http=http)
        finally:
            http.close()


def test_a_server_reading_only_the_access_token_parameter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with _rig(via="query") as (sim, registry):
        # Given a post, and a Graph server that ignores the Authorization header
        sim.add_post("facebook", POST.platform_post_id, token=TOKEN)
        client = registry.client("facebook")
        # When it is deleted, then deleted again
        first = client.delete_post(acct("facebook", TOKEN), POST)
        second = client.delete_post(acct("facebook", TOKEN), POST)
        # Then the header attempt is refused with 104 and the parameter attempt works,
        # for the delete and for the token check behind 100/33
        assert isinstance(first, Deleted)
        assert isinstance(second, AlreadyGone)
        requests = sim.requests()
        assert [(r.route, r.token is not None) for r in requests] == [
            ("facebook", False),
            ("facebook", True),
            ("facebook", False),
            ("facebook", True),
            ("graph_me", False),
            ("graph_me", True),
        ]
        assert {r.token for r in requests if r.token} == {fingerprint(TOKEN)}
        assert sim.post("facebook", POST.platform_post_id).deletions == 1
    # And the token never reached a log line, httpx's URL lines included
    assert TOKEN not in caplog.text


def test_the_default_simulator_still_takes_the_header_in_one_call() -> None:
    with _rig() as (sim, registry):
        sim.add_post("facebook", POST.platform_post_id, token=TOKEN)
        outcome = registry.client("facebook").delete_post(acct("facebook", TOKEN), POST)
        assert isinstance(outcome, Deleted)
        assert len(sim.requests()) == 1


def test_a_server_that_reads_only_the_header_never_sees_the_parameter() -> None:
    with _rig(via="header") as (sim, registry):
        sim.add_post("facebook", POST.platform_post_id, token=TOKEN)
        outcome = registry.client("facebook").delete_post(acct("facebook", TOKEN), POST)
        assert isinstance(outcome, Deleted)
        assert sim.requests()[0].query == {}


def test_a_dead_token_on_a_parameter_only_server_is_not_a_loop() -> None:
    with _rig(via="query") as (sim, registry):
        # Given no token registered: the header is ignored (104), the parameter is unknown
        sim.add_post("facebook", POST.platform_post_id, token="someone-else")
        outcome = registry.client("facebook").delete_post(acct("facebook", TOKEN), POST)
        # Then the second answer (190) decides, after exactly two calls
        assert outcome.kind == "reauth_required"
        assert len(sim.requests()) == 2


def test_bare_true_bodies_from_an_older_graph_version() -> None:
    with _rig(bool_bodies=True) as (sim, registry):
        sim.add_post("facebook", POST.platform_post_id, token=TOKEN)
        sim.add_post("instagram", "17890000000009", token=TOKEN)
        fb = registry.client("facebook").delete_post(acct("facebook", TOKEN), POST)
        ig = registry.client("instagram").delete_post(
            acct("instagram", TOKEN, via="facebook_login"),
            PostRef(platform_post_id="17890000000009"),
        )
        assert isinstance(fb, Deleted)
        assert isinstance(ig, Deleted)
        assert len(sim.requests()) == 2


def test_not_deletable_facebook_post_is_refused_on_both_variants() -> None:
    with _rig(via="query", bool_bodies=True) as (sim, registry):
        sim.add_post("facebook", POST.platform_post_id, token=TOKEN, state="not_deletable")
        outcome = registry.client("facebook").delete_post(acct("facebook", TOKEN), POST)
        assert isinstance(outcome, PermanentError)
