"""`mls-sync --help` start-up: the median of 5 fresh processes, beside a bare `python -c pass`
in the same run (what the interpreter alone costs on this machine at this moment).

Goal (issue 20): <= 0.5 s. The command imports no command module for its overview
(``mls_sync_local.cli.COMMANDS``), only the one a command line names.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RUNS = 5
GOAL_SECONDS = 0.5


def _median_seconds(argv: list[str]) -> tuple[float, list[float]]:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=60)
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def run(out: Path) -> dict[str, Any]:
    del out  # bench/__main__ writes the returned figures
    entry = shutil.which("mls-sync", path=os.path.dirname(sys.executable))
    command = [entry] if entry else [sys.executable, "-m", "mls_sync_local.cli"]
    bare, bare_all = _median_seconds([sys.executable, "-c", "pass"])
    helped, help_all = _median_seconds([*command, "--help"])
    verdict = "ok" if helped <= GOAL_SECONDS else "OVER GOAL"
    print(f"python -c pass      median of {RUNS}: {bare:.3f} s")
    goal = f"goal <= {GOAL_SECONDS} s: {verdict}"
    print(f"mls-sync --help     median of {RUNS}: {helped:.3f} s  ({goal})")
    return {
        "command": " ".join([*command, "--help"]),
        "runs": RUNS,
        "bare_python_median_s": round(bare, 4),
        "bare_python_s": [round(t, 4) for t in bare_all],
        "help_median_s": round(helped, 4),
        "help_s": [round(t, 4) for t in help_all],
        "goal_s": GOAL_SECONDS,
        "within_goal": helped <= GOAL_SECONDS,
    }
