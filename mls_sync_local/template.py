"""template.yaml, read and translated offline: the one list of resources.

Tests build their tables from it, the local runtime deploys it into moto's CloudFormation,
and `make template-check` proves the SAM translator accepts it. No IAM or S3 calls.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _OfflinePolicies(ManagedPolicyLoader):  # type: ignore[misc]
    """The translator asks IAM for managed policy ARNs; we answer from nothing (no calls)."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return {}


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The SAM template as a dict (CloudFormation short forms like !Ref understood)."""
    parsed: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return parsed


def parameter_defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }


def translate(
    template: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    *,
    code_bucket: str = "mls-sync-local-artifacts",
) -> dict[str, Any]:
    """The plain CloudFormation the SAM transform makes of ``template``.

    Local CodeUri/ContentUri paths are rewritten to S3 locations first, as `sam package`
    does; the translator needs a region, so us-east-1 stands in when none is set.
    """
    source = copy.deepcopy(template if template is not None else load_template())
    for name, resource in source.get("Resources", {}).items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://{code_bucket}/{name}.zip"
    params = {**parameter_defaults(source), **(parameters or {})}
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    translated: dict[str, Any] = transform(source, params, _OfflinePolicies())
    return translated


def resources_of_type(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: res
        for name, res in template.get("Resources", {}).items()
        if res.get("Type") == cfn_type
    }


def table_definitions(stack: str, template: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """CreateTable arguments for every table in the template, named as the stack names them
    (``${AWS::StackName}-X``), so tests' tables cannot drift from the infrastructure."""
    tpl = template if template is not None else load_template()
    tables = []
    for res in resources_of_type(tpl, "AWS::DynamoDB::Table").values():
        props = res["Properties"]
        name = props["TableName"]
        if isinstance(name, dict) and "Fn::Sub" in name:
            name = name["Fn::Sub"].replace("${AWS::StackName}", stack)
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        tables.append(args)
    return tables


def main() -> int:
    """`python -m mls_sync_local.template`: print the translated template as JSON."""
    print(json.dumps(translate(), indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
