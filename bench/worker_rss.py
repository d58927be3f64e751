"""Peak RSS of each worker cycle at 10,000 tracked listings, the cycle's own rise separated.

``bench/worker_cost.py`` reports the process's high-water mark, which holds the worker, the
MLS simulator (10,000 listings in memory) and the harness together. Here the same cycles
(``worker_cost.measure``: first sync, quiet, 1 % changed, overlap re-read, daily
reconciliation; moto in its own process, the simulator in this one) run with the
high-water mark reset before each (``/proc/self/clear_refs``: ``5`` resets ``VmHWM``,
Linux >= 4.0), so that each row's peak is that cycle's alone and ``rise_mb`` is what the
cycle added to the RSS it started from. The rise includes the simulator's work for the
cycle's requests (it builds the pages the worker reads): an upper bound of the worker's.
The worker's own peak is then at most its cold-start RSS (``bench cold_start``, after the
first job's loads) plus the largest rise; ``cold_start`` measures the first, this the second.

Freed memory stays with the process (the allocator keeps it), so a cycle after a larger one
rises only above what that one left: every row is read against the first sync's.

``BENCH_RSS_SIZE`` overrides the tracked listings (default 10,000).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

from bench import worker_cost

SIZE = int(os.environ.get("BENCH_RSS_SIZE", "10000"))


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith(field))
    return int(line.split()[1]) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


def run(out: Path) -> dict[str, Any]:
    del out  # bench/__main__ writes the returned figures
    peaks: list[dict[str, float]] = []
    cycle = worker_cost._cycle  # the same cycle, wrapped

    def measured(stack: Any, sim: Any, counter: Any, reason: str = "schedule") -> dict[str, Any]:
        gc.collect()
        before = _status_mb("VmRSS:")
        _reset_peak()
        row = cycle(stack, sim, counter, reason)
        peak = _status_mb("VmHWM:")
        peaks.append({"rss_before_mb": round(before, 1), "peak_mb": round(peak, 1)})
        peaks[-1]["rise_mb"] = round(peak - before, 1)
        return row

    worker_cost._cycle = measured
    try:
        with worker_cost.CallCounter() as counter:
            rows = worker_cost.measure(SIZE, counter)
    finally:
        worker_cost._cycle = cycle
    figures = [
        {
            "tracked": row["tracked"],
            "cycle": row["cycle"],
            "mls_requests": row["mls_requests"],
            "aws_calls": row["aws_calls"],
            **peak,
        }
        for row, peak in zip(rows, peaks, strict=True)
    ]
    for f in figures:
        print(
            f"  {f['tracked']:>7,} {f['cycle']:<32} RSS before {f['rss_before_mb']:>6.1f} MB"
            f"  peak {f['peak_mb']:>6.1f} MB  rise {f['rise_mb']:>5.1f} MB"
        )
    largest = max(f["rise_mb"] for f in figures)
    print(f"  largest rise of a cycle (worker + the simulator's answers): {largest} MB")
    return {"rows": figures, "largest_rise_mb": largest, "load_average": os.getloadavg()}
