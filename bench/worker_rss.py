"""Peak RSS of the worker alone through the cycles of 10,000 tracked listings (issue 16).

Three processes, as in AWS: moto server in one (``worker_cost._moto_process``), the MLS
simulator in another (``bench/_rss_children.py sim``, on loopback HTTP, its clock following
real time), and the **worker in a process of its own** (``bench/_rss_children.py worker``):
a fresh interpreter that imports ``functions.worker.app`` as Lambda does, with the
worker's environment from the template (``cold_start.child_env`` and this stack's tables and
queues) and the Lambda runtime's variables, and is handed each job as the SQS event
Lambda's event source mapping would build from the message the dispatcher sent
(``dispatch.jobs_for`` through ``QueueSender``, received with every attribute, shaped by
``mls_sync_local.runtime.pollers.sqs_event``). Continuations the worker queues are handed
back the same way until the cycle has none left. This process (the harness) only seeds
moto, scripts the simulator and moves messages.

The cycles are ``worker_cost.measure``'s: first sync of 10,000, quiet, 1 % changed (60 %
re-stamped, 25 % to pending, 15 % sold with a published post each), the overlap re-read of
those changes, and the daily reconciliation (a ``reconcile`` job). Each job's slot is its
own schedule firing, 15 minutes after the previous; the MLS and the worker read real time.

**One worker process for the whole sequence**, not one per cycle: a Lambda container keeps
its memory between invocations (modules, caches, what the allocator holds), so the figure
that matches issue 16's "peak RSS of a worker cycle" in a warm container is the peak over
the sequence; a fresh process per cycle would hide what one cycle leaves to the next. The
high-water mark is reset before each cycle (``/proc/<pid>/clear_refs`` ``5`` sets
``VmHWM`` to the current RSS, Linux >= 4.0), so each row's ``peak_mb`` is the highest RSS
during that cycle's invocations and ``rise_mb`` what the cycle added to the RSS it started
from; ``sequence_peak_mb`` is the largest, and ``imported_mb`` the RSS after the import
alone (before the first invocation's init). Freed memory stays with the process (the
allocator keeps it), so a cycle after a larger one rises only above what that one left.

Earlier figures (kept in docs/performance.md for their meaning): ``worker_cost``'s RSS is
worker, simulator and harness in one process; this module used to run those cycles in one
process with the simulator and report each cycle's rise, an upper bound of the worker's.

Two choices, both switchable. Tracing is off, as in the local runtime and cold_start's goal;
``BENCH_RSS_TRACING=1`` runs as in AWS (``Tracing: Active``): the X-Ray SDK loaded, a sampled
trace header set before each invocation as the Lambda runtime does, segments sent over UDP
to a loopback sink that counts them (``xray_datagrams``: that tracing did record). The shared
MLS budget is on, as the template configures it (its table in moto, pacing at the trestle
quota in real time: ~20 s more at load 3, more on a busier machine);
``BENCH_RSS_BUDGET=0`` leaves it out (``BUDGETS_TABLE`` empty: each process keeps its own
per-token limiter).

``BENCH_RSS_SIZE`` overrides the tracked listings (default 10,000);
``BENCH_RSS_TRACEMALLOC=1`` traces the worker's allocations (slower, and tracemalloc's own
memory counts in the RSS) and prints the 15 largest by line after each cycle.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bench import cold_start, worker_cost
from mls_sync_local.runtime.handlers import process_environment

SIZE = int(os.environ.get("BENCH_RSS_SIZE", "10000"))
TRACING = os.environ.get("BENCH_RSS_TRACING") == "1"
TRACEMALLOC = os.environ.get("BENCH_RSS_TRACEMALLOC") == "1"
BUDGET = os.environ.get("BENCH_RSS_BUDGET", "1") != "0"
GOAL_MB = 100.0
ROOT = cold_start.ROOT
REGION = "us-east-1"
WORKER_TIMEOUT_S = 300  # template.yaml WorkerFunction Timeout
WORKER_MEMORY_MB = 1024  # template.yaml WorkerFunction MemorySize
MAX_INVOCATIONS = 50  # per cycle: a first sync of 10,000 takes a few


class Child:
    """A child process spoken to in JSON lines; every answer is awaited with a timeout."""

    def __init__(self, args: list[str], env: dict[str, str], log: IO[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._rss_children", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.log = log

    def read(self, timeout_s: float) -> dict[str, Any]:
        out = self.process.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout_s)
        line = out.readline() if ready else ""
        if not line:
            self.log.flush()
            self.log.seek(0)
            tail = self.log.read()[-3000:]
            raise RuntimeError(f"bench worker_rss: no answer from {self.process.args!r}:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, request: dict[str, Any], timeout_s: float = 60) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        return self.read(timeout_s)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def _child(args: list[str], env: dict[str, str]) -> Iterator[Child]:
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        child = Child(args, env, log)
        try:
            yield child
        finally:
            child.stop()


class XraySink:
    """A UDP socket on loopback standing in for the X-Ray daemon: counts what the SDK sends,
    so a tracing-on run shows that segments were recorded (and drops them)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.5)
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"
        self.datagrams = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="xray-sink", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.socket.recv(65536)
            except TimeoutError:
                continue
            self.datagrams += 1
            self.bytes += len(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


def _worker_env(stack_env: dict[str, str], moto_url: str, xray: str | None) -> dict[str, str]:
    """The worker's Lambda environment: the template's variables for this stack, what the
    Lambda runtime sets (``cold_start.child_env``), the moto endpoint, loopback allowed."""
    env = cold_start.child_env(tracing=TRACING)
    env.update(stack_env)
    env.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_LAMBDA_FUNCTION_NAME": f"{worker_cost.STACK}-WorkerFunction",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(WORKER_MEMORY_MB),
            "SECRETS_PREFIX": f"{worker_cost.STACK}/",
            "POWERTOOLS_LOG_LEVEL": "INFO",  # the template's LogLevel default
            "MLS_SYNC_ALLOW_LOOPBACK": "true",
            "BENCH_RSS_TIMEOUT_S": str(WORKER_TIMEOUT_S),
        }
    )
    if TRACEMALLOC:
        env["BENCH_RSS_TRACEMALLOC"] = "1"
    if xray is not None:
        # A sampled trace header per invocation, segments sent over UDP as to Lambda's daemon.
        env["BENCH_RSS_TRACING"] = "1"
        env["AWS_XRAY_DAEMON_ADDRESS"] = xray
    if not BUDGET:
        # Without the table each process keeps its own per-token limiter (budgets_from_settings).
        env["BUDGETS_TABLE"] = ""
    return env


def _sim_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "core"), str(ROOT)])
    return env


def _seed(stack: Any, sim: dict[str, Any]) -> None:
    """The connection, its MLS credentials and its 10,000 tracked listings, never synced."""
    from mls_sync import aws  # noqa: PLC0415
    from mls_sync.dal import ConnectionsRepo  # noqa: PLC0415
    from mls_sync.models import Connection  # noqa: PLC0415
    from mls_sync.secrets import SecretStore, mls_secret_name  # noqa: PLC0415

    arn = SecretStore(aws.secrets()).put_json(
        mls_secret_name(f"{worker_cost.STACK}/", worker_cost.CONNECTION),
        {
            "clientId": sim["client_id"],
            "clientSecret": sim["client_secret"],
            "tokenUrl": sim["token_url"],
        },
    )
    connection = Connection(
        connection_id=worker_cost.CONNECTION,
        user_id=worker_cost.USER,
        vendor="trestle",
        base_url=sim["url"],
        credentials_secret_arn=arn,
        enabled=True,
    )
    ConnectionsRepo(stack.tables.connections).create(connection)
    modified = datetime.fromisoformat(sim["modified"])
    worker_cost._store_listings(
        stack, sim["keys"], synced=False, modified=modified, now=datetime.now(UTC)
    )


class Cycles:
    """Sends each cycle's job as the dispatcher does and hands the worker its events."""

    def __init__(self, stack: Any, worker: Child, sim: Child) -> None:
        import boto3  # noqa: PLC0415

        self.stack = stack
        self.worker = worker
        self.sim = sim
        self.sqs = boto3.client("sqs")
        self.queue_url: str = stack.settings.sync_queue_url
        self.queue_arn: str = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.fired_at = datetime.now(UTC)

    def _send(self, reason: str) -> None:
        from mls_sync.models import SyncJob  # noqa: PLC0415
        from mls_sync.pipeline.keys import dedup_id, group_id, slot_of  # noqa: PLC0415
        from mls_sync.queues import OutgoingMessage, QueueSender  # noqa: PLC0415

        # Every cycle is the next schedule firing: a slot (and so a run key) of its own.
        self.fired_at += worker_cost.CYCLE
        job = SyncJob.model_validate(
            {
                "connectionId": worker_cost.CONNECTION,
                "reason": reason,
                "slot": slot_of(self.fired_at, int(worker_cost.CYCLE.total_seconds())),
                "correlationId": "bench-rss",
            }
        )
        message = OutgoingMessage(job, group_id=group_id(job.connection_id), dedup_id=dedup_id(job))
        QueueSender(self.sqs, self.queue_url).send([message])

    def _receive(self) -> list[dict[str, Any]]:
        got: Any = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=5,  # the worker's event source BatchSize
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(got.get("Messages", []))

    def run(self, name: str, reason: str = "schedule") -> dict[str, Any]:
        from mls_sync_local.runtime.pollers import sqs_event  # noqa: PLC0415

        self._send(reason)
        served = self.sim.ask({"op": "counts"})["requests"]
        before = self.worker.ask({"op": "reset"})
        started = time.perf_counter()
        invocations = 0
        failed = 0
        cpu = 0.0
        answer: dict[str, Any] = before
        while messages := self._receive():
            invocations += 1
            if invocations > MAX_INVOCATIONS:
                raise RuntimeError(f"bench worker_rss: {name} did not end")
            event = sqs_event(messages, queue_arn=self.queue_arn, region=REGION)
            answer = self.worker.ask({"op": "invoke", "event": event}, WORKER_TIMEOUT_S + 60)
            if answer["error"]:
                raise RuntimeError(f"bench worker_rss: the worker raised: {answer['error']}")
            cpu += answer["cpu_s"]
            refused = {f["itemIdentifier"] for f in answer["response"]["batchItemFailures"]}
            failed += len(refused)
            for message in messages:
                # What the event source mapping does with a partial batch response; a
                # failed one is not retried here (it would be after its visibility timeout).
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        counts = self.sim.ask({"op": "counts"})
        row: dict[str, Any] = {
            "tracked": SIZE,
            "cycle": name,
            "invocations": invocations,
            "failed_records": failed,
            "mls_requests": counts["requests"] - served,
            "worker_cpu_s": round(cpu, 3),
            "wall_s": round(time.perf_counter() - started, 1),
            "rss_before_mb": before["rss_mb"],
            "peak_mb": answer["hwm_mb"],
            "rise_mb": round(answer["hwm_mb"] - before["rss_mb"], 1),
            "rss_after_mb": answer["rss_mb"],
        }
        if TRACEMALLOC:
            row["tracemalloc"] = self.worker.ask({"op": "top", "limit": 15}, 120)
        return row


def measure(size: int) -> dict[str, Any]:
    from tests.support.stack import create_stack_resources  # noqa: PLC0415

    rows: list[dict[str, Any]] = []
    with (
        worker_cost._moto_process() as moto_url,
        process_environment(
            {
                "AWS_ENDPOINT_URL": moto_url,
                "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION),
            }
        ),
        _child(["sim", str(size)], _sim_env()) as sim,
    ):
        world = sim.read(120)
        stack = create_stack_resources(worker_cost.STACK)
        _seed(stack, world)
        keys: list[str] = world.pop("keys")
        xray = XraySink() if TRACING else None
        env = _worker_env(stack.env, moto_url, xray.address if xray else None)
        with contextlib.ExitStack() as stop, _child(["worker"], env) as worker:
            if xray is not None:
                stop.callback(xray.close)
            imported = worker.read(120)["imported"]
            cycles = Cycles(stack, worker, sim)
            rows.append(cycles.run("first sync"))
            _print(rows[-1])
            rows.append(cycles.run("quiet"))
            _print(rows[-1])
            changed = sim.ask({"op": "change", "share": 0.01})
            worker_cost._posts(stack, worker_cost._sold_ids(changed["picked"]))
            row = cycles.run("1 % changed")
            row["changed"] = len(changed["picked"])
            row["mix"] = changed["mix"]
            rows.append(row)
            _print(rows[-1])
            row = cycles.run("overlap re-read of the changes")
            row["re_read"] = len(changed["picked"])
            rows.append(row)
            _print(rows[-1])
            rows.append(cycles.run("daily reconciliation", "reconcile"))
            _print(rows[-1])
        simulator = sim.ask({"op": "counts"})
    return {
        "tracked": len(keys),
        "tracing": TRACING,
        "shared_budget": BUDGET,
        "imported_mb": imported["rss_mb"],
        "rows": rows,
        "sequence_peak_mb": max(r["peak_mb"] for r in rows),
        "largest_rise_mb": max(r["rise_mb"] for r in rows),
        "simulator_rss_mb": simulator["rss_mb"],
        "goal_mb": GOAL_MB,
        "xray_datagrams": xray.datagrams if xray else None,
        "xray_bytes": xray.bytes if xray else None,
    }


def _print(row: dict[str, Any]) -> None:
    print(
        f"  {row['tracked']:>7,} {row['cycle']:<32} MLS {row['mls_requests']:>4}"
        f"  invocations {row['invocations']:>2}  RSS before {row['rss_before_mb']:>6.1f} MB"
        f"  peak {row['peak_mb']:>6.1f} MB  rise {row['rise_mb']:>5.1f} MB"
        f"  ({row['wall_s']} s)",
        flush=True,
    )
    traced = row.get("tracemalloc", {})
    if traced:
        print(
            f"      Python heap (tracemalloc): {traced['traced_mb']} MB held after the cycle,"
            f" {traced['traced_peak_mb']} MB at its peak; largest held, by line:"
        )
    for top in traced.get("top", []):
        print(f"      {top['mb']:>7.2f} MB {top['blocks']:>8} blocks  {top['where']}")


def run(out: Path) -> dict[str, Any]:
    del out  # bench/__main__ writes the returned figures
    commit = _commit()
    figures = measure(SIZE)
    verdict = "within" if figures["sequence_peak_mb"] <= GOAL_MB else "OVER"
    if TRACEMALLOC:
        verdict = "tracemalloc's own memory included: not comparable with"
    print(
        f"  worker process alone: {figures['imported_mb']} MB after import, peak over the"
        f" sequence {figures['sequence_peak_mb']} MB ({verdict} the goal of {GOAL_MB:.0f} MB),"
        f" largest rise of a cycle {figures['largest_rise_mb']} MB"
        f" (tracing {'on' if TRACING else 'off'}, shared budget {'on' if BUDGET else 'off'};"
        " the simulator's process:"
        f" {figures['simulator_rss_mb']} MB)"
    )
    if figures["xray_datagrams"] is not None:
        print(f"  X-Ray: {figures['xray_datagrams']} datagrams, {figures['xray_bytes']:,} bytes")
    figures["load_average"] = os.getloadavg()
    figures["commit"] = commit if commit == _commit() else f"{commit}, then {_commit()}"
    return figures


def _commit() -> str:
    """HEAD, with ``+changes`` when layers/ or functions/ differ from it (other engineers
    share this working tree: the worker measured is the tree's, not only HEAD's)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "layers", "functions"],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return f"{head}+changes" if dirty else head
