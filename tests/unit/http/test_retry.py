"""Capped full-jitter backoff, deadlines that no pause reaches, and resending only what a
batch API refused."""

from __future__ import annotations

import random

import pytest
from mls_sync.http.retry import Backoff, Deadline, resend_rejected


class Clock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(("base", "cap"), [(0.5, 30.0), (0.2, 2.0), (0.1, 2.0)])
def test_every_pause_is_uniform_below_the_capped_exponential_ceiling(
    base: float, cap: float
) -> None:
    # Given a seeded RNG (the same draws every run)
    rng = random.Random(20261201)
    backoff = Backoff(base=base, cap=cap)
    for attempt in range(16):
        ceiling = min(cap, base * 2**attempt)
        # When many pauses are drawn for one attempt
        pauses = [backoff.delay(attempt, rng.random) for _ in range(400)]
        # Then each lies in [0, min(cap, base * 2^attempt)] ...
        assert all(0.0 <= p <= ceiling for p in pauses)
        # ... spread over the whole range (full jitter), not bunched at the ceiling
        assert min(pauses) < 0.1 * ceiling
        assert max(pauses) > 0.9 * ceiling
    assert backoff.ceiling(16) == cap


def test_the_pause_is_the_draw_times_the_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert backoff.delay(0, lambda: 0.0) == 0.0
    assert backoff.delay(2, lambda: 0.5) == 1.0  # half of 0.5 * 2^2
    assert backoff.delay(9, lambda: 0.999) == pytest.approx(0.999 * 30.0)


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert backoff.ceiling(10_000) == 30.0
    assert backoff.ceiling(-3) == 0.5


def test_a_deadline_never_lets_a_pause_reach_it() -> None:
    clock = Clock(50.0)
    deadline = Deadline(60.0, clock)
    assert deadline.left() == 10.0
    # A pause that leaves time is allowed; one that ends at the deadline or after is not
    assert deadline.allows(9.5)
    assert not deadline.allows(10.0)
    assert not deadline.allows(11.0)
    # With a request's timeout to keep after the pause, the pause must leave all of it
    assert deadline.allows(4.0, then=6.0)
    assert not deadline.allows(4.1, then=6.0)
    clock.t = 61.0
    assert deadline.left() == -1.0
    assert not deadline.allows(0.0)


def test_no_deadline_allows_anything() -> None:
    deadline = Deadline(None, Clock())
    assert deadline.allows(1e9, then=1e9)
    assert deadline.cap(12.0) == 12.0


def test_a_timeout_is_cut_to_what_is_left_but_never_below_the_floor() -> None:
    clock = Clock(0.0)
    deadline = Deadline.after(3.0, clock)
    assert deadline.cap(10.0) == 3.0
    assert deadline.cap(2.0) == 2.0
    clock.t = 5.0
    assert deadline.cap(10.0, floor=0.001) == 0.001


def test_only_the_rejected_items_are_sent_again_with_pauses_between() -> None:
    sent: list[list[str]] = []
    slept: list[float] = []
    refusals = iter([["b", "c"], ["c"], []])

    def send(items: list[str]) -> list[str]:
        sent.append(items)
        return [i for i in next(refusals) if i in items]

    left, calls = resend_rejected(
        send, ["a", "b", "c"], draw=lambda: 1.0, sleep=slept.append, attempts=5
    )
    assert (left, calls) == ([], 3)
    assert sent == [["a", "b", "c"], ["b", "c"], ["c"]]
    assert slept == [0.1, 0.2]  # the ceilings of attempts 0 and 1 (draw = 1.0)


def test_what_is_still_rejected_after_the_last_attempt_is_returned_without_a_last_pause() -> None:
    slept: list[float] = []
    left, calls = resend_rejected(
        lambda items: items, ["x"], draw=lambda: 0.5, sleep=slept.append, attempts=3
    )
    assert (left, calls) == (["x"], 3)
    assert len(slept) == 2
