"""Which lane the running sync job's MLS requests take from the shared budget.

A context variable carries the job's class (its lane, and whether it names its listings) from
the worker's handler down to the budget handle, which the transport asks before each request,
without threading it through every call: manual and push syncs take the priority lane, every
other job the normal one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

from mls_sync.reso.budget_policy import Lane

PRIORITY_REASONS = frozenset({"manual", "push"})
"""Sync job reasons whose requests go first when the budget is short."""


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


@contextmanager
def named_reads() -> Iterator[None]:
    """By-key reads inside are of keys a change log or a push named (the records that just
    changed): everyday work like reading the feed, not a bulk read of everything tracked."""
    token = _WORK.set(replace(current_work(), targeted=True))
    try:
        yield
    finally:
        _WORK.reset(token)
