"""Transport limits: the MLS's clock from its Date header, a total time budget per request
and a streaming size cap (issue 14, cases 1 and 8). httpx.MockTransport, injected clocks."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from mls_sync.reso.auth import BearerToken, ClientCredentials, Credentials, TokenCache, TokenState
from mls_sync.reso.errors import DeadlineReached, MlsPageTooLarge, MlsProtocolError, MlsUnavailable
from mls_sync.reso.limits import CircuitBreaker, RateLimiter
from mls_sync.reso.profiles import Quotas, VendorProfile, profile_for
from mls_sync.reso.transport import ERROR_BODY_BYTES, TOKEN_MAX_BYTES, Transport
from pydantic import SecretStr

BASE = "https://mls.example.com/odata"
TOKEN_URL = "https://mls.example.com/oauth/token"
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
    credentials: Credentials | None = None,
) -> Transport:
    return Transport(
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        base_url=BASE,
        profile=profile or profile_for("reso"),
        tokens=TokenState(
            credentials or BearerToken(token=SecretStr("static-token-123")),
            lambda: NOW,
            TokenCache(),
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


# --------------------------------------------------------------------------- time budget

PAGE = json.dumps({"value": [{"ListingKey": "K1"}]}).encode()


class Body(httpx.SyncByteStream):
    """A response body in pieces; each piece moves the test's clock ``step`` seconds (a
    slow-drip server) and is counted, so a test can see how much was read."""

    def __init__(self, pieces: Iterable[bytes], clocks: Clocks, step: float = 0.0) -> None:
        self.pieces = pieces
        self.clocks = clocks
        self.step = step
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.clocks.t += self.step
            self.sent += len(piece)
            yield piece


def dripped(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_a_dripping_response_is_cut_at_the_budget_and_retried_as_transient() -> None:
    clocks = Clocks()
    bodies: list[Body] = []
    started: list[float] = []

    def handler(_: httpx.Request) -> httpx.Response:
        started.append(clocks.t)
        # First answer: one byte a second (each read well within any per-read timeout).
        body = Body(dripped(PAGE, 1), clocks, step=1.0) if not bodies else Body([PAGE], clocks)
        bodies.append(body)
        return httpx.Response(200, stream=body)

    t = transport(handler, clocks, timeout=6.0)
    assert t.get_json(f"{BASE}/Property", None, deadline=None) == {"value": [{"ListingKey": "K1"}]}
    assert len(bodies) == 2
    assert t.requests_made == 2  # the cut answer was retried once, as a transient failure
    assert bodies[0].sent <= 7  # cut at 6 s: one piece past the budget at most
    assert len(clocks.slept) == 1  # a backoff, as after a timeout
    assert started[1] - started[0] <= 6.0 + 1.0 + clocks.slept[0]


def test_a_slow_server_gives_up_like_timeouts_do() -> None:
    clocks = Clocks()

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Body(dripped(PAGE, 1), clocks, step=1.0))

    t = transport(handler, clocks, timeout=3.0, max_attempts=2)
    with pytest.raises(MlsUnavailable, match=r"response took longer than 3s \(slow server\)"):
        t.get_json(f"{BASE}/Property", None, deadline=None)
    assert t.requests_made == 2


def test_the_budget_is_the_callers_deadline_when_that_is_sooner() -> None:
    clocks = Clocks()

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Body(dripped(PAGE, 1), clocks, step=0.5))

    t = transport(handler, clocks, timeout=10.0)
    deadline = clocks.t + 12.0
    with pytest.raises(DeadlineReached, match="slow server"):
        t.get_json(f"{BASE}/Property", None, deadline=deadline)
    assert clocks.t <= deadline  # cut at the deadline, not 10 s per read later


# --------------------------------------------------------------------------- size cap


def capped(limit: int) -> VendorProfile:
    return profile_for("reso").model_copy(update={"max_page_bytes": limit})


def test_a_body_over_the_cap_is_refused_without_reading_it_all() -> None:
    clocks = Clocks()
    piece = b" " * 65_536
    bodies: list[Body] = []

    def handler(_: httpx.Request) -> httpx.Response:
        body = Body(itertools.repeat(piece, 10_000), clocks)  # 655 MB, chunked
        bodies.append(body)
        return httpx.Response(200, stream=body)

    t = transport(handler, clocks, profile=capped(1_000_000))
    with pytest.raises(MlsPageTooLarge) as caught:
        t.get_json(f"{BASE}/Property", None, deadline=None)
    assert str(caught.value) == (
        "mls.example.com: page larger than 1 MB (limit max_page_bytes); ask for smaller pages"
    )
    assert caught.value.limit == 1_000_000
    assert isinstance(caught.value, MlsProtocolError)
    assert len(bodies) == 1  # not retried
    assert bodies[0].sent <= 1_000_000 + len(piece)


def test_a_content_length_over_the_cap_is_refused_before_reading() -> None:
    clocks = Clocks()
    body = Body([b" " * 10], clocks)

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "300000000"}, stream=body)

    t = transport(handler, clocks)
    with pytest.raises(MlsPageTooLarge, match=r"page larger than 50 MB \(Content-Length"):
        t.get_json(f"{BASE}/Property", None, deadline=None)
    assert body.sent == 0


def test_a_gzip_bomb_is_cut_while_inflating() -> None:
    clocks = Clocks()
    bomb = gzip.compress(b" " * 50_000_000, compresslevel=9)  # ~50 KB on the wire
    body = Body(dripped(bomb, 65_536), clocks)

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=body)

    t = transport(handler, clocks, profile=capped(1_000_000))
    with pytest.raises(MlsPageTooLarge):
        t.get_json(f"{BASE}/Property", None, deadline=None)


def test_a_streamed_gzip_page_within_the_cap_is_read() -> None:
    clocks = Clocks()
    data = json.dumps({"value": [{"ListingKey": f"K{i}"} for i in range(5000)]}).encode()
    packed = gzip.compress(data)

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, stream=Body(dripped(packed, 100), clocks)
        )

    t = transport(handler, clocks, profile=capped(len(data)))
    assert t.get_json(f"{BASE}/Property", None, deadline=None) == json.loads(data)


def test_a_huge_error_body_is_read_only_in_part_and_retried() -> None:
    clocks = Clocks()
    bodies: list[Body] = []

    def handler(_: httpx.Request) -> httpx.Response:
        if bodies:
            return httpx.Response(200, json={"value": []})
        body = Body(itertools.repeat(b"<html>busy</html>" * 4000, 10_000), clocks)
        bodies.append(body)
        return httpx.Response(503, stream=body)

    t = transport(handler, clocks)
    assert t.get_json(f"{BASE}/Property", None, deadline=None) == {"value": []}
    assert bodies[0].sent <= ERROR_BODY_BYTES + 4000 * 17


def test_the_token_endpoint_has_a_small_cap() -> None:
    clocks = Clocks()
    body = Body(itertools.repeat(b" " * 65_536, 1_000), clocks)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/oauth/token"
        return httpx.Response(200, stream=body)

    creds = ClientCredentials(
        client_id="id", client_secret=SecretStr("s3cr3t-value"), token_url=TOKEN_URL
    )
    t = transport(handler, clocks, credentials=creds)
    with pytest.raises(MlsPageTooLarge, match=r"token endpoint of mls\.example\.com answered more"):
        t.get_json(f"{BASE}/Property", None, deadline=None)
    assert body.sent <= TOKEN_MAX_BYTES + 65_536
