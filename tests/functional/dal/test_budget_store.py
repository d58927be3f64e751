"""The shared MLS budget's DynamoDB item (issue 21): exact round trip, conditional writes
that hand the loser the current item, blocks that only lengthen."""

from __future__ import annotations

from mls_sync import aws
from mls_sync.dal.budget import DynamoBudgetStore
from mls_sync.reso.budget import BudgetState

from tests.support.stack import LocalStack

T0 = 1_795_000_000.0
SPACING = 0.5 / 0.95


def _store(stack: LocalStack) -> DynamoBudgetStore:
    table = stack.settings.budgets_table
    assert table is not None
    return DynamoBudgetStore(aws.dynamodb(), table, clock=lambda: T0)


def test_an_item_reads_back_exactly_as_written(stack: LocalStack) -> None:
    store = _store(stack)
    assert store.load("mlsgrid#k") == BudgetState()
    state = BudgetState(
        version=1,
        next_slot=T0 + 7 * SPACING,
        spare=(T0 + SPACING, T0 + 3 * SPACING),
        hour=498_611,
        hour_used=12,
        hour_bulk=8,
        day=20_775,
        day_used=40,
        day_bulk=8,
        blocked_until=T0 + 30.25,
        waiters=(("a1b2c3d4e5f6", T0), ("0f0f0f0f0f0f", T0 + 0.1)),
    )
    assert store.save("mlsgrid#k", state, 0) is None
    assert store.load("mlsgrid#k") == state
    item = aws.dynamodb().get_item(
        TableName=str(stack.settings.budgets_table), Key={"budgetId": {"S": "mlsgrid#k"}}
    )["Item"]
    assert int(item["expiresAt"]["N"]) == int(T0) + 2 * 86_400


def test_a_lost_write_returns_the_item_as_it_is(stack: LocalStack) -> None:
    store = _store(stack)
    first = BudgetState(version=1, next_slot=T0 + 1)
    assert store.save("k", first, 0) is None
    # A second writer that read the empty item loses, and learns what won
    assert store.save("k", BudgetState(version=1, next_slot=T0 + 2), 0) == first
    assert store.stats.conflicts == 1
    assert store.save("k", BudgetState(version=2, next_slot=T0 + 2), 1) is None
    assert store.stats.writes == 3


def test_a_block_only_ever_lengthens_and_bumps_the_version(stack: LocalStack) -> None:
    store = _store(stack)
    store.block("k", T0 + 30)
    store.block("k", T0 + 10)  # a shorter Retry-After does not shorten it
    state = store.load("k")
    assert state.blocked_until == T0 + 30
    assert state.version == 1
    store.block("k", T0 + 60)
    assert store.load("k").version == 2
