"""Least privilege, proven (issue 19): each function's execution role in template.yaml, as
the evaluator in tests/support/iam.py reads it, allows exactly what the handlers call.

The functional and integration tiers check every real call a handler makes against its
function's policy (tests/support/iam_recorder.py) and record them; `make test` then checks
every granted action was used (tests/support/iam_coverage.py). Here, the machinery itself:
a policy that loses an action a handler uses denies the call, and a policy that gains one
nothing uses is reported unused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mls_sync_local.template import load_template, resources_of_type, translate
from tests.support.iam import (
    FunctionPolicy,
    Naming,
    Request,
    Statement,
    Use,
    allowed,
    expression_attributes,
    function_policies,
    grants,
    iam_requests,
)
from tests.support.iam_coverage import EXEMPT, check, exempt_for

NAMING = Naming(stack="mls-sync-test")
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/mls-sync-test"
POLICIES = function_policies(NAMING)
FUNCTIONS = ("DispatcherFunction", "WorkerFunction", "PublisherFunction", "ManualSyncFunction")


# ----------------------------------------------------------------------------- the template


def test_every_function_has_its_own_exact_role() -> None:
    sam = load_template()
    roles = set()
    for name in FUNCTIONS:
        props = sam["Resources"][name]["Properties"]
        assert "Policies" not in props, f"{name}: SAM policies (templates, managed) are not exact"
        roles.add(props["Role"]["Fn::GetAtt"][0])
        assert POLICIES[name].managed == (), f"{name}: managed policies grant on '*'"
    assert len(roles) == len(FUNCTIONS)


def test_no_star_resource_but_where_aws_requires_it() -> None:
    for policy in POLICIES.values():
        for st in policy.statements:
            if "*" in st.resources:
                # X-Ray has no resource-level permissions
                assert set(st.actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
            assert not any(a.endswith("*") for a in st.actions), st


def test_the_schedule_dead_letter_queue_takes_only_the_schedule_rule() -> None:
    policy = load_template()["Resources"]["ScheduleDLQPolicy"]["Properties"]["PolicyDocument"]
    (statement,) = policy["Statement"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["DispatcherFunctionSchedule", "Arn"]
    }
    assert "DispatcherFunctionSchedule" in translate()["Resources"]


def test_every_checkov_skip_gives_its_reason() -> None:
    for name, res in load_template()["Resources"].items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV_"), (name, skip)
            assert len(skip.get("comment", "")) >= 20, f"{name}: {skip['id']} without a reason"


def test_a_customer_key_reaches_tables_queues_logs_and_the_roles() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    cfn = translate(parameters={"KmsKeyArn": key})
    with_key = function_policies(Naming(stack="s", parameters=(("KmsKeyArn", key),)), template=cfn)
    # Fn::If stays in the translated template; resolve as CloudFormation would
    for name, table in resources_of_type(cfn, "AWS::DynamoDB::Table").items():
        sse = table["Properties"]["SSESpecification"]["Fn::If"]
        assert sse[0] == "HasKmsKey", name
        assert sse[1]["KMSMasterKeyId"] == {"Ref": "KmsKeyArn"}
    for name, queue in resources_of_type(cfn, "AWS::SQS::Queue").items():
        assert queue["Properties"]["KmsMasterKeyId"]["Fn::If"][1] == {"Ref": "KmsKeyArn"}, name
    for name, group in resources_of_type(cfn, "AWS::Logs::LogGroup").items():
        assert group["Properties"]["KmsKeyId"]["Fn::If"][1] == {"Ref": "KmsKeyArn"}, name
    for name in FUNCTIONS:
        kms = [s for s in with_key[name].statements if any(a.startswith("kms:") for a in s.actions)]
        assert kms, name
        assert kms[0].resources == (key,), name
        assert not [s for s in POLICIES[name].statements if s.sid == "CustomerKey"]


def test_manual_sync_has_reserved_concurrency() -> None:
    props = load_template()["Resources"]["ManualSyncFunction"]["Properties"]
    assert props["ReservedConcurrentExecutions"] == {"Ref": "ManualSyncReservedConcurrency"}


# ----------------------------------------------------------------------------- requests


def test_a_transaction_is_one_request_per_item() -> None:
    requests = iam_requests(
        "dynamodb",
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Update": {"TableName": "mls-sync-test-Listings", "Key": {"listingId": "l-1"}}}
                | {},
                {"Put": {"TableName": "mls-sync-test-StatusHistory", "Item": {"listingId": "l"}}},
                {"ConditionCheck": {"TableName": "mls-sync-test-Connections", "Key": {}}},
            ]
        },
        NAMING,
    )
    assert [(r.action, r.resource.rsplit("/", 1)[-1]) for r in requests] == [
        ("dynamodb:UpdateItem", "mls-sync-test-Listings"),
        ("dynamodb:PutItem", "mls-sync-test-StatusHistory"),
        ("dynamodb:ConditionCheckItem", "mls-sync-test-Connections"),
    ]


def test_batches_and_names_map_to_what_iam_checks() -> None:
    (send,) = iam_requests(
        "sqs",
        "SendMessageBatch",
        {"QueueUrl": "http://127.0.0.1:5000/123456789012/mls-sync-test-sync.fifo", "Entries": []},
        NAMING,
    )
    assert send == Request(
        "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:mls-sync-test-sync.fifo"
    )
    (secret,) = iam_requests("secretsmanager", "GetSecretValue", {"SecretId": "s/mls/c"}, NAMING)
    assert secret.resource.endswith(":secret:s/mls/c-AbCdEf")
    (event,) = iam_requests(
        "events",
        "PutEvents",
        {"Entries": [{"EventBusName": "mls-sync-dev", "Source": "mls-sync", "DetailType": "X"}]},
        NAMING,
    )
    assert event.keys == {"events:detail-type": "X", "events:source": "mls-sync"}


def test_an_update_names_the_attributes_it_touches() -> None:
    names = {"#s": "status"}
    assert expression_attributes("SET #s = :s, a.b = :x REMOVE c ADD d :one", names) == {
        "status",
        "a",
        "c",
        "d",
    }
    assert expression_attributes(
        "attribute_exists(listingId) AND (attribute_not_exists(postsDownFor) OR postsDownBy = :o)",
        None,
    ) == {"listingId", "postsDownFor", "postsDownBy"}


# ----------------------------------------------------------------------------- conditions


def _claim(attributes: dict[str, Any], **params: Any) -> Request:
    (request,) = iam_requests(
        "dynamodb",
        "UpdateItem",
        {"TableName": "mls-sync-test-Listings", "Key": {"listingId": "l-1"}, **attributes} | params,
        NAMING,
    )
    return request


def test_the_publisher_writes_only_the_posts_down_claim_on_a_listing() -> None:
    publisher = POLICIES["PublisherFunction"]
    claim = {
        "UpdateExpression": "SET postsDownFor = :m, postsDownBy = :o",
        "ConditionExpression": "attribute_exists(listingId) AND postsDownBy = :o",
    }
    assert allowed(publisher, _claim(claim))
    # anything else on the listing is refused, and so is reading it back whole
    assert not allowed(
        publisher,
        _claim({"UpdateExpression": "SET #s = :s"}, ExpressionAttributeNames={"#s": "status"}),
    )
    assert not allowed(publisher, _claim(claim, ReturnValues="ALL_NEW"))
    assert allowed(publisher, _claim(claim, ReturnValues="UPDATED_NEW"))


def test_events_carry_our_source_and_each_function_its_own_detail_types() -> None:
    def put(function: str, detail_type: str, source: str = "mls-sync") -> bool:
        (request,) = iam_requests(
            "events",
            "PutEvents",
            {
                "Entries": [
                    {"EventBusName": "mls-sync-dev", "Source": source, "DetailType": detail_type}
                ]
            },
            NAMING,
        )
        return allowed(POLICIES[function], request)

    assert put("WorkerFunction", "ListingStatusChanged")
    assert put("PublisherFunction", "PostUnpublishOutcome")
    assert put("ManualSyncFunction", "MassChangeReleased")
    assert not put("ManualSyncFunction", "ListingStatusChanged")
    assert not put("PublisherFunction", "ListingDeleted")
    assert not put("WorkerFunction", "ListingStatusChanged", source="aws.partner")
    assert not put("DispatcherFunction", "ListingStatusChanged")


def test_secrets_by_prefix() -> None:
    def get(function: str, name: str) -> bool:
        (request,) = iam_requests("secretsmanager", "GetSecretValue", {"SecretId": name}, NAMING)
        return allowed(POLICIES[function], request)

    assert get("WorkerFunction", "mls-sync-test/mls/c-1")
    assert not get("WorkerFunction", "mls-sync-test/platform/a-1")
    assert get("PublisherFunction", "mls-sync-test/platform/a-1")
    assert not get("PublisherFunction", "mls-sync-test/mls/c-1")
    assert not get("WorkerFunction", "other-stack/mls/c-1")


# ----------------------------------------------------------------------------- mutation


def _satisfying(statement: Statement, action: str, resource: str) -> Request:
    """A request the statement allows: its action, its resource with '*' filled in, and
    condition keys set to allowed values."""
    context: dict[str, str | tuple[str, ...]] = {}
    for operator, key, values in statement.conditions:
        if operator.startswith("ForAllValues"):
            context[key] = tuple(values)
        elif "IfExists" not in operator:
            context[key] = values[0]
    return Request(
        action=action,
        resource=resource.replace("*", "x"),
        context=tuple(sorted(context.items())),
    )


def _uses_covering(policies: dict[str, FunctionPolicy]) -> list[Use]:
    """One use per granted (action, resource): what a complete test suite records."""
    uses = []
    for policy in policies.values():
        for grant in grants(policy):
            statement = policy.statements[grant.statement]
            uses.append(
                Use(policy.function, NAMING, _satisfying(statement, grant.action, grant.resource))
            )
    return uses


@pytest.fixture
def sam() -> dict[str, Any]:
    return copy.deepcopy(load_template())


def _policies(sam: dict[str, Any]) -> dict[str, FunctionPolicy]:
    return function_policies(NAMING, template=translate(sam))


def _statements(sam: dict[str, Any], role: str) -> list[Any]:
    document = sam["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]
    statements: list[Any] = document["Statement"]
    return statements


def test_complete_uses_pass_the_real_policies() -> None:
    result = check(_uses_covering(POLICIES))
    assert result.denied == []
    assert result.unused == []


def test_a_policy_that_loses_a_used_action_fails(sam: dict[str, Any]) -> None:
    # Given the uses a complete suite records against today's policies
    uses = _uses_covering(POLICIES)
    # When the worker's role loses GetSecretValue on the MLS credentials
    for st in _statements(sam, "WorkerRole"):
        if isinstance(st, dict) and st.get("Sid") == "MlsCredentials":
            st["Action"] = ["secretsmanager:DescribeSecret"]
    mutated = _policies(sam)
    result = check(uses, policies_for=lambda _n: mutated)
    # Then the call the worker makes is denied (the tiers' per-call check fails the same way)
    denied = {(u.function, u.request.action) for u in result.denied}
    assert ("WorkerFunction", "secretsmanager:GetSecretValue") in denied
    assert ("WorkerFunction", "secretsmanager:DescribeSecret") in {
        (g.function, g.action) for g in result.unused
    }


def test_a_policy_that_loses_a_condition_key_value_fails(sam: dict[str, Any]) -> None:
    uses = _uses_covering(POLICIES)
    for st in _statements(sam, "PublisherRole"):
        if isinstance(st, dict) and st.get("Sid") == "PostsDownClaim":
            st["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"].remove(
                "postsDownBy"
            )
    mutated = _policies(sam)
    result = check(uses, policies_for=lambda _n: mutated)
    assert ("PublisherFunction", "dynamodb:UpdateItem") in {
        (u.function, u.request.action) for u in result.denied
    }


def test_a_policy_that_gains_an_unused_action_fails(sam: dict[str, Any]) -> None:
    uses = _uses_covering(POLICIES)
    # When the publisher's role gains a Scan of the listings nothing calls
    _statements(sam, "PublisherRole").append(
        {
            "Effect": "Allow",
            "Action": ["dynamodb:Scan"],
            "Resource": {"Fn::GetAtt": ["ListingsTable", "Arn"]},
        }
    )
    mutated = _policies(sam)
    result = check(uses, policies_for=lambda _n: mutated)
    # Then it is reported unused, naming the function, action and resource
    assert [(g.function, g.action, g.resource) for g in result.unused] == [
        ("PublisherFunction", "dynamodb:Scan", f"{ARN}-Listings")
    ]
    assert result.denied == []


def test_a_wider_resource_than_the_calls_need_fails(sam: dict[str, Any]) -> None:
    uses = _uses_covering(POLICIES)
    for st in _statements(sam, "DispatcherRole"):
        if isinstance(st, dict) and st.get("Sid") == "HealthCensus":
            st["Resource"] = [st["Resource"], {"Fn::GetAtt": ["ListingsTable", "Arn"]}]
    mutated = _policies(sam)
    result = check(uses, policies_for=lambda _n: mutated)
    assert [(g.function, g.action, g.resource) for g in result.unused] == [
        ("DispatcherFunction", "dynamodb:Scan", f"{ARN}-Listings")
    ]


def test_exemptions_are_few_and_each_has_a_reason() -> None:
    assert all(len(reason) > 30 for reason in EXEMPT.values())
    assert exempt_for("WorkerFunction", "sqs:ReceiveMessage", "arn:aws:sqs:r:a:q")
    assert exempt_for("WorkerFunction", "dynamodb:Scan", f"{ARN}-Listings") is None
    assert exempt_for("PublisherFunction", "dynamodb:GetItem", f"{ARN}-Idempotency")
    assert exempt_for("PublisherFunction", "dynamodb:GetItem", f"{ARN}-Posts") is None
