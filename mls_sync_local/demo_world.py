"""The demo's world: three agents on three MLS vendor profiles, their listings and posts,
the simulators that play the MLS and the platforms, and the story the MLS then tells; and a
fourth, small agent whose MLS later loses most of its listings for one cycle (the
mass-change brake's scene).

Deterministic (seeded) so every run shows the same story; sized to show scale (a few
hundred listings) and still finish in well under a minute.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mls_sync.models import Platform, PostStatus
from mls_sync.status import Status
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
from mls_sync_local.sim.mls import MlsSimulator
from mls_sync_local.sim.platforms import PlatformSimulator

RESO_STATUS = {
    Status.ACTIVE: "Active",
    Status.PENDING: "Pending",
    Status.SOLD: "Closed",
    Status.WITHDRAWN: "Withdrawn",
    Status.EXPIRED: "Expired",
}


LISTINGS_PER_AGENT = 100
UNTRACKED_PER_MLS = 60  # other agents' listings in the same feed: read, never written
WITH_POSTS = 30  # listings per agent that have posts


@dataclass(frozen=True)
class Agent:
    user_id: str
    name: str
    connection_id: str
    vendor: str
    key_prefix: str
    instagram_via: str  # facebook_login | instagram_login
    listings: int = LISTINGS_PER_AGENT
    with_posts: int = WITH_POSTS
    untracked: int = UNTRACKED_PER_MLS
    in_story: bool = True
    """Whether the MLS's story (sales, pendings...) touches this agent's listings."""
    entity_events: bool = False
    """The agent's MLS offers the RESO EntityEvent log (and pushes it): the connection is in
    EntityEvent mode."""


# The brake's scene: an agent of its own, small so that losing most of its listings (and
# getting them back) takes a few seconds; the story leaves it alone until then.
BRAKE_AGENT = Agent(
    "u-dee",
    "Dee Dealer",
    "c-dee-reso",
    "reso",
    "D",
    "facebook_login",
    listings=15,
    with_posts=10,
    untracked=10,
    in_story=False,
)

# The push scene's: an MLS offering the EntityEvent log, pushing it to PushFunction.
PUSH_AGENT = Agent(
    "u-eve",
    "Eve Estates",
    "c-eve-reso",
    "reso",
    "E",
    "facebook_login",
    listings=12,
    with_posts=6,
    untracked=5,
    in_story=False,
    entity_events=True,
)

AGENTS = (
    Agent("u-ada", "Ada Agent", "c-ada-reso", "reso", "R", "facebook_login"),
    Agent("u-ben", "Ben Broker", "c-ben-mlsgrid", "mlsgrid", "ACT", "facebook_login"),
    Agent("u-cy", "Cy Realtor", "c-cy-trestle", "trestle", "T", "instagram_login"),
    BRAKE_AGENT,
    PUSH_AGENT,
)


@dataclass
class Story:
    """What the MLS will say after the first cycle, and what we then expect to see."""

    changes: dict[str, tuple[str, Status, Status]] = field(default_factory=dict)
    # listingId -> (connectionId, from, to)
    already_deleted_posts: list[str] = field(default_factory=list)

    def expected_transitions(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, before, after in self.changes.values():
            key = f"{before.value}>{after.value}"
            counts[key] = counts.get(key, 0) + 1
        return counts


@dataclass
class World:
    start: datetime
    portfolio: Portfolio
    mls: dict[str, MlsSimulator]  # connectionId -> simulator
    platforms: PlatformSimulator
    key_of: dict[str, str]  # listingId -> listingKey
    connection_of: dict[str, str]  # listingId -> connectionId
    initial: dict[str, Status]  # listingId -> status at seed time
    story: Story = field(default_factory=Story)

    def stop(self) -> None:
        for sim in self.mls.values():
            sim.stop()
        self.platforms.stop()


def _initial_status(index: int) -> Status:
    # Mostly active, some pending (to restore later) and some sold (to relist later).
    if index % 10 == 7:
        return Status.PENDING
    if index % 25 == 13:
        return Status.SOLD
    return Status.ACTIVE


def build_world(now: datetime | None = None, seed: int = 7) -> World:
    """Starts the simulators and fills them and the portfolio consistently."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable story, not security
    start = (now or datetime.now(UTC)) - timedelta(days=1)
    platforms = PlatformSimulator().start()
    mls: dict[str, MlsSimulator] = {}
    users: list[PortfolioUser] = []
    connections: list[PortfolioConnection] = []
    accounts: list[PortfolioAccount] = []
    listings: list[PortfolioListing] = []
    posts: list[PortfolioPost] = []
    key_of: dict[str, str] = {}
    connection_of: dict[str, str] = {}
    initial: dict[str, Status] = {}
    try:
        for agent in AGENTS:
            sim = MlsSimulator(
                vendor=agent.vendor,
                start=start,
                page_cap=200,
                nextlink="offset",
                ts_digits=7 if agent.vendor == "trestle" else 3,
                seed=seed,
                entity_events=agent.entity_events,
            ).start()
            mls[agent.connection_id] = sim
            users.append(
                PortfolioUser(
                    user_id=agent.user_id, name=agent.name, email=f"{agent.user_id}@example.com"
                )
            )
            if agent.vendor == "trestle":
                credentials = MlsCredentials(
                    client_id=sim.client_id,
                    client_secret=SecretStr(sim.client_secret),
                    token_url=sim.token_url,
                )
            else:
                credentials = MlsCredentials(token=SecretStr(next(iter(sim.static_tokens))))
            connections.append(
                PortfolioConnection(
                    connection_id=agent.connection_id,
                    user_id=agent.user_id,
                    vendor=agent.vendor,
                    base_url=sim.url,
                    originating_system_name=sim.originating_system
                    if agent.vendor == "mlsgrid"
                    else None,
                    credentials=credentials,
                    detection="entityEvent" if agent.entity_events else "auto",
                )
            )
            account_ids: dict[Platform, str] = {}
            for platform in Platform:
                account_id = f"a-{agent.user_id[2:]}-{platform.value}"
                token = f"tok-{agent.user_id}-{platform.value}"
                platforms.add_token(platform.value, token, account=account_id)
                account_ids[platform] = account_id
                accounts.append(
                    PortfolioAccount(
                        account_id=account_id,
                        user_id=agent.user_id,
                        platform=platform,
                        external_id=f"urn:li:organization:{abs(hash(account_id)) % 10**6}"
                        if platform is Platform.LINKEDIN
                        else str(10**9 + len(accounts)),
                        connected_via=agent.instagram_via
                        if platform is Platform.INSTAGRAM
                        else None,
                        token=PlatformToken(access_token=SecretStr(token)),
                    )
                )
            modified = start
            for i in range(agent.listings):
                key = f"{agent.key_prefix}{i:06d}"
                listing_id = f"l-{agent.user_id[2:]}-{i:03d}"
                status = _initial_status(i)
                modified += timedelta(seconds=rng.randint(1, 30))
                sim.add_listing(key, RESO_STATUS[status], modified=modified)
                listings.append(
                    PortfolioListing(
                        listing_id=listing_id,
                        user_id=agent.user_id,
                        connection_id=agent.connection_id,
                        listing_key=key,
                        status=status,
                        # The MLS number: MLS Grid can only be asked by it (not by key).
                        mls_listing_id=key if agent.vendor == "mlsgrid" else None,
                    )
                )
                key_of[listing_id] = key
                connection_of[listing_id] = agent.connection_id
                initial[listing_id] = status
                if i < agent.with_posts:
                    for platform in rng.sample(list(Platform), k=rng.randint(1, 3)):
                        post_id = f"p-{listing_id[2:]}-{platform.value[:2]}"
                        platform_post_id = (
                            f"urn:li:share:{7000 + len(posts)}"
                            if platform is Platform.LINKEDIN
                            else f"{10**9 + len(posts)}_{len(posts)}"
                        )
                        permalink = f"https://example.com/{platform.value}/{platform_post_id}"
                        platforms.add_post(
                            platform.value,
                            platform_post_id,
                            token=f"tok-{agent.user_id}-{platform.value}",
                            permalink=permalink,
                        )
                        posts.append(
                            PortfolioPost(
                                post_id=post_id,
                                listing_id=listing_id,
                                platform=platform,
                                account_id=account_ids[platform],
                                platform_post_id=platform_post_id,
                                status=PostStatus.PUBLISHED,
                                permalink=permalink,
                            )
                        )
            for j in range(agent.untracked):
                modified += timedelta(seconds=rng.randint(1, 30))
                sim.add_listing(f"{agent.key_prefix}9{j:05d}", "Active", modified=modified)
            sim.set_time(start + timedelta(hours=12))
    except BaseException:
        for sim in mls.values():
            sim.stop()
        platforms.stop()
        raise
    portfolio = Portfolio(
        users=users,
        connections=connections,
        platform_accounts=accounts,
        listings=listings,
        posts=posts,
    )
    return World(start, portfolio, mls, platforms, key_of, connection_of, initial)


def tell_story(world: World, now: datetime | None = None, seed: int = 11) -> Story:
    """The MLS changes its mind: sales, pendings, restorations, relistings, withdrawals;
    and misbehaves a little (a 429, a slow page, a post already deleted by hand)."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable story, not security
    at = now or datetime.now(UTC)
    story = Story()
    for sim in world.mls.values():
        sim.set_time(at)
    in_story = {a.connection_id for a in AGENTS if a.in_story}
    by_connection: dict[str, list[str]] = {}
    for listing_id, conn in world.connection_of.items():
        if conn in in_story:
            by_connection.setdefault(conn, []).append(listing_id)
    posted = {p.listing_id for p in world.portfolio.posts}
    for conn, ids in by_connection.items():
        sim = world.mls[conn]
        active_posted = [i for i in ids if world.initial[i] is Status.ACTIVE and i in posted]
        active_plain = [i for i in ids if world.initial[i] is Status.ACTIVE and i not in posted]
        pending = [i for i in ids if world.initial[i] is Status.PENDING]
        sold = [i for i in ids if world.initial[i] is Status.SOLD]
        plan = [
            *[(i, Status.SOLD) for i in rng.sample(active_posted, 6)],
            *[(i, Status.SOLD) for i in rng.sample(active_plain, 2)],
            *[(i, Status.PENDING) for i in rng.sample(active_plain[2:], 4)],
            *[(i, Status.ACTIVE) for i in pending[:3]],  # restorations
            *[(i, Status.SOLD) for i in pending[3:4]],  # pending -> sold
            *[(i, Status.ACTIVE) for i in sold[:2]],  # relistings
            *[(i, Status.WITHDRAWN) for i in active_plain[-2:]],
        ]
        for offset, (listing_id, target) in enumerate(plan):
            if listing_id in story.changes:
                continue
            sim.set_status(
                world.key_of[listing_id],
                RESO_STATUS[target],
                at=at - timedelta(seconds=60 - offset),
            )
            story.changes[listing_id] = (conn, world.initial[listing_id], target)
        if sim.visibility_field is not None:
            # MLS Grid marks a listing that left the feed MlgCanView=false: it becomes deleted.
            hidden = next(i for i in reversed(active_plain) if i not in story.changes)
            sim.hide(world.key_of[hidden], at=at)
            story.changes[hidden] = (conn, world.initial[hidden], Status.DELETED)
    # Misbehaviour: the first MLS throttles once, the second serves a slow page.
    first, second = list(world.mls.values())[:2]
    first.throttle_next(1, retry_after="1")
    second.latency = 0.2
    # A post the agent already deleted by hand: the platform says it is gone.
    sold_posts = [
        p
        for p in world.portfolio.posts
        if p.listing_id in story.changes
        and story.changes[p.listing_id][2] is Status.SOLD
        and p.platform is Platform.FACEBOOK
    ]
    if sold_posts:
        gone = sold_posts[0]
        world.platforms.post(gone.platform.value, gone.platform_post_id).state = "deleted"
        story.already_deleted_posts.append(gone.post_id)
    return story


BRAKE_CONNECTION = BRAKE_AGENT.connection_id
BRAKE_LOST = 12  # of its 15 tracked listings: beyond brakeShare (20 %) and 10 listings


def lose_listings(world: World, connection_id: str = BRAKE_CONNECTION) -> list[str]:
    """The MLS loses ``BRAKE_LOST`` of the connection's listings for a while (by-key lookups
    find nothing, the others still answer): an outage that reads as "deleted". None of them
    is sold, so their coming back is a plain restoration. Returns the listing ids."""

    def now_status(listing_id: str) -> Status:
        change = world.story.changes.get(listing_id)
        return change[2] if change else world.initial[listing_id]

    candidates = sorted(
        lid
        for lid, conn in world.connection_of.items()
        if conn == connection_id and now_status(lid) is not Status.SOLD
    )
    lost = candidates[:BRAKE_LOST]
    world.mls[connection_id].withhold(world.key_of[lid] for lid in lost)
    return lost
