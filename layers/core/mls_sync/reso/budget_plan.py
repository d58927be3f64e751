"""The shared budget's planning maths: which slots a taker gets, and the item it writes.

Pure functions over the item (:class:`~mls_sync.reso.budget_policy.BudgetState`) and the
policy, with the time passed in: :func:`plan` hands a taker up to the slots it wants (spare
slots first, then fresh ones, within the hour and day caps of its lane, no later than its
deadline) or says when to ask again, keeping bulk takers in a first-come line;
:func:`give_back` returns unused slots; :func:`raise_floor` lifts a window's count to what a
vendor's quota header says is spent. The caller writes the item conditionally on its version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from mls_sync.reso.budget_policy import (
    DAY,
    HOUR,
    BudgetPolicy,
    BudgetSettings,
    BudgetState,
    Lane,
)


@dataclass(frozen=True)
class Grant:
    slots: tuple[float, ...]
    state: BudgetState


HoldKind = Literal["ahead", "deadline", "quota", "contention"]


@dataclass(frozen=True)
class Hold:
    """Nothing to take now: ask again at ``until`` (epoch seconds). ``ahead``: the queue of
    slots already handed out is longer than the lane may wait behind; ``deadline``: the next
    slot is after the caller's latest; ``quota``: the window's count is spent."""

    until: float
    kind: HoldKind
    state: BudgetState | None = None
    """The item to write before waiting (joining or renewing a place among the waiters)."""


def _counts(state: BudgetState, hour: int, day: int) -> tuple[int, int, int, int]:
    """(hour used, hour bulk, day used, day bulk) as they stand for the given windows."""
    hu, hb = (state.hour_used, state.hour_bulk) if hour <= state.hour else (0, 0)
    du, db = (state.day_used, state.day_bulk) if day <= state.day else (0, 0)
    return hu, hb, du, db


def _left(
    limit: int | None, used: int, bulk_used: int, *, lane: Lane, bulk: bool, s: BudgetSettings
) -> float:
    if limit is None:
        return math.inf
    cap = limit if lane == "priority" else math.floor(limit * (1 - s.priority_reserve))
    left = cap - used
    if bulk:
        left = min(left, math.floor(limit * s.bulk_share) - bulk_used)
    return left


def plan(
    state: BudgetState,
    policy: BudgetPolicy,
    now: float,
    want: int,
    *,
    lane: Lane,
    bulk: bool,
    latest: float | None,
    me: str | None = None,
) -> Grant | Hold:
    """Up to ``want`` slots for one taker, no later than ``latest``: a :class:`Grant` with
    the item as it must be written, or a :class:`Hold` saying when to ask again (and, for
    an everyday taker ``me`` that must wait, the item with its place among the waiters)."""
    floor = max(now, state.blocked_until)
    spare = [s for s in state.spare if s >= floor]
    fresh = max(state.next_slot, floor)
    earliest = spare[0] if spare else fresh
    horizon = policy.horizon(lane, bulk=bulk)
    line = state.waiters
    in_line = lane == "normal" and bulk and me is not None
    if in_line:
        assert me is not None
        line = _live_line(state, policy, now, earliest, me)
        if earliest - now > horizon or (line and line[0][0] != me):
            return _wait_in_line(
                state, policy, now, earliest=earliest, latest=latest, me=me, line=line
            )
        line = tuple(w for w in line if w[0] != me)
    elif earliest - now > horizon:
        return Hold(earliest - horizon, "ahead")
    if latest is not None and earliest > latest:
        return Hold(earliest, "deadline")
    hour, day = math.floor(earliest / HOUR), math.floor(earliest / DAY)
    hour, day = max(hour, state.hour), max(day, state.day)
    hu, hb, du, db = _counts(state, hour, day)
    s = policy.settings
    left_hour = _left(policy.per_hour, hu, hb, lane=lane, bulk=bulk, s=s)
    left_day = _left(policy.per_day, du, db, lane=lane, bulk=bulk, s=s)
    left = min(left_hour, left_day)
    if left < 1:
        spent_day = left_day < 1
        until = (day + 1) * DAY if spent_day else (hour + 1) * HOUR
        return Hold(float(until), "quota")
    count = int(min(left, want))
    picked: list[float] = []
    taken_spare: list[float] = []
    last_fresh: float | None = None

    def fits(slot: float) -> bool:
        same_window = math.floor(slot / HOUR) <= hour and math.floor(slot / DAY) <= day
        return same_window and (latest is None or slot <= latest)

    for slot in spare:
        if len(picked) >= count or not fits(slot):
            break
        picked.append(slot)
        taken_spare.append(slot)
    index = 0
    while len(picked) < count:
        slot = fresh + index * policy.spacing
        if not fits(slot):
            break
        picked.append(slot)
        last_fresh = slot
        index += 1
    if not picked:
        return Hold(earliest, "deadline")
    n = len(picked)
    if in_line and line:
        assert me is not None
        line = (*line, (me, now))  # others wait: back in line, at its end, for the next batch
    new = replace(
        state,
        waiters=line,
        version=state.version + 1,
        next_slot=last_fresh + policy.spacing if last_fresh is not None else state.next_slot,
        spare=tuple(s for s in spare if s not in taken_spare),
        hour=hour,
        hour_used=hu + n,
        hour_bulk=hb + (n if bulk else 0),
        day=day,
        day_used=du + n,
        day_bulk=db + (n if bulk else 0),
    )
    return Grant(tuple(picked), new)


def _live_line(
    state: BudgetState, policy: BudgetPolicy, now: float, earliest: float, me: str
) -> tuple[tuple[str, float], ...]:
    """The line without the heads that let their turn pass: a head that has been able to
    take (the queue short, the head in line) for ``skip_after`` seconds without taking
    died or went away; the next one goes."""
    s = policy.settings
    short_since = min(state.next_slot, earliest) - s.normal_horizon
    line = state.waiters
    while line and line[0][0] != me and now - max(short_since, line[0][1]) > s.skip_after:
        short_since = max(short_since, line[0][1]) + s.skip_after
        line = line[1:]
    return line


def _wait_in_line(
    state: BudgetState,
    policy: BudgetPolicy,
    now: float,
    *,
    earliest: float,
    latest: float | None,
    me: str,
    line: tuple[tuple[str, float], ...],
) -> Hold:
    """A bulk taker that may not take yet keeps (or takes) its place in line, first come
    first served. The head wakes when the queue of slots is short enough; the others a
    little later, when the head will have taken and one of them is the head."""
    s = policy.settings
    ready = max(now, earliest - s.normal_horizon)
    if latest is not None and ready > latest:
        return Hold(ready, "deadline")  # it would not be served in time: no place taken
    head = not line or line[0][0] == me
    until = ready if head else ready + 2 * policy.spacing
    listed = any(who == me for who, _ in line)
    if not line and ready - now <= s.poll_interval:
        return Hold(until, "ahead")  # nobody waits and it is a short wait: no place needed
    write = None
    if not listed or line != state.waiters:
        write = replace(
            state, version=state.version + 1, waiters=line if listed else (*line, (me, now))
        )
    return Hold(until, "ahead", write)


def give_back(
    state: BudgetState,
    policy: BudgetPolicy,
    slots: Sequence[float],
    now: float,
    *,
    bulk: bool,
    me: str | None = None,
) -> BudgetState | None:
    """The item with unused future ``slots`` returned (uncounted, kept as spare for the next
    taker) and ``me`` out of the line; ``None`` when there is nothing to write."""
    future = [s for s in slots if s > now and s >= state.blocked_until]
    line = tuple(w for w in state.waiters if w[0] != me)
    if len(future) < policy.settings.min_give_back and line == state.waiters:
        return None  # a slot or so is not worth a write
    spare = sorted({*(s for s in state.spare if s > now), *future})[: policy.settings.max_spare]
    back_hour = sum(1 for s in future if math.floor(s / HOUR) == state.hour)
    back_day = sum(1 for s in future if math.floor(s / DAY) == state.day)
    return replace(
        state,
        version=state.version + 1,
        spare=tuple(spare),
        waiters=line,
        hour_used=max(0, state.hour_used - back_hour),
        hour_bulk=max(0, state.hour_bulk - (back_hour if bulk else 0)),
        day_used=max(0, state.day_used - back_day),
        day_bulk=max(0, state.day_bulk - (back_day if bulk else 0)),
    )


def raise_floor(
    state: BudgetState, period: Literal["hour", "day"], used: int, now: float
) -> BudgetState | None:
    """The item counting at least ``used`` requests in the current ``period`` (what a
    vendor's quota header says is gone); ``None`` when it already does. Never lowers."""
    if period == "hour":
        window = math.floor(now / HOUR)
        current = state.hour_used if state.hour == window else 0
        if window < state.hour or current >= used:
            return None
        bulk = state.hour_bulk if state.hour == window else 0
        return replace(
            state, version=state.version + 1, hour=window, hour_used=used, hour_bulk=bulk
        )
    window = math.floor(now / DAY)
    current = state.day_used if state.day == window else 0
    if window < state.day or current >= used:
        return None
    bulk = state.day_bulk if state.day == window else 0
    return replace(state, version=state.version + 1, day=window, day_used=used, day_bulk=bulk)
