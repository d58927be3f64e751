"""A stack in moto with one connection whose MLS may push (token in Secrets Manager), and
the push handler wired to it."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from mls_sync import aws
from mls_sync.dal import ConnectionsRepo
from mls_sync.dal.push_inbox import InboxBatch, PushInboxRepo
from mls_sync.models import Connection, SyncJob
from mls_sync.push.deps import build_push_deps
from mls_sync.push.receiver import PushDeps
from mls_sync.secrets import push_secret_name

from functions.push import app
from tests.support.pipeline import load_event
from tests.support.stack import STACK, LocalStack

CONNECTION = "c-ada-actris"  # the connection the events/push.*.json samples name
TOKEN = "example-push-token-0123456789"  # and their token
NOW = datetime(2026, 11, 28, 17, 5, 12, tzinfo=UTC)


@dataclass
class PushWorld:
    stack: LocalStack
    deps: PushDeps

    def add_connection(
        self, connection_id: str, *, token: str | None = TOKEN, enabled: bool = True
    ) -> None:
        arn = None
        if token is not None:
            arn = boto3.client("secretsmanager").create_secret(
                Name=push_secret_name(f"{STACK}/", connection_id),
                SecretString=json.dumps({"token": token}),
            )["ARN"]
        ConnectionsRepo(self.stack.tables.connections).create(
            Connection(
                connection_id=connection_id,
                user_id="u-ada",
                vendor="reso",
                base_url="https://mls.example.com/odata",
                credentials_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
                enabled=enabled,
                push_secret_arn=arn,
            )
        )

    def post(self, event: dict[str, Any], deps: PushDeps | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = app.handle(event, None, deps=deps or self.deps, clock=lambda: NOW)  # type: ignore[arg-type]
        return answer

    def jobs(self) -> list[SyncJob]:
        """Every message on SyncQueue (read and left visible again for the next look)."""
        sqs = boto3.client("sqs")
        found: list[SyncJob] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=self.stack.settings.sync_queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
            ).get("Messages", [])
            if not got:
                return found
            for message in got:
                found.append(SyncJob.model_validate_json(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.stack.settings.sync_queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                )

    def inbox(self, connection_id: str = CONNECTION) -> InboxBatch:
        return self.inbox_repo().peek(connection_id)

    def inbox_repo(self) -> PushInboxRepo:
        table = self.stack.settings.push_inbox_table
        assert table is not None
        return PushInboxRepo(aws.dynamodb(), table)


@pytest.fixture
def push(stack: LocalStack) -> PushWorld:
    world = PushWorld(stack=stack, deps=build_push_deps(stack.settings))
    world.add_connection(CONNECTION)
    return world


Event = Callable[..., dict[str, Any]]


def http_event(
    body: Any = None,
    *,
    path: str = f"/connections/{CONNECTION}/events",
    method: str = "POST",
    token: str | None = TOKEN,
    content_type: str | None = "application/json",
    b64: bool = False,
    raw: str | None = None,
) -> dict[str, Any]:
    """A function URL event as Lambda builds it, from the events/ sample."""
    event = copy.deepcopy(load_event("push.keys.json"))
    headers = event["headers"]
    headers.pop("authorization", None)
    headers.pop("content-type", None)
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if content_type is not None:
        headers["content-type"] = content_type
    text = raw if raw is not None else json.dumps(body)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = base64.b64encode(text.encode()).decode() if b64 else text
    event["isBase64Encoded"] = b64
    return event
