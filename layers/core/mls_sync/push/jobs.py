"""The sync job a push (or a worker that requeues its inbox) sends.

One job per flip of the inbox (the push that found no job queued): its
``MessageDeduplicationId`` is the connection and the flip's ticket (the inbox's push count
after it), so the same flip's job sent twice is one message, while the next flip, after a
worker took the keys, is a new one. The
job names no keys: the worker takes them from the inbox (``PushInboxRepo.open``), which holds
every key pushed up to the moment it runs, however many pushes that was.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mls_sync.models import SyncJob
from mls_sync.pipeline.keys import group_id, sqs_id
from mls_sync.timeutil import format_utc

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


def push_job(connection_id: str, *, now: datetime, correlation_id: str) -> SyncJob:
    return SyncJob(
        connection_id=connection_id,
        reason="push",
        slot=format_utc(now),
        correlation_id=correlation_id,
    )


def push_dedup_id(connection_id: str, ticket: int) -> str:
    return sqs_id(f"{connection_id}#push#{ticket}")


class PushJobSender:
    """Sends one push job to SyncQueue (FIFO, one message group per connection)."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(
        self, connection_id: str, ticket: int, *, now: datetime, correlation_id: str
    ) -> SyncJob:
        job = push_job(connection_id, now=now, correlation_id=correlation_id)
        self._client.send_message(
            QueueUrl=self._url,
            MessageBody=job.model_dump_json(by_alias=True, exclude_none=True),
            MessageGroupId=group_id(connection_id),
            MessageDeduplicationId=push_dedup_id(connection_id, ticket),
        )
        return job
