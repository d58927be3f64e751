"""The shared budget as one client sees it: the limiter the transport asks before a request.

:class:`SharedBudget` holds the slots it took, takes more when it runs out (a conditional
write of the item, retried on a lost race), waits for its slot, checks the credential is not
blocked just before sending, gives back what it did not use, and raises the window counts to
what the vendor's quota headers say. :func:`budget_key` names a credential's item without the
secret; :class:`PermitStats` counts what permits cost (benchmarks read them).
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from mls_sync.reso.auth import BearerToken, Credentials
from mls_sync.reso.budget_plan import Hold, give_back, plan, raise_floor
from mls_sync.reso.budget_policy import DAY, HOUR, BudgetPolicy, BudgetState
from mls_sync.reso.budget_store import BudgetStore
from mls_sync.reso.budget_work import current_work
from mls_sync.reso.limits import hold_while_exhausted
from mls_sync.reso.profiles import QuotaHeader

_EARLY = 0.001
"""A slot is sent no earlier than this before its time (a clock that reads a hair early)."""


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
    blocked: int = 0
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
        hold_while_exhausted(self, headers, quota_headers, now)
        # Then what is left, where it says less than we counted, raises our count.
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
