"""Sold in the MLS → every post gone, with RESO push (RCP-028): p50/p99 over a stream of
sales, through the real handlers.

The whole path as the local runtime runs it: moto as `mls-sync local server` in its own
process, the stack deployed from template.yaml, a generic RESO MLS simulator offering the
EntityEvent log and pushing each event (``MlsSimulator.push_to``, RCP-028 batches with a
bearer token) to PushFunction behind a loopback function URL
(``mls_sync_local.runtime.function_url``), the platform simulator (every answer
``PLATFORM_LATENCY`` s late), and SyncQueue and UnpublishQueue drained by the local
runtime's pollers in a loop every ``POLL_SECONDS`` (what Lambda's event source mappings do
by long polling). The connection is in EntityEvent mode, past its first sync.

A sale's latency is wall time from ``set_status(key, "Closed")`` on the MLS to the last of
its posts deleted on the platform simulator, plus the event source mappings' batching
windows as template.yaml sets them (``MaximumBatchingWindowInSeconds``: the most a mapping
may wait to fill a batch; the pollers here do not wait), so the figure is an upper bound
of what Lambda adds. Sales come one after another at random gaps (a quiet MLS's sales are
minutes apart: each is pushed, queued and applied on its own).

Beside it, in the same run: the polling schedule's bound (a sale at a uniform instant of a
15-minute period waits p50 7.5 min, p99 14.85 min before its run starts).

    .venv/bin/python -m bench push_to_gone
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mls_sync.dal import SyncRunsRepo

from bench.sold_to_gone import _FAKE_AWS, STACK, _environment, _moto_process, build_world, quantile
from bench.sold_to_gone import World as BenchWorld
from bench.sold_to_gone import _seed as seed
from mls_sync_local.push import set_push_token
from mls_sync_local.runtime.context import make_context
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.function_url import FunctionUrlFront
from mls_sync_local.runtime.handlers import process_environment
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.tick import run_tick
from mls_sync_local.seed import stack_tables
from mls_sync_local.sim.mls import MlsSimulator
from mls_sync_local.sim.platforms import PlatformSimulator
from mls_sync_local.template import load_template

CONNECTION = "c-00"  # bench.sold_to_gone.build_world's first connection
LISTINGS = 60
SALES = 40
PLATFORM_LATENCY = 0.1
POLL_SECONDS = 0.25
GAP_SECONDS = (0.2, 1.0)
SALE_TIMEOUT = 120.0
GOAL_P99_SECONDS = 60.0
PERIOD_SECONDS = 15 * 60
PUSH_TOKEN = "bench-push-token-0123456789abcdef"
SEED = 17


def batching_windows() -> dict[str, float]:
    """Each SQS event source mapping's ``MaximumBatchingWindowInSeconds`` (0 when unset)."""
    windows: dict[str, float] = {}
    for name, resource in load_template()["Resources"].items():
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == "SQS":
                props = event.get("Properties", {})
                windows[name] = float(props.get("MaximumBatchingWindowInSeconds", 0))
    return windows


def posts_by_key(world: BenchWorld) -> dict[str, list[tuple[str, str]]]:
    """Each MLS key's posts, as (platform, platform post id) on the platform simulator."""
    posts: dict[str, list[tuple[str, str]]] = {}
    for post in world.portfolio.posts:
        key = world.key_of[post.listing_id]
        posts.setdefault(key, []).append((post.platform.value, post.platform_post_id))
    return posts


class _Polling:
    """The event source mappings: every queue drained every ``POLL_SECONDS``."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime
        self._stop = threading.Event()
        self.invocations = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, name="pollers", daemon=True)

    def __enter__(self) -> _Polling:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        pollers = self._runtime.pollers()
        while not self._stop.is_set():
            try:
                stats = pollers.run_until_quiet()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                self.invocations += len(stats.invocations)
                self.errors += [i.problem for i in stats.failures() if i.problem]
            self._stop.wait(POLL_SECONDS)


def _push_invoke(runtime: LocalRuntime) -> Any:
    handler = runtime.registry.get("PushFunction")
    spec = runtime.facts.functions["PushFunction"]

    def invoke(event: dict[str, Any]) -> Any:
        context = make_context(
            runtime.deployed.physical("PushFunction"),
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
            region=runtime.deployed.region,
        )
        return handler(event, context)

    return invoke


def _gone(platforms: PlatformSimulator, posts: list[tuple[str, str]]) -> bool:
    return all(platforms.post(p, pid).state == "deleted" for p, pid in posts)


def measure() -> dict[str, Any]:
    rng = random.Random(SEED)
    windows = batching_windows()
    window = windows.get("WorkerFunction", 0.0) + windows.get("PublisherFunction", 0.0)
    log_dir = Path(tempfile.mkdtemp(prefix="mls-sync-bench-push-"))
    latencies: list[float] = []
    with contextlib.ExitStack() as stack:
        moto_log = stack.enter_context((log_dir / "moto.log").open("w", encoding="utf-8"))
        endpoint = stack.enter_context(_moto_process(moto_log))
        mls = stack.enter_context(MlsSimulator(vendor="reso", entity_events=True))
        platforms = stack.enter_context(PlatformSimulator(latency=PLATFORM_LATENCY))
        world = build_world(
            datetime.now(UTC),
            random.Random(SEED),
            mls,
            platforms,
            connection_count=1,
            listings_per_connection=LISTINGS,
            detection="entityEvent",
        )
        posts_of = posts_by_key(world)
        mls.follow(time.time)  # the MLS's clock is the handlers' own from here on
        log = stack.enter_context((log_dir / "handlers.log").open("w", encoding="utf-8"))
        logging.basicConfig(stream=log, level=logging.WARNING, force=True)
        stack.enter_context(
            _environment({**_FAKE_AWS, "AWS_ENDPOINT_URL": endpoint, **platforms.env()})
        )
        deploy(endpoint, stack=STACK)
        seed(world.portfolio)
        runtime = LocalRuntime.connect(endpoint, stack=STACK, overrides=platforms.env())
        first = run_tick(runtime, fired_at=datetime.now(UTC), handler_output=log)
        set_push_token(runtime, CONNECTION, PUSH_TOKEN)
        stack.enter_context(contextlib.redirect_stdout(log))
        stack.enter_context(process_environment(runtime.shared_environment()))
        front = stack.enter_context(FunctionUrlFront(_push_invoke(runtime)))
        mls.push_to(f"{front.url}/connections/{CONNECTION}/events", PUSH_TOKEN, style="reso")
        polling = stack.enter_context(_Polling(runtime))
        keys = rng.sample(sorted(posts_of), SALES)
        for n, key in enumerate(keys, 1):
            time.sleep(rng.uniform(*GAP_SECONDS))
            started = time.monotonic()
            mls.set_status(key, "Closed")
            while not _gone(platforms, posts_of[key]):
                if time.monotonic() - started > SALE_TIMEOUT:
                    raise RuntimeError(f"{key}: posts still up after {SALE_TIMEOUT} s")
                time.sleep(0.02)
            latencies.append(time.monotonic() - started + window)
            if n % 10 == 0:
                print(f"  {n}/{SALES} sales, last {latencies[-1]:.2f} s", file=sys.stderr)
        pushes = mls.push_attempts
        runs = SyncRunsRepo(stack_tables(STACK).sync_runs).list_for_connection(
            CONNECTION, limit=1000
        )
    ordered = sorted(latencies)
    p50, p99 = quantile(ordered, 0.5), quantile(ordered, 0.99)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "setup": (
            f"1 connection in EntityEvent mode, {LISTINGS} listings, posts on 1-3 platforms "
            f"(+{PLATFORM_LATENCY * 1000:.0f} ms per platform answer); {SALES} sales one after "
            f"another ({GAP_SECONDS[0]}-{GAP_SECONDS[1]} s apart), each pushed by the MLS "
            "simulator (RCP-028) to PushFunction behind a loopback function URL; queues "
            f"drained every {POLL_SECONDS} s by the local pollers; moto in its own process"
        ),
        "first_sync": {"mls_requests": first.mls_requests, "failures": first.failures},
        "batching_windows_s": windows,
        "batching_window_added_s": window,
        "sales": len(latencies),
        "p50_s": round(p50, 2),
        "p99_s": round(p99, 2),
        "max_s": round(max(ordered), 2),
        "mean_s": round(statistics.fmean(ordered), 2),
        "goal_p99_s": GOAL_P99_SECONDS,
        "polling_schedule_p50_s": 0.5 * PERIOD_SECONDS,
        "polling_schedule_p99_s": 0.99 * PERIOD_SECONDS,
        "pushes": len(pushes),
        "push_statuses": sorted({a.status for a in pushes}),
        "invocations": polling.invocations,
        "sync_runs": dict(Counter(run.outcome for run in runs)),
        "failed_run_errors": sorted(
            {e for run in runs if run.outcome != "succeeded" for e in run.errors}
        )[:10],
        "poller_errors": polling.errors[:10],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "handler_log": str(log_dir / "handlers.log"),
    }


def run(out: Path) -> dict[str, Any]:
    """Figures for docs/performance.md ("Sold → posts gone with push"), measured in a fresh
    interpreter (a fresh set of Lambda containers; see bench/sold_to_gone.py)."""
    target = out / "push_to_gone.child.json"
    target.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "bench.push_to_gone", str(target)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    print(
        f"  sold → posts gone with push: p50 {figures['p50_s']} s, p99 {figures['p99_s']} s "
        f"(goal p99 ≤ {GOAL_P99_SECONDS:.0f} s; the 15-minute schedule: p50 "
        f"{figures['polling_schedule_p50_s']:.0f} s, p99 {figures['polling_schedule_p99_s']:.0f} s)"
    )
    return figures


if __name__ == "__main__":
    result = measure()
    Path(sys.argv[1]).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
