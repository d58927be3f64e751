"""Shared test setup: tier markers from the folder, and fake AWS credentials so that a
forgotten stub can never reach a real account."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Set before any test module imports boto3.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "mls-sync-test",
        "POWERTOOLS_SERVICE_NAME": "mls-sync",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

_TIERS = ("unit", "functional", "integration")

# Every AWS call a handler makes is checked against its function's IAM policy in
# template.yaml, and recorded for `make iam-coverage` (issue 19; tests/support/iam_recorder.py).
pytest_plugins = ("tests.support.iam_recorder",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
