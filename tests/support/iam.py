"""Least privilege, checked: each function's IAM policy as the deployed template grants it,
the IAM requests an AWS API call makes, and an evaluator that says whether the policy allows
them (identity policy only: Allow statements, explicit Deny, wildcards, condition keys).

- :func:`function_policies` translates template.yaml (SAM transform, offline) and resolves
  every statement of each function's execution role for a given stack naming
  (:class:`Naming`): the resources as concrete ARN patterns, ``Fn::If`` on the template's
  conditions, parameters at their defaults unless given.
- :func:`iam_requests` turns one botocore call (service, operation, API parameters) into
  the IAM requests AWS authorises for it: a transaction is one request per item, a batch
  per table, ``SendMessageBatch`` is ``sqs:SendMessage``; with the condition keys AWS sets
  (``dynamodb:Attributes``, ``dynamodb:LeadingKeys``, ``dynamodb:ReturnValues``,
  ``events:source``, ``events:detail-type``).
- :func:`coverage` says which granted (statement, action, resource) pairs no recorded call
  used, so a policy that gains an action nothing needs fails a test.

Used by ``tests/support/iam_recorder.py`` (every handler call in the functional and
integration tiers), ``tests/support/iam_coverage.py`` (after both tiers) and
``tests/unit/test_least_privilege.py``.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from mls_sync_local.template import load_template, parameter_defaults, translate

ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"


# ------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class Request:
    """One IAM authorisation: an action on a resource with the request's condition keys
    (a list value is a multivalued key)."""

    action: str
    resource: str
    context: tuple[tuple[str, str | tuple[str, ...]], ...] = ()

    @property
    def keys(self) -> dict[str, str | tuple[str, ...]]:
        return dict(self.context)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resource": self.resource,
            "context": {k: list(v) if isinstance(v, tuple) else v for k, v in self.context},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Request:
        context = tuple(
            sorted(
                (k, tuple(v) if isinstance(v, list) else str(v))
                for k, v in data.get("context", {}).items()
            )
        )
        return cls(action=str(data["action"]), resource=str(data["resource"]), context=context)


def _ctx(**keys: str | Iterable[str] | None) -> tuple[tuple[str, str | tuple[str, ...]], ...]:
    out: list[tuple[str, str | tuple[str, ...]]] = []
    for name, value in keys.items():
        if value is None:
            continue
        key = name.replace("__", ":").replace("_", "-")
        out.append((key, value if isinstance(value, str) else tuple(sorted(set(value)))))
    return tuple(sorted(out))


_NAME = re.compile(r"#?[A-Za-z_][A-Za-z0-9_-]*")
_KEYWORDS = {
    "SET",
    "REMOVE",
    "ADD",
    "DELETE",
    "AND",
    "OR",
    "NOT",
    "BETWEEN",
    "IN",
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
    "size",
    "if_not_exists",
    "list_append",
}


def expression_attributes(expression: str | None, names: Mapping[str, str] | None) -> set[str]:
    """Top-level attribute names an update, condition or projection expression names
    (``#n`` placeholders resolved; values ``:v`` and functions left out)."""
    if not expression:
        return set()
    found: set[str] = set()
    # Values (:v) and string literals never name attributes.
    text = re.sub(r":[A-Za-z0-9_]+", " ", expression)
    for match in _NAME.finditer(text):
        token = match.group(0)
        start = match.start()
        if start > 0 and text[start - 1] in ".":
            continue  # a nested path's later part: only the top level counts
        if token in _KEYWORDS or token.upper() in {"SET", "REMOVE", "ADD", "DELETE"}:
            continue
        if token.startswith("#"):
            found.add((names or {}).get(token, token))
        else:
            found.add(token)
    return found


def _av_string(value: Any) -> str:
    """A key attribute's value as a string, typed ({"S": ...}) or not (the resource layer
    serialises after us)."""
    if isinstance(value, Mapping) and len(value) == 1:
        return str(next(iter(value.values())))
    return str(value)


@dataclass(frozen=True)
class Naming:
    """How a deployed stack names things: what the template's ``${AWS::StackName}`` and
    parameters become. Tests name their stack in the environment the handlers read."""

    stack: str
    environment: str = "dev"
    region: str = REGION
    account: str = ACCOUNT
    parameters: tuple[tuple[str, str], ...] = ()

    def table_arn(self, table: str) -> str:
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{table}"


def table_name_from(value: str) -> str:
    return value.rsplit(":table/", 1)[-1].split("/", 1)[0] if ":table/" in value else value


def _hash_keys() -> dict[str, str]:
    """Table name suffix (``-Listings``) → its partition key attribute."""
    found: dict[str, str] = {}
    for res in load_template()["Resources"].values():
        if res.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = res["Properties"]
        name = props["TableName"]
        suffix = name["Fn::Sub"].replace("${AWS::StackName}", "") if isinstance(name, dict) else ""
        for key in props["KeySchema"]:
            if key["KeyType"] == "HASH":
                found[suffix] = key["AttributeName"]
    return found


HASH_KEYS = _hash_keys()


def _leading_keys(table: str, key: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    if not key:
        return None
    for suffix, attribute in HASH_KEYS.items():
        if suffix and table.endswith(suffix) and attribute in key:
            return (_av_string(key[attribute]),)
    return None


def _item_request(action: str, table: str, params: Mapping[str, Any], naming: Naming) -> Request:
    names = params.get("ExpressionAttributeNames")
    attributes: set[str] = set()
    key = params.get("Key")
    if action == "PutItem":
        item = params.get("Item") or {}
        attributes |= set(item)
        key = item
    else:
        attributes |= set(key or {})
    attributes |= expression_attributes(params.get("UpdateExpression"), names)
    attributes |= expression_attributes(params.get("ConditionExpression"), names)
    projection = params.get("ProjectionExpression")
    attributes |= expression_attributes(projection, names)
    # GetItem without a projection reads every attribute: AWS leaves the key unset then.
    reads_all = action in {"GetItem"} and not projection
    return Request(
        action=f"dynamodb:{action}",
        resource=naming.table_arn(table_name_from(table)),
        context=_ctx(
            dynamodb__Attributes=None if reads_all else attributes,
            dynamodb__LeadingKeys=_leading_keys(table, key),
            dynamodb__ReturnValues=params.get("ReturnValues"),
        ),
    )


_TRANSACT = {
    "ConditionCheck": "ConditionCheckItem",
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "Get": "GetItem",
}
_SQS_ACTION = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def queue_arn(queue_url: str, naming: Naming) -> str:
    path = urlsplit(queue_url).path.strip("/").split("/")
    account, name = (path[-2], path[-1]) if len(path) >= 2 else (naming.account, path[-1])
    return f"arn:aws:sqs:{naming.region}:{account}:{name}"


def secret_arn(secret_id: str, naming: Naming) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    # A name: the secret's ARN ends in a dash and six random characters.
    return f"arn:aws:secretsmanager:{naming.region}:{naming.account}:secret:{secret_id}-AbCdEf"


def iam_requests(
    service: str, operation: str, params: Mapping[str, Any], naming: Naming
) -> list[Request]:
    """The IAM requests AWS authorises for one API call."""
    if service == "dynamodb":
        if operation in {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}:
            return [_item_request(operation, params["TableName"], params, naming)]
        if operation in {"Query", "Scan"}:
            arn = naming.table_arn(table_name_from(params["TableName"]))
            if params.get("IndexName"):
                arn = f"{arn}/index/{params['IndexName']}"
            return [
                Request(
                    action=f"dynamodb:{operation}",
                    resource=arn,
                    context=_ctx(dynamodb__Select=params.get("Select")),
                )
            ]
        if operation in {"BatchGetItem", "BatchWriteItem"}:
            return [
                Request(f"dynamodb:{operation}", naming.table_arn(table_name_from(table)))
                for table in params.get("RequestItems", {})
            ]
        if operation in {"TransactWriteItems", "TransactGetItems"}:
            found = []
            for entry in params.get("TransactItems", []):
                for kind, item in entry.items():
                    found.append(_item_request(_TRANSACT[kind], item["TableName"], item, naming))
            return found
        if operation == "DescribeTable":
            return [Request("dynamodb:DescribeTable", naming.table_arn(params["TableName"]))]
    if service == "sqs":
        action = _SQS_ACTION.get(operation, operation)
        if "QueueUrl" in params:
            return [Request(f"sqs:{action}", queue_arn(params["QueueUrl"], naming))]
        if "QueueName" in params:
            arn = f"arn:aws:sqs:{naming.region}:{naming.account}:{params['QueueName']}"
            return [Request(f"sqs:{action}", arn)]
    if service == "events" and operation == "PutEvents":
        found = []
        for entry in params.get("Entries", []):
            bus = entry.get("EventBusName") or "default"
            arn = (
                bus
                if bus.startswith("arn:")
                else f"arn:aws:events:{naming.region}:{naming.account}:event-bus/{bus}"
            )
            found.append(
                Request(
                    "events:PutEvents",
                    arn,
                    _ctx(
                        events__source=entry.get("Source"),
                        events__detail_type=entry.get("DetailType"),
                    ),
                )
            )
        return found
    if service == "secretsmanager":
        secret = params.get("SecretId") or params.get("Name")
        if isinstance(secret, str):
            return [Request(f"secretsmanager:{operation}", secret_arn(secret, naming))]
    return [Request(f"{service}:{operation}", "*")]


# ------------------------------------------------------------------------------ policies


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    """(operator, key, values)"""
    sid: str = ""


@dataclass(frozen=True)
class FunctionPolicy:
    function: str
    role: str
    statements: tuple[Statement, ...]
    managed: tuple[str, ...] = ()


class PolicyError(ValueError):
    """The template holds something this evaluator does not model (it never guesses)."""


class _Resolver:
    """Resolves the intrinsic functions a translated template's role uses."""

    def __init__(self, template: Mapping[str, Any], naming: Naming) -> None:
        self.template = template
        self.naming = naming
        defaults = {k: str(v) for k, v in parameter_defaults(dict(template)).items()}
        self.parameters = {
            **defaults,
            "Environment": naming.environment,
            **dict(naming.parameters),
        }
        self.resources: Mapping[str, Any] = template["Resources"]

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.naming.stack,
            "AWS::Region": self.naming.region,
            "AWS::AccountId": self.naming.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def ref(self, name: str) -> Any:
        pseudo = self.pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameters:
            return self.parameters[name]
        res = self.resources.get(name)
        if res is None:
            raise PolicyError(f"Ref to unknown {name}")
        kind = res["Type"]
        props = res.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            return self.value(props["TableName"])
        if kind == "AWS::SQS::Queue":
            return (
                f"https://sqs.{self.naming.region}.amazonaws.com/{self.naming.account}/"
                f"{self.value(props['QueueName'])}"
            )
        if kind == "AWS::Lambda::Function":
            return self.value(props["FunctionName"])
        if kind == "AWS::Events::EventBus":
            return self.value(props["Name"])
        raise PolicyError(f"Ref to {kind} {name} not modelled")

    def get_att(self, name: str, attribute: str) -> str:
        res = self.resources.get(name)
        if res is None:
            raise PolicyError(f"GetAtt on unknown {name}")
        kind = res["Type"]
        props = res.get("Properties", {})
        n = self.naming
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return n.table_arn(str(self.value(props["TableName"])))
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return f"arn:aws:sqs:{n.region}:{n.account}:{self.value(props['QueueName'])}"
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return str(self.value(props["QueueName"]))
        if kind == "AWS::Events::EventBus" and attribute == "Name":
            return str(self.value(props["Name"]))
        if kind == "AWS::Events::EventBus" and attribute == "Arn":
            return f"arn:aws:events:{n.region}:{n.account}:event-bus/{self.value(props['Name'])}"
        if kind == "AWS::Events::Rule" and attribute == "Arn":
            return f"arn:aws:events:{n.region}:{n.account}:rule/{n.stack}-{name}"
        if kind == "AWS::Lambda::Function" and attribute == "Arn":
            fn = self.value(props["FunctionName"])
            return f"arn:aws:lambda:{n.region}:{n.account}:function:{fn}"
        raise PolicyError(f"GetAtt {name}.{attribute} ({kind}) not modelled")

    def sub(self, text: str, local: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in local:
                return str(self.value(local[token]))
            if "." in token and not token.startswith("AWS::"):
                name, attribute = token.split(".", 1)
                return self.get_att(name, attribute)
            return str(self.ref(token))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Sub":
                text, local = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                return self.sub(text, local)
            if key == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(p) for p in self.value(parts))
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise PolicyError(f"{key} not modelled")
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


class _NoValue:
    pass


_NO_VALUE: Any = _NoValue()


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),)


def _statements(document: Mapping[str, Any]) -> Iterator[Statement]:
    raw = document.get("Statement", [])
    for st in raw if isinstance(raw, list) else [raw]:
        if "NotAction" in st or "NotResource" in st:
            raise PolicyError("NotAction/NotResource not modelled")
        conditions = tuple(
            (operator, key, _strings(values))
            for operator, keys in sorted(st.get("Condition", {}).items())
            for key, values in sorted(keys.items())
        )
        yield Statement(
            effect=st["Effect"],
            actions=_strings(st.get("Action")),
            resources=_strings(st.get("Resource")),
            conditions=conditions,
            sid=str(st.get("Sid", "")),
        )


@cache
def translated_template(parameters: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return translate(parameters=dict(parameters))


def function_policies(
    naming: Naming, template: Mapping[str, Any] | None = None
) -> dict[str, FunctionPolicy]:
    """Each function's (logical id) execution-role statements, resolved for ``naming``."""
    source = template if template is not None else translated_template(naming.parameters)
    resolver = _Resolver(source, naming)
    policies: dict[str, FunctionPolicy] = {}
    for name, res in source["Resources"].items():
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        role_ref = res["Properties"]["Role"]
        role = role_ref["Fn::GetAtt"][0] if isinstance(role_ref, dict) else None
        if role is None or role not in source["Resources"]:
            raise PolicyError(f"{name}: role {role_ref!r} not in the template")
        props = resolver.value(copy.deepcopy(source["Resources"][role]["Properties"]))
        statements: list[Statement] = []
        for policy in props.get("Policies", []):
            statements.extend(_statements(policy["PolicyDocument"]))
        policies[name] = FunctionPolicy(
            function=name,
            role=role,
            statements=tuple(statements),
            managed=tuple(str(m) for m in props.get("ManagedPolicyArns", [])),
        )
    return policies


@cache
def cached_policies(naming: Naming) -> dict[str, FunctionPolicy]:
    return function_policies(naming)


# ------------------------------------------------------------------------------ evaluation

_OPERATOR = re.compile(
    r"^(?:(ForAllValues|ForAnyValue):)?"
    r"(StringEquals|StringNotEquals|StringLike|StringNotLike|ArnEquals|ArnLike|Bool)"
    r"(IfExists)?$"
)


def _match(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _base_holds(base: str, value: str, wanted: tuple[str, ...]) -> bool:
    if base in {"StringEquals", "Bool"}:
        return value in wanted
    if base == "StringNotEquals":
        return value not in wanted
    if base in {"StringLike", "ArnLike", "ArnEquals"}:
        return any(_match(w, value) for w in wanted)
    if base == "StringNotLike":
        return not any(_match(w, value) for w in wanted)
    raise PolicyError(f"operator {base} not modelled")


def condition_holds(
    operator: str, key: str, wanted: tuple[str, ...], context: Mapping[str, Any]
) -> bool:
    parsed = _OPERATOR.match(operator)
    if parsed is None:
        raise PolicyError(f"condition operator {operator} not modelled")
    qualifier, base, if_exists = parsed.groups()
    present = key in context
    value = context.get(key)
    if qualifier == "ForAllValues":
        # AWS: true when the key is absent or every value is among the wanted ones.
        values = _strings(list(value)) if isinstance(value, tuple) else _strings(value)
        return all(_base_holds(base, v, wanted) for v in values)
    if qualifier == "ForAnyValue":
        values = _strings(list(value)) if isinstance(value, tuple) else _strings(value)
        return any(_base_holds(base, v, wanted) for v in values)
    if not present:
        return bool(if_exists)
    if isinstance(value, tuple):
        raise PolicyError(f"{key} is multivalued: use ForAllValues/ForAnyValue")
    return _base_holds(base, str(value), wanted)


def statement_allows(statement: Statement, request: Request) -> bool:
    if not any(_match(a.lower(), request.action.lower()) for a in statement.actions):
        return False
    if not any(_match(r, request.resource) for r in statement.resources):
        return False
    context = request.keys
    return all(condition_holds(op, key, vals, context) for op, key, vals in statement.conditions)


def allowed(policy: FunctionPolicy, request: Request) -> bool:
    if policy.managed:
        raise PolicyError(f"{policy.function}: managed policies {policy.managed} not modelled")
    if any(s.effect == "Deny" and statement_allows(s, request) for s in policy.statements):
        return False
    return any(s.effect == "Allow" and statement_allows(s, request) for s in policy.statements)


# ------------------------------------------------------------------------------ coverage


@dataclass(frozen=True)
class Grant:
    """One action on one resource pattern of one statement."""

    function: str
    statement: int
    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.function}: {self.action} on {self.resource} (statement {self.statement})"


@dataclass(frozen=True)
class Use:
    """A recorded call's IAM request, in the naming of the test that made it."""

    function: str
    naming: Naming
    request: Request


@dataclass
class Coverage:
    unused: list[Grant] = field(default_factory=list)
    denied: list[Use] = field(default_factory=list)


def grants(policy: FunctionPolicy) -> Iterator[Grant]:
    for index, st in enumerate(policy.statements):
        if st.effect != "Allow":
            continue
        for action in st.actions:
            for resource in st.resources:
                yield Grant(policy.function, index, action, resource)


def coverage(
    uses: Iterable[Use],
    *,
    exempt_for: Callable[[str, str, str], str | None] = lambda _f, _a, _r: None,
    policies_for: Callable[[Naming], dict[str, FunctionPolicy]] | None = None,
) -> Coverage:
    """Grants no use exercised (unless ``exempt_for(function, action, resource)`` gives the
    reason AWS needs it without our code calling it), and uses the policy denies."""
    resolve = policies_for or cached_policies
    result = Coverage()
    used: set[tuple[str, int, str, int]] = set()
    namings: set[Naming] = set()
    for use in uses:
        namings.add(use.naming)
        policy = resolve(use.naming)[use.function]
        if not allowed(policy, use.request):
            result.denied.append(use)
            continue
        for index, st in enumerate(policy.statements):
            if st.effect != "Allow" or not statement_allows(st, use.request):
                continue
            for action in st.actions:
                if not _match(action.lower(), use.request.action.lower()):
                    continue
                for r_index, resource in enumerate(st.resources):
                    if _match(resource, use.request.resource):
                        used.add((use.function, index, action, r_index))
    naming = min(namings, key=repr) if namings else Naming(stack="mls-sync-test")
    for policy in resolve(naming).values():
        for grant in grants(policy):
            r_index = policy.statements[grant.statement].resources.index(grant.resource)
            if (policy.function, grant.statement, grant.action, r_index) in used:
                continue
            if exempt_for(policy.function, grant.action, grant.resource) is None:
                result.unused.append(grant)
    return result
