"""`mls-sync local deploy`: the stack's resources at AWS_ENDPOINT_URL, from template.yaml.

The SAM template is translated offline and created in moto's CloudFormation. What moto
cannot take is adapted here, at deploy time, never in template.yaml:

- SQS event source mappings are left out: moto's own mapping would consume (or, without
  Docker, silently delete) the messages. Their settings stay in the template for the
  pollers (`mls_sync_local.runtime.pollers`).
- Resources of types moto has no CloudFormation model for are left out (moto would skip
  them anyway), with the outputs that name them; the command lists them.
- KMS key policies given as mappings are sent as JSON strings (a moto bug).
- Function and layer code is zipped from the working tree and put in a local S3 bucket, as
  `sam package` would, because moto's Lambda reads the code from S3.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mls_sync_local.errors import CommandError, UsageError
from mls_sync_local.parameters import check_parameters
from mls_sync_local.runtime.clients import client
from mls_sync_local.runtime.moto_server import start_moto_server
from mls_sync_local.runtime.stack import (
    DeployedStack,
    endpoint_from_env,
    find_function,
    region,
    require_loopback,
    stack_name,
    template_facts,
)
from mls_sync_local.template import ROOT, load_template, parameter_defaults, translate

CODE_BUCKET = "mls-sync-local-artifacts"

# Types moto 5.x has no CloudFormation model for (checked against moto by the integration
# tests). Importing moto's model map to ask costs ~3 s, too slow for every deploy.
MOTO_UNSUPPORTED: frozenset[str] = frozenset(
    {
        "AWS::CloudWatch::Alarm",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::Lambda::Url",
        "AWS::Scheduler::Schedule",
        "AWS::SecretsManager::Secret",
        "AWS::SNS::Subscription",
        "AWS::SQS::QueuePolicy",
    }
)
STRIPPED_FOR_POLLERS = "AWS::Lambda::EventSourceMapping"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class Adapted:
    template: dict[str, Any]
    left_out: dict[str, str] = field(default_factory=dict)  # logical id -> why


@dataclass
class DeployResult:
    stack: str
    action: str  # created | updated | unchanged
    outputs: dict[str, str]
    left_out: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "action": self.action,
            "outputs": self.outputs,
            "leftOut": self.left_out,
        }


def adapt_for_moto(translated: dict[str, Any]) -> Adapted:
    """A copy of the translated template that moto's CloudFormation can create."""
    template = json.loads(json.dumps(translated))
    resources: dict[str, Any] = template["Resources"]
    left_out: dict[str, str] = {}
    for name, res in list(resources.items()):
        kind = res.get("Type", "")
        if kind == STRIPPED_FOR_POLLERS:
            left_out[name] = "run by the local pollers"
        elif kind in MOTO_UNSUPPORTED:
            left_out[name] = f"{kind} not supported by moto"
        else:
            continue
        del resources[name]
    for res in resources.values():
        depends = res.get("DependsOn")
        if isinstance(depends, list):
            res["DependsOn"] = [d for d in depends if d not in left_out]
        elif isinstance(depends, str) and depends in left_out:
            del res["DependsOn"]
        if res.get("Type") == "AWS::Lambda::Function":
            # moto ignores a function's Layers on create, and its CloudFormation update of a
            # function that has them fails half-way (HTTP 500, 'LayerVersion' object has no
            # attribute 'replace'). The handlers run in this process with the layer's package
            # importable, so the reference is dropped here: a parameter change then updates
            # the functions' environment, the rule and the stack's parameters cleanly.
            res.get("Properties", {}).pop("Layers", None)
        if res.get("Type") == "AWS::KMS::Key":
            policy = res.get("Properties", {}).get("KeyPolicy")
            if isinstance(policy, dict):
                res["Properties"]["KeyPolicy"] = json.dumps(policy)
        dangling = _references(res) & set(left_out)
        if dangling:
            raise CommandError(
                f"cannot deploy locally: a resource refers to {sorted(dangling)}, "
                "which moto cannot create"
            )
    outputs: dict[str, Any] = template.get("Outputs", {})
    for key, output in list(outputs.items()):
        if _references(output) & set(left_out):
            del outputs[key]
            left_out[f"Outputs.{key}"] = "refers to a resource left out"
    return Adapted(template=template, left_out=left_out)


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:]}
            found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def _zip_directory(path: Path, prefix: str = "") -> bytes:
    """A reproducible zip of ``path`` (fixed timestamps, sorted, no caches)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = file.relative_to(path)
            if "__pycache__" in rel.parts or file.suffix == ".pyc":
                continue
            info = zipfile.ZipInfo(f"{prefix}{rel.as_posix()}", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, file.read_bytes())
    return buffer.getvalue()


def upload_code(sam: dict[str, Any], s3: Any, root: Path = ROOT) -> None:
    """Put each function's and layer's code where the translated template points."""
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=CODE_BUCKET)
    for name, res in sam.get("Resources", {}).items():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            body = _zip_directory(root / props["CodeUri"])
        elif res.get("Type") == "AWS::Serverless::LayerVersion" and isinstance(
            props.get("ContentUri"), str
        ):
            # Python layers unpack under /opt/python.
            body = _zip_directory(root / props["ContentUri"], prefix="python/")
        else:
            continue
        s3.put_object(Bucket=CODE_BUCKET, Key=f"{name}.zip", Body=body)


def _normalised(body: Any) -> Any:
    return json.loads(body) if isinstance(body, str) else body


def deploy(
    endpoint_url: str,
    *,
    stack: str | None = None,
    region_name: str | None = None,
    parameters: dict[str, str] | None = None,
    template_path: Path | None = None,
) -> DeployResult:
    """Create (or bring up to date) the stack at a loopback endpoint; idempotent."""
    require_loopback(endpoint_url)
    name = stack or stack_name()
    region_name = region_name or region()
    sam = load_template(template_path) if template_path else load_template()
    params = {k: str(v) for k, v in {**parameter_defaults(sam), **(parameters or {})}.items()}
    problems = check_parameters(sam, parameters or {})
    if problems:
        # CloudFormation would refuse these; moto would not: refuse them before any change.
        raise UsageError("; ".join(problems))
    os.environ.setdefault("AWS_DEFAULT_REGION", region_name)
    # The translator warns about its own unpublished usage metrics: noise for our users.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    adapted = adapt_for_moto(translate(sam, params))
    body = json.dumps(adapted.template, sort_keys=True)
    cfn = client("cloudformation", endpoint_url, region_name)
    upload_code(sam, client("s3", endpoint_url, region_name))
    cfn_params = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]
    capabilities = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]

    existing = _existing_stack(cfn, name)
    if existing is None:
        cfn.create_stack(
            StackName=name, TemplateBody=body, Parameters=cfn_params, Capabilities=capabilities
        )
        action = "created"
    else:
        current_body = _normalised(cfn.get_template(StackName=name)["TemplateBody"])
        current_params = {
            p["ParameterKey"]: p["ParameterValue"] for p in existing.get("Parameters", [])
        }
        if current_body == json.loads(body) and current_params == params:
            action = "unchanged"
        else:
            cfn.update_stack(
                StackName=name, TemplateBody=body, Parameters=cfn_params, Capabilities=capabilities
            )
            action = "updated"
    described = _existing_stack(cfn, name) or {}
    status = str(described.get("StackStatus", "MISSING"))
    if not status.endswith("_COMPLETE") or "ROLLBACK" in status:
        reason = described.get("StackStatusReason") or "no reason given"
        raise CommandError(f"stack {name} is {status}: {reason}")
    deployed = DeployedStack.describe(name, endpoint_url, region_name)
    _remove_event_source_mappings(deployed)
    return DeployResult(
        stack=name, action=action, outputs=deployed.outputs, left_out=adapted.left_out
    )


def _existing_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    live = [s for s in stacks if s.get("StackStatus") != "DELETE_COMPLETE"]
    return dict(live[0]) if live else None


def _remove_event_source_mappings(deployed: DeployedStack) -> None:
    """Belt and braces: no moto mapping may consume our queues, whoever created it."""
    lam = deployed.client("lambda")
    for spec in template_facts().functions.values():
        function_name = deployed.physical_ids.get(spec.logical_id)
        if not function_name:
            continue
        found = lam.list_event_source_mappings(FunctionName=function_name)
        for mapping in found.get("EventSourceMappings", []):
            lam.delete_event_source_mapping(UUID=mapping["UUID"])


# -------------------------------------------------------------------- the environment

# Where the publisher's platform clients go (CONTRACT section 5), taken from the caller's
# environment when set there.
PLATFORM_VARIABLES: tuple[str, ...] = (
    "FACEBOOK_GRAPH_URL",
    "FACEBOOK_GRAPH_VERSION",
    "LINKEDIN_API_URL",
    "LINKEDIN_OAUTH_URL",
    "LINKEDIN_VERSION",
)


def local_environment(
    deployed: DeployedStack,
    function: str,
    *,
    overrides: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment ``function`` gets in Lambda, resolved against the deployed stack
    (table names, queue URLs, bus name, parameters), plus what the Lambda runtime itself
    sets and what local mode needs (endpoint, loopback allowed, tracing off)."""
    spec = find_function(function)
    physical = deployed.physical(spec.logical_id)
    config = deployed.client("lambda").get_function_configuration(FunctionName=physical)
    env: dict[str, str] = {
        k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": deployed.endpoint_url,
            "AWS_DEFAULT_REGION": deployed.region,
            "AWS_REGION": deployed.region,
            "AWS_LAMBDA_FUNCTION_NAME": physical,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{physical}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "MLS_SYNC_STACK": deployed.name,
            "MLS_SYNC_ALLOW_LOOPBACK": "true",
            # No X-Ray daemon here: the tracer would only complain about missing segments.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    # The template names the real platforms; the caller's shell names the simulators
    # (`mls-sync sim platforms` prints these variables), and wins.
    env.update({k: os.environ[k] for k in PLATFORM_VARIABLES if os.environ.get(k)})
    env.update(overrides or {})
    return env


# ------------------------------------------------------------------------------ CLI


def _parameters(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--parameter {pair!r}: expected NAME=VALUE")
        params[key] = value
    return params


def _run_deploy(args: argparse.Namespace) -> int:
    endpoint = endpoint_from_env()
    result = deploy(endpoint, parameters=_parameters(args.parameter))
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return 0
    print(f"stack {result.stack} at {endpoint}: {result.action}")
    for key, value in sorted(result.outputs.items()):
        print(f"  {key:28} {value}")
    if result.left_out:
        print("left out locally: " + ", ".join(sorted(result.left_out)))
    return 0


def _run_server(args: argparse.Namespace) -> int:
    server = start_moto_server(args.port)
    print(f"moto server at {server.url} (Ctrl-C to stop)")
    print(f"export AWS_ENDPOINT_URL={server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def register(subparsers: Any) -> None:
    local = subparsers.add_parser("local", help="the local stand-in for AWS (moto)")
    local_sub = local.add_subparsers(dest="local_command", metavar="ACTION", required=True)
    dep = local_sub.add_parser(
        "deploy",
        help="create the stack's resources at AWS_ENDPOINT_URL from template.yaml (idempotent)",
    )
    dep.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter override (repeatable)",
    )
    dep.add_argument("--json", action="store_true", help="print the result as JSON")
    dep.set_defaults(run=_run_deploy)
    srv = local_sub.add_parser("server", help="run a moto server on loopback in the foreground")
    srv.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    srv.set_defaults(run=_run_server)
    from mls_sync_local.runtime import sam_env  # noqa: PLC0415 - `local env-json`

    sam_env.register(local_sub)
