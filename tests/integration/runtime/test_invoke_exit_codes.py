"""`mls-sync invoke` exits 1 when the handler answers a failure (statusCode >= 400 or
batchItemFailures), 0 otherwise; the answer is printed either way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mls_sync_local.cli import main
from mls_sync_local.runtime.invoke import exit_code_of
from mls_sync_local.runtime.stack import DeployedStack
from tests.integration.runtime.conftest import STACK


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        ({"action": "sync_connection", "connectionId": "no-such"}, 404, 1),
        ({"action": "sync_everything"}, 400, 1),
    ],
)
def test_invoke_exits_1_when_the_handler_answers_4xx(
    deployed: DeployedStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    event: dict[str, Any],
    status: int,
    code: int,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", deployed.endpoint_url)
    monkeypatch.setenv("MLS_SYNC_STACK", STACK)
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    # When manual-sync refuses the request
    assert main(["invoke", "manual-sync", "--event", str(path)]) == code
    # Then its answer is still on stdout, and one line on stderr says why it failed
    out, err = capsys.readouterr()
    assert json.loads(out)["statusCode"] == status
    assert f"mls-sync: manual-sync answered {status}: " in err


def test_invoke_exits_0_on_success(
    deployed: DeployedStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", deployed.endpoint_url)
    monkeypatch.setenv("MLS_SYNC_STACK", STACK)
    assert main(["invoke", "dispatcher", "--event", "events/dispatcher.schedule.json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), dict)


@pytest.mark.parametrize(
    ("result", "code"),
    [
        ({"statusCode": 202, "body": {"jobs": 1}}, 0),
        ({"statusCode": 409, "body": {"error": "disabled"}}, 1),
        ({"statusCode": 500, "body": '{"error": "boom"}'}, 1),
        ({"batchItemFailures": []}, 0),
        ({"batchItemFailures": [{"itemIdentifier": "m-1"}]}, 1),
        ({"slot": "2026-11-28T17:00:00Z"}, 0),
        (None, 0),
    ],
)
def test_exit_code_of_an_answer(result: Any, code: int) -> None:
    assert exit_code_of(result)[0] == code
