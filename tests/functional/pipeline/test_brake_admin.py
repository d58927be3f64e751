"""The mass-change brake's admin actions through ManualSyncFunction (issue 15): a direct
invocation or a function URL call ``{"action": "brake_release"|"brake_discard",
"connectionId"}`` answers 200 with the MassChangeReleased detail, 404 for an unknown
connection, 409 when nothing is held, 400 for a bad body."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, cast

import pytest
from mls_sync.models import PostStatus, SyncJob
from mls_sync.status import Status

from functions.manual_sync import app as manual_sync
from tests.support.pipeline import CONNECTION, World, load_event

SLOT_0 = "2026-11-28T12:00:00Z"
SLOT_1 = "2026-11-28T12:15:00Z"


def _braked(world: World, listings: int = 50, sold: int = 15) -> None:
    """``listings`` active listings with a published Facebook post each, synced once; then
    ``sold`` of them sell in one run, which trips the brake and holds their takedowns."""
    world.add_connection()
    for n in range(listings):
        world.track(f"l-{n:03d}", f"K{n:03d}", Status.ACTIVE)
        world.post(f"p-{n:03d}", f"l-{n:03d}", PostStatus.PUBLISHED, "facebook")
    world.run_worker([world.job(slot=SLOT_0)])
    world.sim.advance(60)
    for n in range(sold):
        world.sim.advance(1)
        world.sim.set_status(f"K{n:03d}", "Closed")
    world.run_worker([world.job(slot=SLOT_1)])
    assert world.unpublish_jobs() == []
    world.events()


def _invoke(world: World, event: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = manual_sync.handle(
        event, cast("Any", world.context(30)), world.manual, clock=world.sim.clock
    )
    return answer


def _kinds(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["detail-type"] for e in events)


def test_release_answers_200_with_the_detail_and_sends_the_held_jobs(world: World) -> None:
    # Given a braked connection holding 15 takedowns
    _braked(world)
    # When the operator releases them with a direct invocation
    answer = _invoke(world, {"action": "brake_release", "connectionId": CONNECTION})
    # Then 200 with the MassChangeReleased detail, and exactly the held jobs go
    assert answer["statusCode"] == 200, answer
    body = answer["body"]
    assert body["connectionId"] == CONNECTION
    assert body["decision"] == "release"
    assert body["postsSent"] == 15
    assert body["runKey"]
    assert sorted(j["postId"] for j in world.unpublish_jobs()) == [f"p-{n:03d}" for n in range(15)]
    released = world.events()
    assert _kinds(released) == {"MassChangeReleased": 1}
    assert released[0]["detail"] == body
    connection = world.connections.get(CONNECTION)
    assert connection is not None
    assert connection.braked is None


def test_discard_answers_200_sends_nothing_and_queues_a_re_read(world: World) -> None:
    _braked(world)
    answer = _invoke(world, {"action": "brake_discard", "connectionId": CONNECTION})
    assert answer["statusCode"] == 200, answer
    assert answer["body"]["decision"] == "discard"
    assert answer["body"]["postsSent"] == 0
    assert world.unpublish_jobs() == []
    jobs = [SyncJob.model_validate(b) for b in world.sync_jobs()]
    assert [j.reason for j in jobs] == ["manual"]
    assert sorted(jobs[0].listing_keys or []) == [f"K{n:03d}" for n in range(15)]
    assert _kinds(world.events()) == {"MassChangeReleased": 1}


def test_through_the_function_url_same_body_same_answer(world: World) -> None:
    _braked(world)
    event = load_event("manual_sync.http.json")
    event["body"] = json.dumps({"action": "brake_release", "connectionId": CONNECTION})
    answer = _invoke(world, event)
    assert answer["statusCode"] == 200, answer
    assert answer["headers"]["content-type"] == "application/json"
    assert json.loads(answer["body"])["postsSent"] == 15


def test_nothing_held_is_409_and_changes_nothing(world: World) -> None:
    # Given a connection that is not braked
    world.add_connection()
    world.track("l-000", "K000", Status.ACTIVE)
    for action in ("brake_release", "brake_discard"):
        answer = _invoke(world, {"action": action, "connectionId": CONNECTION})
        assert answer["statusCode"] == 409, answer
        message = f"connection {CONNECTION} is not braked: nothing is held"
        assert answer["body"] == {"error": message}
    assert world.unpublish_jobs() == []
    assert world.sync_jobs() == []
    assert world.events() == []


def test_a_second_release_is_409(world: World) -> None:
    _braked(world)
    event = {"action": "brake_release", "connectionId": CONNECTION}
    assert _invoke(world, event)["statusCode"] == 200
    world.unpublish_jobs()
    assert _invoke(world, event)["statusCode"] == 409
    assert world.unpublish_jobs() == []


def test_unknown_connection_is_404(world: World) -> None:
    answer = _invoke(world, {"action": "brake_discard", "connectionId": "c-nope"})
    assert answer["statusCode"] == 404
    assert answer["body"] == {"error": "connection c-nope not found"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "brake_release"}, "connectionId: Field required"),
        ({"action": "brake_release", "connectionId": ""}, "connectionId"),
        ({"action": "brake_hold", "connectionId": CONNECTION}, "action: expected one of"),
        (
            {"action": "brake_discard", "connectionId": CONNECTION, "decision": "x"},
            "decision",
        ),
    ],
)
def test_bad_input_is_400(world: World, payload: dict[str, Any], message: str) -> None:
    answer = _invoke(world, payload)
    assert answer["statusCode"] == 400, answer
    assert message in answer["body"]["error"]
