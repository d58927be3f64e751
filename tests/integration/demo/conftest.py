"""One run of `mls-sync demo --report FILE` as a new user runs it (a subprocess, a clean
environment, a temporary directory of its own), shared by the tests that read its output
and its report: the demo takes a minute or two, so it runs once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO_TIMEOUT = 300
"""Seconds the demo subprocess may take: it needs ~47 s of CPU and took ~100 s at a load of
7 on this two-core machine, but more than 220 s at a load of 10 (both slow tiers and other
work side by side)."""


@dataclass(frozen=True)
class DemoRun:
    done: subprocess.CompletedProcess[str]
    report: Path
    temp: Path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    base = tmp_path_factory.mktemp("demo")
    # A clean environment: no AWS endpoint, no credentials, no stack name
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLS_SYNC_"))}
    # and a temporary directory of its own (its tempfile.gettempdir()), empty to start with
    temp = base / "tmp"
    temp.mkdir()
    env["TMPDIR"] = str(temp)
    report = base / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "mls_sync_local.cli", "demo", "--report", str(report)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    return DemoRun(done=done, report=report, temp=temp)
