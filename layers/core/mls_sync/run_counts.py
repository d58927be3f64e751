"""What one sync run counted: one declared field per count, so a misspelt count is a type
error rather than a new metric nobody reads.

Stored on the SyncRuns item as ``counts``, in the shape history has always had: the camelCase
name of each count that is not zero, plus one ``"<from>><to>"`` key per status transition
(``{"recordsRead": 41, "statusChanges": 2, "active>sold": 2}``). Items written before and
after read the same, and a key this code does not know (an older or newer count) is skipped,
never an error: a run's history must stay readable across deploys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mls_sync.status import Status

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

Transition = tuple[Status | None, Status]
"""A status change, from (None: a listing that had none) and to."""

_ARROW = ">"
_NO_STATUS = "None"  # how a transition from no status has always been spelt


@dataclass(slots=True, repr=False)
class RunCounts:
    # Outcomes of listings (a run is "partial" when ``failed`` is not zero).
    failed: int = 0
    effects_pending: int = 0
    quarantined: int = 0
    quarantine_cleared: int = 0
    # Records read and what applying them did.
    pages: int = 0
    records_read: int = 0
    read_by_key: int = 0
    skipped: int = 0
    future_stamped: int = 0
    degraded: int = 0
    untracked: int = 0
    unchanged: int = 0
    updated: int = 0
    status_changes: int = 0
    excluded: int = 0
    vanished: int = 0
    deletion_refused: int = 0
    batches_retried: int = 0
    lookup_mismatch: int = 0
    implausible_answers: int = 0
    # By-key phases (first sync, reconciliation) and the listings they cover.
    tracked: int = 0
    first_sync: int = 0
    reconciled: int = 0
    phase_resumed: int = 0
    phase_completed: int = 0
    keys_repaired: int = 0
    newly_tracked: int = 0
    not_reconcilable: int = 0
    not_tracked: int = 0
    # Detection: the EntityEvent log and pushes.
    detection_reset: int = 0
    detection_probed: int = 0
    event_log_broken: int = 0
    event_pages: int = 0
    events_skipped: int = 0
    events_tracked: int = 0
    anchored: int = 0
    pushed_keys: int = 0
    push_requeued: int = 0
    # The outbox: events published and takedowns sent or held.
    events: int = 0
    events_failed: int = 0
    effects_resumed: int = 0
    unpublish_jobs: int = 0
    takedowns_held: int = 0
    mass_change_held: int = 0
    continuations: int = 0
    transitions: Counter[Transition] = field(default_factory=Counter)
    """Status changes by (from, to); their total is ``status_changes``."""

    def status_changed(self, from_status: Status | None, to_status: Status) -> None:
        """One status change written: counted in total and by its transition."""
        self.status_changes += 1
        self.transitions[(from_status, to_status)] += 1

    def __repr__(self) -> str:  # the counts that are not zero: what a log or test reads
        return f"RunCounts({self.to_stored()})"

    def __iadd__(self, other: RunCounts) -> RunCounts:
        """Adds another run's counts (the CLI totals the runs of one command)."""
        for attr in _STORED:
            setattr(self, attr, getattr(self, attr) + getattr(other, attr))
        self.transitions.update(other.transitions)
        return self

    def named_transitions(self) -> dict[str, int]:
        """The transitions that happened, as history spells them: ``{"active>sold": 2}``."""
        return {
            f"{from_status or _NO_STATUS}{_ARROW}{to_status}": value
            for (from_status, to_status), value in self.transitions.items()
            if value
        }

    def to_stored(self) -> dict[str, int]:
        """The SyncRuns item's ``counts``: non-zero counts by camelCase name, and
        transitions as ``"active>sold"``."""
        stored = {name: value for attr, name in _STORED.items() if (value := getattr(self, attr))}
        return stored | self.named_transitions()

    @classmethod
    def from_stored(cls, stored: object) -> RunCounts:
        """Reads a SyncRuns item's ``counts`` (numbers may come back from DynamoDB as
        Decimal). Keys it does not know are skipped; a known count that is not a whole
        number is an error (ValueError)."""
        if isinstance(stored, RunCounts):
            return stored
        if not isinstance(stored, Mapping):
            # ValueError, not TypeError: pydantic turns only the former into a ValidationError
            raise ValueError(f"counts must be a mapping, not {type(stored).__name__}")  # noqa: TRY004
        counts = cls()
        for key, value in stored.items():
            attr = _ATTRS.get(key)
            if attr is not None:
                setattr(counts, attr, _whole(key, value))
            elif isinstance(key, str) and (transition := _transition(key)) is not None:
                counts.transitions[transition] += _whole(key, value)
        return counts

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        # A model field of this type reads and writes the stored shape (SyncRun.counts).
        from pydantic_core import core_schema  # noqa: PLC0415 - only when a model is built

        return core_schema.no_info_plain_validator_function(
            cls.from_stored,
            serialization=core_schema.plain_serializer_function_ser_schema(cls.to_stored),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The stored shape (docs/schema/items.schema.json): names to whole numbers.
        return {"type": "object", "additionalProperties": {"type": "integer"}}


def _camel(snake: str) -> str:
    first, *rest = snake.split("_")
    return first + "".join(part.capitalize() for part in rest)


_STORED: dict[str, str] = {
    f.name: _camel(f.name) for f in fields(RunCounts) if f.name != "transitions"
}
"""Attribute name to stored name, in declaration order."""
_ATTRS: dict[str, str] = {stored: attr for attr, stored in _STORED.items()}


def _whole(key: object, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"count {key!r} is not a number")  # noqa: TRY004 - as above
    number = int(value)
    if number != value:
        raise ValueError(f"count {key!r} is not a whole number")
    return number


def _transition(key: str) -> Transition | None:
    """``"active>sold"`` as a transition; None for a key that is not one we know."""
    from_text, arrow, to_text = key.partition(_ARROW)
    if not arrow:
        return None
    try:
        to_status = Status(to_text)
        from_status = None if from_text == _NO_STATUS else Status(from_text)
    except ValueError:
        return None
    return (from_status, to_status)
