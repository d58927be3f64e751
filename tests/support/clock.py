"""A monotonic clock a test moves by hand: tests inject it instead of sleeping."""

from __future__ import annotations


class FakeMonotonic:
    """A monotonic clock the test moves (the simulator's request hook can move it too)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
