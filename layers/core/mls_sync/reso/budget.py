"""One MLS request budget per vendor credential, shared by every worker (issue 21).

Vendors count requests per token (MLS Grid suspends a token that goes over 2/s, 7,200/h or
40,000/day) and several connections, so several workers at once, may use one token. The
budget is one DynamoDB item per credential (``mls_sync.dal.budget``). The logic is split by
job: the policy and the item (``budget_policy``), the planning maths, pure (``budget_plan``:
:func:`plan`, :func:`give_back`, :func:`raise_floor`), the store protocol (``budget_store``),
the job's lane (``budget_work``) and the per-client handle the transport asks before each
request (``budget_limiter``: :class:`SharedBudget`). This module's :class:`BudgetedClient` is
a replication client whose requests take permits; the rest is re-exported. In short:

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

import random
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from mls_sync.reso.auth import Credentials
from mls_sync.reso.budget_limiter import PermitStats, SharedBudget, budget_key
from mls_sync.reso.budget_plan import Grant, Hold, HoldKind, give_back, plan, raise_floor
from mls_sync.reso.budget_policy import DAY, HOUR, BudgetPolicy, BudgetSettings, BudgetState, Lane
from mls_sync.reso.budget_store import BudgetStore, MemoryBudgetStore
from mls_sync.reso.budget_work import PRIORITY_REASONS, WorkClass, current_work, work_for
from mls_sync.reso.client import KeyLookup, ReplicationClient, ReplicationTarget
from mls_sync.reso.errors import DeadlineReached
from mls_sync.reso.profiles import VendorProfile, profile_for

if TYPE_CHECKING:
    from mls_sync.reso.entity_events import EventAnchor

__all__ = [
    "DAY",
    "HOUR",
    "PRIORITY_REASONS",
    "BudgetPolicy",
    "BudgetSettings",
    "BudgetState",
    "BudgetStore",
    "BudgetedClient",
    "Grant",
    "Hold",
    "HoldKind",
    "Lane",
    "MemoryBudgetStore",
    "PermitStats",
    "SharedBudget",
    "SharedBudgets",
    "WorkClass",
    "budget_key",
    "current_work",
    "give_back",
    "plan",
    "raise_floor",
    "work_for",
]


# ----------------------------------------------------------------------------- client

_T = TypeVar("_T")


class BudgetedClient(ReplicationClient):
    """A :class:`ReplicationClient` whose requests take permits from the shared budget (its
    limiter): by-key reads count as bulk (unless the job names its listings); unused permits
    are given back on :meth:`close`."""

    def __init__(
        self,
        target: ReplicationTarget,
        credentials: Credentials,
        *,
        budget: SharedBudget,
        **options: Any,
    ) -> None:
        super().__init__(target, credentials, **{**options, "limiter": budget})
        self.budget = budget

    def fetch_by_keys(self, keys: Sequence[str], *, deadline: float | None = None) -> KeyLookup:
        self.budget.bulk = not current_work().targeted
        try:
            return super().fetch_by_keys(keys, deadline=deadline)
        except DeadlineReached:
            self.budget.keep_place = True  # a continuation follows: it keeps the place
            raise
        finally:
            self.budget.bulk = False

    def supports_entity_events(self, *, deadline: float | None = None) -> bool:
        self.budget.bulk = False
        return self._kept(partial(super().supports_entity_events, deadline=deadline))

    def event_head(self, *, deadline: float | None = None) -> EventAnchor:
        self.budget.bulk = False
        return self._kept(partial(super().event_head, deadline=deadline))

    def _feed(self, pages: Iterator[_T]) -> Iterator[_T]:
        """A feed's pages (changes, the event log) read as everyday work (not bulk, even
        after a by-key read between two pages); a deadline that stops them keeps the place
        in line for the continuation."""
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

    def _kept(self, read: Callable[[], _T]) -> _T:
        try:
            return read()
        except DeadlineReached:
            self.budget.keep_place = True
            raise

    def close(self) -> None:
        try:
            self.budget.release()
        finally:
            super().close()


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
    ) -> ReplicationClient:
        """A client for one connection (``holder``: its id) whose requests take permits."""
        profile = options.get("profile") or profile_for(target.vendor)
        handle = self.limiter(target.vendor, credentials, profile, holder=holder)
        if handle is None:
            return ReplicationClient(target, credentials, **options)
        return BudgetedClient(target, credentials, budget=handle, **options)
