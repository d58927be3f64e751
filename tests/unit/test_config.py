"""Configuration is read from the environment and fails loudly, naming what is missing."""

from __future__ import annotations

import pytest
from mls_sync import container
from mls_sync.config import (
    ConfigError,
    RuntimeSettings,
    Settings,
    get_settings,
    read_settings,
    required_env_names,
    schedule_period_seconds,
    settings_from,
    stack_environment,
)
from mls_sync.platforms.settings import PlatformSettings
from mls_sync.status import Status
from mls_sync.unpublish.settings import PublisherSettings

REQUIRED = [
    "CONNECTIONS_TABLE",
    "LISTINGS_TABLE",
    "LISTING_KEYS_TABLE",
    "POSTS_TABLE",
    "ACCOUNTS_TABLE",
    "HISTORY_TABLE",
    "SYNC_RUNS_TABLE",
    "IDEMPOTENCY_TABLE",
    "SYNC_QUEUE_URL",
    "UNPUBLISH_QUEUE_URL",
    "EVENT_BUS_NAME",
    "UNPUBLISH_ON_STATUSES",
    "SCHEDULE_EXPRESSION",
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


def test_the_required_variables_are_exactly_those_without_a_default() -> None:
    assert required_env_names(Settings) == set(REQUIRED)
    assert required_env_names(PublisherSettings) == {*REQUIRED, "UNPUBLISH_MAX_RECEIVES"}
    assert required_env_names(RuntimeSettings) == set()


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
    ("variable", "value"),
    [
        ("BUDGET_BULK_SHARE", "2"),
        ("RECONCILE_EVERY_HOURS", "0"),
        ("POWERTOOLS_TRACE_DISABLED", "perhaps"),
        ("UNPUBLISH_MAX_RECEIVES", "0"),
        ("FACEBOOK_GRAPH_URL", "http://graph.facebook.com"),
        ("LINKEDIN_VERSION", "2026-08"),
    ],
)
def test_a_bad_value_names_its_variable_and_nothing_else(variable: str, value: str) -> None:
    env = {**_full_env(), "UNPUBLISH_MAX_RECEIVES": "5", variable: value}
    with pytest.raises(ConfigError) as caught:
        read_settings(PublisherSettings, env)
    message = str(caught.value)
    assert variable in message
    # only the variable at fault: the others are fine
    assert not [name for name in REQUIRED if name in message]


def test_an_error_does_not_repeat_the_value() -> None:
    # A value can be a secret pasted in the wrong place: the message says what is wrong.
    with pytest.raises(ConfigError) as caught:
        settings_from({**_full_env(), "SYNC_RUN_TTL_DAYS": "sk_live_not_a_number"})
    assert "sk_live" not in str(caught.value)


def test_the_publisher_needs_its_receive_count() -> None:
    with pytest.raises(ConfigError, match="UNPUBLISH_MAX_RECEIVES"):
        read_settings(PublisherSettings, _full_env())
    settings = read_settings(PublisherSettings, {**_full_env(), "UNPUBLISH_MAX_RECEIVES": "7"})
    assert settings.unpublish_max_receives == 7
    assert settings.linkedin_app_secret_arn is None  # the template writes "" for no app
    assert settings.platforms.facebook_graph_url == "https://graph.facebook.com"


def test_the_platform_group_is_read_from_the_same_variables() -> None:
    env = {
        **_full_env(),
        "UNPUBLISH_MAX_RECEIVES": "5",
        "MLS_SYNC_ALLOW_LOOPBACK": "true",
        "LINKEDIN_API_URL": "http://127.0.0.1:5001/",
    }
    settings = read_settings(PublisherSettings, env)
    assert settings.allow_loopback is settings.platforms.allow_loopback is True
    assert settings.platforms.linkedin_api_url == "http://127.0.0.1:5001"


@pytest.mark.parametrize(("value", "allowed"), [("true", True), (" TRUE ", True), ("1", False)])
def test_local_mode_is_the_exact_word_true(value: str, *, allowed: bool) -> None:
    env = {"MLS_SYNC_ALLOW_LOOPBACK": value}
    assert read_settings(RuntimeSettings, env).allow_loopback is allowed


def test_names_are_matched_exactly() -> None:
    # A lower-case listings_table in a shell is not the template's LISTINGS_TABLE.
    env = {**_full_env(), "listings_table": "wrong"}
    del env["LISTINGS_TABLE"]
    with pytest.raises(ConfigError, match="LISTINGS_TABLE"):
        settings_from(env)


def test_the_process_environment_is_read_once_per_container(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in _full_env().items():
        monkeypatch.setenv(key, value)
    container.reset()
    first = get_settings()
    monkeypatch.setenv("LISTINGS_TABLE", "changed")
    assert get_settings() is first  # not read again
    container.reset()
    assert get_settings().listings_table == "changed"
    container.reset()


def test_a_model_built_directly_never_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLS_SYNC_ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("FACEBOOK_GRAPH_URL", "http://127.0.0.1:1")
    assert PlatformSettings().allow_loopback is False
    assert PlatformSettings().facebook_graph_url == "https://graph.facebook.com"


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


def test_every_setting_has_its_variable() -> None:
    for model in (Settings, PublisherSettings, PlatformSettings):
        for name, field in model.model_fields.items():
            assert isinstance(field.validation_alias, str) or name == "platforms", name


def test_every_setting_is_one_scalar_read_from_text() -> None:
    # read_settings hands each variable's text to pydantic as is: a list or dict field
    # would need JSON decoding, which it does not do (pydantic-settings did).
    scalars = {str, int, float, bool, str | None, int | None, float | None, bool | None}
    for model in (RuntimeSettings, Settings, PublisherSettings, PlatformSettings):
        for name, field in model.model_fields.items():
            assert field.annotation in scalars or name == "platforms", (model, name)
