"""The Lambda-like context counts down from the function's timeout on an injected clock."""

from __future__ import annotations

from mls_sync_local.runtime.context import make_context
from tests.support.clock import FakeMonotonic


def test_remaining_time_counts_down_and_stops_at_zero() -> None:
    # Given a worker context (300 s timeout) on a fake clock
    clock = FakeMonotonic()
    context = make_context(
        "mls-sync-dev-worker", timeout_seconds=300, memory_mb=1024, region="us-east-1", clock=clock
    )
    # Then it starts with the full timeout
    assert context.get_remaining_time_in_millis() == 300_000
    # When 299.5 s pass
    clock.advance(299.5)
    assert context.get_remaining_time_in_millis() == 500
    assert not context.timed_out
    # And past the timeout it reads zero, never negative
    clock.advance(10)
    assert context.get_remaining_time_in_millis() == 0
    assert context.timed_out


def test_context_carries_what_powertools_reads() -> None:
    context = make_context(
        "mls-sync-dev-publisher", timeout_seconds=30, memory_mb=512, region="eu-west-1"
    )
    assert context.function_name == "mls-sync-dev-publisher"
    assert context.memory_limit_in_mb == 512
    assert context.invoked_function_arn == (
        "arn:aws:lambda:eu-west-1:123456789012:function:mls-sync-dev-publisher"
    )
    assert context.function_version == "$LATEST"
    assert context.log_group_name == "/aws/lambda/mls-sync-dev-publisher"
    assert len(context.aws_request_id) == 36
    other = make_context("f", timeout_seconds=1, memory_mb=128, region="us-east-1")
    assert other.aws_request_id != context.aws_request_id
