"""Cold start: with tracing off a handler imports neither the X-Ray SDK nor Powertools'
parser models or batch utility, and its import + init leave out what only some jobs need
(the guarded HTTP transport, Powertools' secrets provider, other handlers' modules);
``RuntimeSettings.tracing_enabled`` decides tracing as Powertools does; models built on
first use are safe to first use from several threads (bench/cold_start.py measures the
cost)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mls_sync.config import RuntimeSettings, read_settings, stack_environment
from mls_sync.models import Model
from mls_sync.tracing import NoTracer, handler_tracer

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
# The X-Ray SDK (tracing off), Powertools' parser models and its batch utility (the data
# classes of every event source, asyncio; mls_sync.sqs_batch answers SQS batches).
HEAVY = (
    "aws_xray_sdk",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.batch",
)

# What each handler's import + first init must not load (the first job that needs it does):
# httpcore (the guarded transport of the MLS and platform clients), Powertools' parameters
# (the secrets provider), and the modules of the other handlers.
NOT_AT_INIT = {
    "dispatcher": ("httpx", "mls_sync.reso.client", "mls_sync.dal.listings", "mls_sync.secrets"),
    "manual_sync": ("httpx", "mls_sync.reso.client", "mls_sync.secrets"),
    "publisher": ("httpcore", "aws_lambda_powertools.utilities.parameters", "mls_sync.reso.client"),
    "push": ("httpcore", "aws_lambda_powertools.utilities.parameters", "mls_sync.dal.listings"),
    "worker": (
        "httpcore",
        "aws_lambda_powertools.utilities.parameters",
        "mls_sync.pipeline.manual",
        "mls_sync.platforms",
        "mls_sync.reso.entity_events",  # only a connection that reads the EntityEvent log
    ),
}
# How each handler's first invocation builds its dependencies (bench/cold_start.py INIT).
INIT = {
    "dispatcher": "default_deps",
    "manual_sync": "default_manual_deps",
    "publisher": "default_deps",
    "push": "default_push_deps",
    "worker": "default_sync_deps",
}


@pytest.fixture(scope="module")
def handler_modules() -> dict[str, tuple[list[str], list[str]]]:
    """For each handler, in a fresh interpreter of its own (as in Lambda: one handler per
    process; import order decides what Powertools loads) with a Lambda-like environment
    (every resource name, fake credentials, tracing off; building clients calls nothing):
    which of ``HEAVY`` its import loaded, and which of ``NOT_AT_INIT`` its import + init."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(stack_environment("coldstart"))
    env.update(
        {
            "SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/s.fifo",
            "UNPUBLISH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/u",
            "UNPUBLISH_MAX_RECEIVES": "5",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "LAMBDA_TASK_ROOT": str(ROOT),
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    code = (
        "import importlib, json, sys\n"
        "heavy, not_at_init = sys.argv[3].split(','), sys.argv[4].split(',')\n"
        "module = importlib.import_module(f'functions.{sys.argv[1]}.app')\n"
        "after_import = sorted(m for m in heavy if m in sys.modules)\n"
        "getattr(module, sys.argv[2])()\n"
        "after_init = sorted(m for m in not_at_init if m in sys.modules)\n"
        "print(json.dumps([after_import, after_init]))\n"
    )
    children = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                name,
                INIT[name],
                ",".join(HEAVY),
                ",".join(NOT_AT_INIT[name]),
            ],
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
        after_import, after_init = json.loads(out.strip().splitlines()[-1])
        loaded[name] = (after_import, after_init)
    return loaded


def test_every_handler_imports_without_the_xray_sdk_parser_models_or_batch_utility(
    handler_modules: dict[str, tuple[list[str], list[str]]],
) -> None:
    # Given each handler imported in a fresh interpreter, tracing off (fixture)
    # Then none of them loaded the X-Ray SDK, Powertools' parser models or batch utility
    assert {name: loaded[0] for name, loaded in handler_modules.items()} == {
        name: [] for name in HANDLERS
    }
    assert len(HANDLERS) >= 4


def test_import_and_init_leave_out_what_only_a_job_needs(
    handler_modules: dict[str, tuple[list[str], list[str]]],
) -> None:
    # Given each handler imported and its dependencies built, as its first invocation does
    # Then none of them loaded what only its jobs need
    assert {name: loaded[1] for name, loaded in handler_modules.items()} == {
        name: [] for name in HANDLERS
    }
    assert sorted(NOT_AT_INIT) == HANDLERS


def test_a_model_first_used_by_several_threads_at_once_validates_with_its_own_fields() -> None:
    # Given a model whose validator is not built yet (models are built on first use)
    class Probe(Model):
        probe_id: str
        count: int

    assert not Probe.__pydantic_complete__
    barrier = threading.Barrier(8)
    results: list[object] = []

    def first_use() -> None:
        barrier.wait()
        try:
            results.append(Probe.model_validate({"probeId": "p-1", "count": "3"}))
        except Exception as exc:  # the assertion below names it
            results.append(exc)

    # When eight threads use it for the first time together
    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then each got the model with its fields validated (never a parent's validator)
    assert results == [Probe(probe_id="p-1", count=3)] * 8
    assert Probe.__pydantic_complete__


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
