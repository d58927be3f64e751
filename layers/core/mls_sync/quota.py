"""How much of an MLS credential's quota is spent: read from the shared request budget a run
took its permits from (issue 21, ``mls_sync.reso.budget``), with no extra call.

A budgeted client holds the budget item as its worker last read or wrote it: that item
counts every worker's requests on the credential in the current UTC hour and day. The share
of the hourly or daily quota spent (whichever is higher) is the worker's
``MlsQuotaUsedPercent`` (one value per run, no dimension per token: the dashboard and the
alarm read its Maximum, the busiest credential); which credential is the ``mls quota`` log
line's (``budgetKey`` is the vendor and a hash, never the secret).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HOUR = 3600
DAY = 86_400


@dataclass(frozen=True, slots=True)
class QuotaUse:
    budget_key: str
    vendor: str
    hour_used: int
    per_hour: int | None
    day_used: int
    per_day: int | None

    @property
    def percent(self) -> float:
        shares = [
            used / limit
            for used, limit in ((self.hour_used, self.per_hour), (self.day_used, self.per_day))
            if limit
        ]
        return round(100 * max(shares), 1) if shares else 0.0

    def to_log(self) -> dict[str, Any]:
        return {
            "budgetKey": self.budget_key,
            "vendor": self.vendor,
            "hourUsed": self.hour_used,
            "hourLimit": self.per_hour,
            "dayUsed": self.day_used,
            "dayLimit": self.per_day,
            "usedPercent": self.percent,
        }


def quota_use(client: object, now_epoch: float) -> QuotaUse | None:
    """The quota use a budgeted client last saw, in the windows of ``now_epoch``; None for a
    client without a shared budget, or a vendor that publishes no hourly or daily quota."""
    budget = getattr(client, "budget", None)
    policy = getattr(budget, "policy", None)
    state = getattr(budget, "last_seen", None)  # the item as this worker last saw it
    key = getattr(budget, "key", None)
    if budget is None or policy is None or state is None or not isinstance(key, str):
        return None
    per_hour, per_day = getattr(policy, "per_hour", None), getattr(policy, "per_day", None)
    if not per_hour and not per_day:
        return None
    hour, day = math.floor(now_epoch / HOUR), math.floor(now_epoch / DAY)
    hour_used = int(state.hour_used) if int(state.hour) == hour else 0
    day_used = int(state.day_used) if int(state.day) == day else 0
    return QuotaUse(key, key.split("#", 1)[0], hour_used, per_hour, day_used, per_day)


__all__ = ["QuotaUse", "quota_use"]
