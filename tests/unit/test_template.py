"""template.yaml keeps the promises the code relies on: queues outlast their functions,
every function logs with retention, every dead-letter queue has an alarm, and the
dashboard charts metrics the handlers really emit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

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


# Metric names built at run time (f"Sync_{outcome}"): each prefix and the values it takes.
# A new f-string prefix fails the test until it is listed here.
def _expansions() -> dict[str, tuple[str, ...]]:
    from mls_sync.pipeline.sync import Outcome  # noqa: PLC0415
    from mls_sync.unpublish.service import Result  # noqa: PLC0415

    return {"Sync_": get_args(Outcome), "Unpublish_": get_args(Result)}


def _emitted_metric_names() -> set[str]:
    """Every metric name a handler can emit, read from functions/ (literal names, and
    f-string prefixes expanded through the values their placeholder takes)."""
    names: set[str] = set()
    expansions = _expansions()
    for path in (ROOT / "functions").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'name="([A-Za-z_]+)"', text))
        names |= set(re.findall(r'_count\("([A-Za-z_]+)"\)', text))
        for prefix in re.findall(r'(?:name=|_count\()f"([A-Za-z_]*)\{', text):
            assert prefix in expansions, f"{path.name}: metric f-string {prefix!r}{{...}}"
            names |= {prefix + value for value in expansions[prefix]}
    return names


def _dashboard() -> list[dict[str, Any]]:
    dashboard = next(iter(resources_of_type(TEMPLATE, "AWS::CloudWatch::Dashboard").values()))
    body = re.sub(r"\$\{[^}]+\}", "x", dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    widgets: list[dict[str, Any]] = json.loads(body)["widgets"]
    return widgets


def _charted() -> set[str]:
    return {
        metric[1]
        for widget in _dashboard()
        for metric in widget["properties"].get("metrics", [])
        if metric[0] == "MlsSync"
    }


def test_dashboard_is_valid_json_and_charts_emitted_metrics() -> None:
    ours = _charted()
    assert ours, "the dashboard charts none of the service's own metrics"
    missing = ours - _emitted_metric_names()
    assert not missing, f"dashboard charts metrics no handler emits: {sorted(missing)}"
    for widget in _dashboard():
        for metric in widget["properties"].get("metrics", []):
            if metric[0] == "MlsSync":  # Powertools' one dimension set: service
                assert metric[2:4] == ["service", "mls-sync"], metric


RUNBOOK = ROOT / "docs" / "runbook.md"


def _not_charted() -> set[str]:
    """The metric names listed under the runbook's "Metrics not on the dashboard"."""
    text = RUNBOOK.read_text(encoding="utf-8")
    section = text.split("## Metrics not on the dashboard", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z_]+)` \|", section, flags=re.MULTILINE))


def test_every_emitted_metric_is_charted_or_documented_as_not_charted() -> None:
    emitted = _emitted_metric_names()
    not_charted = _not_charted()
    assert not_charted, "the runbook lists no metric as not charted"
    unaccounted = emitted - _charted() - not_charted
    assert not unaccounted, f"emitted, neither charted nor in the runbook: {sorted(unaccounted)}"
    stale = not_charted - emitted
    assert not stale, f"the runbook lists metrics no handler emits: {sorted(stale)}"
    both = not_charted & _charted()
    assert not both, f"listed as not charted but charted: {sorted(both)}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#{1,6} (.+)$", prose, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_alarm_names_a_runbook_section_that_exists() -> None:
    anchors = _anchors(RUNBOOK.read_text(encoding="utf-8"))
    alarms = resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 10
    for name, alarm in alarms.items():
        description = str(alarm["Properties"].get("AlarmDescription", ""))
        found = re.findall(r"Runbook: docs/runbook\.md#([\w\-]+)", description)
        assert found, f"{name}: its description names no runbook section"
        assert found[0] in anchors, f"{name}: docs/runbook.md has no section #{found[0]}"
        assert found[0] == name.lower(), f"{name}: points at #{found[0]}, not its own section"


def test_every_alarm_watches_a_metric_something_emits() -> None:
    emitted = _emitted_metric_names()
    for name, alarm in resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if props.get("Namespace") == "MlsSync":
            assert props["MetricName"] in emitted, f"{name}: {props['MetricName']} not emitted"
            assert props["MetricName"] in _charted(), f"{name}: alarmed but not on the dashboard"


def test_layer_requirements_are_what_the_layer_builds_from() -> None:
    layer = TEMPLATE["Resources"]["CoreLayer"]
    content = Path(ROOT, layer["Properties"]["ContentUri"])
    assert (content / "requirements.txt").is_file()
    assert (content / "mls_sync" / "__init__.py").is_file()
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"


def _max_receives(queue: str) -> int:
    return int(TEMPLATE["Resources"][queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


def test_the_code_counts_deliveries_as_the_queues_do() -> None:
    """The worker quarantines a record that fails on its last delivery, and the publisher
    records `failed` on a job's last try: both must know the redrive count of their queue,
    or a record is dead-lettered before it is quarantined (or a post never marked failed)."""
    from mls_sync.pipeline.run_state import QUARANTINE_AFTER  # noqa: PLC0415
    from mls_sync.unpublish.settings import PublisherSettings  # noqa: PLC0415

    assert _max_receives("SyncQueue") >= QUARANTINE_AFTER
    # The publisher has no count of its own: it must be told, and is told the queue's.
    assert PublisherSettings.model_fields["unpublish_max_receives"].is_required()
    publisher_env = TEMPLATE["Resources"]["PublisherFunction"]["Properties"]["Environment"]
    assert int(publisher_env["Variables"]["UNPUBLISH_MAX_RECEIVES"]) == _max_receives(
        "UnpublishQueue"
    )
