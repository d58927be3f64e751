"""Sending messages to SQS in batches of ten, resending the entries that fail one by one."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mls_sync.http.retry import resend_rejected
from mls_sync.models import Model

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

_BATCH = 10


class QueueSendError(RuntimeError):
    """Messages that SQS refused after retries (ids listed, bodies not: they may be large)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    body: Model
    group_id: str | None = None  # FIFO queues: one group per connection
    dedup_id: str | None = None  # FIFO queues: same id within 5 minutes = one message


class QueueSender:
    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._url = queue_url
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def send(self, messages: Sequence[OutgoingMessage]) -> int:
        """Sends every message; returns how many SendMessageBatch calls it took."""
        calls = 0
        for start in range(0, len(messages), _BATCH):
            calls += self._send_batch(list(messages[start : start + _BATCH]))
        return calls

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
            result = self._client.send_message_batch(
                QueueUrl=self._url, Entries=[entries[i] for i in ids]
            )
            failed = result.get("Failed", [])
            permanent = [f for f in failed if f.get("SenderFault")]
            if permanent:
                refused = ", ".join(f"{f['Id']}: {f.get('Code')}" for f in permanent)
                raise QueueSendError(f"SQS refused messages ({refused})")
            return [f["Id"] for f in failed]

        left, calls = resend_rejected(
            send,
            list(entries),
            draw=self._rng.random,
            sleep=self._sleep,
        )
        if left:
            raise QueueSendError(f"{len(left)} message(s) not accepted by {self._url}")
        return calls
