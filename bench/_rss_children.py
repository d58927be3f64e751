"""The two child processes of ``bench worker_rss``: the worker alone, and the MLS simulator.

``python -m bench._rss_children worker``: a fresh interpreter that imports
``functions.worker.app`` as Lambda does and calls ``lambda_handler`` with the SQS events it
is sent, one JSON line each on stdin; its answers (peak and current RSS, CPU, the handler's
response) come back one JSON line each on the original stdout. The worker's own output (its
log lines and metrics) goes to /dev/null, as it would go to CloudWatch. Nothing else is
imported at the top of this module, so that the process holds the worker and only the worker.

``python -m bench._rss_children sim SIZE``: the MLS simulator with SIZE listings stamped a
day ago, its clock then following real time (as ``mls-sync sim mls`` does), so that the
worker's wall clock and the MLS's agree. It is scripted over the same kind of channel
(``change`` a share of the listings, ``counts`` of the requests served).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO


def _status_kb() -> dict[str, int]:
    with open("/proc/self/status", encoding="ascii") as status:
        return {
            line.split(":")[0]: int(line.split()[1])
            for line in status
            if line.startswith(("VmRSS:", "VmHWM:"))
        }


def _memory() -> dict[str, float]:
    kb = _status_kb()
    return {"rss_mb": round(kb["VmRSS"] / 1024, 1), "hwm_mb": round(kb["VmHWM"] / 1024, 1)}


def _reset_peak() -> None:
    # Writing 5 resets this process's VmHWM to its current RSS (Linux >= 4.0, proc(5)).
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


def _channel() -> TextIO:
    """The original stdout, kept for the answers; fd 1 itself then goes to /dev/null."""
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    return answers


def _answer(out: TextIO, payload: dict[str, Any]) -> None:
    out.write(json.dumps(payload, default=str) + "\n")
    out.flush()


class _Context:
    """What the Python runtime's context gives a handler (Powertools reads these)."""

    def __init__(self, timeout_s: float, memory_mb: int) -> None:
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "worker")
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = f"bench-{time.monotonic_ns()}"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _trace_header() -> str:
    """What the Lambda runtime sets before each invocation when tracing is active (a sampled
    trace: the X-Ray SDK records every call the invocation makes)."""
    root = f"1-{int(time.time()):08x}-{os.urandom(12).hex()}"
    return f"Root={root};Parent={os.urandom(8).hex()};Sampled=1"


def _top_allocations(limit: int) -> dict[str, Any]:
    import tracemalloc  # noqa: PLC0415 - only when asked for

    if not tracemalloc.is_tracing():
        return {}
    current, peak = tracemalloc.get_traced_memory()
    stats = tracemalloc.take_snapshot().statistics("lineno")[:limit]
    tracemalloc.reset_peak()
    return {
        "traced_mb": round(current / 2**20, 1),
        "traced_peak_mb": round(peak / 2**20, 1),
        "top": [
            {"where": str(s.traceback[0]), "mb": round(s.size / 2**20, 2), "blocks": s.count}
            for s in stats
        ],
    }


def worker() -> None:
    out = _channel()
    # The dev environment has libraries the Lambda layer does not (bench/cold_start.py).
    hidden = os.environ.get("BENCH_NOT_IN_LAMBDA", "")
    for name in filter(None, hidden.split(",")):
        sys.modules[name] = None  # type: ignore[assignment] # import then raises ImportError
    if os.environ.get("BENCH_RSS_TRACEMALLOC"):
        import tracemalloc  # noqa: PLC0415 - a diagnosis, off by default

        tracemalloc.start(1)
    import importlib  # noqa: PLC0415

    handler = importlib.import_module("functions.worker.app").lambda_handler
    timeout_s = float(os.environ.get("BENCH_RSS_TIMEOUT_S", "300"))
    tracing = os.environ.get("BENCH_RSS_TRACING") == "1"
    memory_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
    _answer(out, {"imported": _memory()})
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "reset":
            _reset_peak()
            _answer(out, _memory())
        elif op == "invoke":
            if tracing:
                os.environ["_X_AMZN_TRACE_ID"] = _trace_header()
            started = time.process_time()
            try:
                response = handler(request["event"], _Context(timeout_s, memory_mb))
                error = None
            except Exception as exc:
                response, error = None, f"{type(exc).__name__}: {exc}"[:500]
            cpu = time.process_time() - started
            _answer(out, {"response": response, "error": error, "cpu_s": cpu, **_memory()})
        elif op == "top":
            _answer(out, _top_allocations(int(request.get("limit", 15))))
        else:
            _answer(out, {"error": f"unknown op {op}"})


def sim(size: int) -> None:
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from bench import worker_cost  # noqa: PLC0415
    from mls_sync_local.sim import MlsSimulator  # noqa: PLC0415

    out = _channel()
    simulator = MlsSimulator(page_cap=5000, start=datetime.now(UTC) - timedelta(days=1))
    keys = simulator.add_many(size)
    modified = simulator.now
    simulator.follow(time.time)
    with simulator:
        _answer(
            out,
            {
                "url": simulator.url,
                "token_url": simulator.token_url,
                "client_id": simulator.client_id,
                "client_secret": simulator.client_secret,
                "keys": keys,
                "modified": modified.isoformat(),
            },
        )
        for line in sys.stdin:
            request = json.loads(line)
            op = request["op"]
            if op == "change":
                picked, mix = worker_cost._change(simulator, keys, float(request["share"]))
                _answer(out, {"picked": picked, "mix": mix})
            elif op == "counts":
                _answer(
                    out,
                    {
                        "requests": simulator.requests,
                        "token_requests": simulator.token_requests,
                        **_memory(),
                    },
                )
            else:
                _answer(out, {"error": f"unknown op {op}"})


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker()
    elif sys.argv[1:2] == ["sim"]:
        sim(int(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m bench._rss_children worker | sim SIZE")
