"""MLS requests and time for one sync cycle: incremental replication vs one request per listing.

For 1,000 / 10,000 / 100,000 tracked listings at 0.1 %, 1 % and 10 % change rates, one cycle
of ``ReplicationClient.changes`` (generic ``reso`` profile: page 200, default overlap 300 s)
runs against the MLS simulator over loopback, beside the original design's baseline (one
lookup request per tracked listing, through the same client) in the same run.

The baseline's requests are exact (= listings). Its time is measured on a sample of
``BASELINE_SAMPLE`` lookups against a simulator holding the same number of listings and
scaled to the full count; the sample size is reported with the figures.
Rate limits are off (an unlimited limiter) so both sides measure work, not quota waits;
with MLS Grid's 2 requests/s the baseline at 1,000 listings would take 500 s a cycle.
"""

from __future__ import annotations

import math
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from mls_sync.reso.auth import BearerToken, TokenCache
from mls_sync.reso.client import ReplicationClient, ReplicationTarget
from mls_sync.reso.cursor import initial_cursor
from mls_sync.reso.limits import CircuitBreaker, RateLimiter
from mls_sync.reso.profiles import Quotas, profile_for
from pydantic import SecretStr

from mls_sync_local.sim import MlsSimulator

SIZES = (1_000, 10_000, 100_000)
RATES = (0.001, 0.01, 0.1)
BASELINE_SAMPLE = 1_000
CYCLE_SECONDS = 15 * 60


def _client(sim: MlsSimulator) -> ReplicationClient:
    return ReplicationClient(
        ReplicationTarget(vendor="reso", base_url=sim.url),
        BearerToken(token=SecretStr("sim-static-token")),
        clock=sim.clock,
        sleep=sim.advance,
        rng=random.Random(0),
        limiter=RateLimiter(Quotas()),
        breaker=CircuitBreaker(),
        token_cache=TokenCache(),
        allow_loopback=True,
    )


def one_size(size: int, rates: tuple[float, ...]) -> list[dict[str, Any]]:
    page_size = profile_for("reso").page_size
    rows: list[dict[str, Any]] = []
    with MlsSimulator(page_cap=5000) as sim:
        # The portfolio was last modified a day ago; the previous cycle ended now.
        sim.set_time(sim.now - timedelta(days=1))
        keys = sim.add_many(size)
        sim.set_time(sim.now + timedelta(days=1))
        cursor = initial_cursor(sim.now)
        rng = random.Random(size)

        # Baseline: one request per tracked listing (time on a sample, scaled).
        client = _client(sim)
        sample = rng.sample(keys, min(BASELINE_SAMPLE, size))
        started = time.perf_counter()
        for key in sample:
            client.fetch_by_keys([key])
        per_request = (time.perf_counter() - started) / len(sample)
        assert client.requests_made == len(sample)
        client.close()

        for rate in rates:
            changed = max(1, round(size * rate))
            # Changes spread over the 15 minutes since the cursor, several per instant.
            for i, key in enumerate(rng.sample(keys, changed)):
                sim.set_status(
                    key,
                    "Closed" if i % 3 else "Pending",
                    at=sim.now_ns + (i * CYCLE_SECONDS * 10**9) // changed,
                )
            sim.advance(CYCLE_SECONDS)
            client = _client(sim)
            started = time.perf_counter()
            read = 0
            for page in client.changes(cursor):
                read += len(page.records)
            elapsed = time.perf_counter() - started
            requests = client.requests_made
            client.close()
            goal = 1 + math.ceil(changed / page_size)
            rows.append(
                {
                    "listings": size,
                    "changeRate": rate,
                    "changed": changed,
                    "recordsRead": read,
                    "requests": requests,
                    "tokenRequests": 0,
                    "goalMaxRequests": goal,
                    "meetsGoal": requests <= goal,
                    "seconds": round(elapsed, 4),
                    "baselineRequests": size,
                    "baselineSeconds": round(per_request * size, 2),
                    "baselineSecondsMeasuredOn": len(sample),
                    "fewerRequestsX": round(size / requests, 1),
                }
            )
            # The next rate's cycle starts an hour later, past this one's overlap window.
            sim.advance(3600)
            cursor = initial_cursor(sim.now)
    return rows


def run(out: Path) -> dict[str, Any]:
    del out  # bench/__main__ writes the returned figures
    rows: list[dict[str, Any]] = []
    for size in SIZES:
        rows.extend(one_size(size, RATES))
    print(
        f"{'listings':>9} {'rate':>6} {'changed':>7} {'requests':>8} {'goal<=':>6} "
        f"{'seconds':>8} {'baseline req':>12} {'baseline s':>10} {'fewer':>8}"
    )
    for r in rows:
        print(
            f"{r['listings']:>9} {r['changeRate']:>6.1%} {r['changed']:>7} {r['requests']:>8} "
            f"{r['goalMaxRequests']:>6} {r['seconds']:>8.3f} {r['baselineRequests']:>12} "
            f"{r['baselineSeconds']:>10.2f} {r['fewerRequestsX']:>7.0f}x"
        )
    return {
        "profile": "reso (page 200, overlap 300 s)",
        "baselineSample": BASELINE_SAMPLE,
        "rows": rows,
        "allMeetGoal": all(r["meetsGoal"] for r in rows),
    }
