"""`mls-sync status [--json]`: every connection's health at a glance.

Read from the Connections table, as the worker records it after each run (last success,
lag, last error, failures in a row, quarantined records) and as the dispatcher counts it
(``mls_sync.health.HealthFacts``: stale after 2 schedule periods without a success, failing while
the last run failed, braked while the mass-change brake holds takedowns). Exit 1 when any
connection is stale or failing (CONTRACT section 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from mls_sync_local.errors import EXIT_FAILED, EXIT_OK

DEFAULT_SCHEDULE = "rate(15 minutes)"


@dataclass(frozen=True)
class StatusRow:
    connection_id: str
    vendor: str
    health: tuple[str, ...]
    lag_seconds: int | None
    last_success_at: str | None
    last_attempt_at: str | None
    consecutive_failures: int
    quarantined: int
    braked: dict[str, Any] | None
    error_class: str | None
    cause: str | None
    error_at: str | None
    mode: str = "replication"
    """How the connection learns of changes (``mode_of``)."""

    @property
    def unhealthy(self) -> bool:
        return "stale" in self.health or "failing" in self.health

    def to_json(self) -> dict[str, Any]:
        return {
            "connectionId": self.connection_id,
            "vendor": self.vendor,
            "mode": self.mode,
            "health": list(self.health) or ["ok"],
            "lagSeconds": self.lag_seconds,
            "lastSuccessAt": self.last_success_at,
            "lastAttemptAt": self.last_attempt_at,
            "consecutiveFailures": self.consecutive_failures,
            "quarantinedRecords": self.quarantined,
            "braked": self.braked,
            "lastError": (
                {"errorClass": self.error_class, "message": self.cause, "at": self.error_at}
                if self.error_class
                else None
            ),
        }


def mode_of(item: dict[str, Any]) -> str:
    """``replication``, ``entityEvent@<sequence>`` (the anchor; ``-`` before the first run),
    or ``auto?`` (not probed yet); ``+push`` when the MLS may push to PushFunction."""
    detection = str(item.get("detection") or "auto")
    mode = item.get("detected") if detection == "auto" else detection
    if mode == "entityEvent":
        sequence = item.get("eventSequence")
        text = f"entityEvent@{sequence if sequence is not None else '-'}"
    elif mode == "replication":
        text = "replication"
    else:
        text = "auto?"
    return text + ("+push" if item.get("pushSecretArn") else "")


def status_rows(
    items: Iterable[dict[str, Any]], *, now: datetime, period_seconds: int
) -> list[StatusRow]:
    """One row per connection item (plain attribute values), sorted: unhealthy first."""
    from mls_sync.dal.connection_health import ConnectionHealthFields  # noqa: PLC0415

    rows = []
    for item in items:
        fields = ConnectionHealthFields.from_item(item)
        health = fields.health(now, period_seconds)
        error = item.get("lastError") if isinstance(item.get("lastError"), dict) else None
        braked = item.get("braked") if isinstance(item.get("braked"), dict) else None
        rows.append(
            StatusRow(
                connection_id=fields.connection_id,
                vendor=str(item.get("vendor") or "?"),
                health=health.flags,
                lag_seconds=health.lag_seconds,
                last_success_at=fields.last_success_at,
                last_attempt_at=fields.last_attempt_at,
                consecutive_failures=fields.consecutive_failures,
                quarantined=fields.quarantined_records,
                braked=braked,
                error_class=(error or {}).get("errorClass"),
                cause=(error or {}).get("message"),
                error_at=(error or {}).get("at"),
                mode=mode_of(item),
            )
        )
    return sorted(rows, key=lambda r: (not r.unhealthy, -(r.lag_seconds or 0), r.connection_id))


def _short_time(value: str | None, now: datetime) -> str:
    if not value:
        return "never"
    text = value.replace("T", " ")[:19]
    return text[11:] if text[:10] == now.strftime("%Y-%m-%d") else text


def render(rows: list[StatusRow], *, now: datetime, period_seconds: int) -> str:
    """The health table, then one line of totals."""
    from mls_sync.health import STALE_PERIODS, format_lag  # noqa: PLC0415

    if not rows:
        return "no connections"
    headers = [
        "CONNECTION",
        "VENDOR",
        "MODE",
        "HEALTH",
        "LAST SUCCESS",
        "LAG",
        "FAILURES",
        "QUAR.",
    ]
    table = [
        [
            r.connection_id,
            r.vendor,
            r.mode,
            ",".join(r.health) or "ok",
            _short_time(r.last_success_at, now),
            format_lag(r.lag_seconds),
            str(r.consecutive_failures),
            str(r.quarantined),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + "  LAST ERROR"]
    for row, data in zip(table, rows, strict=True):
        cells = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        error = data.cause if data.consecutive_failures and data.cause else "-"
        if data.braked:
            error = (
                f"braked by {data.braked.get('runKey')} ({data.braked.get('listings')} listings)"
            )
            error += f"; {data.cause}" if data.consecutive_failures and data.cause else ""
        lines.append(f"{cells}  {error}")
    counts = {flag: sum(1 for r in rows if flag in r.health) for flag in _FLAGS}
    ok = sum(1 for r in rows if not r.health)
    lines.append(
        f"{len(rows)} connection(s): {ok} ok, "
        + ", ".join(f"{n} {flag}" for flag, n in counts.items())
        + f" (stale: no success for more than {STALE_PERIODS} periods of "
        f"{format_lag(period_seconds)})"
    )
    return "\n".join(lines)


_FLAGS = ("stale", "failing", "braked", "disabled")


def _scan(table: Any) -> Iterator[dict[str, Any]]:
    from mls_sync.dal.base import plain  # noqa: PLC0415

    kwargs: dict[str, Any] = {"ConsistentRead": True}
    while True:
        page = table.scan(**kwargs)
        yield from (plain(i) for i in page.get("Items", []))
        if not page.get("LastEvaluatedKey"):
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def schedule_period(stack: str, endpoint: str, region_name: str) -> int:
    """The deployed stack's schedule period in seconds (its ScheduleExpression parameter)."""
    from mls_sync.config import schedule_period_seconds  # noqa: PLC0415

    from mls_sync_local.runtime.stack import DeployedStack  # noqa: PLC0415

    deployed = DeployedStack.describe(stack, endpoint, region_name)
    return schedule_period_seconds(deployed.parameters.get("ScheduleExpression", DEFAULT_SCHEDULE))


def run(args: argparse.Namespace, *, out: TextIO | None = None, now: datetime | None = None) -> int:
    from mls_sync_local.runtime.stack import region  # noqa: PLC0415
    from mls_sync_local.seed import stack_name, stack_tables, use_local_aws  # noqa: PLC0415

    endpoint = use_local_aws()
    stack = stack_name()
    now = now or datetime.now(UTC)
    period = schedule_period(stack, endpoint, region())
    rows = status_rows(_scan(stack_tables(stack).connections), now=now, period_seconds=period)
    stdout = out or sys.stdout
    if args.json:
        document = {
            "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "periodSeconds": period,
            "connections": [r.to_json() for r in rows],
        }
        print(json.dumps(document, indent=2), file=stdout)
    else:
        print(render(rows, now=now, period_seconds=period), file=stdout)
    return EXIT_FAILED if any(r.unhealthy for r in rows) else EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="every connection's health: last success, lag, last error, failures",
        description="Every connection's health as the worker records it and the dispatcher "
        "counts it. Exit 1 when any connection is stale (no success for more than 2 schedule "
        "periods) or failing (its last run failed).",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(run=run)


__all__ = ["StatusRow", "register", "render", "run", "status_rows"]
