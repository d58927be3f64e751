"""Configuration read from the environment once, lazily, and validated.

Missing configuration fails loudly with the variable's name; there are no silent defaults
for resource names.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mls_sync.container import per_container
from mls_sync.policy import TransitionPolicy, parse_unpublish_on


class ConfigError(RuntimeError):
    """A required environment variable is missing or invalid."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    connections_table: str
    listings_table: str
    listing_keys_table: str
    posts_table: str
    accounts_table: str
    history_table: str
    sync_runs_table: str
    idempotency_table: str
    sync_queue_url: str
    unpublish_queue_url: str
    event_bus_name: str
    unpublish_on_statuses: str = "sold"
    schedule_expression: str = "rate(15 minutes)"
    sync_run_ttl_days: int = 90
    reconcile_every_hours: int = 24
    budgets_table: str | None = None
    """The shared MLS request budgets (issue 21); without it each process keeps its own."""
    budget_bulk_share: float = Field(default=0.5, gt=0, le=1)
    """Largest share of a credential's hourly and daily quota that first syncs and
    reconciliations (by-key reads) may use."""
    push_inbox_table: str | None = None
    """Listing keys pushed by the MLS, waiting for the worker (issue 17); the push receiver
    refuses to start without it."""

    @property
    def period_seconds(self) -> int:
        """The schedule period: from ``rate(N minutes|hours|days)``; 60 s for cron()."""
        return schedule_period_seconds(self.schedule_expression)

    @property
    def policy(self) -> TransitionPolicy:
        return TransitionPolicy(unpublish_on=parse_unpublish_on(self.unpublish_on_statuses))


_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def schedule_period_seconds(expression: str) -> int:
    """Seconds between firings of an EventBridge schedule expression."""
    text = expression.strip()
    if text.startswith("rate(") and text.endswith(")"):
        parts = text[5:-1].split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1] in _UNITS and int(parts[0]) > 0:
            return int(parts[0]) * _UNITS[parts[1]]
        raise ValueError(f"{expression!r} is not a valid rate() expression")
    if text.startswith("cron(") and text.endswith(")"):
        return 60  # slots of a minute: a cron firing is deduplicated within its minute
    raise ValueError(f"{expression!r} is neither rate(...) nor cron(...)")


ENV_VARS: dict[str, str] = {
    "connections_table": "CONNECTIONS_TABLE",
    "listings_table": "LISTINGS_TABLE",
    "listing_keys_table": "LISTING_KEYS_TABLE",
    "posts_table": "POSTS_TABLE",
    "accounts_table": "ACCOUNTS_TABLE",
    "history_table": "HISTORY_TABLE",
    "sync_runs_table": "SYNC_RUNS_TABLE",
    "idempotency_table": "IDEMPOTENCY_TABLE",
    "sync_queue_url": "SYNC_QUEUE_URL",
    "unpublish_queue_url": "UNPUBLISH_QUEUE_URL",
    "event_bus_name": "EVENT_BUS_NAME",
    "unpublish_on_statuses": "UNPUBLISH_ON_STATUSES",
    "schedule_expression": "SCHEDULE_EXPRESSION",
    "sync_run_ttl_days": "SYNC_RUN_TTL_DAYS",
    "reconcile_every_hours": "RECONCILE_EVERY_HOURS",
    "budgets_table": "BUDGETS_TABLE",
    "budget_bulk_share": "BUDGET_BULK_SHARE",
    "push_inbox_table": "PUSH_INBOX_TABLE",
}


def settings_from(env: dict[str, str] | os._Environ[str]) -> Settings:
    values = {field: env[var] for field, var in ENV_VARS.items() if env.get(var)}
    try:
        settings = Settings.model_validate(values)
        settings.policy  # noqa: B018 - validates UNPUBLISH_ON_STATUSES eagerly
        settings.period_seconds  # noqa: B018 - and SCHEDULE_EXPRESSION
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"{ENV_VARS.get(field, field)}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    return settings


@per_container
def get_settings() -> Settings:
    """The process's settings, read once on first use (never at import time)."""
    return settings_from(os.environ)


def stack_environment(stack: str, environment: str = "dev") -> dict[str, str]:
    """The resource-name variables for a stack named ``stack`` deployed with the template's
    ``Environment`` parameter ``environment`` (local runtime and tests), matching the names
    template.yaml gives its resources."""
    return {
        "CONNECTIONS_TABLE": f"{stack}-Connections",
        "LISTINGS_TABLE": f"{stack}-Listings",
        "LISTING_KEYS_TABLE": f"{stack}-ListingKeys",
        "POSTS_TABLE": f"{stack}-Posts",
        "ACCOUNTS_TABLE": f"{stack}-PlatformAccounts",
        "HISTORY_TABLE": f"{stack}-StatusHistory",
        "SYNC_RUNS_TABLE": f"{stack}-SyncRuns",
        "IDEMPOTENCY_TABLE": f"{stack}-Idempotency",
        "BUDGETS_TABLE": f"{stack}-Budgets",
        "PUSH_INBOX_TABLE": f"{stack}-PushInbox",
        "EVENT_BUS_NAME": f"mls-sync-{environment}",
    }
