"""template.yaml keeps the promises the code relies on: queues outlast their functions,
every function logs with retention, every dead-letter queue has an alarm, and the
dashboard charts metrics the handlers really emit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mls_sync_local.template import ROOT, load_template, resources_of_type, translate

TEMPLATE = load_template()
TRANSLATED = translate()
RESOURCES: dict[str, Any] = TRANSLATED["Resources"]


def _ref(value: Any) -> str:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    raise AssertionError(f"not a reference: {value!r}")


def _event_source_mappings() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name, esm in resources_of_type(TRANSLATED, "AWS::Lambda::EventSourceMapping").items():
        props = esm["Properties"]
        found.append((name, _ref(props["EventSourceArn"]), props))
    return found


@pytest.mark.parametrize(("name", "queue", "props"), _event_source_mappings())
def test_queue_visibility_is_at_least_six_times_its_function_timeout(
    name: str, queue: str, props: dict[str, Any]
) -> None:
    function = _ref(props["FunctionName"])
    timeout = int(RESOURCES[function]["Properties"]["Timeout"])
    visibility = int(RESOURCES[queue]["Properties"]["VisibilityTimeout"])
    assert visibility >= 6 * timeout, f"{name}: {queue} {visibility}s < 6 x {timeout}s"
    assert "RedrivePolicy" in RESOURCES[queue]["Properties"], f"{queue} has no DLQ"


def test_every_function_has_a_log_group_with_retention() -> None:
    groups = [
        g["Properties"]["LogGroupName"]["Fn::Sub"]
        for g in resources_of_type(TEMPLATE, "AWS::Logs::LogGroup").values()
    ]
    for name in resources_of_type(TEMPLATE, "AWS::Serverless::Function"):
        assert f"/aws/lambda/${{{name}}}" in groups, f"{name} has no log group"
    for group in resources_of_type(TEMPLATE, "AWS::Logs::LogGroup").values():
        assert "RetentionInDays" in group["Properties"]


def test_every_dead_letter_queue_has_an_alarm() -> None:
    watched = set()
    for alarm in resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm").values():
        for dimension in alarm["Properties"].get("Dimensions", []):
            if dimension["Name"] == "QueueName":
                watched.add(_ref(dimension["Value"]))
        assert alarm["Properties"]["AlarmActions"], "an alarm that tells nobody"
    assert {"SyncDLQ", "UnpublishDLQ", "ScheduleDLQ"} <= watched


def _emitted_metric_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "functions").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'name="([A-Za-z]+)"', text))
        names |= set(re.findall(r'_count\("([A-Za-z]+)"\)', text))
    return names


def test_dashboard_is_valid_json_and_charts_emitted_metrics() -> None:
    dashboard = next(iter(resources_of_type(TEMPLATE, "AWS::CloudWatch::Dashboard").values()))
    body = re.sub(r"\$\{[^}]+\}", "x", dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    widgets = json.loads(body)["widgets"]
    ours = {
        metric[1]
        for widget in widgets
        for metric in widget["properties"]["metrics"]
        if metric[0] == "MlsSync"
    }
    assert ours, "the dashboard charts none of the service's own metrics"
    missing = ours - _emitted_metric_names()
    assert not missing, f"dashboard charts metrics no handler emits: {sorted(missing)}"


def test_layer_requirements_are_what_the_layer_builds_from() -> None:
    layer = TEMPLATE["Resources"]["CoreLayer"]
    content = Path(ROOT, layer["Properties"]["ContentUri"])
    assert (content / "requirements.txt").is_file()
    assert (content / "mls_sync" / "__init__.py").is_file()
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
