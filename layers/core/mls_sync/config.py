"""The service's configuration: one pydantic model, read from the environment once per
container, validated all at once, and passed down.

This is the only module that reads ``os.environ`` (tests/unit/test_settings_sources.py
checks the package and the handlers). The model is one hierarchy, each level readable on
its own from the same variables, so that a caller asks for what it needs and no more:

- :class:`RuntimeSettings` — what the process was started with (tracing, local mode);
  every value optional, so it can be read at import time and by the local tools;
- :class:`Settings` — what every function of template.yaml is given (Globals): the
  resource names, required, and the optional tunables the template does not set;
- ``PublisherSettings`` (``mls_sync.unpublish.settings``) — what only the publisher is
  given (platform endpoints, its receive limit).

Variable names are exactly those of template.yaml and ``events/env.json``: each field's name
in capitals, or its ``validation_alias`` where the variable is named otherwise. A missing or
invalid variable raises :class:`ConfigError` naming every variable at fault, without the
value pydantic was given (a secret pasted into the wrong variable stays out of the logs).
There is no ``.env`` file nor secrets directory: the environment is the only source.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, TypeVar, cast

from pydantic import (
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from mls_sync.container import per_container
from mls_sync.policy import TransitionPolicy, parse_unpublish_on

# A plain pydantic model filled by read_settings, not pydantic-settings' BaseSettings: that
# package's __init__ imports every source it has (argparse CLI, dotenv, the cloud vaults,
# asyncio), ~0.09 s of every cold start, for the one thing used here, reading each field
# from its variable (docs/performance.md "Cold start").
ENV_CONFIG = ConfigDict(
    frozen=True,
    # Each value from its variable only, named exactly as the template writes it: the
    # field's name in capitals (``listings_table`` from LISTINGS_TABLE), or its own
    # validation_alias where the two differ. ``listings_table`` in a shell is not read.
    alias_generator=AliasGenerator(validation_alias=str.upper),
    validate_by_alias=True,
    validate_by_name=False,
    # A default goes through the same checks as a given value (the platform URLs).
    validate_default=True,
    # Everything else in a Lambda environment (AWS_*, _HANDLER, PATH, ...) is not ours.
    extra="ignore",
)


class ConfigError(RuntimeError):
    """A required environment variable is missing or invalid."""


class EnvSettings(BaseModel):
    """The base of every settings model here: filled from the environment by
    :func:`read_settings` alone. Built directly (``PlatformSettings()`` in a test) it holds
    its defaults and what is passed by variable name, and never reads the environment."""

    model_config = ENV_CONFIG


S = TypeVar("S", bound=EnvSettings)


def _exactly_true(value: object) -> bool:
    # Local mode opens outbound calls to this machine: "1", "yes" or a typo must not.
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


LocalMode = Annotated[bool, BeforeValidator(_exactly_true)]
"""``MLS_SYNC_ALLOW_LOOPBACK``: only the exact word ``true`` (any case, spaces trimmed)."""


class RuntimeSettings(EnvSettings):
    """How the process runs: all optional, so readable before the resource names exist (at
    import time, in the local tools)."""

    allow_loopback: LocalMode = Field(default=False, validation_alias="MLS_SYNC_ALLOW_LOOPBACK")
    """Local mode: outbound calls may go to loopback hosts (the simulators, moto)."""
    trace_disabled: bool = Field(default=False, validation_alias="POWERTOOLS_TRACE_DISABLED")
    """Powertools' switch; read with pydantic's booleans, the same words as Powertools'
    ``strtobool`` (true/false, 1/0, yes/no, on/off, t/f, y/n)."""
    lambda_task_root: str | None = None
    """Set by the Lambda runtime; absent outside Lambda."""
    sam_local: str | None = Field(default=None, validation_alias="AWS_SAM_LOCAL")
    """Set by ``sam local``."""
    chalice_local: str | None = Field(default=None, validation_alias="AWS_CHALICE_CLI_MODE")
    """Set by Chalice's local mode."""

    @property
    def tracing_enabled(self) -> bool:
        """Whether Powertools' ``Tracer`` would trace here: not disabled, in Lambda, and not
        in SAM CLI's or Chalice's local emulator (as Powertools decides it)."""
        if self.trace_disabled or not self.lambda_task_root:
            return False
        return not (self.sam_local or self.chalice_local)


class Settings(RuntimeSettings):
    """What every function is given (template.yaml Globals). Resource names are required;
    the tunables below them have documented defaults because the template leaves them out."""

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
    unpublish_on_statuses: str
    """Comma-separated statuses whose arrival takes a listing's posts down."""
    schedule_expression: str
    """The dispatcher's EventBridge schedule: ``rate(N minutes|hours|days)`` or ``cron()``."""

    budgets_table: str | None = None
    """The shared MLS request budgets (issue 21); without it each process keeps its own."""
    budget_bulk_share: float = Field(default=0.5, gt=0, le=1)
    """Largest share of a credential's hourly and daily quota that first syncs and
    reconciliations (by-key reads) may use."""
    sync_run_ttl_days: int = Field(default=90, gt=0)
    """How long a sync-run record is kept."""
    reconcile_every_hours: int = Field(default=24, gt=0)
    """How often a connection's tracked listings are reconciled with the MLS."""
    push_inbox_table: str | None = None
    """Listing keys pushed by the MLS, waiting for the worker (issue 17); the push receiver
    refuses to start without it."""

    @field_validator("unpublish_on_statuses")
    @classmethod
    def _known_statuses(cls, value: str) -> str:
        parse_unpublish_on(value)
        return value

    @field_validator("schedule_expression")
    @classmethod
    def _a_schedule(cls, value: str) -> str:
        schedule_period_seconds(value)
        return value

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


# ------------------------------------------------------------------------------ reading


def _variables(cls: type[EnvSettings]) -> Iterator[tuple[str, str, bool]]:
    """(field, variable, required) for every value ``cls`` reads, groups included
    (``platforms.X`` for a group's field)."""
    for name, field in cls.model_fields.items():
        group = _group(field.annotation)
        if group is not None:
            yield from ((f"{name}.{sub}", var, req) for sub, var, req in _variables(group))
        elif isinstance(field.validation_alias, str):
            yield name, field.validation_alias, field.is_required()


def env_names(cls: type[EnvSettings]) -> dict[str, str]:
    """Field name -> environment variable, groups included (``platforms.X`` for a group)."""
    return {name: variable for name, variable, _ in _variables(cls)}


def required_env_names(cls: type[EnvSettings]) -> set[str]:
    """The variables ``cls`` cannot do without (no default), groups included."""
    return {variable for _, variable, required in _variables(cls) if required}


def _group(annotation: object) -> type[EnvSettings] | None:
    """A field whose type is itself a settings model is a group read from the same
    (flat) variables, not from one variable holding JSON."""
    if isinstance(annotation, type) and issubclass(annotation, EnvSettings):
        return annotation
    return None


def _values(cls: type[EnvSettings], environ: Mapping[str, str]) -> dict[str, Any]:
    """What ``environ`` holds for ``cls``, keyed by variable name as validation expects; a
    group's values under its field name. Every field here is a scalar (no JSON values)."""
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        group = _group(field.annotation)
        if group is not None:  # validated under the group field's own alias
            alias = field.validation_alias
            values[alias if isinstance(alias, str) else name] = _values(group, environ)
        elif isinstance(field.validation_alias, str):
            value = environ.get(field.validation_alias)
            # An empty value counts as unset: CloudFormation writes "" for an empty parameter.
            if value:
                values[field.validation_alias] = value
    return values


def _problem(error: Mapping[str, Any], known: set[str]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    # With validation aliases the location holds the variable's name; a group adds its
    # field name in front.
    named = [part for part in loc if part in known]
    where = named[-1] if named else ".".join(loc) or "configuration"
    return f"{where}: {error['msg']}"


def read_settings(cls: type[S], environ: Mapping[str, str]) -> S:
    """``cls`` from ``environ``, every value validated at once, or :class:`ConfigError`
    naming every variable at fault with what is wrong (not the value given)."""
    try:
        return cls.model_validate(_values(cls, environ))
    except ValidationError as exc:
        known = set(env_names(cls).values())
        problems = [_problem(err, known) for err in exc.errors(include_input=False)]
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def settings_from(env: Mapping[str, str]) -> Settings:
    """:class:`Settings` from a mapping (tests, the local tools)."""
    return read_settings(Settings, env)


@per_container
def _from_process(cls: type[EnvSettings]) -> EnvSettings:
    return read_settings(cls, os.environ)


def load_settings(cls: type[S]) -> S:
    """``cls`` from this process's environment, read once per container (never at import
    time unless the caller imports it then)."""
    return cast("S", _from_process(cls))


def get_settings() -> Settings:
    """The process's settings, read once on first use."""
    return load_settings(Settings)


def runtime_settings() -> RuntimeSettings:
    """How this process runs (tracing, local mode), read once on first use."""
    return load_settings(RuntimeSettings)


def stack_environment(stack: str, environment: str = "dev") -> dict[str, str]:
    """What template.yaml's Globals give every function of a stack named ``stack`` deployed
    with ``Environment`` = ``environment`` and the other parameters at their defaults (local
    runtime and tests): the resource names as the template names them, and the parameters.
    The queue URLs are left out: they carry an account and an endpoint."""
    return {
        "UNPUBLISH_ON_STATUSES": "sold",
        "SCHEDULE_EXPRESSION": "rate(15 minutes)",
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
