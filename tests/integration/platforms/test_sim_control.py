"""The simulator run as a separate service: its admin API and foreground runner."""

from __future__ import annotations

import threading

import httpx
from mls_sync.platforms.base import Deleted, PostRef
from mls_sync.platforms.http import PlatformHttp
from mls_sync.platforms.registry import build_registry
from mls_sync.platforms.settings import PlatformSettings

from mls_sync_local.sim.platforms import PlatformSimulator, serve_forever
from tests.integration.platforms.conftest import acct


def test_admin_api_scripts_a_simulator_in_another_process() -> None:
    with PlatformSimulator() as sim:
        # Given a post registered over HTTP, as the local runtime would do
        r = httpx.post(
            f"{sim.url}/_sim/posts",
            json={"platform": "facebook", "id": "9_9", "token": "tok-admin"},
        )
        assert r.status_code == 204
        registry = build_registry(
            PlatformSettings.from_env(sim.env()), http=PlatformHttp(allow_loopback=True)
        )
        # When the client deletes it
        outcome = registry.client("facebook").delete_post(
            acct("facebook", "tok-admin"), PostRef(platform_post_id="9_9")
        )
        # Then the state and the log say so, without the token
        assert isinstance(outcome, Deleted)
        state = httpx.get(f"{sim.url}/_sim/state").json()
        assert state["posts"][0]["state"] == "deleted"
        log = httpx.get(f"{sim.url}/_sim/requests").text
        assert "tok-admin" not in log
        assert httpx.post(f"{sim.url}/_sim/posts", json={"platform": "facebook"}).status_code == 400


def test_serve_forever_announces_itself_and_stops() -> None:
    stop = threading.Event()
    seen: list[str] = []

    def ready(sim: PlatformSimulator) -> None:
        seen.append(sim.url)
        seen.append(str(httpx.get(f"{sim.url}/_sim/state").json()["requests"]))
        stop.set()

    serve_forever("127.0.0.1", 0, ready=ready, stop=stop)
    assert seen[0].startswith("http://127.0.0.1:")
    assert seen[1] == "0"
