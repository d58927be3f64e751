"""Building the publisher's collaborators from settings, once per process (lazily)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from mls_sync import aws
from mls_sync.config import load_settings
from mls_sync.container import per_container
from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.base import Tables
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo
from mls_sync.events import EventPublisher
from mls_sync.platforms.http import PlatformHttp
from mls_sync.platforms.linkedin import OAuthApp
from mls_sync.platforms.registry import PlatformDeps, PlatformRegistry
from mls_sync.queues import QueueSender
from mls_sync.secrets import SECRET_MAX_AGE_SECONDS, SecretStore
from mls_sync.timeutil import Clock, utc_now
from mls_sync.unpublish.outbox import PostsDownClaims
from mls_sync.unpublish.reauth import Reauthorization
from mls_sync.unpublish.service import UnpublishService
from mls_sync.unpublish.settings import PublisherSettings
from mls_sync.unpublish.tokens import TokenService


@dataclass(frozen=True)
class PublisherDeps:
    service: UnpublishService
    persistence: DynamoDBPersistenceLayer
    queue_url: str
    max_receives: int
    reauth: Reauthorization


def build(
    settings: PublisherSettings | None = None,
    *,
    http: PlatformHttp | None = None,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> PublisherDeps:
    """The publisher's collaborators from its settings (default: this process's, read once);
    ``http``, ``clock`` and ``sleep`` are injected by tests and benchmarks so nothing
    really waits."""
    settings = settings or load_settings(PublisherSettings)
    tables = Tables.from_settings(settings)
    secrets = SecretStore(aws.secrets(), max_age=SECRET_MAX_AGE_SECONDS)
    linkedin_app: OAuthApp | None = None
    if settings.linkedin_app_secret_arn:
        values = secrets.read_json(settings.linkedin_app_secret_arn)
        linkedin_app = OAuthApp(client_id=values["clientId"], client_secret=values["clientSecret"])
    platforms = PlatformRegistry(
        PlatformDeps(
            settings=settings.platforms,
            http=http or PlatformHttp(sleep=sleep, clock=clock),
            linkedin_app=linkedin_app,
        )
    )
    accounts = AccountsRepo(tables.accounts)
    posts = PostsRepo(tables.posts)
    listings = ListingsRepo(
        tables.listings, aws.dynamodb(), settings.history_table, settings.listing_keys_table
    )
    tokens = TokenService(accounts, secrets, clock=clock, sleep=sleep)
    service = UnpublishService(
        posts=posts,
        listings=listings,
        accounts=accounts,
        tokens=tokens,
        platforms=platforms,
        events=EventPublisher(aws.events(), settings.event_bus_name, sleep=sleep),
        policy=settings.policy,
        claims=PostsDownClaims(tables.listings),
        clock=clock,
    )
    reauth = Reauthorization(
        posts=posts,
        listings=listings,
        accounts=accounts,
        tokens=tokens,
        policy=settings.policy,
        # SQS on first use: only an admin's re-authorisation sends (and a throttled job
        # hides its message); a takedown does not.
        unpublish_queue=QueueSender(
            aws.sqs(deferred=True), settings.unpublish_queue_url, sleep=sleep
        ),
        deliver=service.deliver,
        clock=clock,
    )
    return PublisherDeps(
        service=service,
        persistence=DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=aws.dynamodb()
        ),
        queue_url=settings.unpublish_queue_url,
        max_receives=settings.unpublish_max_receives,
        reauth=reauth,
    )


@per_container
def default_deps() -> PublisherDeps:
    return build()
