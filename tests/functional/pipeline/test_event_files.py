"""Every file in events/ is real-shaped and valid against the models our handlers parse."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.parser.models import (
    EventBridgeModel,
    LambdaFunctionUrlModel,
    SqsModel,
)
from mls_sync.config import EnvSettings, Settings, read_settings
from mls_sync.pipeline.keys import dedup_id, group_id
from mls_sync.pipeline.manual import parse_request
from mls_sync.unpublish.settings import PublisherSettings

from functions.worker.app import SyncJobRecord
from mls_sync_local.template import load_template
from tests.support.pipeline import EVENTS, load_event


def test_schedule_event() -> None:
    event = EventBridgeModel.model_validate(load_event("dispatcher.schedule.json"))
    assert event.detail_type == "Scheduled Event"
    assert event.source == "aws.events"


def test_worker_batch_is_a_fifo_batch_of_sync_jobs() -> None:
    raw = load_event("worker.sqs.json")
    SqsModel.model_validate(raw)
    for record in raw["Records"]:
        parsed = SyncJobRecord.model_validate(record)
        job = parsed.body
        assert record["attributes"]["MessageGroupId"] == group_id(job.connection_id)
        assert record["attributes"]["MessageDeduplicationId"] == dedup_id(job)
        assert record["eventSourceARN"].endswith(".fifo")


def test_manual_direct_events_parse() -> None:
    for name in ("listing", "connection", "user"):
        request = parse_request(load_event(f"manual_sync.{name}.json"))
        assert request.action == f"sync_{name}"


def test_manual_http_event_is_an_iam_signed_function_url_call() -> None:
    raw = load_event("manual_sync.http.json")
    event = LambdaFunctionUrlModel.model_validate(raw)
    assert event.requestContext.http.method == "POST"
    assert raw["requestContext"]["authorizer"]["iam"]["userArn"].startswith("arn:aws:sts::")
    assert raw["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ")
    parse_request(json.loads(raw["body"]))


def test_env_file_configures_every_function_for_a_local_moto() -> None:
    env = json.loads((EVENTS / "env.json").read_text())
    template = load_template()
    functions = {
        name: res
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }
    assert set(env) == set(functions)
    models: dict[str, type[EnvSettings]] = {"PublisherFunction": PublisherSettings}
    shared = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for name, values in env.items():
        assert values["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
        # every required variable present and valid, for the model the function reads
        read_settings(models.get(name, Settings), values)
        # and every variable the template gives the function is there
        own = (functions[name]["Properties"].get("Environment") or {}).get("Variables", {})
        assert shared | set(own) <= set(values), name
