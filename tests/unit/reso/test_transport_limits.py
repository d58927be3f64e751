"""Transport limits: the MLS's clock from its Date header, a total time budget per request
and a streaming size cap (issue 14, cases 1 and 8). httpx.MockTransport, injected clocks."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from mls_sync.reso.auth import BearerToken, TokenCache, TokenState
from mls_sync.reso.limits import CircuitBreaker, RateLimiter
from mls_sync.reso.profiles import Quotas, VendorProfile, profile_for
from mls_sync.reso.transport import Transport
from pydantic import SecretStr

BASE = "https://mls.example.com/odata"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]


class Clocks:
    """A monotonic clock the test (and the fake server) moves; sleeps advance it."""

    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def transport(
    handler: Handler,
    clocks: Clocks,
    *,
    profile: VendorProfile | None = None,
    timeout: float = 10.0,
    max_attempts: int = 5,
) -> Transport:
    return Transport(
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        base_url=BASE,
        profile=profile or profile_for("reso"),
        tokens=TokenState(
            BearerToken(token=SecretStr("static-token-123")), lambda: NOW, TokenCache()
        ),
        limiter=RateLimiter(Quotas()),
        breaker=CircuitBreaker(threshold=100),
        clock=lambda: NOW,
        sleep=clocks.sleep,
        monotonic=clocks.monotonic,
        rng=random.Random(1),
        timeout=timeout,
        max_attempts=max_attempts,
        allow_loopback=False,
    )


# --------------------------------------------------------------------------- server clock


def test_server_now_is_our_clock_until_the_mls_sends_a_date() -> None:
    clocks = Clocks()
    t = transport(lambda _: httpx.Response(200, json={"value": []}), clocks)
    assert t.server_date is None
    assert t.server_now() == NOW


def test_server_now_follows_the_date_header_and_the_monotonic_time_since() -> None:
    clocks = Clocks()
    headers = {"Date": "Sat, 28 Nov 2026 11:50:00 GMT"}
    t = transport(lambda _: httpx.Response(200, json={"value": []}, headers=headers), clocks)
    t.get_json(f"{BASE}/Property", None, deadline=None)
    assert t.server_date == datetime(2026, 11, 28, 11, 50, tzinfo=UTC)
    assert t.server_date.tzinfo is not None
    clocks.t += 7.5
    assert t.server_now() == datetime(2026, 11, 28, 11, 50, 7, 500000, tzinfo=UTC)


def test_an_unreadable_date_header_is_ignored() -> None:
    clocks = Clocks()
    dates = iter(["Sat, 28 Nov 2026 11:50:00 GMT", "yesterday-ish"])

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"value": []}, headers={"Date": next(dates)})

    t = transport(handler, clocks)
    t.get_json(f"{BASE}/Property", None, deadline=None)
    clocks.t += 60
    t.get_json(f"{BASE}/Property", None, deadline=None)
    assert t.server_now() == datetime(2026, 11, 28, 11, 51, tzinfo=UTC)
    assert t.server_now() - NOW == timedelta(minutes=-9)
