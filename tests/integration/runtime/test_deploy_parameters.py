"""`mls-sync local deploy --parameter` on a deployed stack: the change reaches the functions,
the schedule rule and the stack's parameters (no moto 500 half-way), a rerun says
unchanged; values the template does not allow are refused before anything changes."""

from __future__ import annotations

import pytest

from mls_sync_local.cli import main
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.stack import DeployedStack
from tests.integration.runtime.conftest import STACK

CHANGES = {
    "LogLevel": "DEBUG",
    "ScheduleExpression": "rate(5 minutes)",
    "UnpublishOnStatuses": "sold,withdrawn",
}


def test_three_parameters_update_a_deployed_stack_cleanly(deployed: DeployedStack) -> None:
    # When three parameters change on the deployed stack
    result = deploy(deployed.endpoint_url, stack=STACK, parameters=CHANGES)
    # Then the update completes
    assert result.action == "updated"
    cfn = deployed.client("cloudformation")
    (stack,) = cfn.describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert {k: params[k] for k in CHANGES} == CHANGES
    # And every function sees the new values
    runtime = LocalRuntime.connect(deployed.endpoint_url, stack=STACK)
    for function in ("dispatcher", "worker", "publisher", "manual-sync"):
        env = runtime.function_environment(function)
        assert env["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
        assert env["SCHEDULE_EXPRESSION"] == "rate(5 minutes)"
        assert env["UNPUBLISH_ON_STATUSES"] == "sold,withdrawn"
    # And the schedule rule fires on the new rate
    rules = deployed.client("events").list_rules()["Rules"]
    schedules = {r.get("ScheduleExpression") for r in rules if r.get("ScheduleExpression")}
    assert schedules == {"rate(5 minutes)"}
    # And the same parameters again change nothing, and say so
    assert deploy(deployed.endpoint_url, stack=STACK, parameters=CHANGES).action == "unchanged"


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("Environment=staging", "Environment=staging: must be one of dev, prod"),
        ("WorkerMaxConcurrency=1", "WorkerMaxConcurrency=1: must be at least 2"),
        ("WorkerMaxConcurrency=many", "WorkerMaxConcurrency=many: must be a number"),
        ("LogLevel=LOUD", "LogLevel=LOUD: must be one of DEBUG, INFO, WARNING, ERROR"),
        ("ScheduleExpression=every 5 minutes", "ScheduleExpression=every 5 minutes: "),
        ("UnpublishOnStatuses=gone", "UnpublishOnStatuses=gone: "),
        ("Nope=1", "Nope: not a parameter of template.yaml"),
    ],
)
def test_values_the_template_does_not_allow_are_refused(
    pair: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an endpoint nobody listens on: the check comes before any call
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    # When a deploy asks for a value the template does not allow
    code = main(["local", "deploy", "--parameter", pair])
    # Then it is a usage error, one line naming the parameter and the rule
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert message in err
