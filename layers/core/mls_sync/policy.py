"""The transition policy as data: what a status change makes the service do.

The table's rows are the defaults the original product shipped (CONTRACT section 3). Which
target statuses take posts down is configuration (``UnpublishOnStatuses``, default
``sold``), not a row of the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from mls_sync.status import Status, parse_status


class Action(StrEnum):
    UPDATE = "update"
    UNPUBLISH = "unpublish"
    RESTORE = "restore"  # record a restoration (ListingRestored)


@dataclass(frozen=True, slots=True)
class Rule:
    from_status: Status
    to_status: Status
    actions: frozenset[Action]
    note: str = ""


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(Status.ACTIVE, Status.SOLD, frozenset({Action.UPDATE, Action.UNPUBLISH}), "sold"),
    Rule(Status.ACTIVE, Status.PENDING, frozenset({Action.UPDATE}), "went pending"),
    Rule(Status.PENDING, Status.ACTIVE, frozenset({Action.UPDATE, Action.RESTORE}), "restored"),
    Rule(Status.PENDING, Status.SOLD, frozenset({Action.UPDATE, Action.UNPUBLISH}), "sold"),
    Rule(Status.SOLD, Status.ACTIVE, frozenset({Action.UPDATE}), "relisted"),
)

DEFAULT_UNPUBLISH_ON: frozenset[Status] = frozenset({Status.SOLD})


def parse_unpublish_on(value: str | Iterable[str]) -> frozenset[Status]:
    """Reads ``UnpublishOnStatuses`` ("sold,deleted"); an unknown name is an error naming it."""
    names = value.split(",") if isinstance(value, str) else list(value)
    statuses = frozenset(parse_status(n.strip()) for n in names if n.strip())
    if not statuses:
        raise ValueError("UnpublishOnStatuses is empty: name at least one status (e.g. 'sold')")
    return statuses


@dataclass(frozen=True, slots=True)
class TransitionPolicy:
    rules: tuple[Rule, ...] = DEFAULT_RULES
    unpublish_on: frozenset[Status] = DEFAULT_UNPUBLISH_ON
    _index: dict[tuple[Status, Status], frozenset[Action]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[tuple[Status, Status], frozenset[Action]] = {}
        for rule in self.rules:
            key = (rule.from_status, rule.to_status)
            if key in index:
                raise ValueError(f"duplicate transition rule {key[0]} -> {key[1]}")
            index[key] = rule.actions
        object.__setattr__(self, "_index", index)

    def actions(self, from_status: Status | None, to_status: Status) -> frozenset[Action]:
        """What to do when a listing goes from ``from_status`` to ``to_status``.

        No change, no action. A listing seen for the first time (``from_status`` None) is
        recorded but never unpublishes: there was no transition to react to.
        """
        if from_status == to_status:
            return frozenset()
        if from_status is None:
            return frozenset({Action.UPDATE})
        actions = set(self._index.get((from_status, to_status), frozenset({Action.UPDATE})))
        actions.discard(Action.UNPUBLISH)
        if to_status in self.unpublish_on:
            actions.add(Action.UNPUBLISH)
        return frozenset(actions)

    def event_type(self, from_status: Status | None, to_status: Status) -> str:
        """The EventBridge detail-type announcing this change."""
        if to_status is Status.DELETED:
            return "ListingDeleted"
        if Action.RESTORE in self.actions(from_status, to_status):
            return "ListingRestored"
        return "ListingStatusChanged"

    def should_unpublish(self, current_status: Status) -> bool:
        """Whether a post of a listing now in ``current_status`` is still to come down
        (a listing relisted before its unpublish job ran keeps its posts)."""
        return current_status in self.unpublish_on
