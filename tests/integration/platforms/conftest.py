"""Platform clients wired to the platform simulator over loopback, with no real sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from mls_sync.http.retry import Backoff
from mls_sync.platforms.base import AccountRef
from mls_sync.platforms.http import PlatformHttp, RetryPolicy
from mls_sync.platforms.linkedin import OAuthApp
from mls_sync.platforms.registry import PlatformRegistry, build_registry
from mls_sync.platforms.settings import PlatformSettings
from pydantic import SecretStr

from mls_sync_local.sim.platforms import PlatformSimulator

NOW = datetime(2026, 11, 28, 17, 4, 5, tzinfo=UTC)


@dataclass
class Rig:
    sim: PlatformSimulator
    registry: PlatformRegistry
    http: PlatformHttp
    sleeps: list[float] = field(default_factory=list)


@pytest.fixture
def rig() -> Iterator[Rig]:
    sleeps: list[float] = []
    with PlatformSimulator(clock=lambda: NOW) as sim:
        settings = PlatformSettings.from_env(sim.env())
        http = PlatformHttp(
            allow_loopback=True,  # the simulator listens on 127.0.0.1
            timeout=httpx.Timeout(0.5, connect=0.5),
            retry=RetryPolicy(attempts=3, backoff=Backoff(base=0.2, cap=2.0)),
            sleep=sleeps.append,
            clock=lambda: NOW,
            rng=lambda: 0.5,
        )
        app = OAuthApp(client_id="sim-client-id", client_secret=SecretStr("sim-client-secret"))
        registry = build_registry(settings, http=http, linkedin_app=app)
        try:
            yield Rig(sim, registry, http, sleeps)
        finally:
            http.close()


def acct(platform: str, token: str, *, via: str | None = None) -> AccountRef:
    return AccountRef.model_validate(
        {
            "platform": platform,
            "external_id": "ext-1",
            "connected_via": via,
            "access_token": SecretStr(token),
        }
    )
