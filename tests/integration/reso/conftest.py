"""Client-against-simulator fixtures: one simulator per test on a free loopback port, and a
time source shared by both (client sleeps advance the simulator's clock; nothing sleeps)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from mls_sync.models import Cursor
from mls_sync.reso.auth import BearerToken, ClientCredentials, Credentials, TokenCache
from mls_sync.reso.client import ChangePage, ReplicationClient, ReplicationTarget
from mls_sync.reso.cursor import INITIAL_CURSOR_LEAD_SECONDS, initial_cursor
from mls_sync.reso.limits import CircuitBreaker, RateLimiter
from mls_sync.reso.profiles import Quotas, VendorProfile, profile_for
from pydantic import SecretStr

from mls_sync_local.sim import MlsSimulator


class SimTime:
    """Monotonic seconds and sleep on the simulator's clock."""

    def __init__(self, sim: MlsSimulator) -> None:
        self.sim = sim
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.sim.now_ns / 1e9

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sim.advance(seconds)


@pytest.fixture
def make_sim() -> Iterator[Callable[..., MlsSimulator]]:
    started: list[MlsSimulator] = []

    def factory(**kwargs: Any) -> MlsSimulator:
        sim = MlsSimulator(**kwargs).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


ClientFactory = Callable[..., tuple[ReplicationClient, SimTime]]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    clients: list[ReplicationClient] = []

    def factory(
        sim: MlsSimulator,
        *,
        vendor: str | None = None,
        page_size: int | None = None,
        credentials: Credentials | None = None,
        quotas: Quotas | None = None,
        profile: VendorProfile | None = None,
        seed: int = 1,
        **kwargs: Any,
    ) -> tuple[ReplicationClient, SimTime]:
        vendor = vendor or sim.vendor
        base = profile or profile_for(vendor)
        if page_size is not None:
            base = base.model_copy(update={"page_size": page_size})
        time = SimTime(sim)
        client = ReplicationClient(
            ReplicationTarget(
                vendor=vendor,
                base_url=sim.url,
                dataset=sim.dataset,
                originating_system_name="ACTRIS" if vendor == "mlsgrid" else None,
            ),
            credentials or BearerToken(token=SecretStr("sim-static-token")),
            clock=sim.clock,
            sleep=time.sleep,
            monotonic=time.monotonic,
            rng=random.Random(seed),
            limiter=RateLimiter(quotas or Quotas(), monotonic=time.monotonic),
            breaker=CircuitBreaker(monotonic=time.monotonic),
            token_cache=TokenCache(),
            profile=base,
            allow_loopback=True,
            **kwargs,
        )
        clients.append(client)
        return client, time

    yield factory
    for client in clients:
        client.close()


def oauth(sim: MlsSimulator, secret: str | None = None) -> ClientCredentials:
    return ClientCredentials(
        client_id=sim.client_id,
        client_secret=SecretStr(secret or sim.client_secret),
        token_url=sim.token_url,
    )


def drain(pages: Iterator[ChangePage]) -> tuple[list[ChangePage], list[str]]:
    """All pages, and every record key in the order served."""
    out = list(pages)
    return out, [r.listing_key for p in out for r in p.records]


def cursor_at(sim: MlsSimulator) -> Cursor:
    """A cursor at the simulator's now, in whole seconds (``initial_cursor`` starts a few
    seconds earlier: these tests want nothing before now)."""
    return initial_cursor(sim.now + timedelta(seconds=INITIAL_CURSOR_LEAD_SECONDS))


def collect(pages: Iterator[ChangePage], into: list[ChangePage]) -> None:
    """Reads pages into ``into`` so a test can see what was yielded before an error."""
    into.extend(pages)
