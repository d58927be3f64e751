"""`make template-check`: the SAM translator accepts template.yaml and its promises hold.

cfn-lint (with the serverless rules) runs beside this from the Makefile.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mls_sync_local.template import load_template, resources_of_type, translate

REQUIRED = {
    "DispatcherFunction": "AWS::Lambda::Function",
    "WorkerFunction": "AWS::Lambda::Function",
    "PublisherFunction": "AWS::Lambda::Function",
    "ManualSyncFunction": "AWS::Lambda::Function",
    "SyncQueue": "AWS::SQS::Queue",
    "SyncDLQ": "AWS::SQS::Queue",
    "UnpublishQueue": "AWS::SQS::Queue",
    "UnpublishDLQ": "AWS::SQS::Queue",
    "ScheduleDLQ": "AWS::SQS::Queue",
    "EventBus": "AWS::Events::EventBus",
    "CoreLayer": "AWS::Lambda::LayerVersion",
}


def check(path: Path) -> list[str]:
    problems: list[str] = []
    translated = translate(load_template(path))
    resources = translated["Resources"]
    for logical_id, cfn_type in REQUIRED.items():
        matches = [
            n for n, r in resources.items() if n.startswith(logical_id) and r["Type"] == cfn_type
        ]
        if not matches:
            problems.append(f"{logical_id}: no {cfn_type} after translation")
    for name, fn in resources_of_type(translated, "AWS::Lambda::Function").items():
        props = fn["Properties"]
        if props.get("Runtime") != "python3.13":
            problems.append(f"{name}: runtime {props.get('Runtime')!r}, expected python3.13")
        if props.get("Architectures") != ["arm64"]:
            problems.append(f"{name}: architectures {props.get('Architectures')!r}, expected arm64")
    for name, esm in resources_of_type(translated, "AWS::Lambda::EventSourceMapping").items():
        props = esm["Properties"]
        if "ReportBatchItemFailures" not in props.get("FunctionResponseTypes", []):
            problems.append(f"{name}: SQS event source without ReportBatchItemFailures")
        if "MaximumConcurrency" not in props.get("ScalingConfig", {}):
            problems.append(f"{name}: SQS event source without maximum concurrency")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path("template.yaml")
    problems = check(path)
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{path}: SAM translation OK")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
