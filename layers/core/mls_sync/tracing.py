"""The handlers' tracer: Powertools ``Tracer`` where tracing is on, a no-op where it is off.

``Tracer()`` imports and configures the X-Ray SDK (~0.2 s of a cold start) even when
tracing is disabled, only to do nothing with it. Tracing is off under the same conditions
as Powertools decides them: ``POWERTOOLS_TRACE_DISABLED`` truthy, or not running in Lambda
(no ``LAMBDA_TASK_ROOT``), or in SAM CLI's or Chalice's local emulator. There the handlers
get :class:`NoTracer`, whose decorators return the function unchanged.

In Lambda with ``Tracing: Active`` (template.yaml's Globals) tracing is on and the real
``Tracer`` is built, X-Ray SDK and all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, cast

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

F = TypeVar("F", bound=Callable[..., Any])


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Powertools' ``Tracer`` would trace in this environment."""
    env = os.environ if environ is None else environ
    if resolve_truthy_env_var_choice(env=env.get(constants.TRACER_DISABLED_ENV, "false")):
        return False
    if not env.get(constants.LAMBDA_TASK_ROOT_ENV):
        return False
    return not (env.get(constants.SAM_LOCAL_ENV) or env.get(constants.CHALICE_LOCAL_ENV))


class HandlerTracer(Protocol):
    """What the handlers use of a tracer."""

    def capture_lambda_handler(self, lambda_handler: F) -> F: ...


class NoTracer:
    """What a handler uses of ``Tracer``, doing nothing (tracing is off)."""

    def capture_lambda_handler(self, lambda_handler: F) -> F:
        return lambda_handler

    def capture_method(self, method: F) -> F:
        return method

    def put_annotation(self, key: str, value: Any) -> None:
        del key, value

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        del key, value, namespace


def handler_tracer(environ: Mapping[str, str] | None = None) -> HandlerTracer:
    """The tracer for a handler module: ``Tracer()`` only where tracing is on."""
    if tracing_enabled(environ):
        return cast("HandlerTracer", Tracer())
    return NoTracer()
