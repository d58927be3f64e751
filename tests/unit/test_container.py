"""What a container keeps is declared per container and forgotten by one explicit reset."""

from __future__ import annotations

import pytest
from mls_sync import container
from mls_sync.config import get_settings, stack_environment


def test_reset_forgets_what_was_kept_per_container() -> None:
    # Given a value kept per container
    built: list[int] = []

    @container.per_container
    def thing() -> int:
        built.append(1)
        return len(built)

    assert thing() == thing() == 1
    # When the container is reset
    container.reset()
    # Then the next use builds it again
    assert thing() == 2


def test_a_new_environment_is_read_after_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given settings read in one environment
    env = {
        **stack_environment("one"),
        "SYNC_QUEUE_URL": "https://sqs/sync",
        "UNPUBLISH_QUEUE_URL": "https://sqs/unpublish",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    container.reset()
    assert get_settings().listings_table == "one-Listings"
    # When the environment changes and the container is reset
    for key, value in stack_environment("two").items():
        monkeypatch.setenv(key, value)
    container.reset()
    # Then the settings are those of the new environment
    assert get_settings().listings_table == "two-Listings"
    container.reset()
