"""Configuration is read from the environment and fails loudly, naming what is missing."""

from __future__ import annotations

import pytest
from mls_sync.config import (
    ENV_VARS,
    ConfigError,
    schedule_period_seconds,
    settings_from,
    stack_environment,
)
from mls_sync.status import Status

REQUIRED = [
    "CONNECTIONS_TABLE",
    "LISTINGS_TABLE",
    "POSTS_TABLE",
    "ACCOUNTS_TABLE",
    "HISTORY_TABLE",
    "SYNC_RUNS_TABLE",
    "IDEMPOTENCY_TABLE",
    "SYNC_QUEUE_URL",
    "UNPUBLISH_QUEUE_URL",
    "EVENT_BUS_NAME",
]


def _full_env() -> dict[str, str]:
    return {
        **stack_environment("s"),
        "SYNC_QUEUE_URL": "https://sqs/sync",
        "UNPUBLISH_QUEUE_URL": "https://sqs/unpublish",
    }


def test_a_complete_environment_reads_with_defaults() -> None:
    settings = settings_from(_full_env())
    assert settings.listings_table == "s-Listings"
    assert settings.policy.unpublish_on == frozenset({Status.SOLD})
    assert settings.period_seconds == 15 * 60


def test_stack_environment_names_every_table_variable() -> None:
    names = stack_environment("x")
    assert set(REQUIRED) - set(names) == {"SYNC_QUEUE_URL", "UNPUBLISH_QUEUE_URL"}


@pytest.mark.parametrize("missing", REQUIRED)
def test_each_missing_variable_is_named(missing: str) -> None:
    env = _full_env()
    del env[missing]
    with pytest.raises(ConfigError) as caught:
        settings_from(env)
    assert missing in str(caught.value)


def test_all_missing_variables_are_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from({})
    for var in REQUIRED:
        assert var in str(caught.value)


def test_an_empty_variable_counts_as_missing() -> None:
    env = {**_full_env(), "POSTS_TABLE": ""}
    with pytest.raises(ConfigError, match="POSTS_TABLE"):
        settings_from(env)


def test_unpublish_on_statuses_is_validated_eagerly() -> None:
    with pytest.raises(ConfigError, match="'sould'"):
        settings_from({**_full_env(), "UNPUBLISH_ON_STATUSES": "sold,sould"})
    settings = settings_from({**_full_env(), "UNPUBLISH_ON_STATUSES": "sold,deleted"})
    assert settings.policy.unpublish_on == frozenset({Status.SOLD, Status.DELETED})


def test_schedule_expression_is_validated_eagerly() -> None:
    with pytest.raises(ConfigError, match="rate"):
        settings_from({**_full_env(), "SCHEDULE_EXPRESSION": "every 5 minutes"})


def test_a_non_numeric_number_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="SYNC_RUN_TTL_DAYS"):
        settings_from({**_full_env(), "SYNC_RUN_TTL_DAYS": "ninety"})


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(15 minutes)", 900),
        ("rate(1 minute)", 60),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        ("cron(0/5 * * * ? *)", 60),
    ],
)
def test_schedule_period(expression: str, seconds: int) -> None:
    assert schedule_period_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["rate(0 minutes)", "rate(5 weeks)", "rate(x minutes)"])
def test_bad_schedule_expressions(expression: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        schedule_period_seconds(expression)


def test_env_var_table_covers_every_setting() -> None:
    from mls_sync.config import Settings  # noqa: PLC0415

    assert set(ENV_VARS) == set(Settings.model_fields)
