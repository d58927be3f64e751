"""Hostile input (issue 19): every handler answers a clear 4xx or a structured error for
what is not its event (non-objects, deep nesting, oversize or badly encoded bodies); an SQS
handler fails the bad record alone and carries on with the rest; ids are matched whole.

Hypothesis draws the events. Nothing reaches AWS: the handlers get stand-in dependencies,
and a request that parses is allowed only to *reach* them (``ReachedDeps``)."""

from __future__ import annotations

import base64
import copy
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mls_sync.inputs import (
    MAX_DEPTH,
    MAX_HTTP_BODY_BYTES,
    MAX_SQS_BODY_BYTES,
    InputError,
    decode_body,
    is_id,
    loads_object,
    require_object,
    sqs_batch_problem,
    too_deep,
)
from mls_sync.models import SyncJob, UnpublishJob
from mls_sync.pipeline.keys import group_id
from mls_sync.pipeline.manual import ManualSyncError, parse_request
from mls_sync.pipeline.sync import SyncResult
from pydantic import ValidationError

from functions.dispatcher import app as dispatcher
from functions.manual_sync import app as manual
from functions.publisher import app as publisher
from functions.worker import app as worker
from mls_sync_local.runtime.context import make_context

EVENTS = Path(__file__).resolve().parents[2] / "events"
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


def _context() -> Any:
    return make_context("mls-sync-test-fn", timeout_seconds=60, memory_mb=128, region="us-east-1")


def _nested(depth: int, leaf: Any = 1) -> Any:
    value: Any = leaf
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


class ReachedDeps(Exception):  # noqa: N818 - a test signal
    """A request that parsed went on to the function's dependencies (allowed)."""


class Unreachable:
    def __getattr__(self, name: str) -> Any:
        raise ReachedDeps(name)


# ----------------------------------------------------------------------------- strategies

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
deep_values = st.integers(min_value=MAX_DEPTH + 1, max_value=3_000).map(_nested)
hostile_ids = st.sampled_from(
    ["c-bad\n", "\nc", "", " c", "c d", "c/../x", "c\x00", "é", "c" * 129, "-c", "c\r\n", "\ud800"]
) | st.text(max_size=40).filter(lambda s: not is_id(s))
ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,20}\Z")
events_of_any_shape = json_values | deep_values | st.builds(lambda v: {"Records": v}, json_values)


# ----------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize(
    "value",
    ["c-1", "u-ben", "l-1", "p-fb-1", "a-facebook", "c.1:2@3+4=5_6", "0", "A" * 128],
)
def test_ids_of_ours(value: str) -> None:
    assert is_id(value)


@pytest.mark.parametrize(
    "value", ["c-bad\n", "c-bad\r\n", "", "-c", ".c", "c d", "c\x00", "c/x", "é", "A" * 129, 5]
)
def test_not_ids_matched_whole(value: object) -> None:
    # A `$` would accept "c-bad\n": ids are matched whole (re.fullmatch)
    assert not is_id(value)


def test_a_newline_in_a_connection_id_never_reaches_a_message_group() -> None:
    with pytest.raises(ValidationError):
        SyncJob.model_validate(
            {"connectionId": "c-bad\n", "reason": "manual", "slot": "2026-11-28T12:15:00Z"}
            | {"correlationId": "x"}
        )
    with pytest.raises(ValidationError):
        UnpublishJob.model_validate(
            {"postId": "p\n", "listingId": "l-1", "platform": "facebook", "correlationId": "x"}
        )
    # and the group id of such a text is a digest SQS accepts, not the text
    assert group_id("c-bad\n") != "c-bad\n"
    assert group_id("c-bad\n").startswith("h-")


def test_depth_is_measured_without_recursion() -> None:
    assert not too_deep(_nested(MAX_DEPTH))
    assert too_deep(_nested(MAX_DEPTH + 1))
    assert too_deep(_nested(200_000))  # far past the interpreter's recursion limit


@pytest.mark.parametrize(
    ("body", "b64", "status"),
    [
        ("x" * (MAX_HTTP_BODY_BYTES + 1), False, 413),
        (base64.b64encode(b"x" * (MAX_HTTP_BODY_BYTES + 1)).decode(), True, 413),
        ("!!!not base64", True, 400),
        (base64.b64encode(b"\xff\xfe{}").decode(), True, 400),
        ("\ud800", False, 400),
        (5, False, 400),
    ],
)
def test_bodies_refused_with_a_status(body: Any, b64: bool, status: int) -> None:
    with pytest.raises(InputError) as info:
        decode_body(body, base64_encoded=b64, max_bytes=MAX_HTTP_BODY_BYTES)
    assert info.value.status == status


@pytest.mark.parametrize(
    "text", ["", "   ", "[]", "5", '"x"', "null", "{", "[" * 100_000 + "]" * 100_000]
)
def test_a_body_must_be_a_json_object(text: str) -> None:
    with pytest.raises(InputError) as info:
        loads_object(text)
    assert info.value.status == 400


def test_an_object_passes() -> None:
    assert loads_object('{"action": "sync_user"}') == {"action": "sync_user"}
    assert require_object({"a": [1, {"b": 2}]}) == {"a": [1, {"b": 2}]}


@given(events_of_any_shape)
@FUZZ
def test_sqs_batch_problem_never_raises(event: Any) -> None:
    problem = sqs_batch_problem(event)
    assert problem is None or isinstance(problem, str)


# ----------------------------------------------------------------------------- manual sync


def _manual_answer(event: Any) -> dict[str, Any] | None:
    """The handler's answer, or None when the request parsed and reached the dependencies."""
    try:
        answer: dict[str, Any] = manual.handle(event, _context(), cast("Any", Unreachable()))
    except ReachedDeps:
        return None
    return answer


@given(events_of_any_shape)
@FUZZ
def test_manual_sync_direct_invoke_fuzz(event: Any) -> None:
    answer = _manual_answer(event)
    if answer is None:
        # Only a request that parses may reach the dependencies
        parse_request(event)
        return
    assert 400 <= answer["statusCode"] < 500
    assert isinstance(answer["body"]["error"], str)
    assert answer["body"]["error"]


def _http(body: Any, *, b64: bool = False, method: str = "POST") -> dict[str, Any]:
    event = copy.deepcopy(_event("manual_sync.http.json"))
    event["requestContext"]["http"]["method"] = method
    event["body"] = body
    event["isBase64Encoded"] = b64
    return event


http_bodies = (
    st.text(max_size=200)
    | json_values.map(json.dumps)
    | deep_values.map(json.dumps)
    | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())
    | st.builds(lambda n: "x" * n, st.integers(MAX_HTTP_BODY_BYTES - 2, MAX_HTTP_BODY_BYTES + 9))
    | json_scalars
)


@given(http_bodies, st.booleans(), st.sampled_from(["POST", "GET", "PUT", "", "post"]))
@FUZZ
def test_manual_sync_function_url_fuzz(body: Any, b64: bool, method: str) -> None:
    answer = _manual_answer(_http(body, b64=b64, method=method))
    if answer is None:
        return  # a valid POST of a valid request
    assert 400 <= answer["statusCode"] < 500
    assert json.loads(answer["body"])["error"]


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ([], 400),
        ("sync", 400),
        (None, 400),
        (_nested(5_000), 400),
        ({"action": "sync_connection", "connectionId": "c-bad\n"}, 400),
        ({"action": "sync_user", "userId": "u" * 129}, 400),
        (_http("[" * 60_000 + "]" * 60_000, method="POST"), 413),
        (_http("[" * 20_000 + "]" * 20_000, method="POST"), 400),
        (_http('{"action": "sync_user", "userId": "u-1\\n"}'), 400),
        (_http(base64.b64encode(b"\xc3\x28").decode(), b64=True), 400),
        (_http("%%%", b64=True), 400),
        (_http("x" * (MAX_HTTP_BODY_BYTES + 1)), 413),
        (_http("{}", method="GET"), 405),
    ],
    ids=lambda v: str(v)[:30] if not isinstance(v, dict | list) else None,
)
def test_manual_sync_answers_a_clear_4xx(event: Any, status: int) -> None:
    answer = _manual_answer(event)
    assert answer is not None
    assert answer["statusCode"] == status


def test_manual_sync_valid_requests_still_reach_the_work() -> None:
    with pytest.raises(ManualSyncError):
        parse_request({"action": "sync_connection", "connectionId": "c-bad\n"})
    assert _manual_answer(_event("manual_sync.connection.json")) is None
    assert _manual_answer(_event("manual_sync.http.json")) is None


# ----------------------------------------------------------------------------- dispatcher


@given(events_of_any_shape)
@FUZZ
def test_dispatcher_fuzz(event: Any) -> None:
    try:
        answer = dispatcher.handle(event, _context(), cast("Any", Unreachable()))
    except ReachedDeps:
        return
    assert answer["statusCode"] == 400
    assert answer["error"].startswith("not a scheduled event")


def test_the_schedule_event_still_reaches_the_dispatch() -> None:
    with pytest.raises(ReachedDeps):
        dispatcher.handle(
            _event("dispatcher.schedule.json"), _context(), cast("Any", Unreachable())
        )


# ----------------------------------------------------------------------------- SQS handlers


def _record(template: dict[str, Any], message_id: str, body: Any, group: str) -> dict[str, Any]:
    record = copy.deepcopy(template)
    record["messageId"] = message_id
    record["body"] = body
    record["attributes"]["MessageGroupId"] = group
    return record


record_bodies = (
    st.text(max_size=300)
    | json_values.map(json.dumps)
    | deep_values.map(json.dumps)
    | st.builds(
        lambda i: json.dumps(
            {"connectionId": i, "reason": "schedule", "slot": "2026-11-28T12:15:00Z"}
            | {"correlationId": "c", "postId": i, "listingId": "l-1", "platform": "facebook"}
        ),
        hostile_ids,
    )
    | st.just("x" * (MAX_SQS_BODY_BYTES + 1))
    | json_scalars
)


@pytest.fixture
def fake_sync(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The worker's sync, standing in: every job it is given succeeds."""
    synced: list[str] = []

    def sync_connection(job: SyncJob, _deps: Any, _remaining: Any) -> SyncResult:
        synced.append(job.connection_id)
        return SyncResult(connection_id=job.connection_id, run_key="r", outcome="succeeded")

    monkeypatch.setattr(worker, "sync_connection", sync_connection)
    return synced


@given(body=record_bodies)
@FUZZ
def test_worker_fails_the_bad_record_alone(fake_sync: list[str], body: Any) -> None:
    # Given a batch: a good job for c-good, then a hostile record in another group
    template = _event("worker.sqs.json")["Records"][0]
    good_body = json.dumps(
        {"connectionId": "c-good", "reason": "schedule", "slot": "2026-11-28T12:15:00Z"}
        | {"correlationId": "corr"}
    )
    event = {
        "Records": [
            _record(template, "m-good", good_body, "c-good"),
            _record(template, "m-bad", body, "c-other"),
        ]
    }
    fake_sync.clear()
    # When the worker handles it
    answer = worker.handle(event, _context(), cast("Any", SimpleNamespace()))
    # Then nothing escaped, the good job ran, and only the hostile record can have failed
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert "m-good" not in failed
    assert "c-good" in fake_sync
    parses = True
    try:
        worker.SyncJobRecord.model_validate(event["Records"][1])
    except ValidationError:
        parses = False
    assert ("m-bad" in failed) is not parses


@given(events_of_any_shape)
@FUZZ
def test_worker_answers_what_is_not_a_batch(fake_sync: list[str], event: Any) -> None:
    answer = worker.handle(event, _context(), cast("Any", SimpleNamespace()))
    assert isinstance(answer, dict)
    assert isinstance(answer["batchItemFailures"], list)


class FakeService:
    """The publisher's service standing in: every post is already gone (precheck)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def precheck(self, job: UnpublishJob) -> str:
        self.seen.append(job.post_id)
        return "already_gone"


def _publisher_deps(service: FakeService) -> Any:
    return SimpleNamespace(
        service=service,
        persistence=Unreachable(),
        queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q",
        max_receives=5,
        reauth=Unreachable(),
    )


@given(body=record_bodies)
@FUZZ
def test_publisher_fails_the_bad_record_alone(body: Any) -> None:
    template = _event("publisher.sqs.json")["Records"][0]
    good = json.dumps(
        {"postId": "p-good", "listingId": "l-1", "platform": "facebook", "correlationId": "c"}
    )
    event = {
        "Records": [
            _record(template, "m-bad", body, "g"),
            _record(template, "m-good", good, "g"),
        ]
    }
    service = FakeService()
    answer = publisher.handle(event, _context(), _publisher_deps(service))
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert "m-good" not in failed
    assert "p-good" in service.seen
    parses = True
    try:
        publisher.UnpublishRecord.model_validate(event["Records"][0])
    except ValidationError:
        parses = False
    assert ("m-bad" in failed) is not parses


@given(events_of_any_shape)
@FUZZ
def test_publisher_answers_what_is_neither_a_batch_nor_an_admin_request(event: Any) -> None:
    try:
        answer = publisher.handle(event, _context(), _publisher_deps(FakeService()))
    except ReachedDeps:
        # only a well-formed admin request may reach the re-authorisation
        assert event.get("action") == "accountReauthorized"
        assert is_id(event.get("accountId"))
        return
    assert isinstance(answer, dict)
    assert answer.get("error") or "batchItemFailures" in answer


@pytest.mark.parametrize(
    "event",
    [
        [],
        None,
        "x",
        {"Records": [1, 2]},
        {"Records": "x"},
        {"action": "accountReauthorized", "accountId": "a-1\n"},
        {"action": "accountReauthorized", "accountId": 5},
        _nested(5_000),
    ],
    ids=repr,
)
def test_publisher_refuses_with_a_structured_error(event: Any) -> None:
    answer = publisher.handle(event, _context(), _publisher_deps(FakeService()))
    assert answer["error"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_refused_record_is_logged_without_its_body(fake_sync: list[str]) -> None:
    # Given a batch with a record whose job does not parse
    template = _event("worker.sqs.json")["Records"][0]
    body = json.dumps({"connectionId": "c-bad\n", "secretish": "do-not-log-me"})
    event = {"Records": [_record(template, "m-bad", body, "c-bad")]}
    lines = _Lines()
    service = logging.getLogger("mls-sync")  # the handlers' Powertools logger (made at import)
    service.addHandler(lines)
    try:
        answer = worker.handle(event, _context(), cast("Any", SimpleNamespace()))
    finally:
        service.removeHandler(lines)
    # Then it fails alone, and one warning names the message and the field, not the body
    assert answer["batchItemFailures"] == [{"itemIdentifier": "m-bad"}]
    (refused,) = [r for r in lines.records if r.getMessage() == "record refused"]
    assert refused.levelno == logging.WARNING
    assert refused.__dict__["messageId"] == "m-bad"
    assert "do-not-log-me" not in str(refused.__dict__)
    assert refused.__dict__["error"].startswith("body.")
