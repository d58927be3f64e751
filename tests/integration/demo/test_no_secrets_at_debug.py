"""No secret anywhere, at DEBUG (issue 19): the demo's story run through the real handlers
in the local runtime (this process), with the stack's LogLevel at DEBUG, and then every
handler log line, event, table item, dead letter and error searched for every secret the
run knew: MLS tokens and client secrets, platform access and refresh tokens, the LinkedIn
app's client secret, the tokens the simulators issued, and any Authorization value.

What is searched: what the handlers log (the Powertools service logger and the module
loggers of mls_sync, httpx and httpcore, at DEBUG), the events on the bus (a tap queue),
every item of every table of the stack, every message left in a queue, and the demo's own
output. Not searched: botocore's wire log, which only a DEBUG root logger would print and
the template never configures (docs/security.md)."""

from __future__ import annotations

import importlib
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

import mls_sync_local.demo as demo
from mls_sync_local.sim.mls import MlsSimulator

DEMO_TIMEOUT = 900
"""~150-250 s on a loaded two-core machine (the demo at DEBUG, in this process)."""

_HANDLER_LOGGERS = ("mls-sync", "mls_sync", "httpx", "httpcore", "aws_lambda_powertools")
_AUTHORIZATION = (
    # (a WWW-Authenticate challenge, `Bearer error="invalid_token"`, names no credential)
    re.compile(
        r"(?i)\bbearer\s+(?!\*{3}|\[redacted\]|<redacted>|(?:error|realm|scope)\b)"
        r"[A-Za-z0-9._~+/=-]{6,}"
    ),
    re.compile(r"(?i)\bbasic\s+[A-Za-z0-9+/]{8,}={0,2}"),
    re.compile(r"(?i)[\"']?authorization[\"']?\s*[:=]\s*[\"']?(?!\*{3})[A-Za-z]+ [^\s\"',}]{6,}"),
    re.compile(r"\bsim-[A-Za-z0-9_-]{16}\b"),  # an OAuth token the MLS simulator issued
)


class Capture(logging.Handler):
    """Every record of the handlers' loggers, with its arguments and extra fields."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.levels: set[str] = set()
        self._seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) in self._seen:  # reached through a logger and its parent
            return
        self._seen.add(id(record))
        self.levels.add(record.levelname)
        fields = {k: repr(v) for k, v in record.__dict__.items() if k not in {"msg", "args"}}
        line = f"{record.name} {record.levelname} {record.getMessage()} {fields}"
        if record.name.startswith("mls-sync"):
            # and the line as Powertools prints it in Lambda (its appended keys included)
            line += " " + logging.getLogger("mls-sync").handlers[0].format(record)
        self.lines.append(line)


@dataclass
class Seen:
    """What the run left behind, read while the moto server still runs."""

    secrets: set[str] = field(default_factory=set)
    events: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.fixture
def debug_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Seen, Capture, str, str]:
    seen = Seen()
    tap: dict[str, str] = {}
    real_deploy = demo.deploy  # type: ignore[attr-defined]
    real_verify = demo.verify
    real_issue = MlsSimulator._issue_token  # the simulator's token endpoint

    def issue(self: MlsSimulator, *args: Any, **kwargs: Any) -> Any:
        answer = real_issue(self, *args, **kwargs)
        seen.issued.update(t for t in self._tokens if t not in seen.issued)
        return answer

    def deploy_at_debug(endpoint: str, **kwargs: Any) -> Any:
        # Given the stack deployed with LogLevel DEBUG (what POWERTOOLS_LOG_LEVEL becomes)
        kwargs["parameters"] = {**(kwargs.get("parameters") or {}), "LogLevel": "DEBUG"}
        result = real_deploy(endpoint, **kwargs)
        bus = result.outputs["EventBusName"]
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="security-events-tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = boto3.client("events")
        events.put_rule(
            Name="security-tap", EventBusName=bus, EventPattern=json.dumps({"source": ["mls-sync"]})
        )
        events.put_targets(
            Rule="security-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}]
        )
        tap["url"] = url
        return result

    def verify_then_look(world: Any, stack: str) -> list[str]:
        problems: list[str] = real_verify(world, stack)
        _look_around(seen, stack, tap["url"])
        return problems

    monkeypatch.setattr(demo, "deploy", deploy_at_debug)
    monkeypatch.setattr(demo, "verify", verify_then_look)
    monkeypatch.setattr(MlsSimulator, "_issue_token", issue)

    # The handlers' service logger exists before ours is added: Powertools takes the
    # logger's first handler for its own.
    for module in ("dispatcher", "worker", "publisher", "manual_sync"):
        importlib.import_module(f"functions.{module}.app")
    capture = Capture()
    loggers = [logging.getLogger(name) for name in _HANDLER_LOGGERS]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)  # also a service logger an earlier test made at INFO
    out = io.StringIO()
    log_path = tmp_path / "handlers.log"
    try:
        result = demo.run_demo(out, log_path=log_path)
    finally:
        for lg, level in saved:
            lg.removeHandler(capture)
            lg.setLevel(level)
    assert result.converged, out.getvalue()[-3000:]
    return seen, capture, log_path.read_text(encoding="utf-8"), out.getvalue()


def _look_around(seen: Seen, stack: str, tap_url: str) -> None:
    secrets_client = boto3.client("secretsmanager")
    for listed in secrets_client.get_paginator("list_secrets").paginate():
        for entry in listed["SecretList"]:
            value = secrets_client.get_secret_value(SecretId=entry["ARN"])["SecretString"]
            for text in _strings(json.loads(value)):
                seen.secrets.add(text)
    sqs = boto3.client("sqs")
    while True:
        got = sqs.receive_message(QueueUrl=tap_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        for message in got:
            seen.events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=tap_url, ReceiptHandle=message["ReceiptHandle"])
    for url in sqs.list_queues(QueueNamePrefix=stack).get("QueueUrls", []):
        left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        seen.messages += [m["Body"] for m in left.get("Messages", [])]
    ddb = boto3.client("dynamodb")
    for table in ddb.list_tables()["TableNames"]:
        if table.startswith(f"{stack}-"):
            for page in ddb.get_paginator("scan").paginate(TableName=table):
                seen.items += page["Items"]


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_no_secret_in_any_log_event_item_or_error_at_debug(
    debug_demo: tuple[Seen, Capture, str, str],
) -> None:
    seen, capture, handler_log, output = debug_demo
    # The run really logged at DEBUG, and knew secrets to look for
    assert "DEBUG" in capture.levels
    assert '"level":"DEBUG"' in handler_log.replace(" ", "") or "DEBUG" in capture.levels
    secrets = {s for s in seen.secrets | seen.issued if len(s) >= 8 and not s.startswith("http")}
    assert len(secrets) >= 5, sorted(secrets)
    assert seen.events, "no event reached the tap"
    assert seen.items
    places = {
        "handler log": handler_log,
        "handler log records": "\n".join(capture.lines),
        "events": json.dumps(seen.events),
        "table items": json.dumps(seen.items, default=str),
        "queue messages": "\n".join(seen.messages),
        "demo output": output,
    }
    # Then no secret value appears anywhere
    leaks = [
        f"{where}: a secret of {len(secret)} characters ({secret[:3]}...)"
        for where, text in places.items()
        for secret in secrets
        if secret in text
    ]
    # and no Authorization value either
    for where, text in places.items():
        leaks.extend(
            f"{where}: {match.group(0)[:12]}... ({pattern.pattern[:30]})"
            for pattern in _AUTHORIZATION
            for match in pattern.finditer(text)
        )
    assert not leaks, "\n".join(sorted(set(leaks))[:20])
