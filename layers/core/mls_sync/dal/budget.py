"""The shared MLS request budgets in DynamoDB: one item per vendor credential in the Budgets
table (issue 21; the logic is ``mls_sync.reso.budget``).

Item (``budgetId`` = ``<vendor>#<sha256 of the token or client id, 32 hex>``, never the
secret): ``version`` (every write is conditional on it), ``nextSlot`` (epoch seconds of the
first slot never handed out), ``spare`` (slots given back), ``hour``/``hourUsed``/``hourBulk``
and ``day``/``dayUsed``/``dayBulk`` (UTC window numbers and their counts), ``blockedUntil``
(a 429's ``Retry-After`` for every worker), ``waiters`` (the line of bulk takers: ``who``, a
hash of the connection id, and ``since``), ``expiresAt`` (TTL, two days after the last
write). Times are stored as the exact decimal of the float (``repr``), so slot spacing
survives the round trip.

Costs: a take is one strongly consistent read and one conditional write (plus one more of
each per write lost to another worker: the loser gets the item back from the failed write,
``ReturnValuesOnConditionCheckFailure=ALL_OLD``, which costs no read); a send after a wait
is one read (is the token blocked?); giving unused slots back is one read and one write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mls_sync import aws
from mls_sync.config import Settings
from mls_sync.dal.base import conditional, is_condition_failure
from mls_sync.reso.budget import BudgetSettings, BudgetState, SharedBudgets

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

TTL_SECONDS = 2 * 86_400
"""An item unused this long is deleted by TTL (its day's count is over by then)."""


@dataclass
class StoreStats:
    """DynamoDB calls made, for benchmarks and logs."""

    reads: int = 0
    writes: int = 0
    conflicts: int = 0
    """Conditional writes lost to another worker (counted in ``writes`` too)."""


def _n(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _num(item: Mapping[str, Any], name: str) -> Decimal:
    raw = item.get(name)
    return Decimal(raw["N"]) if isinstance(raw, dict) and "N" in raw else Decimal(0)


def state_from_item(item: Mapping[str, Any] | None) -> BudgetState:
    """A low-level item (``{"N": "…"}`` values) as a :class:`BudgetState`."""
    if not item:
        return BudgetState()
    spare_raw = item.get("spare", {}).get("L", [])
    line_raw = item.get("waiters", {}).get("L", [])
    return BudgetState(
        version=int(_num(item, "version")),
        next_slot=float(_num(item, "nextSlot")),
        spare=tuple(sorted(float(Decimal(v["N"])) for v in spare_raw if "N" in v)),
        hour=int(_num(item, "hour")),
        hour_used=int(_num(item, "hourUsed")),
        hour_bulk=int(_num(item, "hourBulk")),
        day=int(_num(item, "day")),
        day_used=int(_num(item, "dayUsed")),
        day_bulk=int(_num(item, "dayBulk")),
        blocked_until=float(_num(item, "blockedUntil")),
        waiters=tuple(
            (w["M"]["who"]["S"], float(Decimal(w["M"]["since"]["N"]))) for w in line_raw if "M" in w
        ),
    )


def item_from_state(key: str, state: BudgetState, expires_at: int) -> dict[str, Any]:
    return {
        "budgetId": {"S": key},
        "version": _n(state.version),
        "nextSlot": _n(state.next_slot),
        "spare": {"L": [_n(s) for s in state.spare]},
        "hour": _n(state.hour),
        "hourUsed": _n(state.hour_used),
        "hourBulk": _n(state.hour_bulk),
        "day": _n(state.day),
        "dayUsed": _n(state.day_used),
        "dayBulk": _n(state.day_bulk),
        "blockedUntil": _n(state.blocked_until),
        "waiters": {
            "L": [{"M": {"who": {"S": who}, "since": _n(since)}} for who, since in state.waiters]
        },
        "expiresAt": _n(expires_at),
    }


class DynamoBudgetStore:
    """:class:`mls_sync.reso.budget.BudgetStore` on the Budgets table."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock
        self._lock = threading.Lock()
        self.stats = StoreStats()

    def _count(self, *, reads: int = 0, writes: int = 0, conflicts: int = 0) -> None:
        with self._lock:
            self.stats.reads += reads
            self.stats.writes += writes
            self.stats.conflicts += conflicts

    def load(self, key: str) -> BudgetState:
        self._count(reads=1)
        answer = self._client.get_item(
            TableName=self._table, Key={"budgetId": {"S": key}}, ConsistentRead=True
        )
        return state_from_item(answer.get("Item"))

    def save(self, key: str, state: BudgetState, expected_version: int) -> BudgetState | None:
        self._count(writes=1)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item_from_state(key, state, int(self._clock()) + TTL_SECONDS),
                # Versions start at 1: "no item" is version 0.
                ConditionExpression="attribute_not_exists(#v) OR #v = :v",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":v": _n(expected_version)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            self._count(conflicts=1)
            return state_from_item(exc.response.get("Item"))  # type: ignore[arg-type]
        return None

    def block(self, key: str, until: float) -> None:
        self._count(writes=1)
        # A condition that fails means already blocked at least that long: nothing to do.
        conditional(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"budgetId": {"S": key}},
                UpdateExpression="SET blockedUntil = :t, expiresAt = :e ADD version :one",
                ConditionExpression="attribute_not_exists(blockedUntil) OR blockedUntil < :t",
                ExpressionAttributeValues={
                    ":t": _n(until),
                    ":e": _n(int(self._clock()) + TTL_SECONDS),
                    ":one": _n(1),
                },
            )
        )


def budgets_from_settings(
    settings: Settings, *, clock: Callable[[], float] = time.time
) -> SharedBudgets | None:
    """The shared budgets of a deployed stack; ``None`` without a Budgets table (each
    process then keeps its own per-token limiter, and vendors' 429s are the backstop)."""
    if not settings.budgets_table:
        return None
    store = DynamoBudgetStore(aws.dynamodb(), settings.budgets_table, clock=clock)
    return SharedBudgets(
        store, settings=BudgetSettings(bulk_share=settings.budget_bulk_share), clock=clock
    )
