"""A pytest plugin: every AWS API call a handler makes is checked against that function's
IAM policy as template.yaml grants it, and recorded.

How: a botocore ``before-parameter-build`` hook on every client any session creates (the
handlers' cached clients, boto3 resources, moto in-process or a moto server alike). A call
belongs to a function when a ``functions/<name>/app.py`` frame is on the calling thread's
stack (or on the stack that submitted the pool task running it); calls made by test code
itself (setup, fakes the test injects, the local runtime's pollers standing in for the
Lambda service) belong to no function and are not checked.

- Each test fails (at teardown) if a handler made a call its function's policy denies.
- With ``MLS_SYNC_IAM_USAGE=<file>`` the session writes every distinct request it saw, for
  ``python -m tests.support.iam_coverage`` to check that every granted action was used.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import botocore.session
import pytest

from tests.support.iam import (
    ACCOUNT,
    REGION,
    Naming,
    PolicyError,
    Request,
    allowed,
    cached_policies,
    iam_requests,
)

ROOT = Path(__file__).resolve().parents[2]
_FUNCTIONS = str(ROOT / "functions") + os.sep
_TESTS = str(ROOT / "tests") + os.sep


@cache
def _function_of_module() -> dict[str, str]:
    from mls_sync_local.runtime.stack import template_facts  # noqa: PLC0415 - lazy, cached

    return {spec.module: spec.logical_id for spec in template_facts().functions.values()}


def _function_of_file(filename: str) -> str | None:
    if not filename.startswith(_FUNCTIONS) or not filename.endswith("app.py"):
        return None
    module = Path(filename).relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
    return _function_of_module().get(module)


def _frames(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def _is_library(filename: str) -> bool:
    """Installed packages and the standard library: not where a call comes from."""
    return not filename.startswith(str(ROOT) + os.sep) or f"{os.sep}.venv{os.sep}" in filename


_owner = threading.local()
_PER_ITEM_KEYS = frozenset({"dynamodb:LeadingKeys"})


def _handler_on_stack(frame: FrameType | None) -> str | None:
    for f in _frames(frame):
        function = _function_of_file(f.f_code.co_filename)
        if function is not None:
            return function
    owner: str | None = getattr(_owner, "function", None)
    return owner


def calling_function(frame: FrameType | None) -> str | None:
    """The function whose handler made this call, or None (test code, the local runtime)."""
    for f in _frames(frame):
        filename = f.f_code.co_filename
        if _is_library(filename) or filename == __file__:
            continue
        if filename.startswith(_TESTS):
            return None  # the test's own call (setup, a fake it injected)
        break
    return _handler_on_stack(frame)


def _propagating_submit(original: Callable[..., Any]) -> Callable[..., Any]:
    """A pool task runs on another thread: it belongs to the handler that submitted it."""

    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        owner = _handler_on_stack(sys._getframe(1))
        if owner is None:
            return original(self, fn, *args, **kwargs)

        def run(*a: Any, **kw: Any) -> Any:
            previous = getattr(_owner, "function", None)
            _owner.function = owner
            try:
                return fn(*a, **kw)
            finally:
                _owner.function = previous

        return original(self, run, *args, **kwargs)

    return submit


# --------------------------------------------------------------------------- recording


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uses: set[tuple[str, Naming, Request]] = set()
        self.violations: list[str] = []

    def naming(self, region: str | None) -> Naming:
        """The stack the handlers run against, as their environment names it."""
        table = os.environ.get("CONNECTIONS_TABLE", "")
        stack = (
            table.removesuffix("-Connections")
            if table
            else os.environ.get("MLS_SYNC_STACK", "mls-sync-test")
        )
        bus = os.environ.get("EVENT_BUS_NAME", "mls-sync-dev")
        environment = bus.removeprefix("mls-sync-") if bus.startswith("mls-sync-") else "dev"
        return Naming(
            stack=stack, environment=environment, region=region or REGION, account=ACCOUNT
        )

    def record(self, function: str, service: str, operation: str, params: Any, region: str) -> None:
        naming = self.naming(region)
        try:
            requests = iam_requests(service, operation, params, naming)
            policy = cached_policies(naming)[function]
            denied = [r for r in requests if not allowed(policy, r)]
        except (PolicyError, KeyError, TypeError, ValueError) as exc:
            with self.lock:
                self.violations.append(f"{function} {service}:{operation}: not checkable: {exc}")
            return
        with self.lock:
            for request in requests:
                # Kept for coverage without the per-item keys (no policy conditions on them):
                # a 2,000-listing sync would otherwise record 2,000 distinct requests.
                context = tuple(kv for kv in request.context if kv[0] not in _PER_ITEM_KEYS)
                self.uses.add(
                    (function, naming, Request(request.action, request.resource, context))
                )
            for request in denied[: max(0, 1000 - len(self.violations))]:
                self.violations.append(
                    f"{function} ({policy.role}) called {service}.{operation}: "
                    f"{request.action} on {request.resource} {request.keys or ''} is not allowed"
                )

    def dump(self, path: Path) -> None:
        with self.lock:
            rows = [
                {
                    "function": function,
                    "naming": {
                        "stack": naming.stack,
                        "environment": naming.environment,
                        "region": naming.region,
                        "account": naming.account,
                    },
                    "request": request.to_json(),
                }
                for function, naming, request in sorted(self.uses, key=repr)
            ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=0, sort_keys=True), encoding="utf-8")


RECORDER = Recorder()


def _hook(region: str) -> Callable[..., None]:
    def before_parameter_build(params: Any, model: Any, **_kwargs: Any) -> None:
        try:
            function = calling_function(sys._getframe(1))
        except Exception:  # a recorder must never break the call
            return
        if function is None:
            return
        RECORDER.record(
            function, model.service_model.service_name, model.name, dict(params), region
        )

    return before_parameter_build


def _install() -> None:
    original_create = botocore.session.Session.create_client
    if getattr(original_create, "_iam_recording", False):
        return

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original_create(self, *args, **kwargs)
        client.meta.events.register("before-parameter-build", _hook(client.meta.region_name))
        return client

    create_client._iam_recording = True  # type: ignore[attr-defined]
    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    pool = concurrent.futures.ThreadPoolExecutor
    pool.submit = _propagating_submit(pool.submit)  # type: ignore[method-assign]


# MLS_SYNC_IAM_CHECK=off skips it all (to time a test without the recorder).
ENABLED = os.environ.get("MLS_SYNC_IAM_CHECK", "on").strip().lower() != "off"
if ENABLED:
    _install()


@pytest.fixture(autouse=True)
def _least_privilege() -> Iterator[None]:
    """Fails the test whose handlers made a call their function's policy does not allow."""
    if not ENABLED:
        yield
        return
    with RECORDER.lock:
        start = len(RECORDER.violations)
    yield
    with RECORDER.lock:
        found = RECORDER.violations[start:]
    if found:
        shown = "\n".join(sorted(set(found))[:10])
        pytest.fail(f"IAM: a handler made calls its template policy denies:\n{shown}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("MLS_SYNC_IAM_USAGE")
    if target:
        RECORDER.dump(Path(target))
