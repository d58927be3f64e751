"""Cold start: with tracing off a handler imports neither the X-Ray SDK nor Powertools'
parser models; ``RuntimeSettings.tracing_enabled`` decides tracing as Powertools does
(bench/cold_start.py measures the cost)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mls_sync.config import RuntimeSettings, read_settings
from mls_sync.tracing import NoTracer, handler_tracer

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
HEAVY = ("aws_xray_sdk", "aws_lambda_powertools.utilities.parser")


def test_every_handler_imports_without_the_xray_sdk_or_parser_models() -> None:
    # Given a Lambda-like environment with tracing off, one fresh interpreter per handler
    # (as in Lambda: one handler per process; import order decides what Powertools loads)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "LAMBDA_TASK_ROOT": str(ROOT),
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    code = (
        "import importlib, sys\n"
        "importlib.import_module(f'functions.{sys.argv[1]}.app')\n"
        "print(sorted(m for m in sys.argv[2:] if m in sys.modules))\n"
    )
    # When each is imported
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", code, name, *HEAVY],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in HANDLERS
    }
    loaded = {}
    for name, child in children.items():
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        loaded[name] = out.strip()
    # Then none of them loaded either
    assert loaded == dict.fromkeys(HANDLERS, "[]")
    assert len(HANDLERS) >= 4


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "1"}, False),
        ({}, False),  # not in Lambda
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_CHALICE_CLI_MODE": "true"}, False),
    ],
)
def test_tracing_is_on_where_powertools_would_trace(
    environ: dict[str, str], *, enabled: bool
) -> None:
    assert read_settings(RuntimeSettings, environ).tracing_enabled is enabled


def test_without_tracing_the_handler_is_returned_unchanged() -> None:
    # Given tracing off
    tracer = handler_tracer(read_settings(RuntimeSettings, {"POWERTOOLS_TRACE_DISABLED": "true"}))

    # When a handler is decorated
    def handler(event: dict[str, int], context: object) -> int:
        del context
        return event["n"]

    decorated = tracer.capture_lambda_handler(handler)
    # Then it is the same function, and no X-Ray SDK was needed for it
    assert isinstance(tracer, NoTracer)
    assert decorated is handler
    assert decorated({"n": 3}, None) == 3
