"""Sending messages to SQS in batches of ten, resending the entries that fail one by one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mls_sync.http.retry import BatchSender
from mls_sync.models import Model

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


class QueueSendError(RuntimeError):
    """Messages that SQS refused after retries (ids listed, bodies not: they may be large)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    body: Model
    group_id: str | None = None  # FIFO queues: one group per connection
    dedup_id: str | None = None  # FIFO queues: same id within 5 minutes = one message


@dataclass
class QueueSender(BatchSender):
    client: SQSClient
    queue_url: str

    def send(self, messages: Sequence[OutgoingMessage]) -> int:
        """Sends every message; returns how many SendMessageBatch calls it took."""
        return sum(self._send_batch(batch) for batch in self.batches(messages))

    def _send_batch(self, batch: list[OutgoingMessage]) -> int:
        entries: dict[str, SendMessageBatchRequestEntryTypeDef] = {}
        for index, message in enumerate(batch):
            entry: SendMessageBatchRequestEntryTypeDef = {
                "Id": str(index),
                "MessageBody": message.body.model_dump_json(by_alias=True, exclude_none=True),
            }
            if message.group_id is not None:
                entry["MessageGroupId"] = message.group_id
            if message.dedup_id is not None:
                entry["MessageDeduplicationId"] = message.dedup_id
            entries[entry["Id"]] = entry

        def send(ids: list[str]) -> list[str]:
            result = self.client.send_message_batch(
                QueueUrl=self.queue_url, Entries=[entries[i] for i in ids]
            )
            failed = result.get("Failed", [])
            permanent = [f for f in failed if f.get("SenderFault")]
            if permanent:
                refused = ", ".join(f"{f['Id']}: {f.get('Code')}" for f in permanent)
                raise QueueSendError(f"SQS refused messages ({refused})")
            return [f["Id"] for f in failed]

        left, calls = self.resend(send, list(entries))
        if left:
            raise QueueSendError(f"{len(left)} message(s) not accepted by {self.queue_url}")
        return calls
