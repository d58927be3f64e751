"""Building the publisher's collaborators from settings, once per process (lazily)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from pydantic import SecretStr

from mls_sync import aws
from mls_sync.config import load_settings
from mls_sync.container import per_container
from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.base import Tables
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo
from mls_sync.events import EventPublisher
from mls_sync.platforms.http import PlatformHttp
from mls_sync.platforms.linkedin import AppCredentialsError, AppSource, OAuthApp
from mls_sync.platforms.registry import PlatformDeps, PlatformRegistry
from mls_sync.queues import QueueSender
from mls_sync.secrets import SECRET_MAX_AGE_SECONDS, SecretError, SecretStore
from mls_sync.timeutil import Clock, utc_now
from mls_sync.unpublish.outbox import PostsDownClaims
from mls_sync.unpublish.reauth import Reauthorization
from mls_sync.unpublish.service import UnpublishService
from mls_sync.unpublish.settings import PublisherSettings
from mls_sync.unpublish.tokens import TokenService


def linkedin_app_source(secrets: SecretStore, secret_arn: str) -> AppSource:
    """The LinkedIn app's ``{"clientId", "clientSecret"}`` from its secret, through the
    secrets cache (``SECRET_MAX_AGE_SECONDS``); AppCredentialsError naming the secret (never
    a value) when it cannot be read or is not that shape."""

    def read() -> OAuthApp:
        try:
            values = secrets.read_json(secret_arn)
        except (SecretError, ValueError):
            raise AppCredentialsError(f"app secret {secret_arn} cannot be read") from None
        client_id, client_secret = values.get("clientId"), values.get("clientSecret")
        if not isinstance(client_id, str) or not client_id or not isinstance(client_secret, str):
            raise AppCredentialsError(
                f"app secret {secret_arn} does not hold a clientId and a clientSecret"
            )
        return OAuthApp(client_id=client_id, client_secret=SecretStr(client_secret))

    return read


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
    # Read when a LinkedIn refresh needs it, not here: at init a slow or malformed app
    # secret would stop every takedown of every platform.
    linkedin_app = (
        linkedin_app_source(secrets, settings.linkedin_app_secret_arn)
        if settings.linkedin_app_secret_arn
        else None
    )
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
