"""The shared MLS request budget's logic (issue 21): slots, windows, lanes, batches, blocks,
against an in-memory store and a clock moved by hand."""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from mls_sync.reso.auth import BearerToken, ClientCredentials
from mls_sync.reso.budget import (
    BudgetPolicy,
    BudgetSettings,
    BudgetState,
    Grant,
    Hold,
    MemoryBudgetStore,
    SharedBudget,
    budget_key,
    current_work,
    give_back,
    plan,
    raise_floor,
    work_for,
)
from mls_sync.reso.profiles import PROFILES, Quotas
from pydantic import SecretStr

from tests.support.virtual_time import VirtualTime

T0 = 1_795_000_000.0  # an instant well inside an hour: 2026-11-18T08:26:40Z


def _policy(quotas: Quotas) -> BudgetPolicy:
    policy = BudgetPolicy.for_quotas(quotas, BudgetSettings())
    assert policy is not None
    return policy


MLSGRID = _policy(PROFILES["mlsgrid"].quotas)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def _budget(store: MemoryBudgetStore, clock: Clock, policy: BudgetPolicy = MLSGRID) -> SharedBudget:
    return SharedBudget(
        store, "mlsgrid#k", policy, clock=clock, rng=random.Random(1), timer=lambda: 0.0
    )


def test_mlsgrid_slots_are_spaced_for_two_per_second_with_a_margin() -> None:
    assert MLSGRID.spacing == pytest.approx(0.5 / 0.95)
    # Three requests must span more than a second even when each is sent that late.
    assert 2 * MLSGRID.spacing - MLSGRID.tolerance == pytest.approx(1.0)
    assert (MLSGRID.per_hour, MLSGRID.per_day) == (7200, 40000)
    trestle = _policy(PROFILES["trestle"].quotas)
    assert trestle.spacing == pytest.approx(60 / 180 / 0.95)
    assert BudgetPolicy.for_quotas(Quotas(), BudgetSettings()) is None


def test_a_grant_is_a_run_of_slots_and_moves_the_timeline() -> None:
    # Given an empty item
    # When a taker asks for four slots
    got = plan(BudgetState(), MLSGRID, T0, 4, lane="normal", bulk=False, latest=None)
    # Then it gets four slots from now, spaced, and the item counts them
    assert isinstance(got, Grant)
    assert got.slots == pytest.approx([T0 + i * MLSGRID.spacing for i in range(4)])
    assert got.state.next_slot == pytest.approx(T0 + 4 * MLSGRID.spacing)
    assert (got.state.hour_used, got.state.day_used, got.state.version) == (4, 4, 1)
    # And the next taker queues behind them (a second later: the queue is then short enough)
    again = plan(got.state, MLSGRID, T0 + 1, 2, lane="normal", bulk=False, latest=None)
    assert isinstance(again, Grant)
    assert again.slots[0] == pytest.approx(T0 + 4 * MLSGRID.spacing)


def test_a_grant_stops_at_the_callers_latest() -> None:
    got = plan(BudgetState(), MLSGRID, T0, 16, lane="priority", bulk=False, latest=T0 + 1.2)
    assert isinstance(got, Grant)
    assert len(got.slots) == 3  # T0, +0.53, +1.05
    none = plan(got.state, MLSGRID, T0, 1, lane="priority", bulk=False, latest=T0 + 1.2)
    assert isinstance(none, Hold)
    assert none.kind == "deadline"


def test_everyday_work_waits_behind_a_long_queue_but_a_manual_sync_does_not() -> None:
    # Given slots handed out for the next ten seconds
    state = BudgetState(version=3, next_slot=T0 + 10)
    # When scheduled work asks, it is told to come back when the queue is short
    hold = plan(state, MLSGRID, T0, 1, lane="normal", bulk=False, latest=None)
    assert isinstance(hold, Hold)
    assert hold.kind == "ahead"
    assert hold.until == pytest.approx(T0 + 10 - BudgetSettings().normal_horizon)
    # While a manual sync takes the next slot at once
    got = plan(state, MLSGRID, T0, 1, lane="priority", bulk=False, latest=None)
    assert isinstance(got, Grant)
    assert got.slots == (T0 + 10,)


def test_bulk_reads_stop_at_half_the_hour_and_everyday_work_at_the_reserve() -> None:
    hour = math.floor(T0 / 3600)
    day = math.floor(T0 / 86400)
    state = BudgetState(
        version=1, hour=hour, hour_used=3600, hour_bulk=3600, day=day, day_used=3600
    )
    bulk = plan(state, MLSGRID, T0, 8, lane="normal", bulk=True, latest=None)
    assert isinstance(bulk, Hold)
    assert bulk.kind == "quota"
    assert bulk.until == (hour + 1) * 3600
    everyday = plan(state, MLSGRID, T0, 8, lane="normal", bulk=False, latest=None)
    assert isinstance(everyday, Grant)
    # The last 10 % of the hour is for manual and push syncs
    nearly = BudgetState(version=1, hour=hour, hour_used=6479, day=day, day_used=6479)
    got = plan(nearly, MLSGRID, T0, 8, lane="normal", bulk=False, latest=None)
    assert isinstance(got, Grant)
    assert len(got.slots) == 1
    assert isinstance(plan(got.state, MLSGRID, T0, 1, lane="normal", bulk=False, latest=None), Hold)
    assert isinstance(
        plan(got.state, MLSGRID, T0, 1, lane="priority", bulk=False, latest=None), Grant
    )


def test_the_daily_quota_holds_until_the_next_utc_day() -> None:
    day = math.floor(T0 / 86400)
    state = BudgetState(version=1, day=day, day_used=40_000)
    hold = plan(state, MLSGRID, T0, 1, lane="priority", bulk=False, latest=None)
    assert isinstance(hold, Hold)
    assert hold.until == (day + 1) * 86400


def test_a_new_hour_starts_its_count_again() -> None:
    hour = math.floor(T0 / 3600)
    state = BudgetState(version=1, hour=hour - 1, hour_used=7200, hour_bulk=3600)
    got = plan(state, MLSGRID, T0, 2, lane="normal", bulk=True, latest=None)
    assert isinstance(got, Grant)
    assert (got.state.hour, got.state.hour_used, got.state.hour_bulk) == (hour, 2, 2)


def test_unused_slots_go_back_and_are_taken_first() -> None:
    got = plan(BudgetState(), MLSGRID, T0, 8, lane="normal", bulk=True, latest=None)
    assert isinstance(got, Grant)
    back = give_back(got.state, MLSGRID, got.slots[3:], T0 + 1.0, bulk=True)
    assert back is not None
    assert back.spare == got.slots[3:]
    assert (back.hour_used, back.hour_bulk) == (3, 3)
    again = plan(back, MLSGRID, T0 + 1.0, 2, lane="normal", bulk=False, latest=None)
    assert isinstance(again, Grant)
    assert again.slots == got.slots[3:5]
    assert again.state.next_slot == got.state.next_slot
    # Slots already past are not worth a write
    assert give_back(got.state, MLSGRID, got.slots[:2], T0 + 5, bulk=True) is None


def test_a_block_moves_every_slot_past_it() -> None:
    state = BudgetState(version=1, next_slot=T0 + 1, spare=(T0 + 0.5,), blocked_until=T0 + 30)
    got = plan(state, MLSGRID, T0 + 29, 1, lane="normal", bulk=False, latest=None)
    assert isinstance(got, Grant)
    assert got.slots == (T0 + 30,)
    assert got.state.spare == ()


def test_quota_headers_raise_the_count_never_lower_it() -> None:
    hour = math.floor(T0 / 3600)
    state = BudgetState(version=2, hour=hour, hour_used=10, hour_bulk=4)
    raised = raise_floor(state, "hour", 7000, T0)
    assert raised is not None
    assert (raised.hour_used, raised.hour_bulk, raised.version) == (7000, 4, 3)
    assert raise_floor(raised, "hour", 50, T0) is None


def _window_counts(times: list[float]) -> Counter[int]:
    return Counter(math.floor(t) for t in times)


def test_clients_taking_turns_on_one_token_never_put_three_requests_in_a_second() -> None:
    # Given three clients sharing one token's budget (one thread: each runs a page run of
    # five requests in turn, as fast as it may)
    store, clock = MemoryBudgetStore(), Clock()
    clients = [_budget(store, clock) for _ in range(3)]
    sent: list[float] = []
    # When they take turns for 60 requests
    for turn in range(12):
        budget = clients[turn % 3]
        for _ in range(5):
            assert budget.permit(None, clock.sleep)
            sent.append(clock.now)
        budget.release()
    # Then no second (however aligned) saw more than two, and the pace was ~95 % of 2/s
    assert max(_window_counts(sent).values()) <= 2
    assert max(_window_counts([t + 0.37 for t in sent]).values()) <= 2
    rate = (len(sent) - 1) / (sent[-1] - sent[0])
    assert 1.8 <= rate <= 2.0


def test_a_long_run_costs_under_a_fifth_of_a_write_per_request() -> None:
    store, clock = MemoryBudgetStore(), Clock()
    budget = _budget(store, clock)
    budget.bulk = True
    for _ in range(40):
        assert budget.permit(None, clock.sleep)
    budget.release()
    assert store.writes / 40 <= 0.2
    quiet = _budget(MemoryBudgetStore(), clock)
    assert quiet.permit(None, clock.sleep)
    quiet.release()
    assert isinstance(quiet.store, MemoryBudgetStore)
    assert quiet.store.writes == 1  # a quiet connection: one slot, one write


def test_no_permit_that_does_not_fit_is_taken_or_waited_for() -> None:
    store, clock = MemoryBudgetStore(), Clock()
    store.items["mlsgrid#k"] = BudgetState(version=1, next_slot=T0 + 60)
    budget = _budget(store, clock)
    slept: list[float] = []
    with work_for("manual", targeted=False):
        assert not budget.permit(5.0, slept.append)
    assert slept == []
    assert store.items["mlsgrid#k"].version == 1  # nothing written


def test_a_block_stops_every_holder_until_it_ends() -> None:
    # Given two clients on one token, the second holding slots ahead
    store, clock = MemoryBudgetStore(), Clock()
    a, b = _budget(store, clock), _budget(store, clock)
    assert a.permit(None, clock.sleep)
    b.bulk = True
    assert b.permit(None, clock.sleep)  # b now holds 7 more slots
    # When the vendor answers a 429 with Retry-After: 30 to the first
    blocked_at = clock.now
    a.block_for(30)
    # Then the second's next request waits for the block to end
    assert b.permit(None, clock.sleep)
    assert clock.now >= blocked_at + 30
    assert b.stats.blocked == 1


def test_the_budget_key_hashes_what_the_vendor_counts_never_the_secret() -> None:
    token = BearerToken(token=SecretStr("very-secret-token"))
    key = budget_key("mlsgrid", token)
    assert key.startswith("mlsgrid#")
    assert "very-secret-token" not in key
    assert key == budget_key("mlsgrid", BearerToken(token=SecretStr("very-secret-token")))
    creds = ClientCredentials(
        client_id="id-1", client_secret=SecretStr("s3cret"), token_url="https://x/token"
    )
    rotated = creds.model_copy(update={"client_secret": SecretStr("rotated")})
    assert budget_key("trestle", creds) == budget_key("trestle", rotated)  # counted per client


def test_manual_and_push_jobs_are_the_priority_lane() -> None:
    assert current_work().lane == "normal"
    with work_for("push", targeted=True) as work:
        assert (work.lane, work.targeted) == ("priority", True)
        assert current_work() is work
    with work_for("schedule", targeted=False):
        assert current_work().lane == "normal"
    assert current_work().lane == "normal"


def test_bulk_takers_wait_in_line_and_take_turns() -> None:
    # Given slots handed out for the next ten seconds
    state = BudgetState(version=1, next_slot=T0 + 10)
    # When two bulk takers ask, one after the other, each takes a place in line (a write)
    a = plan(state, MLSGRID, T0, 8, lane="normal", bulk=True, latest=None, me="a")
    assert isinstance(a, Hold)
    assert a.state is not None
    assert a.state.waiters == (("a", T0),)
    b = plan(a.state, MLSGRID, T0 + 0.1, 8, lane="normal", bulk=True, latest=None, me="b")
    assert isinstance(b, Hold)
    assert b.state is not None
    line = b.state
    assert [who for who, _ in line.waiters] == ["a", "b"]
    assert a.until == pytest.approx(T0 + 8)  # the head wakes when the queue is short
    assert b.until > a.until  # the next one a little later
    # Then, the queue short, the second may not take before the head
    later = T0 + 8.2
    assert isinstance(
        plan(line, MLSGRID, later, 8, lane="normal", bulk=True, latest=None, me="b"), Hold
    )
    got = plan(line, MLSGRID, later, 8, lane="normal", bulk=True, latest=None, me="a")
    assert isinstance(got, Grant)
    # And the head, with others still waiting, goes back to the end of the line
    assert [who for who, _ in got.state.waiters] == ["b", "a"]
    # While everyday work does not queue: it takes when the queue is short enough for it
    everyday = plan(line, MLSGRID, T0 + 7.5, 1, lane="normal", bulk=False, latest=None, me="c")
    assert isinstance(everyday, Grant)


def test_a_head_that_lets_its_turn_pass_is_passed_over() -> None:
    line = BudgetState(version=3, next_slot=T0 + 10, waiters=(("dead", T0), ("b", T0 + 1)))
    # Able to take from T0 + 8 (the queue short), the head has not come by T0 + 11
    got = plan(line, MLSGRID, T0 + 11.5, 4, lane="normal", bulk=True, latest=None, me="b")
    assert isinstance(got, Grant)
    assert got.state.waiters == ()
    # But within its grace it keeps its turn
    assert isinstance(
        plan(line, MLSGRID, T0 + 9, 4, lane="normal", bulk=True, latest=None, me="b"), Hold
    )


def test_giving_back_leaves_the_line() -> None:
    state = BudgetState(version=2, waiters=(("a", T0), ("b", T0)))
    left = give_back(state, MLSGRID, [], T0, bulk=True, me="a")
    assert left is not None
    assert left.waiters == (("b", T0),)
    assert give_back(left, MLSGRID, [], T0, bulk=True, me="a") is None


def test_eight_bulk_workers_share_a_token_fairly() -> None:
    # Given eight workers, each with 24 by-key requests to make and 40 s an invocation
    clock = VirtualTime(datetime.fromtimestamp(T0, tz=UTC))
    store = MemoryBudgetStore()
    first: dict[int, int] = {}
    sent: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        left = 24
        try:
            while left:
                budget = SharedBudget(
                    store,
                    "mlsgrid#k",
                    MLSGRID,
                    clock=clock.time,
                    rng=random.Random(index),
                    timer=lambda: 0.0,
                    holder=f"c-{index}",
                )
                budget.bulk = True
                started, got = clock.time(), 0
                while left and budget.permit(started + 40 - clock.time(), clock.sleep):
                    with lock:
                        sent.append(clock.time())
                    got, left = got + 1, left - 1
                budget.keep_place = bool(left)
                budget.release()
                first.setdefault(index, got)
        finally:
            clock.leave()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    clock.join(len(threads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then everyone was served in its first invocation, none had it all, the token was busy
    assert len(sent) == 8 * 24
    assert min(first.values()) >= 4
    assert max(first.values()) < 24
    assert max(_window_counts(sent).values()) <= 2
    assert (len(sent) - 1) / (max(sent) - min(sent)) >= 1.8
    assert store.writes / len(sent) <= 0.25  # 24 requests a worker: short runs cost more
