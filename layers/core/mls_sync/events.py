"""Events on the service's EventBridge bus (source ``mls-sync``), sent in batches with the
entries that fail individually resent, so the app can tell the agent what happened."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mls_sync.http.retry import BatchSender
from mls_sync.models import EventType, Model

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "mls-sync"


class EventDeliveryError(RuntimeError):
    """Some events could not be put on the bus after retries."""


@dataclass(frozen=True, slots=True)
class Event:
    detail_type: EventType
    detail: Model


@dataclass
class EventPublisher(BatchSender):
    client: EventBridgeClient
    bus_name: str

    def publish(self, events: Sequence[Event]) -> None:
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "Source": SOURCE,
                "DetailType": e.detail_type,
                "Detail": json.dumps(e.detail.to_item(), separators=(",", ":")),
                "EventBusName": self.bus_name,
            }
            for e in events
        ]
        for batch in self.batches(entries):
            self._put(batch)

    def _put(self, batch: list[PutEventsRequestEntryTypeDef]) -> None:
        def send(pending: list[PutEventsRequestEntryTypeDef]) -> list[PutEventsRequestEntryTypeDef]:
            result: Any = self.client.put_events(Entries=pending)
            if not result.get("FailedEntryCount"):
                return []
            return [
                entry
                for entry, outcome in zip(pending, result["Entries"], strict=True)
                if outcome.get("ErrorCode")
            ]

        left, _ = self.resend(send, batch)
        if left:
            raise EventDeliveryError(f"{len(left)} event(s) not accepted by bus {self.bus_name}")
