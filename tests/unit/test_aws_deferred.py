"""A deferred boto3 client (``aws.sqs(deferred=True)``, ``aws.events(deferred=True)``) is
made only when first used, and is then the process's cached client: init does not pay for
a client that only some jobs call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mls_sync import aws


@pytest.fixture
def fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    aws.reset_clients()
    yield
    aws.reset_clients()


def test_a_deferred_client_is_made_on_first_use_and_is_the_cached_one(
    fresh_clients: None,
) -> None:
    # Given deferred SQS and EventBridge clients
    queue = aws.sqs(deferred=True)
    bus = aws.events(deferred=True)
    # Then no client was made yet
    assert aws._client.cache_info().currsize == 0
    # When one is used
    url = queue.meta.endpoint_url
    # Then that client alone was made, and it is the process's client
    assert aws._client.cache_info().currsize == 1
    assert queue.meta is aws.sqs().meta
    assert "sqs" in url
    assert bus.meta.service_model.service_name == "events"
    assert aws._client.cache_info().currsize == 2
