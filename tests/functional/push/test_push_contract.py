"""The push endpoint's contract, through the real handler against moto: each kind of request
gets its exact status, and nothing is queued (no inbox key, no job) on any 4xx."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from mls_sync.secrets import push_secret_name

from tests.functional.push.conftest import CONNECTION, TOKEN, PushWorld, http_event
from tests.support.pipeline import load_event
from tests.support.stack import STACK


def _nothing_queued(push: PushWorld, connection_id: str = CONNECTION) -> None:
    assert push.inbox(connection_id).keys == []
    assert push.jobs() == []


def _body(answer: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(answer["body"])
    return body


# ------------------------------------------------------------------------ accepted


def test_reso_batch_sample_queues_its_property_keys_once_and_one_job(push: PushWorld) -> None:
    # Given the events/ sample: 4 events, 3 for Property naming 2 listings, 1 for Media
    # When it is posted
    answer = push.post(load_event("push.reso-batch.json"))
    # Then 200, the two listings are in the inbox, and one push job is on SyncQueue
    assert answer["statusCode"] == 200
    assert _body(answer) == {"accepted": 2, "ignored": 1}
    assert push.inbox().keys == ["ACT1001", "ACT1002"]
    jobs = push.jobs()
    assert [(j.connection_id, j.reason, j.listing_keys) for j in jobs] == [
        (CONNECTION, "push", None)
    ]
    assert jobs[0].correlation_id == "0d4f5c2a-7b1e-4f3a-9c8d-2e1f0a9b8c7d"


def test_keys_sample_is_accepted(push: PushWorld) -> None:
    answer = push.post(load_event("push.keys.json"))
    assert (answer["statusCode"], _body(answer)) == (200, {"accepted": 2, "ignored": 0})
    assert push.inbox().keys == ["ACT1001", "ACT1003"]


def test_single_reso_event_is_accepted(push: PushWorld) -> None:
    event = {
        "@reso.context": "urn:reso:metadata:2.0:resource:entityevent",
        "EntityEventSequence": 1101,
        "ResourceName": "Property",
        "ResourceRecordKey": "235021",
    }
    answer = push.post(http_event(event))
    assert (answer["statusCode"], _body(answer)) == (200, {"accepted": 1, "ignored": 0})
    assert push.inbox().keys == ["235021"]


def test_other_resources_are_answered_200_and_queue_nothing(push: PushWorld) -> None:
    # RCP-028's own example 1: a Showing
    event = {"EntityEventSequence": 1101, "ResourceName": "Showing", "ResourceRecordKey": "235021"}
    answer = push.post(http_event(event))
    assert (answer["statusCode"], _body(answer)) == (200, {"accepted": 0, "ignored": 1})
    _nothing_queued(push)


def test_a_second_push_before_the_worker_adds_keys_but_no_second_job(push: PushWorld) -> None:
    push.post(http_event({"listingKeys": ["K1"]}))
    push.post(http_event({"listingKeys": ["K2", "K1"]}))
    assert push.inbox().keys == ["K1", "K2"]
    assert len(push.jobs()) == 1


def test_base64_body_and_charset_are_accepted(push: PushWorld) -> None:
    event = http_event(
        {"listingKeys": ["K1"]}, b64=True, content_type="application/json; charset=UTF-8"
    )
    assert push.post(event)["statusCode"] == 200


def test_scheme_is_case_insensitive(push: PushWorld) -> None:
    event = http_event({"listingKeys": ["K1"]}, token=None)
    event["headers"]["authorization"] = f"bearer {TOKEN}"
    assert push.post(event)["statusCode"] == 200


# ------------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("token", "header"),
    [
        (None, None),  # no Authorization header
        ("wrong-token", None),
        (TOKEN[:-1], None),  # a prefix of the right one
        (TOKEN + "x", None),
        (None, f"Basic {TOKEN}"),
        (None, "Bearer"),
        (None, f"Bearer {TOKEN} extra"),
    ],
)
def test_wrong_auth_is_401_and_queues_nothing(
    push: PushWorld, token: str | None, header: str | None
) -> None:
    event = http_event({"listingKeys": ["K1"]}, token=token)
    if header is not None:
        event["headers"]["authorization"] = header
    answer = push.post(event)
    assert answer["statusCode"] == 401
    assert answer["headers"]["www-authenticate"].startswith("Bearer ")
    _nothing_queued(push)


def test_wrong_token_sample_is_401(push: PushWorld) -> None:
    assert push.post(load_event("push.wrong-token.json"))["statusCode"] == 401
    _nothing_queued(push)


def test_unknown_connection_and_no_push_secret_answer_exactly_like_a_wrong_token(
    push: PushWorld,
) -> None:
    # Given a connection without push, and ids that are no connection at all
    push.add_connection("c-no-push", token=None)
    wrong = push.post(http_event({"listingKeys": ["K1"]}, token="wrong"))
    # When each is pushed to with the real connection's token
    answers = [
        push.post(http_event({"listingKeys": ["K1"]}, path=f"/connections/{cid}/events"))
        for cid in ("c-unknown", "c-no-push", "bad%20id", "c-" + "x" * 200)
    ]
    # Then each answer is the wrong-token answer, byte for byte: no enumeration
    assert all(a == wrong for a in answers)
    for cid in ("c-unknown", "c-no-push"):
        assert push.inbox(cid).keys == []
    assert push.jobs() == []


def test_another_connections_token_is_refused(push: PushWorld) -> None:
    push.add_connection("c-other", token="the-other-token")
    answer = push.post(http_event({"listingKeys": ["K1"]}, token="the-other-token"))
    assert answer["statusCode"] == 401
    _nothing_queued(push)


def test_disabled_connection_is_403_after_auth_and_queues_nothing(push: PushWorld) -> None:
    push.add_connection("c-off", token="off-token", enabled=False)
    path = "/connections/c-off/events"
    assert push.post(http_event({"listingKeys": ["K"]}, path=path, token="x"))["statusCode"] == 401
    answer = push.post(http_event({"listingKeys": ["K"]}, path=path, token="off-token"))
    assert answer["statusCode"] == 403
    _nothing_queued(push, "c-off")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "not JSON"),
        ("", "empty"),
        ("[1, 2]", "JSON object"),
        ('"text"', "JSON object"),
        ('{"hello": 1}', "none of the fields"),
        ('{"value": "x"}', "value"),
        ('{"value": [{"ResourceName": "Property", "ResourceRecordKey": "K"}]}', "value[0]"),
        ('{"listingKeys": "K1"}', "listingKeys"),
        ('{"listingKeys": ["K1", 5]}', "listingKeys[1]"),
        ('{"listingKeys": ["K1", ""]}', "listingKeys[1]"),
        ('{"listingKeys": ["K\\n1"]}', "control characters"),
        ('{"listingKeys": [" K1"]}', "surrounding spaces"),
        (json.dumps({"listingKeys": ["K" * 256]}), "1-255"),
        (
            '{"EntityEventSequence": -1, "ResourceName": "Property", "ResourceRecordKey": "K"}',
            "EntityEventSequence",
        ),
        (
            '{"value": [{"EntityEventSequence": 1, "ResourceName": "Property",'
            ' "ResourceRecordKey": "K\\u0000"}]}',
            "value[0].ResourceRecordKey",
        ),
        ("[" * 100 + "]" * 100, "JSON object"),
    ],
)
def test_bad_body_is_400_with_a_clear_message(push: PushWorld, raw: str, fragment: str) -> None:
    answer = push.post(http_event(raw=raw))
    assert answer["statusCode"] == 400
    assert fragment in _body(answer)["error"]
    _nothing_queued(push)


def test_bad_json_from_a_stranger_is_401_not_parsed(push: PushWorld) -> None:
    # The body of an unauthenticated request is never parsed: 401, not 400.
    assert push.post(http_event(raw="{not json", token="wrong"))["statusCode"] == 401


def test_oversized_body_is_413_plain_or_base64(push: PushWorld) -> None:
    big = json.dumps({"listingKeys": ["K1"], "pad": "x" * (256 * 1024)})
    for b64 in (False, True):
        answer = push.post(http_event(raw=big, b64=b64))
        assert answer["statusCode"] == 413
    _nothing_queued(push)


def test_oversized_body_is_refused_before_auth(push: PushWorld) -> None:
    big = json.dumps({"pad": "x" * (256 * 1024)})
    assert push.post(http_event(raw=big, token=None))["statusCode"] == 413


def test_more_than_1000_keys_is_413(push: PushWorld) -> None:
    answer = push.post(http_event({"listingKeys": [f"K{n}" for n in range(1001)]}))
    assert answer["statusCode"] == 413
    assert "at most 1000" in _body(answer)["error"]
    _nothing_queued(push)


def test_1000_keys_with_duplicates_are_accepted(push: PushWorld) -> None:
    keys = [f"K{n % 1000}" for n in range(1500)]
    answer = push.post(http_event({"listingKeys": keys}))
    assert (answer["statusCode"], _body(answer)["accepted"]) == (200, 1000)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_wrong_content_type_is_415(push: PushWorld, content_type: str | None) -> None:
    answer = push.post(http_event({"listingKeys": ["K1"]}, content_type=content_type))
    assert answer["statusCode"] == 415
    _nothing_queued(push)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(push: PushWorld, method: str) -> None:
    answer = push.post(http_event({"listingKeys": ["K1"]}, method=method))
    assert (answer["statusCode"], answer["headers"]["allow"]) == (405, "POST")
    _nothing_queued(push)


@pytest.mark.parametrize(
    "path", ["/", "/connections", f"/connections/{CONNECTION}", f"/connections/{CONNECTION}/x"]
)
def test_other_paths_are_404(push: PushWorld, path: str) -> None:
    assert push.post(http_event({"listingKeys": ["K1"]}, path=path))["statusCode"] == 404
    _nothing_queued(push)


@pytest.mark.parametrize("event", [None, [], "x", {"body": "{}"}, {"requestContext": {}}])
def test_an_invocation_that_is_no_http_request_is_400(push: PushWorld, event: Any) -> None:
    assert push.post(event)["statusCode"] == 400
    _nothing_queued(push)


def test_the_token_never_reaches_the_logs(
    push: PushWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    push.post(load_event("push.reso-batch.json"))
    push.post(load_event("push.wrong-token.json"))
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert "not-the-token" not in out.out + out.err


@pytest.mark.parametrize("secret", ['{"nope": "x"}', '{"token": ""}', "not json"])
def test_a_push_secret_without_a_usable_token_refuses_every_push(
    push: PushWorld, secret: str
) -> None:
    # Given a connection whose push secret an operator filled wrongly
    push.add_connection("c-bad-secret", token="placeholder")
    boto3.client("secretsmanager").put_secret_value(
        SecretId=push_secret_name(f"{STACK}/", "c-bad-secret"), SecretString=secret
    )
    # Then no token opens it, not even an empty one
    for token in ("placeholder", "x"):
        event = http_event({"listingKeys": ["K1"]}, path="/connections/c-bad-secret/events")
        event["headers"]["authorization"] = f"Bearer {token}"
        assert push.post(event)["statusCode"] == 401
    _nothing_queued(push, "c-bad-secret")
