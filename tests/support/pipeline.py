"""A pipeline test world: the stack's resources (moto), an MLS simulator on loopback, a
connection whose credentials sit in Secrets Manager, and taps that count what the pipeline
sent (events on the bus, unpublish jobs, sync jobs).

Shared by the functional tier (moto in-process) and the integration tier (moto server).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import boto3
from mls_sync import aws
from mls_sync.dal import ConnectionsRepo, HistoryRepo, ListingsRepo, PostsRepo, SyncRunsRepo
from mls_sync.models import (
    Connection,
    Detection,
    Listing,
    Post,
    PostStatus,
    StatusChange,
    SyncJob,
)
from mls_sync.pipeline.deps import build_manual_deps, build_sync_deps
from mls_sync.pipeline.keys import dedup_id, group_id
from mls_sync.pipeline.manual import ManualDeps
from mls_sync.pipeline.sync import SyncDeps, replication_client_factory
from mls_sync.reso.limits import CircuitBreaker, RateLimiter
from mls_sync.reso.profiles import Quotas
from mls_sync.secrets import SecretStore, mls_secret_name
from mls_sync.status import Status
from mls_sync.timeutil import format_utc

from mls_sync_local.runtime.context import LambdaContext, make_context
from mls_sync_local.sim.mls import MlsSimulator
from tests.support.clock import FakeMonotonic
from tests.support.stack import STACK, LocalStack

EVENTS = Path(__file__).resolve().parents[2] / "events"
CONNECTION = "c-ben-trestle"  # the connection the files in events/ name
USER = "u-ben"


def load_event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


def sqs_event(jobs: list[SyncJob], *, receive_count: int = 1) -> dict[str, Any]:
    """A SyncQueue batch shaped like events/worker.sqs.json, carrying ``jobs``."""
    template = load_event("worker.sqs.json")["Records"][0]
    records = []
    for index, job in enumerate(jobs):
        record = copy.deepcopy(template)
        body = job.model_dump_json(by_alias=True, exclude_none=True)
        record["messageId"] = f"msg-{index}-{hashlib.sha256(body.encode()).hexdigest()[:8]}"
        record["body"] = body
        record["md5OfBody"] = hashlib.md5(body.encode()).hexdigest()
        record["attributes"]["MessageGroupId"] = group_id(job.connection_id)
        record["attributes"]["MessageDeduplicationId"] = dedup_id(job)
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


@dataclass
class World:
    stack: LocalStack
    sim: MlsSimulator
    mono: FakeMonotonic
    events_tap_url: str
    deps: SyncDeps = field(init=False)
    manual: ManualDeps = field(init=False)

    def __post_init__(self) -> None:
        self.deps = self.sync_deps()
        self.manual = build_manual_deps(self.stack.settings)

    # ------------------------------------------------------------------ building

    def sync_deps(self, **overrides: Any) -> SyncDeps:
        deps = build_sync_deps(self.stack.settings)
        deps.client_factory = replication_client_factory(
            SecretStore(aws.secrets()),
            clock=self.sim.clock,
            sleep=lambda _s: None,
            monotonic=self.mono,
            limiter=RateLimiter(Quotas(), monotonic=self.mono),
            breaker=CircuitBreaker(monotonic=self.mono),
            allow_loopback=True,
        )
        deps.clock = self.sim.clock
        deps.monotonic = self.mono
        for name, value in overrides.items():
            setattr(deps, name, value)
        return deps

    @property
    def connections(self) -> ConnectionsRepo:
        return ConnectionsRepo(self.stack.tables.connections)

    @property
    def listings(self) -> ListingsRepo:
        return ListingsRepo(
            self.stack.tables.listings,
            aws.dynamodb(),
            self.stack.settings.history_table,
            self.stack.settings.listing_keys_table,
        )

    @property
    def history(self) -> HistoryRepo:
        return HistoryRepo(self.stack.tables.history)

    @property
    def runs(self) -> SyncRunsRepo:
        return SyncRunsRepo(self.stack.tables.sync_runs)

    def add_connection(
        self,
        connection_id: str = CONNECTION,
        *,
        user_id: str = USER,
        enabled: bool = True,
        detection: Detection = "auto",
    ) -> Connection:
        """A connection to the simulator, of the simulator's vendor (MLS Grid and generic
        RESO: a bearer token, and MLS Grid's originating system; others: OAuth client
        credentials)."""
        mlsgrid = self.sim.vendor == "mlsgrid"
        bearer = mlsgrid or self.sim.vendor == "reso"
        arn = SecretStore(aws.secrets()).put_json(
            mls_secret_name(f"{STACK}/", connection_id),
            {"token": sorted(self.sim.static_tokens)[0]}
            if bearer
            else {
                "clientId": self.sim.client_id,
                "clientSecret": self.sim.client_secret,
                "tokenUrl": self.sim.token_url,
            },
        )
        connection = Connection(
            connection_id=connection_id,
            user_id=user_id,
            vendor="mlsgrid" if mlsgrid else "reso" if bearer else "trestle",
            base_url=self.sim.url,
            originating_system_name=self.sim.originating_system if mlsgrid else None,
            credentials_secret_arn=arn,
            enabled=enabled,
            detection=detection,
        )
        self.connections.create(connection)
        return connection

    def track(
        self,
        listing_id: str,
        key: str,
        status: Status,
        *,
        connection_id: str = CONNECTION,
        excluded: bool = False,
        mls_status: str = "Active",
        mls_listing_id: str | None = None,
        known_listing_id: bool = False,
        modified: datetime | None = None,
        stored_modified: datetime | None = None,
    ) -> None:
        """A listing we track, and the same listing on the MLS (modified at ``modified``,
        default now). ``mls_listing_id`` is its ListingId on the MLS; ``known_listing_id``
        stores it on our listing too (as a seed with ``mlsListingId`` would);
        ``stored_modified`` is the MLS time our listing already holds."""
        self.listings.create(
            Listing(
                listing_id=listing_id,
                user_id=USER,
                connection_id=connection_id,
                listing_key=key,
                mls_listing_id=mls_listing_id if known_listing_id else None,
                status=status,
                sync_excluded=excluded,
                mls_modified_at=format_utc(stored_modified) if stored_modified else None,
            )
        )
        self.sim.add_listing(key, mls_status, listing_id=mls_listing_id, modified=modified)

    def post(self, post_id: str, listing_id: str, status: PostStatus, platform: str) -> None:
        PostsRepo(self.stack.tables.posts).create(
            Post.model_validate(
                {
                    "postId": post_id,
                    "listingId": listing_id,
                    "platform": platform,
                    "accountId": f"a-{platform}",
                    "platformPostId": f"pp-{post_id}",
                    "status": status.value,
                }
            )
        )

    # ------------------------------------------------------------------ running

    def context(self, timeout_seconds: float = 300) -> LambdaContext:
        return make_context(
            f"{STACK}-worker",
            timeout_seconds=timeout_seconds,
            memory_mb=1024,
            region="us-east-1",
            clock=self.mono,
        )

    def job(
        self, reason: str = "schedule", slot: str = "2026-11-28T12:15:00Z", **kw: Any
    ) -> SyncJob:
        return SyncJob.model_validate(
            {
                "connectionId": CONNECTION,
                "reason": reason,
                "slot": slot,
                "correlationId": "corr-1",
                **kw,
            }
        )

    def run_worker(
        self, jobs: list[SyncJob], *, deps: SyncDeps | None = None, timeout: float = 300
    ) -> dict[str, Any]:
        from functions.worker.app import handle  # noqa: PLC0415 - after moto is up

        result: dict[str, Any] = handle(
            sqs_event(jobs), cast("Any", self.context(timeout)), deps or self.deps
        )
        return result

    # ------------------------------------------------------------------ observing

    def status(self, listing_id: str) -> Status:
        listing = self.listings.get(listing_id)
        assert listing is not None
        return listing.status

    def changes(self, listing_id: str) -> list[StatusChange]:
        return self.history.list_for_listing(listing_id)

    def drain(self, url: str) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        bodies: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not got:
                return bodies
            for message in got:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def events(self) -> list[dict[str, Any]]:
        """Events put on the bus since the last call (a rule copies them to a tap queue)."""
        return self.drain(self.events_tap_url)

    def unpublish_jobs(self) -> list[dict[str, Any]]:
        return self.drain(self.stack.settings.unpublish_queue_url)

    def sync_jobs(self) -> list[dict[str, Any]]:
        return self.drain(self.stack.settings.sync_queue_url)


def event_tap(bus: str) -> str:
    """A queue that receives every mls-sync event on ``bus`` (how tests count events)."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"{bus}-events-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events")
    events.put_rule(Name="tap", EventBusName=bus, EventPattern=json.dumps({"source": ["mls-sync"]}))
    events.put_targets(Rule="tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    return url


def transitions(events: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """(detail-type, from, to) of each event."""
    return Counter((e["detail-type"], str(e["detail"]["from"]), e["detail"]["to"]) for e in events)


Advance = Callable[[float], None]
