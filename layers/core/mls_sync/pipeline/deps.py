"""Building the pipeline's collaborators from settings, once per process (lazily, never at
import time, so tests can start moto first)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mls_sync import aws
from mls_sync.config import Settings, get_settings
from mls_sync.container import per_container
from mls_sync.dal import ConnectionsRepo, HistoryRepo, ListingsRepo, PostsRepo, SyncRunsRepo
from mls_sync.dal.base import Tables
from mls_sync.events import EventPublisher
from mls_sync.pipeline.takedowns import BrakeDeps, Takedowns
from mls_sync.queues import QueueSender

if TYPE_CHECKING:
    from mls_sync.pipeline.manual import ManualDeps
    from mls_sync.pipeline.sync import SyncDeps


def build_sync_deps(settings: Settings | None = None) -> SyncDeps:
    # Here, not at the top: the manual-sync function never loads the sync pipeline (nor
    # the MLS client and httpx under it).
    from mls_sync.dal.budget import budgets_from_settings  # noqa: PLC0415 - worker only
    from mls_sync.dal.push_inbox import PushInboxRepo  # noqa: PLC0415 - worker only
    from mls_sync.pipeline.sync import SyncDeps, replication_client_factory  # noqa: PLC0415
    from mls_sync.secrets import SECRET_MAX_AGE_SECONDS, SecretStore  # noqa: PLC0415

    settings = settings or get_settings()
    tables = Tables.from_settings(settings)
    return SyncDeps(
        policy=settings.policy,
        connections=ConnectionsRepo(tables.connections),
        listings=ListingsRepo(
            tables.listings, aws.dynamodb(), settings.history_table, settings.listing_keys_table
        ),
        history=HistoryRepo(tables.history),
        posts=PostsRepo(tables.posts),
        runs=SyncRunsRepo(tables.sync_runs),
        # Made on first use: a job calls EventBridge and SQS only when a status changes or
        # a continuation is sent, and most scheduled jobs find nothing changed.
        events=EventPublisher(aws.events(deferred=True), settings.event_bus_name),
        sync_queue=QueueSender(aws.sqs(deferred=True), settings.sync_queue_url),
        unpublish_queue=QueueSender(aws.sqs(deferred=True), settings.unpublish_queue_url),
        client_factory=replication_client_factory(
            SecretStore(aws.secrets(), max_age=SECRET_MAX_AGE_SECONDS),
            budgets=budgets_from_settings(settings),
        ),
        reconcile_every_hours=settings.reconcile_every_hours,
        sync_run_ttl_days=settings.sync_run_ttl_days,
        push_inbox=PushInboxRepo(aws.dynamodb(), settings.push_inbox_table)
        if settings.push_inbox_table
        else None,
    )


def build_manual_deps(settings: Settings | None = None) -> ManualDeps:
    # Here, not at the top: the worker builds its own deps from this module and never
    # loads the manual requests' models.
    from mls_sync.pipeline.manual import ManualDeps  # noqa: PLC0415 - manual sync only

    settings = settings or get_settings()
    tables = Tables.from_settings(settings)
    connections = ConnectionsRepo(tables.connections)
    listings = ListingsRepo(
        tables.listings, aws.dynamodb(), settings.history_table, settings.listing_keys_table
    )
    sync_queue = QueueSender(aws.sqs(), settings.sync_queue_url)
    return ManualDeps(
        connections=connections,
        listings=listings,
        sync_queue=sync_queue,
        runs=SyncRunsRepo(tables.sync_runs),
        run_ttl_days=settings.sync_run_ttl_days,
        brake=BrakeDeps(
            connections=connections,
            takedowns=Takedowns(
                listings,
                HistoryRepo(tables.history),
                PostsRepo(tables.posts),
                QueueSender(aws.sqs(), settings.unpublish_queue_url),
            ),
            # Made on first use: only a brake action publishes; a sync request never does.
            events=EventPublisher(aws.events(deferred=True), settings.event_bus_name),
            sync_queue=sync_queue,
        ),
    )


@per_container
def default_sync_deps() -> SyncDeps:
    return build_sync_deps()


@per_container
def default_manual_deps() -> ManualDeps:
    return build_manual_deps()
