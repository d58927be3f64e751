"""One MLS request budget per vendor credential, shared by every worker (issue 21).

Vendors count requests per token (MLS Grid suspends a token that goes over 2/s, 7,200/h or
40,000/day) and several connections, so several workers at once, may use one token. The
budget is one DynamoDB item per credential (``mls_sync.dal.budget``); this module is the
logic, pure where it can be (:func:`plan`, :func:`give_back`, :func:`raise_floor`), and the
per-client handle the transport asks before each request (:class:`SharedBudget`). In short:

- **Slots.** Requests go out on slots of one timeline per credential, ``spacing`` apart: the
  tightest of the per-second and per-minute quotas (per hour or day when there is no
  shorter one) less a safety margin (5 %), so no window of the vendor's, however aligned
  with ours, sees more than its quota. A slot sent later than ``tolerance`` is forfeited
  (a late request could crowd the next holder's).
- **Counted windows.** UTC hour and day counters in the same item cap the hourly and daily
  quotas: scheduled work may use 90 % of them, a manual or push sync all of it, and by-key
  reads (first sync, reconciliation) at most ``bulk_share`` (50 %) of each, so everyday
  syncs are never starved by a bulk read.
- **Batches.** A worker takes several slots in one conditional write (first 1 for
  everyday work, 8 for by-key reads, then growing to 16), so a long page run costs well
  under one DynamoDB write per MLS request; slots it does not use go back to a ``spare``
  list that the next taker uses first.
- **Lanes.** A manual or push sync takes the next free slot whatever the queue; everyday
  work takes slots at most ``everyday_horizon`` (3 s) ahead, by-key reads at most
  ``normal_horizon`` (2 s): so when the budget is short manual and push go first, then
  everyday work, then bulk. Bulk takers that must wait stand in a first-come line in the
  item (named by their connection, so a continuation keeps its place); only its head
  takes, and a head that lets its turn pass is skipped.
- **Blocks.** A 429 with ``Retry-After`` (or an exhausted quota header) sets
  ``blockedUntil`` for the credential; every holder reads the item just before sending
  after a wait, so no worker on that token sends until then. Quota headers that say less is
  left than we counted raise our count (never lower it).
- **Deadline.** A permit never waits past what the caller can afford; then the transport
  raises ``DeadlineReached`` and the worker hands the rest of the run to a continuation.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from mls_sync.models import Cursor
from mls_sync.reso.auth import BearerToken, Credentials
from mls_sync.reso.client import ChangePage, KeyLookup, ReplicationClient, ReplicationTarget
from mls_sync.reso.errors import DeadlineReached
from mls_sync.reso.limits import quota_wait
from mls_sync.reso.profiles import QuotaHeader, Quotas, VendorProfile, profile_for

Lane = Literal["priority", "normal"]
PRIORITY_REASONS = frozenset({"manual", "push"})
"""Sync job reasons whose requests go first when the budget is short."""

HOUR = 3600
DAY = 86_400
_EARLY = 0.001
"""A slot is sent no earlier than this before its time (a clock that reads a hair early)."""

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


# ------------------------------------------------------------------------------ store


class BudgetStore(Protocol):
    """Where the items live: DynamoDB (``mls_sync.dal.budget.DynamoBudgetStore``) or memory."""

    def load(self, key: str) -> BudgetState:
        """The item, read strongly consistently (an empty state when there is none)."""
        ...

    def save(self, key: str, state: BudgetState, expected_version: int) -> BudgetState | None:
        """Writes ``state`` if the item is still at ``expected_version``: ``None``; else the
        item as it now is (nothing written)."""
        ...

    def block(self, key: str, until: float) -> None:
        """Raises ``blockedUntil`` to ``until`` (never lowers it) and bumps the version."""
        ...


class MemoryBudgetStore:
    """A store in this process's memory (unit tests, and a model of the DynamoDB one)."""

    def __init__(self) -> None:
        self.items: dict[str, BudgetState] = {}
        self.reads = 0
        self.writes = 0
        self._lock = threading.Lock()

    def load(self, key: str) -> BudgetState:
        with self._lock:
            self.reads += 1
            return self.items.get(key, BudgetState())

    def save(self, key: str, state: BudgetState, expected_version: int) -> BudgetState | None:
        with self._lock:
            self.writes += 1
            current = self.items.get(key, BudgetState())
            if current.version != expected_version:
                return current
            self.items[key] = state
            return None

    def block(self, key: str, until: float) -> None:
        with self._lock:
            self.writes += 1
            current = self.items.get(key, BudgetState())
            if until > current.blocked_until:
                self.items[key] = replace(current, version=current.version + 1, blocked_until=until)


# ------------------------------------------------------------------------- work class


@dataclass(frozen=True)
class WorkClass:
    """What the running sync job is, as far as the budget cares."""

    lane: Lane = "normal"
    targeted: bool = False
    """The job names its listings (push, a manual listing sync): its by-key reads are not
    bulk reads."""


_WORK: ContextVar[WorkClass | None] = ContextVar("mls_sync_budget_work", default=None)
_EVERYDAY = WorkClass()


@contextmanager
def work_for(reason: str, *, targeted: bool) -> Iterator[WorkClass]:
    """Marks the MLS requests made inside as those of a sync job of ``reason``: manual and
    push syncs go first when the budget is short."""
    lane: Lane = "priority" if reason in PRIORITY_REASONS else "normal"
    work = WorkClass(lane=lane, targeted=targeted)
    token = _WORK.set(work)
    try:
        yield work
    finally:
        _WORK.reset(token)


def current_work() -> WorkClass:
    """The running job's class (everyday work outside :func:`work_for`)."""
    return _WORK.get() or _EVERYDAY


# ----------------------------------------------------------------------------- handle


def budget_key(vendor: str, credentials: Credentials) -> str:
    """The item's key: the vendor and a hash of what the vendor counts against (the token,
    or the client id at its token endpoint). Never the secret itself."""
    if isinstance(credentials, BearerToken):
        parts: tuple[str, ...] = ("bearer", credentials.token.get_secret_value())
    else:
        parts = ("client", credentials.token_url, credentials.client_id)
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"{vendor}#{digest}"


@dataclass
class PermitStats:
    permits: int = 0
    takes: int = 0
    holds: int = 0
    forfeited: int = 0
    blocked: int = 0
    released: int = 0
    overhead_seconds: list[float] = field(default_factory=list)
    """Real time each permit spent in store calls, waiting in line included."""
    added_seconds: list[float] = field(default_factory=list)
    """Real time each permit spent in store calls after its last wait: what it adds to the
    request beyond the pacing (a take when no slot was held, the check before sending)."""


class SharedBudget:
    """The budget as one client sees it (a :class:`~mls_sync.reso.limits.Limiter`): holds
    the slots it took, takes more when it runs out, gives back what it did not use."""

    def __init__(
        self,
        store: BudgetStore,
        key: str,
        policy: BudgetPolicy,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        timer: Callable[[], float] = time.perf_counter,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.timer = timer
        self.bulk = False
        """Set by :class:`BudgetedClient` around by-key reads."""
        self.me = (
            hashlib.sha256(holder.encode()).hexdigest()[:12]
            if holder
            else f"{self.rng.getrandbits(48):012x}"
        )
        """This client's name in the line of waiters: from ``holder`` (the connection), so a
        continuation of the same connection keeps the place its predecessor held."""
        self.keep_place = False
        """Set when the run stopped for want of time: its continuation will come back."""
        self.stats = PermitStats()
        self._listed = False
        self._held: list[float] = []
        self._held_bulk = False
        self._batch: int | None = None
        self._state: BudgetState | None = None
        self._checked_at = -math.inf
        self._spent = 0.0
        self._since_sleep = 0.0

    @property
    def last_seen(self) -> BudgetState | None:
        """The item as this client last read or wrote it (no call): how much of the quota
        its worker saw spent."""
        return self._state

    # -- the Limiter protocol

    def permit(self, max_wait: float | None, sleep: Callable[[float], None]) -> bool:
        self._spent = self._since_sleep = 0.0
        latest = None if max_wait is None else self.clock() + max_wait
        tolerance, poll = self.policy.tolerance, self.policy.settings.poll_interval
        for _ in range(10_000):
            now = self.clock()
            self._held = [s for s in self._held if s >= now - tolerance]
            if not self._held:
                hold = self._take(now, latest)
                if hold is not None:
                    self.stats.holds += 1
                    until = hold.until
                    if hold.kind == "ahead" and (latest is None or now < latest):
                        # In line: look again now and then (slots given back by a worker
                        # that finished go to whoever looks first), at the latest when this
                        # caller's time is up.
                        # A little jitter: waiters woken by one state do not all write at once.
                        until += self.rng.uniform(0, self.policy.spacing / 4)
                        poll_at = now + poll * self.rng.uniform(0.8, 1.0)
                        until = min(until, poll_at, math.inf if latest is None else latest)
                    elif latest is not None and until >= latest:
                        # Its place in line (if any) stays for the continuation; close()
                        # gives it up when none follows.
                        self._done()
                        return False
                    sleep(max(0.0, until - now))
                    self._since_sleep = 0.0
                    continue
            slot = self._held[0]
            if latest is not None and slot > latest:
                self._done()
                return False
            if slot > now + _EARLY:
                sleep(slot - now)
                self._since_sleep = 0.0
                continue
            if not self._clear_to_send(now):
                continue
            if now - slot > tolerance:
                self._held.pop(0)
                self.stats.forfeited += 1
                continue
            self._held.pop(0)
            self.stats.permits += 1
            self._done()
            return True
        self._done()
        return False

    def block_for(self, seconds: float) -> None:
        until = self.clock() + seconds
        self._call(self.store.block, self.key, until)
        self._held = [s for s in self._held if s >= until]
        if self._state is not None and self._state.blocked_until < until:
            self._state = replace(self._state, blocked_until=until)

    def note_headers(
        self, headers: Mapping[str, str], quota_headers: tuple[QuotaHeader, ...], now: datetime
    ) -> None:
        hold = quota_wait(headers, quota_headers, now)
        if hold:
            self.block_for(hold)
        for qh in quota_headers:
            limit = {"hour": self.policy.per_hour, "day": self.policy.per_day}.get(qh.period or "")
            value = headers.get(qh.remaining)
            if limit is None or value is None or qh.period not in ("hour", "day"):
                continue
            try:
                remaining = math.floor(float(value))
            except (ValueError, OverflowError):
                continue
            used = limit - max(0, remaining)
            if used > 0 and self._needs_floor(qh.period, used):
                self._raise_floor(qh.period, used)

    # -- end of the client

    def release(self) -> None:
        """Gives the unused slots back and leaves the line (one write, only when there is
        anything to give back or a place to leave)."""
        slots, self._held = self._held, []
        leave = self._listed and not self.keep_place
        if not slots and not leave:
            return
        self._listed = False
        for _ in range(self.policy.settings.max_conflicts):
            now = self.clock()
            state = self._call(self.store.load, self.key)
            who = self.me if leave else None
            new = give_back(state, self.policy, slots, now, bulk=self._held_bulk, me=who)
            if new is None:
                return
            if self._call(self.store.save, self.key, new, state.version) is None:
                self.stats.released += sum(1 for s in slots if s > now)
                self._state = new
                return

    # -- internals

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        started = self.timer()
        try:
            return method(*args)
        finally:
            spent = self.timer() - started
            self._spent += spent
            self._since_sleep += spent

    def _done(self) -> None:
        self.stats.overhead_seconds.append(self._spent)
        self.stats.added_seconds.append(self._since_sleep)

    def _take(self, now: float, latest: float | None) -> Hold | None:
        work = current_work()
        bulk = self.bulk
        settings = self.policy.settings
        if self._batch is None:
            self._batch = settings.bulk_batch if bulk else settings.first_batch
        elif bulk:
            self._batch = max(self._batch, settings.bulk_batch)  # a by-key phase begins
        state = self._call(self.store.load, self.key)
        for _ in range(settings.max_conflicts):
            decision = plan(
                state,
                self.policy,
                now,
                self._batch,
                lane=work.lane,
                bulk=bulk,
                latest=latest,
                me=self.me,
            )
            if isinstance(decision, Hold):
                if decision.state is None:
                    self._state, self._checked_at = state, now
                    return decision
                current = self._call(self.store.save, self.key, decision.state, state.version)
                if current is None:  # in line now (or still)
                    self._state, self._checked_at, self._listed = decision.state, now, True
                    return replace(decision, state=None)
                state, now = current, self.clock()
                continue
            current = self._call(self.store.save, self.key, decision.state, state.version)
            if current is None:
                self._listed = any(who == self.me for who, _ in decision.state.waiters)
                self.stats.takes += 1
                self._state, self._checked_at = decision.state, now
                self._held, self._held_bulk = list(decision.slots), bulk
                self._batch = min(settings.max_batch, self._batch * 4)
                return None
            state = current
            now = self.clock()
        return Hold(now + self.policy.spacing, "contention")

    def _clear_to_send(self, now: float) -> bool:
        if now - self._checked_at <= self.policy.settings.verify_grace:
            return True
        state = self._call(self.store.load, self.key)
        self._state, self._checked_at = state, now
        if state.blocked_until > now:
            self.stats.blocked += 1
            self._held = [s for s in self._held if s >= state.blocked_until]
            return False
        return True

    def _needs_floor(self, period: str, used: int) -> bool:
        state = self._state
        if state is None:
            return True
        now = self.clock()
        if period == "hour":
            return state.hour != math.floor(now / HOUR) or state.hour_used < used
        return state.day != math.floor(now / DAY) or state.day_used < used

    def _raise_floor(self, period: Literal["hour", "day"], used: int) -> None:
        for _ in range(self.policy.settings.max_conflicts):
            state = self._call(self.store.load, self.key)
            new = raise_floor(state, period, used, self.clock())
            if new is None:
                self._state = state
                return
            if self._call(self.store.save, self.key, new, state.version) is None:
                self._state = new
                return


# ----------------------------------------------------------------------------- client


class BudgetedClient:
    """A :class:`ReplicationClient` whose requests take permits from the shared budget:
    by-key reads count as bulk (unless the job names its listings); unused permits are
    given back on :meth:`close`. Everything else is the client's."""

    def __init__(self, inner: ReplicationClient, budget: SharedBudget) -> None:
        self.inner = inner
        self.budget = budget

    @property
    def requests_made(self) -> int:
        return self.inner.requests_made

    @property
    def lookup_field(self) -> str:
        return self.inner.lookup_field

    def server_now(self) -> datetime:
        return self.inner.server_now()

    def changes(
        self,
        cursor: Cursor | None,
        *,
        overlap_seconds: float | None = None,
        deadline: float | None = None,
    ) -> Iterator[ChangePage]:
        pages = self.inner.changes(cursor, overlap_seconds=overlap_seconds, deadline=deadline)
        while True:
            self.budget.bulk = False
            try:
                page = next(pages)
            except StopIteration:
                return
            except DeadlineReached:
                self.budget.keep_place = True
                raise
            yield page

    def fetch_by_keys(self, keys: Sequence[str], *, deadline: float | None = None) -> KeyLookup:
        self.budget.bulk = not current_work().targeted
        try:
            return self.inner.fetch_by_keys(keys, deadline=deadline)
        except DeadlineReached:
            self.budget.keep_place = True  # a continuation follows: it keeps the place
            raise
        finally:
            self.budget.bulk = False

    def close(self) -> None:
        try:
            self.budget.release()
        finally:
            self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SharedBudgets:
    """The process's door to the shared budgets: builds budgeted clients."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        settings: BudgetSettings | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        keep_handles: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings or BudgetSettings()
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.keep_handles = keep_handles
        self.handles: list[SharedBudget] = []
        """With ``keep_handles``, every handle made (benchmarks and tests read their stats)."""

    def limiter(
        self,
        vendor: str,
        credentials: Credentials,
        profile: VendorProfile,
        *,
        holder: str | None = None,
    ) -> SharedBudget | None:
        policy = BudgetPolicy.for_quotas(profile.quotas, self.settings)
        if policy is None:
            return None
        handle = SharedBudget(
            self.store,
            budget_key(vendor, credentials),
            policy,
            clock=self.clock,
            rng=random.Random(self.rng.random()),  # noqa: S311 - jitter, not security
            holder=holder,
        )
        if self.keep_handles:
            self.handles.append(handle)
        return handle

    def client(
        self,
        target: ReplicationTarget,
        credentials: Credentials,
        *,
        holder: str | None = None,
        **options: Any,
    ) -> ReplicationClient | BudgetedClient:
        """A client for one connection (``holder``: its id) whose requests take permits."""
        profile = options.get("profile") or profile_for(target.vendor)
        handle = self.limiter(target.vendor, credentials, profile, holder=holder)
        if handle is None:
            return ReplicationClient(target, credentials, **options)
        inner = ReplicationClient(target, credentials, **{**options, "limiter": handle})
        return BudgetedClient(inner, handle)
