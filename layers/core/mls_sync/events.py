"""Events on the service's EventBridge bus (source ``mls-sync``), sent in batches with the
entries that fail individually resent, so the app can tell the agent what happened."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mls_sync.http.retry import resend_rejected
from mls_sync.models import EventType, Model

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "mls-sync"
_BATCH = 10  # PutEvents takes at most 10 entries


class EventDeliveryError(RuntimeError):
    """Some events could not be put on the bus after retries."""


@dataclass(frozen=True, slots=True)
class Event:
    detail_type: EventType
    detail: Model


class EventPublisher:
    def __init__(
        self,
        client: EventBridgeClient,
        bus_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._bus = bus_name
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def publish(self, events: Sequence[Event]) -> None:
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "Source": SOURCE,
                "DetailType": e.detail_type,
                "Detail": json.dumps(e.detail.to_item(), separators=(",", ":")),
                "EventBusName": self._bus,
            }
            for e in events
        ]
        for start in range(0, len(entries), _BATCH):
            self._put(entries[start : start + _BATCH])

    def _put(self, batch: list[PutEventsRequestEntryTypeDef]) -> None:
        def send(pending: list[PutEventsRequestEntryTypeDef]) -> list[PutEventsRequestEntryTypeDef]:
            result: Any = self._client.put_events(Entries=pending)
            if not result.get("FailedEntryCount"):
                return []
            return [
                entry
                for entry, outcome in zip(pending, result["Entries"], strict=True)
                if outcome.get("ErrorCode")
            ]

        left, _ = resend_rejected(
            send,
            batch,
            draw=self._rng.random,
            sleep=self._sleep,
        )
        if left:
            raise EventDeliveryError(f"{len(left)} event(s) not accepted by bus {self._bus}")
