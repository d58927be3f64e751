"""The shared budget's policy and item: a credential's quotas as slots, caps and lanes.

A vendor's quotas (per second, minute, hour, day) become a slot ``spacing`` (the tightest
short quota less a safety margin) with a ``tolerance`` for a late send, and hourly and daily
caps; :class:`BudgetSettings` holds the knobs that are the same for every vendor (margin, bulk
share, priority reserve, batch sizes, horizons). :class:`BudgetState` is the one item per
credential that every worker reads and writes (``mls_sync.dal.budget`` stores it). Pure data:
the planning on it is ``budget_plan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from mls_sync.reso.profiles import Quotas

Lane = Literal["priority", "normal"]

HOUR = 3600
DAY = 86_400

# ----------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class BudgetSettings:
    """Knobs of the shared budget (the same for every vendor; the quotas come from the
    vendor profile)."""

    margin: float = 0.05
    """Slots are spaced this much wider than the quota allows (0.05: 95 % of it)."""
    bulk_share: float = 0.5
    """Largest share of each hourly and daily quota that by-key reads may use."""
    priority_reserve: float = 0.1
    """Share of each hourly and daily quota kept for manual and push syncs."""
    normal_horizon: float = 2.0
    """Bulk work (by-key reads) takes slots at most this many seconds ahead."""
    first_batch: int = 1
    """Slots taken at once by everyday work at first (a quiet connection sends one)."""
    bulk_batch: int = 8
    """Slots taken at once by by-key reads at first (they run long)."""
    max_batch: int = 16
    """Largest batch; each take of a client grows its batch 4 times up to this."""
    max_spare: int = 32
    """Most returned slots kept in the item."""
    min_give_back: int = 2
    """Fewer unused slots than this are not worth a write to give back."""
    verify_grace: float = 0.05
    """A holder that read or wrote the item this recently sends without reading it again."""
    max_conflicts: int = 8
    """Conditional writes lost in a row before a taker backs off for a slot's time."""
    skip_after: float = 3.0
    """A head of the line that has been able to take this long without taking is passed
    over (it died, or went away): more than ``poll_interval``, less than the time the
    queue of slots ahead lasts."""
    everyday_horizon: float = 3.0
    """Everyday work (incremental reads) takes slots at most this many seconds ahead,
    more than bulk work may (``normal_horizon``), so it goes first when both wait."""
    poll_interval: float = 2.0
    """A worker waiting behind the queue reads the item at least this often: slots that a
    finished worker gave back go to whoever looks first (one read a look)."""

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 0.5:
            raise ValueError("margin must be in [0, 0.5)")
        if not 0 < self.bulk_share <= 1 or not 0 <= self.priority_reserve < 1:
            raise ValueError("bulk_share must be in (0, 1], priority_reserve in [0, 1)")
        if min(self.first_batch, self.bulk_batch, self.max_batch) < 1:
            raise ValueError("batches must be at least 1")


@dataclass(frozen=True)
class BudgetPolicy:
    """A credential's quotas as slot spacing and window caps."""

    spacing: float
    tolerance: float
    per_hour: int | None
    per_day: int | None
    settings: BudgetSettings

    @classmethod
    def for_quotas(cls, quotas: Quotas, settings: BudgetSettings) -> BudgetPolicy | None:
        """``None`` when the vendor names no quota at all (nothing to share)."""
        paced: list[tuple[float, float]] = [
            (amount, period)
            for amount, period in (
                (quotas.per_second, 1.0),
                (quotas.per_minute, 60.0),
                (quotas.per_hour, float(HOUR)),
                (quotas.per_day, float(DAY)),
            )
            if amount
        ]
        if not paced:
            return None
        short = [(a, p) for a, p in paced if p <= 60] or paced[:1]
        spacing = max(p / a for a, p in short) / (1 - settings.margin)
        # Any quota+1 consecutive requests must span more than the quota's period; sent up
        # to ``tolerance`` after their slots they still do.
        tolerance = min(a * spacing - p for a, p in short)
        return cls(
            spacing=spacing,
            tolerance=max(0.0, tolerance),
            per_hour=math.floor(quotas.per_hour) if quotas.per_hour else None,
            per_day=math.floor(quotas.per_day) if quotas.per_day else None,
            settings=settings,
        )

    def horizon(self, lane: Lane, *, bulk: bool = False) -> float:
        if lane == "priority":
            return math.inf
        return self.settings.normal_horizon if bulk else self.settings.everyday_horizon


# ------------------------------------------------------------------------------ state


@dataclass(frozen=True)
class BudgetState:
    """The shared item of one credential (``mls_sync.dal.budget`` stores it)."""

    version: int = 0
    next_slot: float = 0.0
    """Epoch seconds of the first slot never handed out."""
    spare: tuple[float, ...] = ()
    """Slots handed out and given back unused, ascending."""
    hour: int = 0
    hour_used: int = 0
    hour_bulk: int = 0
    day: int = 0
    day_used: int = 0
    day_bulk: int = 0
    blocked_until: float = 0.0
    waiters: tuple[tuple[str, float], ...] = ()
    """Bulk takers (by-key reads) in line for slots, first come first served: (their id,
    when they joined). Only the head may take; a head that lets its turn pass is dropped."""
