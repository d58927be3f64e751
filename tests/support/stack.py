"""A stack's AWS resources in moto, built from template.yaml itself (no second list)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from mls_sync import aws
from mls_sync.config import Settings, settings_from, stack_environment
from mls_sync.dal.base import Tables

from mls_sync_local.template import table_definitions

STACK = "mls-sync-test"


@dataclass(frozen=True)
class LocalStack:
    settings: Settings
    env: dict[str, str]
    tables: Tables


def create_stack_resources(stack: str = STACK, **overrides: str) -> LocalStack:
    """Creates the template's tables, the two queues and the bus in whatever boto3 points at
    (moto in-process or a moto server) and returns settings naming them."""
    ddb = boto3.client("dynamodb")
    for table in table_definitions(stack):
        ddb.create_table(**table)
    sqs = boto3.client("sqs")
    sync_dlq = sqs.create_queue(
        QueueName=f"{stack}-sync-dlq.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    sync_dlq_arn = sqs.get_queue_attributes(QueueUrl=sync_dlq, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sync_q = sqs.create_queue(
        QueueName=f"{stack}-sync.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "1800",
            "RedrivePolicy": f'{{"deadLetterTargetArn": "{sync_dlq_arn}", "maxReceiveCount": "3"}}',
        },
    )["QueueUrl"]
    unpublish_dlq = sqs.create_queue(QueueName=f"{stack}-unpublish-dlq")["QueueUrl"]
    unpublish_dlq_arn = sqs.get_queue_attributes(
        QueueUrl=unpublish_dlq, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    unpublish_q = sqs.create_queue(
        QueueName=f"{stack}-unpublish",
        Attributes={
            "VisibilityTimeout": "540",
            "RedrivePolicy": (
                f'{{"deadLetterTargetArn": "{unpublish_dlq_arn}", "maxReceiveCount": "5"}}'
            ),
        },
    )["QueueUrl"]
    names = stack_environment(stack)
    boto3.client("events").create_event_bus(Name=names["EVENT_BUS_NAME"])
    env = {
        **names,
        "SYNC_QUEUE_URL": sync_q,
        "UNPUBLISH_QUEUE_URL": unpublish_q,
        **overrides,
    }
    settings = settings_from(env)
    return LocalStack(settings=settings, env=env, tables=Tables.from_settings(settings))


@contextmanager
def moto_stack(**overrides: str) -> Iterator[LocalStack]:
    """In-process moto with the stack's resources; cached boto3 clients are reset around it."""
    from moto import mock_aws  # noqa: PLC0415 - test-only import kept local

    from mls_sync_local.runtime.moto_patches import transactions_copy_tables_once  # noqa: PLC0415

    transactions_copy_tables_once()

    aws.reset_clients()
    with mock_aws():
        yield create_stack_resources(**overrides)
    aws.reset_clients()
