"""The receiver keeps a granting access answer a short while, and nothing else."""

from __future__ import annotations

from mls_sync.dal.push_access import PushAccess
from mls_sync.push.access_cache import CachedAccess

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/push/c-1"


class Source:
    """The Connections table as the receiver reads it, counting reads."""

    def __init__(self) -> None:
        self.rows: dict[str, PushAccess] = {}
        self.reads = 0

    def get(self, connection_id: str) -> PushAccess | None:
        self.reads += 1
        return self.rows.get(connection_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_granting_answer_is_read_once_while_fresh_then_read_again() -> None:
    source, clock = Source(), Clock()
    source.rows["c-1"] = PushAccess(enabled=True, push_secret_arn=ARN)
    cache = CachedAccess(source, max_age=30, monotonic=clock)
    for _ in range(50):  # a flood within the age: one read
        assert cache.get("c-1") == PushAccess(enabled=True, push_secret_arn=ARN)
    assert source.reads == 1
    # When the connection is disabled, the change shows once the answer is older than 30 s
    source.rows["c-1"] = PushAccess(enabled=False, push_secret_arn=ARN)
    clock.now += 29.9
    assert cache.get("c-1").enabled is True  # type: ignore[union-attr]
    clock.now += 0.1
    assert cache.get("c-1") == PushAccess(enabled=False, push_secret_arn=ARN)
    assert source.reads == 2


def test_unknown_connections_and_unset_tokens_are_read_every_time() -> None:
    source, clock = Source(), Clock()
    source.rows["c-2"] = PushAccess(enabled=True, push_secret_arn=None)
    cache = CachedAccess(source, max_age=30, monotonic=clock)
    assert cache.get("c-nobody") is None
    assert cache.get("c-nobody") is None
    assert cache.get("c-2") == PushAccess(enabled=True, push_secret_arn=None)
    # A token set now works on the very next push (set-token), no age to wait out
    source.rows["c-2"] = PushAccess(enabled=True, push_secret_arn=ARN)
    assert cache.get("c-2") == PushAccess(enabled=True, push_secret_arn=ARN)
    assert source.reads == 4


def test_a_connection_removed_is_forgotten_when_next_read() -> None:
    source, clock = Source(), Clock()
    source.rows["c-1"] = PushAccess(enabled=True, push_secret_arn=ARN)
    cache = CachedAccess(source, max_age=30, monotonic=clock)
    cache.get("c-1")
    del source.rows["c-1"]
    clock.now += 31
    assert cache.get("c-1") is None
    source.rows["c-1"] = PushAccess(enabled=True, push_secret_arn=ARN)
    assert cache.get("c-1") is not None  # read again, not a stale None or a stale grant
    assert source.reads == 3


def test_the_cache_holds_at_most_max_entries_dropping_the_oldest() -> None:
    source, clock = Source(), Clock()
    for n in range(5):
        source.rows[f"c-{n}"] = PushAccess(enabled=True, push_secret_arn=ARN)
    cache = CachedAccess(source, max_age=30, monotonic=clock, max_entries=3)
    for n in range(5):
        cache.get(f"c-{n}")
    assert source.reads == 5
    cache.get("c-4")  # kept
    assert source.reads == 5
    cache.get("c-0")  # dropped as the oldest: read again
    assert source.reads == 6
