"""`mls-sync demo` (what `make run` runs): the whole system end to end on this machine.

Starts a moto server, three MLS simulators (generic RESO, MLS Grid, Trestle) and the
platform simulator on free loopback ports; deploys the stack from template.yaml; seeds three
agents with a few hundred listings and posts on Facebook, Instagram and LinkedIn; runs a
first cycle; lets the MLS sell, pend, restore, relist and withdraw listings (and misbehave:
a 429, a slow page, a post already deleted by hand); runs cycles until nothing changes; then
one MLS loses most of a connection's listings for one cycle while a reconciliation runs, and
the mass-change brake holds what that would take down (nothing is released: the operator
discards the held takedowns once the MLS has the listings back); and prints what changed and
which posts came down. Everything it started stops when it ends, also on Ctrl-C and on
failure. Exit 0 when the run converged to what the MLS says.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from mls_sync import aws
from mls_sync.dal import ConnectionsRepo, ListingsRepo, PostsRepo
from mls_sync.models import PostStatus
from mls_sync.secrets import SecretStore
from mls_sync.status import Status

from mls_sync_local.brake import BrakeSummary, run_brake
from mls_sync_local.demo_push import PUSH_CONNECTION, PushScene, run_push_scene
from mls_sync_local.demo_world import (
    AGENTS,
    BRAKE_CONNECTION,
    World,
    build_world,
    lose_listings,
    tell_story,
)
from mls_sync_local.dump import collect
from mls_sync_local.reconcile import ReconcileSummary, run_reconcile
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.dlq import dead_letter_counts
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.moto_server import moto_server
from mls_sync_local.runtime.tick import TickSummary, run_tick
from mls_sync_local.seed import Seeder, stack_name, stack_tables

MAX_CYCLES = 6
PERIOD = timedelta(minutes=15)
# A deletion takes posts down too: the configuration in which an MLS outage read as
# "everything was deleted" would cost every post, and the mass-change brake must hold.
UNPUBLISH_ON = "sold,deleted"


@dataclass
class BrakeScene:
    """One connection's MLS loses most listings for one cycle (a reconciliation runs), then
    has them back; the held takedowns are discarded, nothing released."""

    connection_id: str
    tracked: int
    lost: list[str]
    reconcile: ReconcileSummary | None = None
    braked: dict[str, Any] | None = None
    deleted: int = 0
    """Lost listings recorded deleted by the reconciliation."""
    posts_held: int = 0
    """Posts of the lost listings still up after it (their takedowns held)."""
    discard: BrakeSummary | None = None
    problems: list[str] = field(default_factory=list)

    def held_line(self) -> str:
        tick = self.reconcile.tick if self.reconcile else TickSummary()
        taken = sum(tick.posts_unpublished.values())
        tripped = "brake tripped (MassChangeHeld)" if self.braked else "brake NOT tripped"
        return (
            f"{self.deleted} deletions recorded, {tripped}: {self.posts_held} posts held, "
            f"{taken} taken down"
        )

    def discard_line(self) -> str:
        if self.discard is None:
            return "no decision made"
        restored = sum(
            n for k, n in self.discard.tick.status_changes.items() if k.startswith("deleted>")
        )
        return (
            f"{self.discard.posts_sent} posts released, {self.discard.listings_reread} "
            f"listings re-read by key, {restored} restored"
        )


@dataclass
class DemoResult:
    cycles: list[TickSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    brake: BrakeScene | None = None
    push: PushScene | None = None

    @property
    def converged(self) -> bool:
        return not self.problems


class Progress:
    """One line per step, with its duration: a person sees the run move."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.step = 0

    @contextlib.contextmanager
    def __call__(self, text: str) -> Iterator[None]:
        self.step += 1
        started = time.monotonic()
        self.out.write(f"[{self.step}/{self.total}] {text} ... ")
        self.out.flush()
        yield
        self.out.write(f"done ({time.monotonic() - started:.1f} s)\n")
        self.out.flush()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    aws.reset_clients()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        aws.reset_clients()


def run_demo(out: TextIO, *, log_path: Path, report_path: Path | None = None) -> DemoResult:
    result = DemoResult()
    started = time.monotonic()
    progress = Progress(out, total=10)
    stack = stack_name()
    with progress(f"starting moto server, {len(AGENTS)} MLS simulators and the platform simulator"):
        stack_ctx = contextlib.ExitStack()
        endpoint = stack_ctx.enter_context(moto_server())
        world = build_world()
        stack_ctx.callback(world.stop)
    servers = [endpoint, *(sim.url for sim in world.mls.values()), world.platforms.url]
    out.write(f"      listening on loopback: {', '.join(servers)}\n")
    with stack_ctx, log_path.open("w", encoding="utf-8") as handler_log:
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
            "MLS_SYNC_STACK": stack,
            **world.platforms.env(),
        }
        with _environment(env):
            with progress(
                f"deploying stack {stack} from template.yaml into moto "
                f"(UnpublishOnStatuses {UNPUBLISH_ON})"
            ):
                deploy(endpoint, stack=stack, parameters={"UnpublishOnStatuses": UNPUBLISH_ON})
            portfolio = world.portfolio
            with progress(
                f"seeding {len(portfolio.users)} agents, {len(portfolio.connections)} "
                f"connections, {len(portfolio.listings)} listings, {len(portfolio.posts)} posts"
            ):
                Seeder(stack_tables(stack), SecretStore(aws.secrets()), stack).seed(portfolio)
            runtime = LocalRuntime.connect(endpoint, stack=stack, overrides=world.platforms.env())
            fired = datetime.now(UTC)
            with progress("cycle 1: first sync of every connection (tracked listings by key)"):
                result.cycles.append(run_tick(runtime, fired_at=fired, handler_output=handler_log))
            with progress(
                "the MLS changes its mind: sales, pendings, restorations, relistings, "
                "withdrawals; one 429, one slow page, one post already deleted by hand"
            ):
                world.story = tell_story(world)
            with progress("running cycles until nothing changes"):
                for _ in range(MAX_CYCLES - 1):
                    fired += PERIOD
                    summary = run_tick(runtime, fired_at=fired, handler_output=handler_log)
                    result.cycles.append(summary)
                    if _quiet(summary):
                        break
            lost = lose_listings(world)
            scene = BrakeScene(
                BRAKE_CONNECTION,
                tracked=sum(1 for c in world.connection_of.values() if c == BRAKE_CONNECTION),
                lost=lost,
            )
            result.brake = scene
            with progress(
                f"{BRAKE_CONNECTION}'s MLS loses {len(lost)} of its {scene.tracked} listings "
                "for one cycle, while a reconciliation by key runs"
            ):
                scene.reconcile = run_reconcile(
                    runtime, BRAKE_CONNECTION, handler_output=handler_log
                )
                _observe_held(scene, stack)
            out.write(f"      {scene.held_line()}\n")
            with progress(
                "the MLS has them back; the operator discards the held takedowns "
                f"(mls-sync brake discard {BRAKE_CONNECTION})"
            ):
                world.mls[BRAKE_CONNECTION].give_back()
                scene.discard = run_brake(
                    runtime, BRAKE_CONNECTION, "discard", handler_output=handler_log
                )
                _observe_discarded(scene, stack)
            out.write(f"      {scene.discard_line()}\n")
            with progress(
                f"{PUSH_CONNECTION}'s MLS (EntityEvent log, RCP-028 push) sells a listing and "
                "deletes another, pushing both to PushFunction"
            ):
                result.push = run_push_scene(runtime, world, handler_output=handler_log)
            out.write(f"      {result.push.line()}\n")
            with progress("checking every listing and post against what the MLS says"):
                result.problems = verify(world, stack) + scene.problems + result.push.problems
                result.problems += [
                    f"{queue}: {count} message(s) in the dead-letter queue"
                    for queue, count in dead_letter_counts(runtime.deployed).items()
                    if count
                ]
                if report_path is not None:
                    from mls_sync_local.report import collect as collect_report  # noqa: PLC0415
                    from mls_sync_local.report import render  # noqa: PLC0415

                    data = collect_report(stack, endpoint, env["AWS_DEFAULT_REGION"])
                    report_path.write_text(render(data, stack=stack), encoding="utf-8")
            final = collect(stack_tables(stack))
    result.seconds = time.monotonic() - started
    out.write("\n" + render_outcome(world, result, final) + "\n")
    return result


def _observe_held(scene: BrakeScene, stack: str) -> None:
    """After the reconciliation: the lost listings are recorded deleted, the connection is
    braked by that run, and not one of their posts was taken down. Read item by item (a
    scan of every table would cost more than the scene)."""
    tables = stack_tables(stack)
    listings = ListingsRepo(
        tables.listings, aws.dynamodb(), tables.history.name, tables.listing_keys_name
    )
    scene.deleted = sum(
        1
        for lid in scene.lost
        if (listing := listings.get(lid)) is not None and listing.status is Status.DELETED
    )
    connection = ConnectionsRepo(tables.connections).get(scene.connection_id)
    braked = connection.braked if connection is not None else None
    scene.braked = braked.to_item() if braked is not None else None
    repo = PostsRepo(tables.posts)
    posts = [post for lid in scene.lost for post in repo.list_by_listing(lid)]
    scene.posts_held = sum(1 for post in posts if post.status is PostStatus.PUBLISHED)
    held = scene.reconcile.counts.mass_change_held if scene.reconcile else 0
    if scene.reconcile is not None and scene.reconcile.failed:
        scene.problems.append(
            f"{scene.connection_id}: the reconciliation {scene.reconcile.outcome}"
        )
    if scene.braked is None or held != 1:
        scene.problems.append(f"{scene.connection_id}: the mass-change brake did not trip")
    if scene.posts_held != len(posts):
        scene.problems.append(
            f"{scene.connection_id}: {len(posts) - scene.posts_held} post(s) of listings the "
            "MLS lost for one cycle were taken down"
        )


def _observe_discarded(scene: BrakeScene, stack: str) -> None:
    """After the discard: nothing released, the brake lifted (the listings' own statuses
    are checked with every other listing's)."""
    connection = ConnectionsRepo(stack_tables(stack).connections).get(scene.connection_id)
    if connection is None or connection.braked is not None:
        scene.problems.append(f"{scene.connection_id}: still braked after the discard")
    if scene.discard is not None and (scene.discard.posts_sent or scene.discard.failed):
        scene.problems.append(
            f"{scene.connection_id}: the discard sent {scene.discard.posts_sent} takedown(s)"
            + (" and failed" if scene.discard.failed else "")
        )


def _quiet(summary: TickSummary) -> bool:
    return not summary.status_changes and not summary.changed_posts and summary.failures == 0


def expected_status(world: World, listing_id: str) -> Status:
    change = world.story.changes.get(listing_id)
    return change[2] if change else world.initial[listing_id]


def verify(world: World, stack: str) -> list[str]:
    """Every listing as the MLS says; every post of a sold listing down; others up."""
    data = collect(stack_tables(stack))
    problems: list[str] = []
    listings = {i["listingId"]: i for i in data["listings"]}
    for listing_id in world.initial:
        want = expected_status(world, listing_id)
        got = listings.get(listing_id, {}).get("status")
        if got != want.value:
            problems.append(f"listing {listing_id}: status {got}, the MLS says {want.value}")
    instagram_login = {
        a.account_id
        for a in world.portfolio.platform_accounts
        if a.connected_via == "instagram_login"
    }
    for post in data["posts"]:
        sold = expected_status(world, post["listingId"]) is Status.SOLD
        status = post.get("status")
        if not sold and status != PostStatus.PUBLISHED.value:
            problems.append(f"post {post['postId']}: {status}, but its listing is not sold")
        elif sold and post.get("accountId") in instagram_login:
            if status != PostStatus.MANUAL_ACTION_REQUIRED.value:
                problems.append(f"post {post['postId']}: {status}, expected manual action")
        elif sold and status != PostStatus.UNPUBLISHED.value:
            problems.append(f"post {post['postId']}: {status}, expected unpublished")
    for post in data["posts"]:
        if post.get("status") == PostStatus.UNPUBLISHED.value:
            sim_post = world.platforms.post(post["platform"], post["platformPostId"])
            if sim_post.state != "deleted":
                problems.append(
                    f"post {post['postId']}: unpublished here, still up on the platform"
                )
    return problems


def render_outcome(world: World, result: DemoResult, final: dict[str, Any]) -> str:
    lines: list[str] = []
    vendors = ", ".join(a.vendor for a in AGENTS)
    lines.append(
        f"mls-sync demo: {len(world.portfolio.users)} agents, {len(world.mls)} MLS connections "
        f"({vendors}), {len(world.portfolio.listings)} tracked listings, "
        f"{len(world.portfolio.posts)} posts"
    )
    lines.append("")
    total_requests = 0
    for number, cycle in enumerate(result.cycles, start=1):
        total_requests += cycle.mls_requests
        changes = ", ".join(f"{k} {v}" for k, v in sorted(cycle.status_changes.items()))
        posts = ", ".join(f"{k} {v}" for k, v in sorted(cycle.post_outcomes.items()))
        lines.append(
            f"  cycle {number}: {cycle.records_read} records read, {cycle.mls_requests} MLS "
            f"requests, {cycle.duration_ms / 1000:.1f} s"
            + (f"; changes: {changes}" if changes else "")
            + (f"; posts: {posts}" if posts else "")
            + (f"; {cycle.failures} failed deliveries (retried)" if cycle.failures else "")
            + (
                ""
                if changes or posts or cycle.failures
                else "; quiet (records inside the overlap window re-read, nothing changed)"
                if cycle.records_read and number > 1
                else "; quiet"
            )
        )
    lines.append("")
    lines.append("What changed (MLS is the source of truth):")
    transitions = Counter(
        f"{before.value} → {after.value}" for _, before, after in world.story.changes.values()
    )
    for name, count in sorted(transitions.items()):
        examples = [
            lid
            for lid, (_, b, a) in world.story.changes.items()
            if f"{b.value} → {a.value}" == name
        ][:3]
        lines.append(f"  {name:<22} {count:>3}   e.g. {', '.join(examples)}")
    lines.append("")
    lines.append("Posts about sold listings:")
    by_platform: dict[str, Counter[str]] = {}
    for post in final["posts"]:
        if expected_status(world, post["listingId"]) is Status.SOLD:
            by_platform.setdefault(post["platform"], Counter())[post["status"]] += 1
    for platform, counts in sorted(by_platform.items()):
        parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()))
        lines.append(f"  {platform:<10} {parts}")
    if world.story.already_deleted_posts:
        lines.append(
            f"  ({', '.join(world.story.already_deleted_posts)} had been deleted by hand: "
            "the platform said it was gone, and it counts as unpublished)"
        )
    lines.append(
        "  Instagram posts of an account connected through Instagram Login cannot be deleted "
        "through the API: they wait for the agent, with their permalink."
    )
    if result.brake is not None:
        lines.append("")
        lines.extend(render_brake(result.brake))
    if result.push is not None:
        lines.append("")
        lines.extend(render_push(result.push))
    listings = len(world.portfolio.listings)
    lines.append("")
    lines.append(
        f"MLS requests: {total_requests} in {len(result.cycles)} cycles; a per-listing design "
        f"would have made {listings * len(result.cycles)} ({listings} per cycle)."
    )
    lines.append("Listings of other agents in the same feeds were read and cost nothing else.")
    lines.append("")
    if result.converged:
        lines.append(
            f"Converged in {result.seconds:.1f} s: every listing matches the MLS, every post "
            "of a sold listing is down, nothing in a dead-letter queue."
        )
    else:
        lines.append(
            f"NOT converged after {len(result.cycles)} cycles ({len(result.problems)} problem(s)):"
        )
        lines.extend(f"  - {p}" for p in result.problems[:20])
    return "\n".join(lines)


def render_push(scene: PushScene) -> list[str]:
    """The push scene in two lines: how soon, against what the schedule would have taken."""
    return [
        f"Push: {scene.connection_id}'s MLS offers the RESO EntityEvent log and pushes it "
        f"(RCP-028): {scene.line()}.",
        f"  Polling, the sale waits for the next period ({PERIOD.seconds // 60} min at most) "
        "and a deletion for the daily reconciliation.",
    ]


def render_brake(scene: BrakeScene) -> list[str]:
    """The brake in two lines: what the loss would have done, and that nothing was released."""
    restored = (
        sum(n for k, n in scene.discard.tick.status_changes.items() if k.startswith("deleted>"))
        if scene.discard
        else 0
    )
    taken = sum(scene.reconcile.tick.posts_unpublished.values()) if scene.reconcile else 0
    return [
        f"Mass-change brake: {scene.connection_id}'s MLS lost {len(scene.lost)} of its "
        f"{scene.tracked} listings for one cycle; the reconciliation's {scene.deleted} deletions "
        f"tripped the brake: {scene.posts_held} posts held, {taken} taken down.",
        f"  The next cycle the MLS had them back: the held takedowns were discarded, "
        f"{scene.discard.posts_sent if scene.discard else 0} released; a re-read by key "
        f"restored {restored} listings.",
    ]


LOG_PREFIX = "mls-sync-demo-"


@contextlib.contextmanager
def log_folder(*, keep: bool, out: TextIO) -> Iterator[Path]:
    """The handlers' log folder in the temporary directory: removed when the demo ends
    (success, failure or Ctrl-C) unless ``keep``, in which case where it is is printed."""
    folder = Path(tempfile.mkdtemp(prefix=LOG_PREFIX))
    try:
        yield folder
    finally:
        if keep:
            out.write(f"handler logs kept in {folder}\n")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    report = Path(args.report) if args.report else None
    out = sys.stdout
    with log_folder(keep=args.keep_logs, out=out) as log_dir:
        log_path = log_dir / "handlers.log"
        where = "kept" if args.keep_logs else "removed at the end; --keep-logs keeps them"
        out.write(f"mls-sync demo (handler logs: {log_path}, {where})\n")
        result = run_demo(out, log_path=log_path, report_path=report)
    if report is not None:
        out.write(f"report written to {report}\n")
    return 0 if result.converged else 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="the whole system end to end on loopback (what `make run` runs)"
    )
    parser.add_argument("--report", metavar="FILE", help="also write the HTML report here")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the handlers' log folder (in the temporary directory) and print where",
    )
    parser.set_defaults(run=_run)
