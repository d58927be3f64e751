"""The demo's push scene (issue 17): an MLS offering the RESO EntityEvent log pushes a sale
and a deletion (RCP-028) to PushFunction behind a loopback function URL; the sold listing's
posts come down within seconds and the deletion is applied in the same run, where the
schedule would have waited up to a period and replication a day for the deletion."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from mls_sync.status import Status

from mls_sync_local.demo_world import PUSH_AGENT, World
from mls_sync_local.push import set_push_token
from mls_sync_local.runtime.function_url import FunctionUrlFront, warm
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.pollers import AcceleratedClock
from mls_sync_local.runtime.tick import TickSummary, drain

PUSH_CONNECTION = PUSH_AGENT.connection_id
PUSH_FUNCTION = "PushFunction"
FLUSH_SECONDS = 10.0


@dataclass
class PushScene:
    connection_id: str = PUSH_CONNECTION
    sold: str = ""
    """The listing the MLS sells (it has posts)."""
    deleted: str = ""
    """The listing the MLS deletes (it has none)."""
    posts: int = 0
    """Posts of the sold listing."""
    seconds: float = 0.0
    """From the MLS's write to the last queue drained (every post down)."""
    pushes: list[int | None] = field(default_factory=list)
    """The answer to each push the MLS made (None: no answer)."""
    tick: TickSummary | None = None
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        statuses = ", ".join(sorted({str(s) for s in self.pushes})) or "none"
        return (
            f"{len(self.pushes)} push(es) answered {statuses}; the sold listing's {self.posts} "
            f"post(s) down and the deletion applied {self.seconds:.1f} s after the MLS wrote them"
        )


def run_push_scene(runtime: LocalRuntime, world: World, *, handler_output: TextIO) -> PushScene:
    """Gives the connection a push token, points the MLS at PushFunction, and has the MLS
    sell one listing and delete another; everything runs to quiescence."""
    sim = world.mls[PUSH_CONNECTION]
    posted = {p.listing_id for p in world.portfolio.posts}
    active = sorted(
        lid
        for lid, conn in world.connection_of.items()
        if conn == PUSH_CONNECTION and world.initial[lid] is Status.ACTIVE
    )
    scene = PushScene(
        sold=next(lid for lid in active if lid in posted),
        deleted=next(lid for lid in reversed(active) if lid not in posted),
    )
    scene.posts = sum(1 for p in world.portfolio.posts if p.listing_id == scene.sold)
    token = secrets.token_urlsafe(24)
    set_push_token(runtime, PUSH_CONNECTION, token)
    started = time.monotonic()

    def start(_clock: AcceleratedClock, _summary: TickSummary) -> None:
        nonlocal started
        with warm(runtime, PUSH_FUNCTION) as invoke, FunctionUrlFront(invoke) as front:
            sim.push_to(f"{front.url}/connections/{PUSH_CONNECTION}/events", token)
            sim.advance(1)  # a write after everything the first sync read
            started = time.monotonic()
            sim.set_status(world.key_of[scene.sold], "Closed")
            sim.remove_listing(world.key_of[scene.deleted])
            if not sim.flush_push(FLUSH_SECONDS):
                scene.problems.append(f"the MLS's pushes not delivered in {FLUSH_SECONDS:.0f} s")

    scene.tick = drain(runtime, datetime.now(UTC), start, handler_output=handler_output)
    scene.seconds = time.monotonic() - started
    scene.pushes = [attempt.status for attempt in sim.push_attempts]
    world.story.changes[scene.sold] = (PUSH_CONNECTION, Status.ACTIVE, Status.SOLD)
    world.story.changes[scene.deleted] = (PUSH_CONNECTION, Status.ACTIVE, Status.DELETED)
    return scene
