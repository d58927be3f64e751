"""Limits and bad data against the simulator: 429, 5xx, timeouts, malformed pages and
records, breaker and deadline."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import pytest
from mls_sync.reso.client import ChangePage
from mls_sync.reso.errors import (
    CircuitOpen,
    DeadlineReached,
    MlsMalformedPage,
    MlsRateLimited,
    MlsUnavailable,
)
from mls_sync.reso.limits import RateLimiter
from mls_sync.reso.profiles import Quotas

from mls_sync_local.sim import MlsSimulator
from tests.integration.reso.conftest import ClientFactory, collect, cursor_at, drain


def feed(sim: MlsSimulator, count: int) -> list[str]:
    sim.advance(1)
    keys = []
    for i in range(count):
        sim.advance(0.001)
        keys.append(sim.add_listing(f"F{i:04d}").key)
    return keys


def test_429_retry_after_seconds_is_honoured(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a server that throttles the next two requests asking for 7 s
    sim = make_sim()
    start = cursor_at(sim)
    keys = feed(sim, 3)
    sim.throttle_next(2, retry_after="7")
    client, time = make_client(sim)
    # When a cycle runs
    _, seen = drain(client.changes(start, overlap_seconds=0))
    # Then it waited exactly what the server asked, twice, and got everything
    assert seen == keys
    assert time.slept == [pytest.approx(7.0), pytest.approx(7.0)]
    assert client.requests_made == 3


def test_429_retry_after_http_date_from_a_rate_window(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a server allowing 2 requests per minute, answering 429 with an HTTP-date
    sim = make_sim()
    start = cursor_at(sim)
    keys = feed(sim, 9)
    sim.set_rate_limit(2, 60, http_date=True)
    client, time = make_client(sim, page_size=3)
    # When 4 pages are needed
    _, seen = drain(client.changes(start, overlap_seconds=0))
    # Then it waits for the window to free instead of hammering, and finishes
    assert seen == keys
    throttled = [e for e in sim.log if e.status == 429]
    assert 1 <= len(throttled) <= 2
    assert sum(time.slept) >= 59


def test_429_forever_gives_up_with_the_wait(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    start = cursor_at(sim)
    feed(sim, 1)
    # Given a throttle that does not lift, with an HTTP-date 30 s ahead
    date = format_datetime(sim.now + timedelta(seconds=30), usegmt=True)
    sim.throttle_next(1, retry_after=date)
    sim.throttle_next(10, retry_after="30")
    client, time = make_client(sim, max_attempts=3)
    # When the attempts run out
    with pytest.raises(MlsRateLimited) as info:
        drain(client.changes(start, overlap_seconds=0))
    # Then the error carries the server's last wait, and each wait was honoured
    assert info.value.retry_after == pytest.approx(30)
    assert time.slept == [pytest.approx(30, abs=1), pytest.approx(30)]
    assert client.requests_made == 3


def test_thirty_percent_injected_5xx_still_reads_every_record(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given 30 % of requests failing with 503 (seeded)
    sim = make_sim(seed=30)
    start = cursor_at(sim)
    keys = feed(sim, 200)
    sim.set_fail_rate(0.3)
    client, time = make_client(sim, page_size=10, max_attempts=8, seed=3)
    # When a cycle runs
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    # Then every record arrives once, with retries and jittered backoff between them
    assert seen == keys
    failures = sum(1 for e in sim.log if e.status == 503)
    assert failures > 0
    assert client.requests_made == len(pages) + failures
    assert len(time.slept) == failures
    assert all(0 <= s <= 30 for s in time.slept)


def test_timeouts_and_dropped_connections_are_retried(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    start = cursor_at(sim)
    keys = feed(sim, 2)
    sim.timeout_next(1, hold=0.3)
    sim.drop_next(1)
    client, _ = make_client(sim, timeout=0.1)
    _, seen = drain(client.changes(start, overlap_seconds=0))
    assert seen == keys
    assert client.requests_made == 3


def test_malformed_records_are_skipped_and_reported(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given good records between a bad status, a missing key and an unreadable timestamp
    sim = make_sim()
    start = cursor_at(sim)
    sim.advance(1)
    sim.add_listing("GOOD1")
    sim.add_listing("BADSTATUS", emit={"StandardStatus": "Sould"})
    sim.add_listing("NOKEY", emit={"ListingKey": None})
    sim.add_listing("BADTIME", emit={"ModificationTimestamp": "last Tuesday"})
    sim.add_listing("NOSTATUS", status=None)
    sim.add_listing("GOOD2")
    client, _ = make_client(sim)
    # When read
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    # Then the good ones are applied, each bad one is reported with its key and reason
    assert seen == ["GOOD1", "GOOD2"]
    reasons = {s.listing_key: s.reason for p in pages for s in p.skipped}
    assert "Sould" in reasons["BADSTATUS"]
    assert "missing ListingKey" in reasons[None]
    assert "ModificationTimestamp" in reasons["BADTIME"]
    assert "StandardStatus" in reasons["NOSTATUS"]
    # And the cursor still moved past them
    assert pages[-1].cursor.listing_key == "GOOD2"


def test_a_malformed_page_is_retried_and_never_passed(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given two pages of changes
    sim = make_sim()
    start = cursor_at(sim)
    keys = feed(sim, 6)
    client, _ = make_client(sim, page_size=3, max_attempts=3)

    # When one page comes back cut off once, the retry reads it
    sim.malformed_next(1)
    _, seen = drain(client.changes(start, overlap_seconds=0))
    assert seen == keys

    # When the second page stays broken
    pages: list[ChangePage] = []

    def break_after_first(_: object) -> None:
        if len(sim.log) == 1:
            sim.malformed_next(10)

    sim.log.clear()
    sim.after_request = break_after_first
    with pytest.raises(MlsMalformedPage):
        collect(client.changes(start, overlap_seconds=0), pages)
    sim.after_request = None
    # Then only the first page was yielded and the cursor it gives stops before the bad page
    assert len(pages) == 1
    assert pages[0].cursor.listing_key == keys[2]
    # And the next cycle resumes from that cursor and reads the rest
    sim.clear_faults()
    _, rest = drain(client.changes(pages[0].cursor, overlap_seconds=0))
    assert rest == keys[3:]


def test_circuit_breaker_stops_calling_a_failing_mls(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    start = cursor_at(sim)
    feed(sim, 1)
    sim.set_fail_rate(1.0, status=500)
    client, time = make_client(sim, max_attempts=2)
    for _ in range(3):
        with pytest.raises(MlsUnavailable):
            drain(client.changes(start, overlap_seconds=0))
    sent = client.requests_made
    with pytest.raises(CircuitOpen):
        drain(client.changes(start, overlap_seconds=0))
    assert client.requests_made == sent  # nothing sent while open
    # After the cooldown one trial goes through, and success closes the breaker
    time.sleep(121)
    sim.set_fail_rate(0.0)
    drain(client.changes(start, overlap_seconds=0))
    assert client.requests_made == sent + 1


def test_deadline_stops_between_whole_pages(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given 3 pages of changes and a rate limit of 1 request per 10 s
    sim = make_sim()
    start = cursor_at(sim)
    keys = feed(sim, 9)
    client, time = make_client(sim, page_size=3, quotas=Quotas(per_minute=6), timeout=5)
    limiter = client._transport.limiter
    assert isinstance(limiter, RateLimiter)  # the per-process bucket (no shared budget here)
    for _ in range(6):  # use up the bucket
        limiter.reserve()
    # When the caller's deadline allows only the first wait
    deadline = time.monotonic() + 20
    pages: list[ChangePage] = []
    with pytest.raises(DeadlineReached):
        collect(client.changes(start, overlap_seconds=0, deadline=deadline), pages)
    # Then the pages it yielded are whole and the cursor is theirs
    assert pages
    assert [r.listing_key for p in pages for r in p.records] == keys[: 3 * len(pages)]
    assert time.monotonic() <= deadline


def test_exhausted_quota_header_holds_off_until_reset(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a Trestle-style server with 2 requests left this hour (12:00 → reset at 13:00)
    sim = make_sim()
    sim.hour_quota = 2
    start = cursor_at(sim)
    keys = feed(sim, 6)
    client, time = make_client(sim, vendor="trestle", page_size=2)
    # When 4 pages are needed
    _, seen = drain(client.changes(start, overlap_seconds=0))
    # Then after the answer saying 0 left, it waits for the reset instead of spending a 429
    assert seen == keys
    assert 429 not in [e.status for e in sim.log]
    assert sum(time.slept) == pytest.approx(3600 - 1 - 0.006, abs=0.01)
