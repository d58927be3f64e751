"""The translated template deploys into moto's CloudFormation with the tables, queues,
dead-letter queues, schedule rule and event source mappings the pipeline relies on."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mls_sync_local.template import translate

STACK = "mls-sync-cfn"
BUCKET = "mls-sync-local-artifacts"
# Types moto's CloudFormation has no model for (tooling.md): left out of the test's copy.
MOTO_SKIPS = {
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::Url",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::Subscription",
    "AWS::SecretsManager::Secret",
    "AWS::Scheduler::Schedule",
}


def _refers(node: Any, names: set[str]) -> bool:
    text = json.dumps(node)
    return any(f'"{n}"' in text or f'"{n}.' in text for n in names)


def _for_moto(translated: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(json.dumps(translated))
    skipped = {n for n, r in template["Resources"].items() if r["Type"] in MOTO_SKIPS}
    for name in skipped:
        del template["Resources"][name]
    for name, output in list(template.get("Outputs", {}).items()):
        if _refers(output, skipped):
            del template["Outputs"][name]
    for res in template["Resources"].values():
        if isinstance(res.get("DependsOn"), list):
            res["DependsOn"] = [d for d in res["DependsOn"] if d not in skipped]
    return template


@pytest.fixture
def deployed() -> Iterator[dict[str, Any]]:
    translated = translate()
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
        for key in {
            f"{logical}.zip"
            for logical in (
                "CoreLayer",
                "DispatcherFunction",
                "WorkerFunction",
                "PublisherFunction",
                "ManualSyncFunction",
            )
        }:
            s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
        cfn = boto3.client("cloudformation")
        cfn.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(_for_moto(translated)),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        yield {
            "status": stack["StackStatus"],
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
            "resources": {
                r.get("LogicalResourceId"): r
                for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]
            },
        }


def test_stack_creates(deployed: dict[str, Any]) -> None:
    assert deployed["status"] == "CREATE_COMPLETE"


def test_tables_with_their_indexes(deployed: dict[str, Any]) -> None:
    ddb = boto3.client("dynamodb")
    names = set(ddb.list_tables()["TableNames"])
    expected = {
        f"{STACK}-{t}"
        for t in (
            "Connections",
            "Listings",
            "Posts",
            "PlatformAccounts",
            "StatusHistory",
            "SyncRuns",
            "Idempotency",
        )
    }
    assert expected <= names
    connections = ddb.describe_table(TableName=f"{STACK}-Connections")["Table"]
    assert {i["IndexName"] for i in connections["GlobalSecondaryIndexes"]} == {
        "byUser",
        "byEnabled",
    }
    listings = ddb.describe_table(TableName=f"{STACK}-Listings")["Table"]
    assert {i["IndexName"] for i in listings["GlobalSecondaryIndexes"]} == {
        "byConnectionKey",
        "byUser",
        "byTakedown",
    }


def test_queues_and_dead_letter_queues(deployed: dict[str, Any]) -> None:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{STACK}-sync.fifo")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert int(attrs["VisibilityTimeout"]) >= 6 * 300  # 6 x the worker's timeout
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f"{STACK}-sync-dlq.fifo")
    assert int(redrive["maxReceiveCount"]) == 3
    unpublish = sqs.get_queue_url(QueueName=f"{STACK}-unpublish")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=unpublish, AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"].endswith(
        f"{STACK}-unpublish-dlq"
    )
    sqs.get_queue_url(QueueName=f"{STACK}-schedule-dlq")


def test_schedule_rule_targets_the_dispatcher_with_retry_and_dlq(deployed: dict[str, Any]) -> None:
    events = boto3.client("events")
    rules = [r for r in events.list_rules()["Rules"] if r.get("ScheduleExpression")]
    assert [r["ScheduleExpression"] for r in rules] == ["rate(15 minutes)"]
    target = events.list_targets_by_rule(Rule=rules[0]["Name"])["Targets"][0]
    assert target["Arn"].endswith(f"function:{STACK}-dispatcher")
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 3
    assert target["DeadLetterConfig"]["Arn"].endswith(f"{STACK}-schedule-dlq")
    assert boto3.client("events").describe_event_bus(Name="mls-sync-dev")["Name"] == "mls-sync-dev"


def test_event_source_mappings_report_partial_failures(deployed: dict[str, Any]) -> None:
    mappings = boto3.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    by_function = {m["FunctionArn"].rsplit(":", 1)[-1]: m for m in mappings}
    worker = by_function[f"{STACK}-worker"]
    assert worker["EventSourceArn"].endswith(f"{STACK}-sync.fifo")
    assert worker["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert worker["ScalingConfig"]["MaximumConcurrency"] == 10
    publisher = by_function[f"{STACK}-publisher"]
    assert publisher["EventSourceArn"].endswith(f"{STACK}-unpublish")
    assert publisher["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
