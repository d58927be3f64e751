"""The handlers' tracer: Powertools ``Tracer`` where tracing is on, a no-op where it is off.

``Tracer()`` imports and configures the X-Ray SDK (~0.2 s of a cold start) even when
tracing is disabled, only to do nothing with it. Tracing is off under the same conditions
as Powertools decides them (``RuntimeSettings.tracing_enabled``: ``POWERTOOLS_TRACE_DISABLED``
truthy, or not running in Lambda, or in SAM CLI's or Chalice's local emulator). There the
handlers get :class:`NoTracer`, whose decorators return the function unchanged.

In Lambda with ``Tracing: Active`` (template.yaml's Globals) tracing is on and the real
``Tracer`` is built, X-Ray SDK and all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from aws_lambda_powertools import Tracer

from mls_sync.config import RuntimeSettings, runtime_settings

F = TypeVar("F", bound=Callable[..., Any])


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


def handler_tracer(runtime: RuntimeSettings | None = None) -> HandlerTracer:
    """The tracer for a handler module: ``Tracer()`` only where tracing is on (``runtime``
    defaults to this process's, read once)."""
    if (runtime or runtime_settings()).tracing_enabled:
        return cast("HandlerTracer", Tracer())
    return NoTracer()
