"""Finding and calling the functions' handlers in this process, with their environment."""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from mls_sync import container

from mls_sync_local.runtime.loopback_guard import loopback_only
from mls_sync_local.runtime.stack import FunctionSpec, TemplateFacts, template_facts

Handler = Callable[[dict[str, Any], Any], Any]

# Powertools warns on every invocation that emits no metric (a manual sync answered 404, a
# skipped unpublish job). In Lambda that line lands in the log; on a terminal it reads as a
# problem. It is not one.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def load_handler(spec: FunctionSpec) -> Handler:
    """``lambda_handler`` from ``functions/<name>/app.py`` (imported once, like a warm
    Lambda container)."""
    module = importlib.import_module(spec.module)
    handler: Handler = getattr(module, spec.handler)
    return handler


class HandlerRegistry:
    """Which callable runs for which function (by logical id).

    ``HandlerRegistry()`` loads the real handlers on first use; tests pass their own
    (``HandlerRegistry({"WorkerFunction": fake})``), and then only those functions run.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler] | None = None,
        facts: TemplateFacts | None = None,
    ) -> None:
        self._facts = facts or template_facts()
        self._given = dict(handlers) if handlers is not None else None
        self._loaded: dict[str, Handler] = {}

    def has(self, logical_id: str) -> bool:
        if self._given is not None:
            return logical_id in self._given
        return logical_id in self._facts.functions

    def get(self, logical_id: str) -> Handler:
        if self._given is not None:
            return self._given[logical_id]
        if logical_id not in self._loaded:
            self._loaded[logical_id] = load_handler(self._facts.functions[logical_id])
        return self._loaded[logical_id]


def reset_process_caches() -> None:
    """Forget the settings, clients and handler dependencies the shipped package keeps per
    container (``mls_sync.container``), so that a changed environment (endpoint, table
    names) takes effect, as in a fresh Lambda container."""
    container.reset()


@contextlib.contextmanager
def process_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in os.environ for the block (restored afterwards).

    Handlers run in this process, so their environment is the process's: one environment
    at a time. Fake credentials are added when none are set (the endpoint is moto), and
    connections to anything but loopback are refused (see ``loopback_guard``).
    """
    wanted = dict(env)
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        if key not in os.environ and key not in wanted:
            wanted[key] = value
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    reset_process_caches()
    try:
        with loopback_only():
            yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        reset_process_caches()


@contextlib.contextmanager
def handler_output_to(stream: TextIO) -> Iterator[None]:
    """Send what handlers print (Powertools logs and metrics go to stdout) to ``stream``, so
    a command's own stdout stays machine-readable. Through the telemetry tap, which also
    hands each line to any active capture (``runtime.telemetry``); Powertools' loggers,
    which bind their stream when created, are pointed at the tap for the block."""
    from mls_sync_local.runtime.telemetry import routed_to  # noqa: PLC0415

    with routed_to(stream):
        yield
