"""What the runtime knows about the stack: static facts from template.yaml (functions, their
handlers, timeouts and SQS event source mappings) and the deployed stack's names at the
local endpoint. One source: the template; nothing here lists tables or queues by hand."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mls_sync_local.errors import UsageError
from mls_sync_local.runtime.clients import client
from mls_sync_local.template import load_template, resources_of_type, translate

DEFAULT_STACK = "mls-sync-dev"
DEFAULT_REGION = "us-east-1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def stack_name(env: dict[str, str] | None = None) -> str:
    source = os.environ if env is None else env
    return source.get("MLS_SYNC_STACK") or DEFAULT_STACK


def region(env: dict[str, str] | None = None) -> str:
    source = os.environ if env is None else env
    return source.get("AWS_DEFAULT_REGION") or source.get("AWS_REGION") or DEFAULT_REGION


def require_loopback(url: str | None) -> str:
    """The endpoint, if it is a loopback HTTP(S) URL; otherwise a usage error (exit 2).

    The local runtime creates and deletes resources and replays messages: it must never be
    pointed at a real AWS account by accident.
    """
    if not url:
        raise UsageError(
            "AWS_ENDPOINT_URL is not set: the local runtime only talks to a local moto "
            "server (start one with `mls-sync local server`)"
        )
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not (
        host in LOOPBACK_HOSTS or host.startswith("127.")
    ):
        raise UsageError(f"refusing non-loopback endpoint {url!r}: the local runtime is local only")
    return url


def endpoint_from_env() -> str:
    return require_loopback(os.environ.get("AWS_ENDPOINT_URL"))


# ------------------------------------------------------------------------- static facts


@dataclass(frozen=True)
class FunctionSpec:
    """One AWS::Serverless::Function as the local runtime runs it."""

    logical_id: str
    short_name: str  # dispatcher, worker, publisher, manual-sync
    module: str  # functions.worker.app
    handler: str  # lambda_handler
    timeout_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class MappingSpec:
    """An SQS event source mapping's settings, kept from the template for the pollers
    (moto never receives the mapping itself: its own would consume the queue)."""

    logical_id: str
    function: str  # logical id of the function
    queue: str  # logical id of the queue
    batch_size: int
    max_concurrency: int | str  # a parameter's name when the template refers to one
    batching_window_seconds: int
    report_batch_item_failures: bool
    enabled: bool = True


@dataclass(frozen=True)
class TemplateFacts:
    functions: dict[str, FunctionSpec]
    mappings: dict[str, MappingSpec]
    redrive: dict[str, tuple[str, int]]  # source queue -> (dead-letter queue, maxReceiveCount)
    other_dlqs: tuple[str, ...]  # dead-letter queues of schedules / async invokes
    fifo_queues: frozenset[str]
    translated: dict[str, Any] = field(repr=False)


def _ref_name(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return str(att[0] if isinstance(att, list) else att.split(".")[0])
    return None


def _handler_module(code_uri: str, handler: str) -> tuple[str, str]:
    package = ".".join(Path(code_uri.rstrip("/")).parts)
    module, _, attr = handler.rpartition(".")
    return f"{package}.{module}", attr


@cache
def template_facts(template_path: Path | None = None) -> TemplateFacts:
    sam = load_template(template_path) if template_path else load_template()
    translated = translate(sam)
    functions: dict[str, FunctionSpec] = {}
    for logical_id, res in resources_of_type(sam, "AWS::Serverless::Function").items():
        props = res["Properties"]
        module, attr = _handler_module(props["CodeUri"], props["Handler"])
        cfn = translated["Resources"][logical_id]["Properties"]
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            short_name=Path(props["CodeUri"].rstrip("/")).name.replace("_", "-"),
            module=module,
            handler=attr,
            timeout_seconds=int(cfn.get("Timeout", 3)),
            memory_mb=int(cfn.get("MemorySize", 128)),
        )
    mappings: dict[str, MappingSpec] = {}
    for logical_id, res in resources_of_type(translated, "AWS::Lambda::EventSourceMapping").items():
        props = res["Properties"]
        queue = _ref_name(props.get("EventSourceArn"))
        function = _ref_name(props.get("FunctionName"))
        if queue is None or function is None:
            continue
        concurrency = props.get("ScalingConfig", {}).get("MaximumConcurrency", 1000)
        mappings[logical_id] = MappingSpec(
            logical_id=logical_id,
            function=function,
            queue=queue,
            batch_size=int(props.get("BatchSize", 10)),
            max_concurrency=_ref_name(concurrency) or int(concurrency),
            batching_window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures"
            in props.get("FunctionResponseTypes", []),
            enabled=bool(props.get("Enabled", True)),
        )
    redrive: dict[str, tuple[str, int]] = {}
    fifo: set[str] = set()
    for logical_id, res in resources_of_type(translated, "AWS::SQS::Queue").items():
        props = res.get("Properties", {})
        if props.get("FifoQueue"):
            fifo.add(logical_id)
        policy = props.get("RedrivePolicy")
        if policy:
            target = _ref_name(policy["deadLetterTargetArn"])
            if target:
                redrive[logical_id] = (target, int(policy["maxReceiveCount"]))
    queues = set(resources_of_type(translated, "AWS::SQS::Queue"))
    dlq_targets = {target for target, _ in redrive.values()}
    others = sorted(
        name
        for name in _referenced_names(translated, ("DeadLetterConfig", "OnFailure"))
        if name in queues and name not in dlq_targets and name not in redrive
    )
    return TemplateFacts(
        functions=functions,
        mappings=mappings,
        redrive=redrive,
        other_dlqs=tuple(others),
        fifo_queues=frozenset(fifo),
        translated=translated,
    )


def _referenced_names(node: Any, keys: tuple[str, ...], inside: bool = False) -> set[str]:
    """Logical ids referenced anywhere under a key in ``keys`` (dead-letter settings)."""
    found: set[str] = set()
    if isinstance(node, dict):
        name = _ref_name(node)
        if inside and name:
            found.add(name)
        for key, value in node.items():
            found |= _referenced_names(value, keys, inside or key in keys)
    elif isinstance(node, list):
        for value in node:
            found |= _referenced_names(value, keys, inside)
    return found


def find_function(name: str, facts: TemplateFacts | None = None) -> FunctionSpec:
    """A function by logical id (WorkerFunction), short name (worker, manual-sync) or its
    directory name (manual_sync), case-insensitively."""
    specs = (facts or template_facts()).functions
    wanted = name.strip().lower().replace("_", "-")
    for spec in specs.values():
        if wanted in (spec.logical_id.lower(), spec.short_name):
            return spec
    choices = ", ".join(sorted(s.short_name for s in specs.values()))
    raise UsageError(f"unknown function {name!r} (expected one of: {choices})")


# ----------------------------------------------------------------------- deployed facts


@dataclass(frozen=True)
class DeployedStack:
    """The deployed stack as the local endpoint describes it."""

    name: str
    endpoint_url: str
    region: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    physical_ids: dict[str, str]  # logical id -> physical id (queue URL, table name, ...)

    @classmethod
    def describe(
        cls, name: str, endpoint_url: str, region_name: str = DEFAULT_REGION
    ) -> DeployedStack:
        cfn = client("cloudformation", endpoint_url, region_name)
        try:
            stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        except cfn.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                raise UsageError(
                    f"stack {name!r} is not deployed at {endpoint_url}: run `mls-sync local deploy`"
                ) from None
            raise
        resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
        return cls(
            name=name,
            endpoint_url=endpoint_url,
            region=region_name,
            outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
            parameters={
                p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])
            },
            physical_ids={
                r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in resources
                if r.get("LogicalResourceId") and r.get("PhysicalResourceId")
            },
        )

    def physical(self, logical_id: str) -> str:
        try:
            return self.physical_ids[logical_id]
        except KeyError:
            raise UsageError(
                f"{logical_id} is not in the deployed stack {self.name!r}: "
                "run `mls-sync local deploy` again"
            ) from None

    def client(self, service: str) -> Any:
        return client(service, self.endpoint_url, self.region)

    def queue_arn(self, logical_id: str) -> str:
        url = self.physical(logical_id)
        attrs = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    def resolve_int(self, value: int | str) -> int:
        """A mapping setting: a number, or the name of a stack parameter holding one."""
        if isinstance(value, int):
            return value
        return int(self.parameters[value])
