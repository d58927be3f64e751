"""The loopback function URL: real HTTP in, the payload-2.0 event PushFunction reads, its
answer back; loopback only."""

from __future__ import annotations

import base64

import pytest
from mls_sync import aws
from mls_sync.dal.push_inbox import PushInboxRepo

from mls_sync_local.errors import UsageError
from mls_sync_local.push import PUSH, set_push_token
from mls_sync_local.runtime.function_url import (
    FunctionUrlFront,
    cold,
    function_url_event,
    http_response,
    warm,
)
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.sim.mls import MlsSimulator
from tests.integration.push.conftest import CONNECTION, TOKEN, Producer, add_connection


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com"])
def test_a_non_loopback_bind_is_refused(host: str) -> None:
    with pytest.raises(UsageError, match="loopback only"):
        FunctionUrlFront(lambda event: {}, host=host)


def test_the_event_is_built_as_lambda_builds_it() -> None:
    event = function_url_event(
        method="POST",
        target="/connections/c-1/events?x=1",
        headers=[("Content-Type", "application/octet-stream"), ("X-A", "1"), ("x-a", "2")],
        body=b"\xff\x00",
        source_ip="127.0.0.1",
        domain="127.0.0.1:9",
    )
    assert (event["rawPath"], event["rawQueryString"]) == ("/connections/c-1/events", "x=1")
    assert event["headers"]["x-a"] == "1,2"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00"
    text = function_url_event(
        method="POST",
        target="/",
        headers=[("content-type", "application/json")],
        body=b'{"a": 1}',
        source_ip="127.0.0.1",
        domain="d",
    )
    assert (text["body"], text["isBase64Encoded"]) == ('{"a": 1}', False)


def test_a_handler_that_returns_no_http_answer_is_sent_as_json_200() -> None:
    assert http_response({"a": 1}) == (200, {"content-type": "application/json"}, b'{"a": 1}')


def test_a_handler_that_raises_is_a_502() -> None:
    def broken(event: object) -> object:
        raise RuntimeError("bug")

    front = FunctionUrlFront(broken)
    try:
        assert front.call({})[0] == 502
    finally:
        front.stop()


def test_pushes_reach_the_real_handler_cold_and_warm(runtime: LocalRuntime) -> None:
    # Given a second connection whose token is set through `mls-sync push set-token`'s code
    add_connection(runtime, "c-second")
    set_push_token(runtime, "c-second", "second-token")
    for invoker in ("cold", "warm"):
        if invoker == "cold":
            front = FunctionUrlFront(cold(runtime, PUSH)).start()
            stop = front.stop
        else:
            context = warm(runtime, PUSH)
            front = FunctionUrlFront(context.__enter__()).start()

            def stop(front: FunctionUrlFront = front, context: object = context) -> None:
                front.stop()
                context.__exit__(None, None, None)  # type: ignore[attr-defined]

        try:
            producer = Producer(front.url, "c-second", "second-token")
            # When the MLS pushes a batch, then a stranger pushes with a wrong token
            status, _, body = producer.push(
                {
                    "value": [
                        {
                            "EntityEventSequence": 1,
                            "ResourceName": "Property",
                            "ResourceRecordKey": "K1",
                        }
                    ]
                }
            )
            stranger = Producer(front.url, "c-second", "wrong")
            refused, headers, _ = stranger.push({"listingKeys": ["K2"]})
            producer.close()
            stranger.close()
        finally:
            stop()
        # Then the handler answered both, as a function URL would
        assert (status, body) == (200, {"accepted": 1, "ignored": 0})
        assert refused == 401
        assert headers["www-authenticate"].startswith("Bearer")


def test_set_token_for_an_unknown_connection_writes_nothing(runtime: LocalRuntime) -> None:
    with pytest.raises(UsageError, match="no connection"):
        set_push_token(runtime, "c-missing", "t")


def test_the_mls_simulator_pushes_through_the_front_into_the_inbox(runtime: LocalRuntime) -> None:
    # Given the simulator with an EntityEvent log, pushing RCP-028 batches to the front
    environment = runtime.function_environment(PUSH)
    with (
        warm(runtime, PUSH) as invoke,
        FunctionUrlFront(invoke) as front,
        MlsSimulator(entity_events=True) as sim,
    ):
        sim.push_to(f"{front.url}/connections/{CONNECTION}/events", TOKEN, batch=2)
        # When listings are added, one sells, and a Lookup changes (not a listing)
        sim.add_many(2)
        sim.add_lookup_events(1)
        sim.set_status("L000000", "Closed")
        assert sim.flush_push(timeout=10)
        waiting = PushInboxRepo(aws.dynamodb(), environment["PUSH_INBOX_TABLE"]).peek(CONNECTION)
    # Then every batch was delivered and the two listings wait in the inbox
    assert all(a.outcome == "delivered" and a.status == 200 for a in sim.push_attempts)
    assert waiting.keys == ["L000000", "L000001"]
