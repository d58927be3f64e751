"""The local runtime in one object, for `invoke`, `tick`, `demo` and tests to compose:
a deployed stack at a loopback endpoint, the handlers, and their environment."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mls_sync_local.runtime.context import Clock, make_context
from mls_sync_local.runtime.deploy import local_environment
from mls_sync_local.runtime.handlers import Handler, HandlerRegistry, process_environment
from mls_sync_local.runtime.pollers import AcceleratedClock, Pollers
from mls_sync_local.runtime.stack import (
    DeployedStack,
    TemplateFacts,
    endpoint_from_env,
    find_function,
    region,
    require_loopback,
    stack_name,
    template_facts,
)

# Set by the Lambda runtime per function: meaningless in a process running several.
_PER_FUNCTION = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
)


@dataclass
class LocalRuntime:
    deployed: DeployedStack
    registry: HandlerRegistry
    facts: TemplateFacts
    overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def connect(
        cls,
        endpoint_url: str | None = None,
        *,
        stack: str | None = None,
        handlers: Mapping[str, Handler] | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> LocalRuntime:
        """The deployed stack at ``endpoint_url`` (default: AWS_ENDPOINT_URL). ``handlers``
        replaces the real ones (by logical id); ``overrides`` adds environment variables
        (e.g. simulator URLs in place of the real platforms)."""
        endpoint = require_loopback(endpoint_url) if endpoint_url else endpoint_from_env()
        facts = template_facts()
        return cls(
            deployed=DeployedStack.describe(stack or stack_name(), endpoint, region()),
            registry=HandlerRegistry(handlers, facts),
            facts=facts,
            overrides=dict(overrides or {}),
        )

    def function_environment(self, function: str) -> dict[str, str]:
        return local_environment(self.deployed, function, overrides=self.overrides)

    def shared_environment(self) -> dict[str, str]:
        """Every function's environment in one (they agree on all shared names); used
        while several functions run in this process at once."""
        merged: dict[str, str] = {}
        for logical_id in self.facts.functions:
            for key, value in self.function_environment(logical_id).items():
                if key in _PER_FUNCTION:
                    continue
                if merged.get(key, value) != value:
                    raise RuntimeError(f"functions disagree on {key}: cannot run them together")
                merged[key] = value
        return merged

    def invoke(self, function: str, event: Any, *, clock: Clock = time.monotonic) -> Any:
        """One handler, one event, its own template environment, like `sam local invoke`."""
        spec = find_function(function, self.facts)
        context = make_context(
            self.deployed.physical(spec.logical_id),
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
            region=self.deployed.region,
            clock=clock,
        )
        with process_environment(self.function_environment(spec.logical_id)):
            handler = self.registry.get(spec.logical_id)
            return handler(event, context)

    def pollers(self, *, clock: AcceleratedClock | None = None, **options: Any) -> Pollers:
        return Pollers(self.deployed, self.registry, clock=clock, **options)
