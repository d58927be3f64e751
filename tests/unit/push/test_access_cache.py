"""The receiver keeps a granting access answer a short while, and nothing else."""

from __future__ import annotations

from mls_sync.dal.push_access import PushAccess
from mls_sync.push.access_cache import CachedAccess

from tests.support.clock import FakeMonotonic

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/push/c-1"


class Source:
    """The Connections table as the receiver reads it, counting reads."""

    def __init__(self, rows: dict[str, PushAccess]) -> None:
        self.rows = dict(rows)
        self.reads = 0

    def get(self, connection_id: str) -> PushAccess | None:
        self.reads += 1
        return self.rows.get(connection_id)


def _given(
    rows: dict[str, PushAccess], **limits: int
) -> tuple[Source, FakeMonotonic, CachedAccess]:
    """A receiver's cache (30 s) over a table holding ``rows``, on a clock the test moves."""
    source, clock = Source(rows), FakeMonotonic()
    return source, clock, CachedAccess(source, max_age=30, monotonic=clock, **limits)


def test_a_granting_answer_is_read_once_while_fresh_then_read_again() -> None:
    source, clock, cache = _given({"c-1": PushAccess(enabled=True, push_secret_arn=ARN)})
    for _ in range(50):  # a flood within the age: one read
        assert cache.get("c-1") == PushAccess(enabled=True, push_secret_arn=ARN)
    assert source.reads == 1
    # When the connection is disabled, the change shows once the answer is older than 30 s
    source.rows["c-1"] = PushAccess(enabled=False, push_secret_arn=ARN)
    clock.advance(29.9)
    assert cache.get("c-1").enabled is True  # type: ignore[union-attr]
    clock.advance(0.1)
    assert cache.get("c-1") == PushAccess(enabled=False, push_secret_arn=ARN)
    assert source.reads == 2


def test_unknown_connections_and_unset_tokens_are_read_every_time() -> None:
    source, _, cache = _given({"c-2": PushAccess(enabled=True, push_secret_arn=None)})
    assert cache.get("c-nobody") is None
    assert cache.get("c-nobody") is None
    assert cache.get("c-2") == PushAccess(enabled=True, push_secret_arn=None)
    # A token set now works on the very next push (set-token), no age to wait out
    source.rows["c-2"] = PushAccess(enabled=True, push_secret_arn=ARN)
    assert cache.get("c-2") == PushAccess(enabled=True, push_secret_arn=ARN)
    assert source.reads == 4


def test_a_connection_removed_is_forgotten_when_next_read() -> None:
    source, clock, cache = _given({"c-1": PushAccess(enabled=True, push_secret_arn=ARN)})
    cache.get("c-1")
    del source.rows["c-1"]
    clock.advance(31)
    assert cache.get("c-1") is None
    source.rows["c-1"] = PushAccess(enabled=True, push_secret_arn=ARN)
    assert cache.get("c-1") is not None  # read again, not a stale None or a stale grant
    assert source.reads == 3


def test_the_cache_holds_at_most_max_entries_dropping_the_oldest() -> None:
    rows = {f"c-{n}": PushAccess(enabled=True, push_secret_arn=ARN) for n in range(5)}
    source, _, cache = _given(rows, max_entries=3)
    for n in range(5):
        cache.get(f"c-{n}")
    assert source.reads == 5
    cache.get("c-4")  # kept
    assert source.reads == 5
    cache.get("c-0")  # dropped as the oldest: read again
    assert source.reads == 6
