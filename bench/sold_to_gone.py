"""Sold in the MLS → every deletable post gone: p50/p90/p99/max over 240 sales.

The whole system as the local runtime runs it: `mls-sync local server` (moto, its own
process) with the stack deployed from template.yaml (schedule ``rate(15 minutes)``, the
template's default), a generic RESO MLS simulator, the platform simulator (every answer
``PLATFORM_LATENCY`` s late) and the real handlers under the local runtime's pollers
(``mls_sync_local.runtime.tick.run_tick``: each firing runs dispatcher → worker →
publisher to quiescence, the pollers' accelerated clock skipping visibility timeouts).

The portfolio: ``CONNECTIONS`` agents on one MLS feed (each connection reads every change
in it, as agents on one MLS do), ``LISTINGS_PER_CONNECTION`` tracked listings each, every
listing posted on 1-3 of Facebook, Instagram (Facebook Login) and LinkedIn, all deletable.
After the first firing (the first sync, by key), each of ``PERIODS`` schedule periods has
``SALES_PER_CONNECTION`` sales per connection at instants uniform over the period on the
MLS's clock (``sim.set_status(key, "Closed", at=…)``); then the MLS clock moves to the
next slot time and the schedule fires there. A sweep firing runs only if a post is still
up. 6 of 50 listings (12 %) in one run stays under the mass-change brake (more than 20 %
*and* more than 10 listings) with the default brake settings; the run records whether a
connection braked.

Time: the simulated clock is what counts. A sale at ``T`` seen by the firing of slot ``F``
has waited ``F - T`` of simulated time; the firing's processing is measured in wall time
(from the dispatcher's invocation to the Posts item's ``unpublishedAt``, stamped by the
service's own clock) and added: a post is gone at ``F + (unpublishedAt - dispatcher
start)`` on the simulated clock. A sale's latency ends when its last post is gone, also
checked on the platform simulator.

The slots lie in the past (the last one at or before now), so the MLS's clock never runs
ahead of the handlers' own wall clock, as in production; ahead of it, the client would take
each stored cursor for a corrupt one and re-read from now. The one artefact left: the first
sync stamps its starting cursor from the wall clock, later than the MLS's; the worker caps
it at the MLS's clock + 60 s (20 warnings "cursor … is later than the server's clock",
sent to the handler log) and the 300 s overlap covers the gap, before any sale.

Beside it, in the same run, the theoretical bound of a polling schedule: a sale at a
uniform instant of the period waits ``q * period`` for quantile ``q`` (p50 7.5 min, p99
14.85 min at 15 minutes), plus processing.

Runs in a child interpreter (see :func:`run`); about 2-4 minutes on a shared 2-CPU machine,
nearly all of it moto serving the handlers' AWS calls.

    .venv/bin/python -m bench sold_to_gone
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from mls_sync import aws
from mls_sync.config import schedule_period_seconds
from mls_sync.models import Detection, Listing, Platform, Post, PostStatus
from mls_sync.secrets import SecretStore
from mls_sync.status import Status
from mls_sync.timeutil import parse_utc
from pydantic import SecretStr

from mls_sync_local.portfolio import (
    MlsCredentials,
    PlatformToken,
    Portfolio,
    PortfolioAccount,
    PortfolioConnection,
    PortfolioListing,
    PortfolioPost,
    PortfolioUser,
)
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.handlers import Handler, load_handler
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.stack import TemplateFacts, template_facts
from mls_sync_local.runtime.tick import DISPATCHER, TickSummary, run_tick
from mls_sync_local.seed import Seeder, stack_tables
from mls_sync_local.sim.mls import MlsSimulator
from mls_sync_local.sim.platforms import PlatformSimulator
from mls_sync_local.template import load_template, parameter_defaults

CONNECTIONS = 20
LISTINGS_PER_CONNECTION = 50
PERIODS = 2
SALES_PER_CONNECTION = 6  # per period (12 %): 20 x 6 x 2 = 240 sales
PLATFORM_LATENCY = 0.1  # seconds per platform answer
GOAL_SECONDS = 20 * 60  # issue 15: p99 ≤ one period + unpublish
STACK = "mls-sync-bench"
SEED = 15
QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class Sale:
    listing_id: str
    connection_id: str
    at: datetime  # the MLS's clock
    period: int
    posts: list[str] = field(default_factory=list)


@dataclass
class Firing:
    slot: datetime  # the scheduled event's time (simulated)
    wall_start: float | None = None  # the dispatcher's invocation (wall clock, epoch s)
    summary: TickSummary | None = None


@dataclass
class World:
    mls: MlsSimulator
    platforms: PlatformSimulator
    portfolio: Portfolio
    key_of: dict[str, str]
    posts_of: dict[str, list[str]]


def period_seconds() -> int:
    """The template's default schedule, as the dispatcher reads it."""
    expression = str(parameter_defaults(load_template())["ScheduleExpression"])
    return schedule_period_seconds(expression)


def quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def _account_id(c: int, platform: Platform) -> str:
    return f"a-{c:02d}-{platform.value}"


def _token(c: int, platform: Platform) -> str:
    return f"tok-bench-{c:02d}-{platform.value}"


def build_world(
    start: datetime,
    rng: random.Random,
    mls: MlsSimulator,
    platforms: PlatformSimulator,
    *,
    connection_count: int = CONNECTIONS,
    listings_per_connection: int = LISTINGS_PER_CONNECTION,
    detection: Detection = "auto",
) -> World:
    """Fills one MLS feed with every connection's listings (all Active, last modified during
    the day before ``start``) and the platform simulator with every post; the portfolio
    names them. ``detection`` is every connection's (bench/push_to_gone: ``entityEvent``)."""
    mls.set_time(start - timedelta(days=1))
    users: list[PortfolioUser] = []
    connections: list[PortfolioConnection] = []
    accounts: list[PortfolioAccount] = []
    listings: list[PortfolioListing] = []
    posts: list[PortfolioPost] = []
    key_of: dict[str, str] = {}
    posts_of: dict[str, list[str]] = {}
    modified = start - timedelta(days=1)
    for c in range(connection_count):
        user_id = f"u-{c:02d}"
        users.append(PortfolioUser(user_id=user_id, name=f"Agent {c:02d}"))
        connections.append(
            PortfolioConnection(
                connection_id=f"c-{c:02d}",
                user_id=user_id,
                vendor="reso",
                base_url=mls.url,
                credentials=MlsCredentials(token=SecretStr(next(iter(mls.static_tokens)))),
                detection=detection,
            )
        )
        for platform in Platform:
            platforms.add_token(
                platform.value, _token(c, platform), account=_account_id(c, platform)
            )
            accounts.append(
                PortfolioAccount(
                    account_id=_account_id(c, platform),
                    user_id=user_id,
                    platform=platform,
                    external_id=f"urn:li:organization:{900_000 + c}"
                    if platform is Platform.LINKEDIN
                    else str(10**9 + 3 * c + len(accounts)),
                    connected_via="facebook_login" if platform is Platform.INSTAGRAM else None,
                    token=PlatformToken(access_token=SecretStr(_token(c, platform))),
                )
            )
        for i in range(listings_per_connection):
            listing_id = f"l-{c:02d}-{i:03d}"
            key = f"B{c:02d}{i:04d}"
            modified += timedelta(seconds=rng.randint(1, 60))
            mls.add_listing(key, "Active", modified=modified)
            listings.append(
                PortfolioListing(
                    listing_id=listing_id,
                    user_id=user_id,
                    connection_id=f"c-{c:02d}",
                    listing_key=key,
                    status=Status.ACTIVE,
                )
            )
            key_of[listing_id] = key
            for platform in rng.sample(list(Platform), k=rng.randint(1, 3)):
                n = len(posts)
                platform_post_id = (
                    f"urn:li:share:{7_000_000 + n}"
                    if platform is Platform.LINKEDIN
                    else f"{10**9 + n}_{n}"
                )
                permalink = f"https://example.com/{platform.value}/{platform_post_id}"
                platforms.add_post(
                    platform.value, platform_post_id, token=_token(c, platform), permalink=permalink
                )
                post_id = f"p-{c:02d}-{i:03d}-{platform.value[:2]}"
                posts.append(
                    PortfolioPost(
                        post_id=post_id,
                        listing_id=listing_id,
                        platform=platform,
                        account_id=_account_id(c, platform),
                        platform_post_id=platform_post_id,
                        status=PostStatus.PUBLISHED,
                        permalink=permalink,
                    )
                )
                posts_of.setdefault(listing_id, []).append(post_id)
    mls.set_time(start)
    portfolio = Portfolio(
        users=users,
        connections=connections,
        platform_accounts=accounts,
        listings=listings,
        posts=posts,
    )
    return World(mls, platforms, portfolio, key_of, posts_of)


def plan_sales(world: World, slots: list[datetime], rng: random.Random) -> list[Sale]:
    """``SALES_PER_CONNECTION`` sales per connection in each period, each at a uniform
    instant of its period (strictly between the two slot times), different listings."""
    period = (slots[1] - slots[0]).total_seconds()
    by_connection: dict[str, list[str]] = {}
    for listing in world.portfolio.listings:
        by_connection.setdefault(listing.connection_id, []).append(listing.listing_id)
    unsold = {cid: list(ids) for cid, ids in by_connection.items()}
    sales: list[Sale] = []
    per_period = len(unsold) * SALES_PER_CONNECTION
    for k in range(1, PERIODS + 1):
        # Stratified: the period cut into one stretch per sale, each sale at a uniform instant
        # of its own stretch, the stretches dealt out at random. Every instant is uniform over
        # the period; the sample's quantiles just stay close to the period's.
        stretches = rng.sample(range(per_period), per_period)
        for cid in sorted(unsold):
            for listing_id in rng.sample(unsold[cid], SALES_PER_CONNECTION):
                unsold[cid].remove(listing_id)
                offset = (stretches.pop() + rng.random()) * period / per_period
                offset = min(max(offset, 0.001), period - 0.001)  # strictly inside the period
                sales.append(
                    Sale(
                        listing_id=listing_id,
                        connection_id=cid,
                        at=slots[k - 1] + timedelta(seconds=offset),
                        period=k,
                        posts=list(world.posts_of[listing_id]),
                    )
                )
    return sales


class _Timed:
    """The real handler of one function, loaded on first call (inside the tick's handler
    output redirection, like the runtime's own registry); the dispatcher's wall-clock start
    is recorded, so a firing's processing is measured from it."""

    def __init__(self, facts: TemplateFacts, logical_id: str, firings: list[Firing]) -> None:
        self._spec = facts.functions[logical_id]
        self._logical_id = logical_id
        self._firings = firings
        self._handler: Handler | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        if self._handler is None:
            self._handler = load_handler(self._spec)
        if self._logical_id == DISPATCHER and self._firings[-1].wall_start is None:
            self._firings[-1].wall_start = time.time()
        return self._handler(event, context)


_FAKE_AWS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
    "AWS_SESSION_TOKEN": "testing",
    "MLS_SYNC_STACK": STACK,
}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    os.environ.pop("AWS_PROFILE", None)
    aws.reset_clients()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.reset_clients()


def _seed(portfolio: Portfolio) -> None:
    """Users, connections and accounts (and their secrets) through `mls-sync seed`'s
    Seeder; listings and posts as the same items it writes, in batches (its per-item
    existence check would make seeding the longest part of the run)."""
    tables = stack_tables(STACK)
    Seeder(tables, SecretStore(aws.secrets()), STACK).seed(
        Portfolio(
            users=portfolio.users,
            connections=portfolio.connections,
            platform_accounts=portfolio.platform_accounts,
        )
    )
    with tables.listings.batch_writer() as batch:
        for listing in portfolio.listings:
            batch.put_item(
                Item=Listing(
                    listing_id=listing.listing_id,
                    user_id=listing.user_id,
                    connection_id=listing.connection_id,
                    listing_key=listing.listing_key,
                    status=listing.status,
                ).to_item()
            )
    with tables.posts.batch_writer() as batch:
        for post in portfolio.posts:
            batch.put_item(
                Item=Post(
                    post_id=post.post_id,
                    listing_id=post.listing_id,
                    platform=post.platform,
                    account_id=post.account_id,
                    platform_post_id=post.platform_post_id,
                    status=post.status,
                    permalink=post.permalink,
                ).to_item()
            )


def _fire(runtime: LocalRuntime, world: World, firing: Firing, log: Any) -> None:
    world.mls.set_time(firing.slot)
    firing.summary = run_tick(runtime, fired_at=firing.slot, handler_output=log)
    if firing.summary.failed:
        raise RuntimeError(f"firing {firing.slot:%H:%M}: {firing.summary.render()}")


def _gone_at(firings: list[Firing]) -> dict[str, tuple[Firing, float]]:
    """Each post unpublished during a firing → that firing and the wall seconds from the
    dispatcher's invocation to the post's ``unpublishedAt``."""
    gone: dict[str, tuple[Firing, float]] = {}
    for firing in firings:
        if firing.summary is None or firing.wall_start is None:
            continue
        for post in firing.summary.changed_posts:
            if post.get("status") != PostStatus.UNPUBLISHED.value:
                continue
            stamp = post.get("unpublishedAt") or post["updatedAt"]
            gone[post["postId"]] = (firing, parse_utc(stamp).timestamp() - firing.wall_start)
    return gone


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(quantile(ordered, 0.5), 1),
        "p90": round(quantile(ordered, 0.9), 1),
        "p99": round(quantile(ordered, 0.99), 1),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


def measure(firings: list[Firing], sales: list[Sale], period: int) -> dict[str, Any]:
    gone = _gone_at(firings)
    latencies: list[float] = []
    waits: list[float] = []
    processing: list[float] = []
    late: list[str] = []
    for sale in sales:
        if any(p not in gone for p in sale.posts):
            late.append(sale.listing_id)
            continue
        # On the simulated clock: the firing's slot time plus the processing's wall time.
        firing, spent = max(
            (gone[p] for p in sale.posts), key=lambda fp: fp[0].slot + timedelta(seconds=fp[1])
        )
        wait = (firing.slot - sale.at).total_seconds()
        latencies.append(wait + spent)
        waits.append(wait)
        processing.append(spent)
    if late:
        raise RuntimeError(f"{len(late)} sale(s) with posts still up: {late[:10]}")
    figures: dict[str, Any] = {
        "sales": len(latencies),
        "latency_s": _stats(latencies),
        "schedule_wait_s": _stats(waits),
        "processing_s": _stats(processing),
        "baseline_s": {f"p{round(q * 100)}": round(q * period, 1) for q in QUANTILES}
        | {"max": float(period)},
        "goal_p99_s": GOAL_SECONDS,
    }
    figures["meets_goal"] = figures["latency_s"]["p99"] <= GOAL_SECONDS
    return figures


def run(out: Path) -> dict[str, Any]:
    """Figures for docs/performance.md ("Sold → posts gone").

    Measured in a fresh interpreter, as a fresh set of Lambda containers: `python -m bench`
    imports every benchmark first, and another one imports a handler module outside its
    functions' environment (Powertools then binds no metric namespace and logs to the
    terminal), and keeps moto's in-process state; neither may leak into this run."""
    target = out / "sold_to_gone.child.json"
    target.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "bench.sold_to_gone", str(target)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    target.unlink()
    return figures


def _timeline(period: int) -> list[datetime]:
    """Slot times on the simulated clock: ``PERIODS + 2`` firings (the first sync, one per
    period of sales, a sweep run only if a post is still up), the last one at or before now.
    In the past, so the MLS's clock is never ahead of the handlers' own (wall) clock, as in
    production; ahead of it, the client would take a stored cursor for a corrupt one and
    re-read from now."""
    last = (int(datetime.now(UTC).timestamp()) // period) * period
    return [
        datetime.fromtimestamp(last - period * (PERIODS + 1 - k), UTC) for k in range(PERIODS + 2)
    ]


@contextlib.contextmanager
def _moto_process(errors: TextIO) -> Iterator[str]:
    """`mls-sync local server` in its own process, as docs/local-runtime.md runs it: AWS's
    stand-in then has a CPU of its own instead of sharing this interpreter's lock with the
    handlers it serves. Its stderr (moto's tracebacks when concurrent transactions race in
    its threaded server: answered 500, retried by the SDK) goes to ``errors``."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mls_sync_local.cli", "local", "server"],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith("export AWS_ENDPOINT_URL="):
                yield line.strip().split("=", 1)[1]
                break
        else:
            raise RuntimeError("mls-sync local server did not start")
    finally:
        server.terminate()
        server.wait(timeout=10)


def measure_run() -> dict[str, Any]:
    """The whole run, in this process (see :func:`run`)."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    period = period_seconds()
    rng = random.Random(SEED)
    slots = _timeline(period)
    firings: list[Firing] = []
    log_dir = Path(tempfile.mkdtemp(prefix="mls-sync-bench-"))
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        moto_log = stack.enter_context((log_dir / "moto.log").open("w", encoding="utf-8"))
        endpoint = stack.enter_context(_moto_process(moto_log))
        mls = stack.enter_context(MlsSimulator(vendor="reso", page_cap=200))
        platforms = stack.enter_context(PlatformSimulator(latency=PLATFORM_LATENCY))
        world = build_world(slots[0], rng, mls, platforms)
        log = stack.enter_context((log_dir / "handlers.log").open("w", encoding="utf-8"))
        # The standard-library loggers (the MLS client's warnings) go there too.
        logging.basicConfig(stream=log, level=logging.WARNING, force=True)
        stack.enter_context(
            _environment({**_FAKE_AWS, "AWS_ENDPOINT_URL": endpoint, **world.platforms.env()})
        )
        mark = time.perf_counter()
        deploy(endpoint, stack=STACK)
        _seed(world.portfolio)
        timings["deploy_and_seed_s"] = round(time.perf_counter() - mark, 1)
        sales = plan_sales(world, slots, rng)
        print(
            f"  {CONNECTIONS} connections x {LISTINGS_PER_CONNECTION} listings, "
            f"{len(world.portfolio.posts)} posts, deployed and seeded in "
            f"{timings['deploy_and_seed_s']} s; {len(sales)} sales over {PERIODS} periods "
            f"of {period // 60} min",
            flush=True,
        )
        facts = template_facts()
        handlers = {lid: _Timed(facts, lid, firings) for lid in facts.functions}
        runtime = LocalRuntime.connect(
            endpoint, stack=STACK, handlers=handlers, overrides=world.platforms.env()
        )
        for k, slot in enumerate(slots):
            if k == PERIODS + 1 and all(
                p in _gone_at(firings) for sale in sales for p in sale.posts
            ):
                break  # the sweep: only when a post is still up after the last period
            firing = Firing(slot)
            firings.append(firing)
            _fire(runtime, world, firing, log)
            print(f"  {_firing_line(k, firing)}", flush=True)
            # The next period's sales, each at its instant on the MLS's clock (the clock
            # itself moves to the next slot time just before that firing).
            for sale in sales:
                if sale.period == k + 1:
                    world.mls.set_status(world.key_of[sale.listing_id], "Closed", at=sale.at)
        braked = [c["connectionId"] for c in _scan_connections() if c.get("braked")]
        figures = measure(firings, sales, period)
        still_up = _still_up_on_platforms(world, sales)
        if still_up:
            raise RuntimeError(f"unpublished here, still up on the platform: {still_up[:10]}")
    figures_all: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "setup": (
            f"{CONNECTIONS} connections x {LISTINGS_PER_CONNECTION} listings on one RESO "
            f"simulator feed, posts on 1-3 of facebook/instagram(facebook_login)/linkedin "
            f"through the platform simulator (+{PLATFORM_LATENCY * 1000:.0f} ms per answer); "
            f"{SALES_PER_CONNECTION} sales per connection per period at uniform instants, "
            f"{PERIODS} periods; schedule rate({period // 60} minutes); real handlers under "
            "run_tick, moto as `mls-sync local server` in its own process; latency = slot - "
            "sale (simulated) + wall time from the dispatcher's invocation to the post's "
            "unpublishedAt"
        ),
        "period_s": period,
        "connections": CONNECTIONS,
        "listings": len(world.portfolio.listings),
        "posts": len(world.portfolio.posts),
        "posts_of_sold_listings": sum(len(s.posts) for s in sales),
        "sales_per_connection_per_period": SALES_PER_CONNECTION,
        "braked_connections": braked,
        "posts_still_up_on_platforms": 0,
        **figures,
        "firings": [_firing_row(f) for f in firings],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        **timings,
        "wall_s": round(time.perf_counter() - started, 1),
        "handler_log": str(log_dir / "handlers.log"),
    }
    _print_table(figures_all)
    return figures_all


def _still_up_on_platforms(world: World, sales: list[Sale]) -> list[str]:
    sold = {p for sale in sales for p in sale.posts}
    return [
        post.post_id
        for post in world.portfolio.posts
        if post.post_id in sold
        and world.platforms.post(post.platform.value, post.platform_post_id).state != "deleted"
    ]


def _processing(firing: Firing) -> float | None:
    """Wall seconds from the dispatcher's invocation to the firing's last unpublish."""
    if firing.summary is None or firing.wall_start is None:
        return None
    stamps = [
        parse_utc(p.get("unpublishedAt") or p["updatedAt"]).timestamp()
        for p in firing.summary.changed_posts
        if p.get("status") == PostStatus.UNPUBLISHED.value
    ]
    return round(max(stamps) - firing.wall_start, 2) if stamps else None


def _runs_done(firing: Firing) -> float | None:
    """Wall seconds from the dispatcher's invocation to the firing's last sync run's end
    (its takedowns are sent by then; the rest is the publisher's)."""
    if firing.summary is None or firing.wall_start is None:
        return None
    ends = [
        parse_utc(run["finishedAt"]).timestamp()
        for run in firing.summary.sync_runs
        if run.get("finishedAt")
    ]
    return round(max(ends) - firing.wall_start, 2) if ends else None


def _firing_row(firing: Firing) -> dict[str, Any]:
    summary = firing.summary
    assert summary is not None
    return {
        "sync_runs_done_after_s": _runs_done(firing),
        "slot": firing.slot.isoformat(),
        "status_changes": summary.status_changes,
        "records_read": summary.records_read,
        "mls_requests": summary.mls_requests,
        "posts_unpublished": summary.posts_unpublished,
        "last_unpublish_after_s": _processing(firing),
        "tick_wall_s": round(summary.duration_ms / 1000, 2),
    }


def _firing_line(k: int, firing: Firing) -> str:
    row = _firing_row(firing)
    done = row["last_unpublish_after_s"]
    return (
        f"firing {k} ({firing.slot:%H:%M} simulated): "
        f"{sum(row['status_changes'].values())} status change(s), "
        f"{sum(row['posts_unpublished'].values())} post(s) unpublished"
        + (f", the last {done} s after the dispatcher started" if done is not None else "")
        + f"; tick {row['tick_wall_s']} s"
    )


def _scan_connections() -> list[dict[str, Any]]:
    table = stack_tables(STACK).connections
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    while True:
        page = table.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _print_table(figures: dict[str, Any]) -> None:
    rows = (
        ("sold → last post gone", figures["latency_s"]),
        ("  of which: wait for the slot", figures["schedule_wait_s"]),
        ("  of which: processing", figures["processing_s"]),
        ("baseline: one period, uniform", figures["baseline_s"]),
    )
    print(f"  {figures['sales']} sales, {figures['posts_of_sold_listings']} posts (min:s)")
    print(f"  {'':<32}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for name, row in rows:
        cells = "".join(f"{_minutes(row[k]):>9}" for k in ("p50", "p90", "p99", "max"))
        print(f"  {name:<32}{cells}")
    verdict = "meets" if figures["meets_goal"] else "MISSES"
    print(f"  goal p99 ≤ {_minutes(figures['goal_p99_s'])}: {verdict}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(
            "usage: python -m bench.sold_to_gone OUTPUT.json (or: python -m bench sold_to_gone)"
        )
    result = measure_run()
    Path(sys.argv[1]).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
