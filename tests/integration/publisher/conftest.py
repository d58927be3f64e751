"""The real publisher handler against moto (in-process) and the platform simulator (loopback).

moto's in-process mock patches botocore only; httpx calls to the simulator on 127.0.0.1 go
through untouched (``test_simulator_is_reached_through_moto`` proves it). Nothing sleeps: the
platform HTTP client, the token service and the event publisher get a recording sleep and a
fixed clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsContext
from mls_sync import aws
from mls_sync.config import read_settings
from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo
from mls_sync.http.retry import Backoff
from mls_sync.models import (
    Listing,
    Platform,
    PlatformAccount,
    Post,
    PostStatus,
    UnpublishJob,
)
from mls_sync.platforms.http import PlatformHttp, RetryPolicy
from mls_sync.secrets import SecretStore, platform_secret_name
from mls_sync.status import Status
from mls_sync.unpublish.deps import PublisherDeps, build
from mls_sync.unpublish.settings import PublisherSettings

from functions.publisher import app
from mls_sync_local.runtime.context import make_context
from mls_sync_local.sim.platforms import PlatformSimulator
from tests.support.stack import LocalStack, moto_stack

NOW = datetime(2026, 11, 28, 17, 4, 5, tzinfo=UTC)
REGION = "us-east-1"
LINKEDIN_APP = {"clientId": "sim-client-id", "clientSecret": "sim-client-secret"}


@dataclass
class Run:
    """One handler invocation: the response and the records it was given."""

    response: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def failed_ids(self) -> set[str]:
        return {f["itemIdentifier"] for f in self.response.get("batchItemFailures", [])}


@dataclass
class Publisher:
    """A publisher deployment in moto: queue, tables, bus with a capture queue, simulator."""

    stack: LocalStack
    sim: PlatformSimulator
    env: dict[str, str]
    deps: PublisherDeps
    capture_url: str
    http: PlatformHttp
    sleeps: list[float] = field(default_factory=list)
    visibility_changes: list[dict[str, Any]] = field(default_factory=list)
    _events: list[dict[str, Any]] = field(default_factory=list)

    # ------------------------------------------------------------------ world

    @property
    def posts(self) -> PostsRepo:
        return PostsRepo(self.stack.tables.posts)

    @property
    def accounts(self) -> AccountsRepo:
        return AccountsRepo(self.stack.tables.accounts)

    @property
    def listings(self) -> ListingsRepo:
        return ListingsRepo(
            self.stack.tables.listings,
            aws.dynamodb(),
            self.stack.settings.history_table,
            self.stack.settings.listing_keys_table,
        )

    def listing(self, listing_id: str = "l-1", status: Status = Status.SOLD) -> Listing:
        listing = Listing(
            listing_id=listing_id,
            user_id="u-1",
            connection_id="c-1",
            listing_key=f"KEY-{listing_id}",
            status=status,
            mls_modified_at="2026-11-28T16:00:00Z",
            status_changed_at="2026-11-28T16:00:01Z",
        )
        self.listings.create(listing)
        return listing

    def set_listing_status(self, listing_id: str, status: Status, modified: str) -> None:
        """What the worker does when the MLS says the listing moved (relisted, sold again)."""
        self.stack.tables.listings.update_item(
            Key={"listingId": listing_id},
            UpdateExpression="SET #s = :s, mlsModifiedKey = :k, statusChangedAt = :k",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status.value, ":k": modified},
        )

    def account(
        self,
        account_id: str,
        platform: str,
        token: dict[str, str],
        *,
        connected_via: str | None = None,
    ) -> PlatformAccount:
        arn = SecretStore(aws.secrets()).put_json(
            platform_secret_name("mls-sync-test/", account_id), token
        )
        account = PlatformAccount.model_validate(
            {
                "accountId": account_id,
                "userId": "u-1",
                "platform": platform,
                "externalId": f"ext-{account_id}",
                "connectedVia": connected_via,
                "tokenSecretArn": arn,
            }
        )
        self.accounts.create(account)
        return account

    def post(
        self,
        post_id: str,
        account: PlatformAccount,
        platform_post_id: str,
        *,
        listing_id: str = "l-1",
        status: PostStatus = PostStatus.PUBLISHED,
        permalink: str | None = None,
    ) -> Post:
        post = Post(
            post_id=post_id,
            listing_id=listing_id,
            platform=account.platform,
            account_id=account.account_id,
            platform_post_id=platform_post_id,
            status=status,
            permalink=permalink,
            published_at="2026-11-01T10:00:00Z",
        )
        self.posts.create(post)
        return post

    def token_secret(self, account_id: str) -> dict[str, Any]:
        account = self.accounts.get(account_id)
        assert account is not None
        return SecretStore(aws.secrets()).read_json(account.token_secret_arn)

    # ------------------------------------------------------------------ queue

    def job(self, post: Post, correlation_id: str = "corr-1") -> UnpublishJob:
        return UnpublishJob(
            post_id=post.post_id,
            listing_id=post.listing_id,
            platform=post.platform,
            correlation_id=correlation_id,
        )

    def enqueue(self, *jobs: UnpublishJob) -> None:
        for job in jobs:
            aws.sqs().send_message(
                QueueUrl=self.stack.settings.unpublish_queue_url,
                MessageBody=json.dumps(job.to_item()),
            )

    def receive(self, *, visibility: int | None = None) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {} if visibility is None else {"VisibilityTimeout": visibility}
        found = aws.sqs().receive_message(
            QueueUrl=self.stack.settings.unpublish_queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            **extra,
        )
        return [dict(m) for m in found.get("Messages", [])]

    def invoke(
        self, messages: list[dict[str, Any]], context: PowertoolsContext | None = None
    ) -> Run:
        """Calls the real handler with these messages as Lambda's SQS poller would, then
        deletes the records it did not report failed (what the event source mapping does)."""
        records = [sqs_record(m, self.queue_arn) for m in messages]
        response = app.handle({"Records": records}, context or lambda_context(), self.deps)
        run = Run(response=response, records=records)
        for message in messages:
            if message["MessageId"] not in run.failed_ids:
                aws.sqs().delete_message(
                    QueueUrl=self.stack.settings.unpublish_queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                )
        return run

    def deliver(self, *, visibility: int | None = None) -> Run:
        """One poll of the queue handed to the handler."""
        messages = self.receive(visibility=visibility)
        assert messages, "nothing to deliver"
        return self.invoke(messages)

    @property
    def queue_arn(self) -> str:
        attrs = aws.sqs().get_queue_attributes(
            QueueUrl=self.stack.settings.unpublish_queue_url, AttributeNames=["QueueArn"]
        )
        return attrs["Attributes"]["QueueArn"]

    def queue_depth(self, url: str | None = None) -> int:
        attrs = aws.sqs().get_queue_attributes(
            QueueUrl=url or self.stack.settings.unpublish_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )

    def receive_from(self, url: str) -> list[dict[str, Any]]:
        found = aws.sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        return [dict(m) for m in found.get("Messages", [])]

    def dlq_url(self) -> str:
        return aws.sqs().get_queue_url(QueueName="mls-sync-test-unpublish-dlq")["QueueUrl"]

    # ------------------------------------------------------------------ events

    def events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Every event put on the bus so far (read through a rule → SQS target)."""
        while True:
            found = aws.sqs().receive_message(
                QueueUrl=self.capture_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = found.get("Messages", [])
            if not messages:
                break
            for m in messages:
                self._events.append(json.loads(m["Body"]))
                aws.sqs().delete_message(
                    QueueUrl=self.capture_url, ReceiptHandle=m["ReceiptHandle"]
                )
        return [e for e in self._events if detail_type is None or e["detail-type"] == detail_type]


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to the function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def lambda_context(timeout_seconds: int = 90) -> PowertoolsContext:
    """The local runtime's Lambda-like context (it has what Powertools reads)."""
    context = make_context(
        "mls-sync-test-publisher", timeout_seconds=timeout_seconds, memory_mb=512, region=REGION
    )
    return cast("PowertoolsContext", context)


def _capture_events(stack: LocalStack) -> str:
    """An EventBridge rule on the service's bus that copies every mls-sync event to a queue."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="mls-sync-test-event-capture")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events")
    bus = stack.settings.event_bus_name
    events.put_rule(
        Name="capture-all", EventBusName=bus, EventPattern=json.dumps({"source": ["mls-sync"]})
    )
    events.put_targets(Rule="capture-all", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return url


def make_publisher(
    sim: PlatformSimulator,
    stack: LocalStack,
    *,
    linkedin_app: bool = True,
    sleeps: list[float] | None = None,
) -> Publisher:
    # The stack's UnpublishQueue redrives after 5 receives (tests/support/stack.py).
    env = {**stack.env, **sim.env(), "UNPUBLISH_MAX_RECEIVES": "5"}
    if linkedin_app:
        env["LINKEDIN_APP_SECRET_ARN"] = SecretStore(aws.secrets()).put_json(
            "mls-sync-test/platform/linkedin-app", LINKEDIN_APP
        )
    recorded: list[float] = [] if sleeps is None else sleeps
    http = PlatformHttp(
        allow_loopback=True,  # the simulator listens on 127.0.0.1
        timeout=httpx.Timeout(0.5, connect=0.5),
        retry=RetryPolicy(attempts=3, backoff=Backoff(base=0.2, cap=2.0)),
        sleep=recorded.append,
        clock=lambda: NOW,
        rng=lambda: 0.5,
    )
    settings = read_settings(PublisherSettings, env)
    deps = build(settings, http=http, clock=lambda: NOW, sleep=recorded.append)
    publisher = Publisher(
        stack=stack,
        sim=sim,
        env=env,
        deps=deps,
        capture_url=_capture_events(stack),
        http=http,
        sleeps=recorded,
    )

    def spy(params: dict[str, Any], **_: Any) -> None:
        publisher.visibility_changes.append(dict(params))

    # Observe (not replace) the real ChangeMessageVisibility calls the handler makes.
    aws.sqs().meta.events.register("provide-client-params.sqs.ChangeMessageVisibility", spy)
    return publisher


@pytest.fixture
def sim() -> Iterator[PlatformSimulator]:
    with PlatformSimulator(clock=lambda: NOW) as simulator:
        yield simulator


@pytest.fixture
def pub(sim: PlatformSimulator) -> Iterator[Publisher]:
    with moto_stack() as stack:
        publisher = make_publisher(sim, stack)
        try:
            yield publisher
        finally:
            publisher.http.close()


__all__ = ["NOW", "Platform", "Publisher", "Run", "lambda_context", "make_publisher", "sqs_record"]
