"""Issue 14, case 8, against the simulator over real sockets: a slow-drip page is cut at the
request's time budget (real time: the simulator's clock does not move while it drips) and a
page past ``max_page_bytes`` is refused while it streams; the next call, the fault gone,
reads normally."""

from __future__ import annotations

import time

import pytest
from mls_sync.reso.errors import MlsPageTooLarge, MlsUnavailable
from mls_sync.reso.profiles import profile_for

from mls_sync_local.sim import MlsSimulator
from tests.integration.reso.conftest import ClientFactory


def listings(sim: MlsSimulator, count: int) -> list[str]:
    sim.advance(1)
    return [sim.add_listing(f"D{i:03d}").key for i in range(count)]


def test_a_slow_drip_page_fails_within_the_budget_and_the_next_call_reads(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    keys = listings(sim, 3)
    # Each page takes ~2 s to arrive in 16-byte pieces, every read well under the timeout.
    sim.drip_next(2, chunk=16, delay=0.05)
    client, _ = make_client(sim, timeout=0.4, max_attempts=2)
    began = time.monotonic()
    with pytest.raises(MlsUnavailable, match=r"response took longer than 0\.4s \(slow server\)"):
        client.fetch_by_keys(keys)
    took = time.monotonic() - began
    assert took < 2 * 0.4 + 0.6  # two attempts, each cut at its budget
    assert client.requests_made == 2

    sim.clear_faults()
    found = client.fetch_by_keys(keys)
    assert sorted(found.found) == keys


def test_a_huge_page_is_refused_while_streaming_and_the_next_call_reads(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    keys = listings(sim, 3)
    sim.huge_next(1, size=20_000_000)
    profile = profile_for("reso").model_copy(update={"max_page_bytes": 100_000})
    client, _ = make_client(sim, profile=profile)
    began = time.monotonic()
    with pytest.raises(MlsPageTooLarge, match=r"page larger than 100,000 bytes \(limit max_page"):
        client.fetch_by_keys(keys)
    assert time.monotonic() - began < 2.0
    assert client.requests_made == 1  # not retried: the same query brings the same page

    found = client.fetch_by_keys(keys)  # huge_next(1) is spent
    assert sorted(found.found) == keys
