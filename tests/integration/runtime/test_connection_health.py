"""An on-call engineer's view of connections, locally: a healthy one, one whose MLS is down,
one with a bad token (and one the local guard blocks), driven through schedule ticks by the
real dispatcher and worker code on a moto server.

Checked at each step: the health fields the worker writes on each connection, the
dispatcher's health metrics (as the local CloudWatch holds them), tick's failure lines
naming the connection and the cause, `mls-sync status`, and `dlq list`. Clocks are injected
(the handlers' deps), so "two periods later" takes no time; the MLS client's retries do not
sleep.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mls_sync import aws
from mls_sync.config import get_settings
from mls_sync.dal import ConnectionsRepo
from mls_sync.dal.base import Tables
from mls_sync.models import Connection
from mls_sync.pipeline.deps import build_sync_deps
from mls_sync.pipeline.sync import replication_client_factory
from mls_sync.queues import QueueSender
from mls_sync.reso.limits import RateLimiter
from mls_sync.reso.profiles import Quotas
from mls_sync.secrets import SecretStore
from mls_sync.timeutil import format_utc

from mls_sync_local import status
from mls_sync_local.portfolio import Portfolio
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.dlq import list_dead_letters
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.moto_server import moto_server
from mls_sync_local.runtime.tick import TickSummary, run_tick
from mls_sync_local.seed import Seeder, stack_tables
from mls_sync_local.sim.mls import MlsSimulator
from tests.support.clock import FakeMonotonic

STACK = "mls-sync-health-test"
PERIOD = timedelta(minutes=15)
HEALTHY, DOWN, BAD_TOKEN, FAR = "c-healthy", "c-zoe", "c-badtoken", "c-far"
REFUSED = "MLS unreachable: connection refused (5 attempts)"
UNAUTHORISED = "MLS refused the credentials (401 invalid_token)"
BLOCKED = "blocked: not a loopback host"


@dataclass
class Clock:
    """The time the handlers see (the tick's firing), and their monotonic clock."""

    now: datetime
    mono: FakeMonotonic

    def move_to(self, when: datetime) -> None:
        self.mono.advance((when - self.now).total_seconds())
        self.now = when


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _handlers(clock: Clock) -> dict[str, Callable[[dict[str, Any], Any], Any]]:
    """The real dispatcher and worker (their `handle`, then the metrics flush that
    `lambda_handler`'s decorator does), with the test's clocks and no sleeping retries."""
    from functions.dispatcher import app as dispatcher_app  # noqa: PLC0415
    from functions.worker import app as worker_app  # noqa: PLC0415

    def in_function_environment() -> None:
        # As in a fresh container: the namespace the function's environment names (this
        # test process may have imported the modules under another).
        for app in (dispatcher_app, worker_app):
            app.metrics.namespace = os.environ["POWERTOOLS_METRICS_NAMESPACE"]

    def dispatcher(event: dict[str, Any], context: Any) -> Any:
        in_function_environment()
        # what lambda_handler's inject_lambda_context adds: the log group follows it
        dispatcher_app.logger.append_keys(function_name=context.function_name)
        settings = get_settings()
        deps = dispatcher_app.DispatcherDeps(
            connections=ConnectionsRepo(Tables.from_settings(settings).connections),
            sync_queue=QueueSender(aws.sqs(), settings.sync_queue_url),
            period_seconds=settings.period_seconds,
            clock=lambda: clock.now,
        )
        try:
            return dispatcher_app.handle(event, context, deps)
        finally:
            dispatcher_app.metrics.flush_metrics()

    def worker(event: dict[str, Any], context: Any) -> Any:
        in_function_environment()
        deps = build_sync_deps()
        deps.client_factory = replication_client_factory(
            SecretStore(aws.secrets()),
            sleep=lambda _seconds: None,
            monotonic=clock.mono,
            limiter=RateLimiter(Quotas(), monotonic=clock.mono),
            allow_loopback=True,
        )
        deps.clock = lambda: clock.now
        deps.monotonic = clock.mono
        try:
            return worker_app.handle(event, context, deps)
        finally:
            worker_app.metrics.flush_metrics()

    return {"DispatcherFunction": dispatcher, "WorkerFunction": worker}


@dataclass
class Env:
    endpoint: str
    runtime: LocalRuntime
    clock: Clock

    def tick(self, when: datetime) -> TickSummary:
        self.clock.move_to(when)
        return run_tick(self.runtime, fired_at=when, handler_output=io.StringIO())

    def connection(self, connection_id: str) -> Connection:
        found = ConnectionsRepo(stack_tables(STACK).connections).get(connection_id)
        assert found is not None
        return found

    def gauge(self, name: str, at: datetime) -> float | None:
        """The dispatcher's health metric of the firing at ``at``, from the local CloudWatch."""
        answer = self.runtime.deployed.client("cloudwatch").get_metric_statistics(
            Namespace="MlsSync",
            MetricName=name,
            Dimensions=[{"Name": "service", "Value": "mls-sync"}],
            StartTime=at - timedelta(minutes=1),
            EndTime=at + timedelta(minutes=5),
            Period=60,
            Statistics=["Maximum"],
        )
        points = answer.get("Datapoints", [])
        return max(float(p["Maximum"]) for p in points) if points else None

    def log_lines(self, function: str, message: str) -> list[dict[str, Any]]:
        logs = self.runtime.deployed.client("logs")
        group = f"/aws/lambda/{self.runtime.deployed.physical(function)}"
        events = logs.filter_log_events(logGroupName=group)["events"]
        records = [json.loads(e["message"]) for e in events]
        return [r for r in records if r.get("message") == message]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with moto_server() as url, MlsSimulator() as sim:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("MLS_SYNC_STACK", STACK)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        aws.reset_clients()
        deploy(url, stack=STACK)
        token = sorted(sim.static_tokens)[0]
        connections = [
            (HEALTHY, sim.url, token),
            (DOWN, f"http://127.0.0.1:{_closed_port()}", token),  # nothing listens there
            (BAD_TOKEN, sim.url, "not-a-token-the-mls-knows"),
            (FAR, "https://mls.example.com", token),  # a real host: the local guard refuses
        ]
        portfolio = Portfolio.model_validate(
            {
                "users": [{"userId": "u-1"}],
                "connections": [
                    {"connectionId": cid, "userId": "u-1", "vendor": "reso", "baseUrl": base,
                     "credentials": {"token": secret}}
                    for cid, base, secret in connections
                ],
            }
        )  # fmt: skip
        Seeder(stack_tables(STACK), SecretStore(aws.secrets()), STACK).seed(portfolio)
        start = datetime.now(UTC).replace(second=0, microsecond=0)
        clock = Clock(now=start, mono=FakeMonotonic())
        runtime = LocalRuntime.connect(url, stack=STACK, handlers=_handlers(clock))
        yield Env(url, runtime, clock)
    aws.reset_clients()


def _status(now: datetime, *, as_json: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = status.run(argparse.Namespace(json=as_json), out=out, now=now)
    return code, out.getvalue()


@pytest.mark.timeout(300)  # ~40 s alone; three ticks, each with three deliveries that fail
def test_health_of_a_healthy_a_down_and_a_refused_connection(env: Env) -> None:
    t0 = env.clock.now
    # When the schedule fires once
    first = env.tick(t0)
    # Then tick's failure lines name each failing connection and its cause, and nothing
    # anonymous ("WorkerFunction: 1 of 1 failed") is left
    assert first.failure_notes == [
        f"{BAD_TOKEN}: {UNAUTHORISED}",
        f"{FAR}: {BLOCKED}",
        f"{DOWN}: {REFUSED}",
    ]
    assert first.failed
    assert "! c-zoe: MLS unreachable: connection refused (5 attempts)" in first.render()
    # And the worker recorded each connection's health
    healthy = env.connection(HEALTHY)
    assert healthy.last_outcome == "succeeded"
    assert healthy.last_success_at == healthy.last_attempt_at
    assert (healthy.consecutive_failures, healthy.lag_seconds) == (0, 0)
    down = env.connection(DOWN)
    assert down.last_success_at is None
    assert down.consecutive_failures == 3  # SyncQueue's three deliveries, then the DLQ
    assert down.failing_since == format_utc(t0)
    assert down.last_error is not None
    assert (down.last_error.error_class, down.last_error.message) == ("MlsUnavailable", REFUSED)
    refused = env.connection(BAD_TOKEN).last_error
    assert refused is not None
    assert (refused.error_class, refused.message) == ("MlsAuthError", UNAUTHORISED)
    far = env.connection(FAR).last_error
    assert far is not None
    assert far.message == BLOCKED
    # And `dlq list` names the dead letters' connections, receive counts and last errors
    dead = {d["queue"]: d for d in list_dead_letters(env.runtime.deployed, peek=10)}["SyncDLQ"]
    assert dead["count"] == 3
    letters = {m["connectionId"]: m for m in dead["messages"]}
    assert set(letters) == {DOWN, BAD_TOKEN, FAR}
    assert letters[DOWN]["receiveCount"] == 3
    assert letters[DOWN]["lastError"] == REFUSED

    # When the schedule fires one period later
    env.tick(t0 + PERIOD)
    # Then the dispatcher counted three failing connections, none stale yet
    assert env.gauge("ConnectionsFailing", t0 + PERIOD) == 3
    assert env.gauge("ConnectionsStale", t0 + PERIOD) == 0
    assert env.gauge("ConnectionsBraked", t0 + PERIOD) == 0
    assert env.gauge("ConnectionsDisabled", t0 + PERIOD) == 0
    assert env.connection(DOWN).consecutive_failures == 6

    # When it fires again, more than two periods after the failures began
    late = t0 + 2 * PERIOD + timedelta(minutes=1)
    third = env.tick(late)
    # Then those three are stale as well as failing; the healthy one is neither
    assert env.gauge("ConnectionsStale", late) == 3
    assert env.gauge("ConnectionsFailing", late) == 3
    # (after three failures the circuit breaker opened; the cause stays the root one)
    assert [n for n in third.failure_notes if n.startswith(DOWN)] == [
        f"{DOWN}: {REFUSED}; circuit open, no request sent"
    ]
    assert env.connection(HEALTHY).consecutive_failures == 0
    assert env.connection(DOWN).lag_seconds == int((late - t0).total_seconds())
    # and the dispatcher logged which ones, with the cause (the dashboard's log widget)
    unhealthy = env.log_lines("DispatcherFunction", "connection unhealthy")
    latest = {line["connectionId"]: line for line in unhealthy}
    assert latest[DOWN]["health"] == "stale,failing"
    assert latest[DOWN]["cause"].startswith(REFUSED)
    assert HEALTHY not in latest
    failing = env.log_lines("WorkerFunction", "connection failing")
    assert {line["connectionId"] for line in failing} == {DOWN, BAD_TOKEN, FAR}

    # When the on-call engineer asks for the status
    code, text = _status(late + timedelta(minutes=1))
    # Then it exits 1 and shows each connection's health, lag and cause
    assert code == 1
    lines = text.splitlines()
    health = lines[0].split().index("HEALTH")
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert rows[HEALTHY].split()[health] == "ok"
    assert rows[DOWN].split()[health] == "stale,failing"
    assert rows[DOWN].endswith(f"{REFUSED}; circuit open, no request sent")
    assert rows[BAD_TOKEN].endswith(UNAUTHORISED)
    assert f"  {BLOCKED}" in rows[FAR]
    assert "32m" in rows[DOWN]  # lag: since its first failed attempt
    assert text.splitlines()[-1].startswith("4 connection(s): 1 ok, 3 stale, 3 failing")
    code, document = _status(late + timedelta(minutes=1), as_json=True)
    parsed = {c["connectionId"]: c for c in json.loads(document)["connections"]}
    assert parsed[DOWN]["health"] == ["stale", "failing"]
    assert parsed[DOWN]["consecutiveFailures"] == 9
    assert parsed[DOWN]["lastError"]["errorClass"] == "MlsUnavailable"
    assert parsed[HEALTHY]["health"] == ["ok"]
