"""The transition policy is data: each row of the contract's table, the "any other" default,
no change and first sight, and which statuses unpublish as configuration."""

from __future__ import annotations

import itertools

import pytest
from mls_sync.policy import (
    DEFAULT_RULES,
    Action,
    Rule,
    TransitionPolicy,
    parse_unpublish_on,
)
from mls_sync.status import Status, UnknownStatusError

U, P, R = Action.UPDATE, Action.UNPUBLISH, Action.RESTORE

# CONTRACT section 3, row by row.
ROWS = [
    (Status.ACTIVE, Status.SOLD, {U, P}),
    (Status.ACTIVE, Status.PENDING, {U}),
    (Status.PENDING, Status.ACTIVE, {U, R}),
    (Status.PENDING, Status.SOLD, {U, P}),
    (Status.SOLD, Status.ACTIVE, {U}),
]


@pytest.mark.parametrize(("old", "new", "actions"), ROWS)
def test_every_row_of_the_table(old: Status, new: Status, actions: set[Action]) -> None:
    assert TransitionPolicy().actions(old, new) == frozenset(actions)


def test_the_default_rules_are_exactly_the_table() -> None:
    assert {(r.from_status, r.to_status, r.actions) for r in DEFAULT_RULES} == {
        (o, n, frozenset(a)) for o, n, a in ROWS
    }


def test_any_other_transition_is_an_update_only_unless_its_target_unpublishes() -> None:
    policy = TransitionPolicy()
    listed = {(o, n) for o, n, _ in ROWS}
    for old, new in itertools.permutations(Status, 2):
        if (old, new) in listed:
            continue
        expected = {U, P} if new is Status.SOLD else {U}
        assert policy.actions(old, new) == frozenset(expected), (old, new)


@pytest.mark.parametrize("status", list(Status))
def test_no_change_means_no_action(status: Status) -> None:
    assert TransitionPolicy().actions(status, status) == frozenset()


@pytest.mark.parametrize("status", list(Status))
def test_a_listing_seen_for_the_first_time_is_recorded_but_never_unpublishes(
    status: Status,
) -> None:
    assert TransitionPolicy().actions(None, status) == frozenset({U})


def test_unpublish_on_is_configuration() -> None:
    # Given UnpublishOnStatuses = sold,deleted
    policy = TransitionPolicy(unpublish_on=parse_unpublish_on("sold, deleted"))
    # Then a listing going to deleted unpublishes too, and sold still does
    assert policy.actions(Status.ACTIVE, Status.DELETED) == frozenset({U, P})
    assert policy.actions(Status.PENDING, Status.SOLD) == frozenset({U, P})
    assert policy.actions(Status.ACTIVE, Status.PENDING) == frozenset({U})
    assert policy.should_unpublish(Status.DELETED)
    assert not policy.should_unpublish(Status.ACTIVE)


def test_a_table_row_does_not_unpublish_when_its_target_is_not_configured() -> None:
    # Given UnpublishOnStatuses = withdrawn: the table's sold rows stop unpublishing
    policy = TransitionPolicy(unpublish_on=parse_unpublish_on("withdrawn"))
    assert policy.actions(Status.ACTIVE, Status.SOLD) == frozenset({U})
    assert policy.actions(Status.ACTIVE, Status.WITHDRAWN) == frozenset({U, P})
    assert policy.actions(Status.PENDING, Status.ACTIVE) == frozenset({U, R})


def test_parse_unpublish_on() -> None:
    assert parse_unpublish_on("sold") == frozenset({Status.SOLD})
    assert parse_unpublish_on("sold,deleted") == frozenset({Status.SOLD, Status.DELETED})
    assert parse_unpublish_on(["sold", " expired "]) == frozenset({Status.SOLD, Status.EXPIRED})


@pytest.mark.parametrize(
    ("value", "bad"), [("sould", "sould"), ("sold,Closed", "Closed"), ("sold,,bogus", "bogus")]
)
def test_invalid_unpublish_on_names_the_bad_status(value: str, bad: str) -> None:
    with pytest.raises(UnknownStatusError) as caught:
        parse_unpublish_on(value)
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize("value", ["", " , "])
def test_empty_unpublish_on_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_unpublish_on(value)


def test_duplicate_rules_are_rejected() -> None:
    rule = Rule(Status.ACTIVE, Status.SOLD, frozenset({U}))
    with pytest.raises(ValueError, match="duplicate"):
        TransitionPolicy(rules=(rule, rule))


@pytest.mark.parametrize(
    ("old", "new", "event"),
    [
        (Status.ACTIVE, Status.SOLD, "ListingStatusChanged"),
        (Status.ACTIVE, Status.PENDING, "ListingStatusChanged"),
        (Status.PENDING, Status.ACTIVE, "ListingRestored"),
        (Status.SOLD, Status.ACTIVE, "ListingStatusChanged"),
        (Status.ACTIVE, Status.DELETED, "ListingDeleted"),
        (None, Status.DELETED, "ListingDeleted"),
        (None, Status.ACTIVE, "ListingStatusChanged"),
    ],
)
def test_event_type(old: Status | None, new: Status, event: str) -> None:
    assert TransitionPolicy().event_type(old, new) == event
