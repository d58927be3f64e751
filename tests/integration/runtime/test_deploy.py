"""`mls-sync local deploy` creates what template.yaml declares, and only once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from moto.cloudformation.parsing import get_model_map

from mls_sync_local.errors import UsageError
from mls_sync_local.runtime.deploy import MOTO_UNSUPPORTED, DeployResult, deploy
from mls_sync_local.runtime.stack import DeployedStack, template_facts
from mls_sync_local.template import resources_of_type
from tests.integration.runtime.conftest import STACK


def _expected_names(kind: str, name_key: str) -> set[str]:
    resources = resources_of_type(template_facts().translated, kind)
    names = set()
    for res in resources.values():
        value = res["Properties"][name_key]
        text = value["Fn::Sub"] if isinstance(value, dict) else value
        names.add(text.replace("${AWS::StackName}", STACK).replace("${Environment}", "dev"))
    return names


def test_deploy_creates_the_tables_queues_bus_and_rule_of_the_template(
    first_deploy: DeployResult, module_stack: DeployedStack
) -> None:
    # Given the stack deployed from template.yaml (fixture)
    # Then every table and queue the translated template declares exists under its name
    tables = set(module_stack.client("dynamodb").list_tables()["TableNames"])
    assert _expected_names("AWS::DynamoDB::Table", "TableName") <= tables
    queue_urls = module_stack.client("sqs").list_queues()["QueueUrls"]
    queue_names = {url.rsplit("/", 1)[-1] for url in queue_urls}
    assert _expected_names("AWS::SQS::Queue", "QueueName") <= queue_names
    # And the queues carry the template's redrive policies and FIFO settings
    sync = module_stack.client("sqs").get_queue_attributes(
        QueueUrl=module_stack.physical("SyncQueue"), AttributeNames=["All"]
    )["Attributes"]
    assert sync["FifoQueue"] == "true"
    assert json.loads(sync["RedrivePolicy"])["maxReceiveCount"] == 3
    # And the bus and the schedule rule exist
    buses = {b["Name"] for b in module_stack.client("events").list_event_buses()["EventBuses"]}
    assert "mls-sync-dev" in buses
    rules = module_stack.client("events").list_rules()["Rules"]
    assert any(r.get("ScheduleExpression") == "rate(15 minutes)" for r in rules)
    # And outputs name them for the runtime
    assert first_deploy.outputs["SyncQueueUrl"] == module_stack.physical("SyncQueue")


def test_no_event_source_mapping_reaches_moto(module_stack: DeployedStack) -> None:
    # Given the deployed stack
    # Then moto holds no mapping that could consume (or silently delete) queue messages
    mappings = module_stack.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    assert mappings == []
    # And the mappings' settings are kept for the pollers
    batch_sizes = {m.function: m.batch_size for m in template_facts().mappings.values()}
    assert batch_sizes == {"WorkerFunction": 5, "PublisherFunction": 10}


def test_second_deploy_changes_nothing(module_endpoint: str, first_deploy: DeployResult) -> None:
    # When deploying the same template again
    again = deploy(module_endpoint, stack=STACK)
    # Then nothing changes
    assert first_deploy.action == "created"
    assert again.action == "unchanged"
    assert again.outputs == first_deploy.outputs


def test_left_out_types_are_exactly_those_moto_cannot_model() -> None:
    # moto's own model map decides; our static list must agree with it for the template
    supported = set(get_model_map())
    template_types = {r["Type"] for r in template_facts().translated["Resources"].values()}
    assert {t for t in template_types if t not in supported} <= MOTO_UNSUPPORTED
    assert not (MOTO_UNSUPPORTED & supported)


def test_refuses_a_non_loopback_endpoint() -> None:
    with pytest.raises(UsageError, match="non-loopback"):
        deploy("https://cloudformation.us-east-1.amazonaws.com")


def test_cli_refuses_non_loopback_with_exit_2_and_one_line() -> None:
    # When the command is pointed at a real-looking endpoint
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://10.1.2.3:4566"}
    done = subprocess.run(
        [sys.executable, "-m", "mls_sync_local.cli", "local", "deploy"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then it exits 2 with one readable line and no traceback
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "non-loopback" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_deploy_is_idempotent_and_prints_outputs(
    module_endpoint: str, first_deploy: DeployResult
) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": module_endpoint, "MLS_SYNC_STACK": STACK}
    done = subprocess.run(
        [sys.executable, "-m", "mls_sync_local.cli", "local", "deploy", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["action"] == "unchanged"
    assert result["outputs"]["SyncRunsTableName"] == f"{STACK}-SyncRuns"
