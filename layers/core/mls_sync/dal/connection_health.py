"""A connection's health as the dispatcher and ``mls-sync status`` read it: the few
attributes of its Connections item that health is judged from, and what names it and its
last error (a projection: a scan of every connection returns only these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mls_sync.health import HealthFacts

HEALTH_ATTRIBUTES = (
    "connectionId, enabled, braked, lastAttemptAt, lastSuccessAt, lastSyncedAt, "
    "failingSince, consecutiveFailures, lastError, quarantinedRecords"
)
"""What :meth:`ConnectionHealthFields.from_item` reads (a ``ProjectionExpression``)."""


@dataclass(frozen=True, slots=True)
class ConnectionHealthFields(HealthFacts):
    """The health attributes of one connection, as the dispatcher reads them: what its
    health is judged from (:meth:`health`), and what names it and its last error."""

    connection_id: str
    error_class: str | None
    cause: str | None
    quarantined_records: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ConnectionHealthFields:
        raw_error = item.get("lastError")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        return cls(
            connection_id=str(item["connectionId"]),
            enabled=bool(item.get("enabled", True)),
            braked=bool(item.get("braked")),
            last_attempt_at=item.get("lastAttemptAt"),
            # Connections synced before health was recorded have only lastSyncedAt.
            last_success_at=item.get("lastSuccessAt") or item.get("lastSyncedAt"),
            failing_since=item.get("failingSince"),
            consecutive_failures=int(item.get("consecutiveFailures") or 0),
            error_class=error.get("errorClass"),
            cause=error.get("message"),
            quarantined_records=int(item.get("quarantinedRecords") or 0),
        )
