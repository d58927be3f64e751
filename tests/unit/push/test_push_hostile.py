"""The push receiver against anything a stranger or a broken producer can send: it always
answers (no exception), a 4xx never reaches the inbox, and without the token the body is
never read. Hypothesis draws the requests; the dependencies are in-memory stand-ins."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mls_sync.dal.push_access import PushAccess, PushAccessRepo
from mls_sync.dal.push_inbox import AddOutcome, PushInboxRepo
from mls_sync.push.bodies import BodyError, pushed_keys
from mls_sync.push.http import PushRequest
from mls_sync.push.jobs import PushJobSender
from mls_sync.push.receiver import PushDeps, receive

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 28, 17, 5, tzinfo=UTC)
TOKEN = "the-token"


@dataclass
class Access:
    def get(self, connection_id: str) -> PushAccess | None:
        return (
            PushAccess(enabled=True, push_secret_arn="arn:push") if connection_id == "c-1" else None
        )


@dataclass
class Secrets:
    reads: int = 0

    def read_json(self, secret_id: str, *, fresh: bool = False) -> dict[str, Any]:
        self.reads += 1
        return {"token": TOKEN}


@dataclass
class Inbox:
    added: list[list[str]] = field(default_factory=list)

    def add(self, connection_id: str, keys: Any, **_: Any) -> AddOutcome:
        self.added.append(list(keys))
        return AddOutcome(saturated=False, send_job=False, ticket=1)


def _deps() -> tuple[PushDeps, Inbox, Secrets]:
    inbox, secrets = Inbox(), Secrets()
    deps = PushDeps(
        connections=cast("PushAccessRepo", Access()),
        inbox=cast("PushInboxRepo", inbox),
        secrets=secrets,
        jobs=cast("PushJobSender", None),
    )
    return deps, inbox, secrets


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=30,
)
BODIES = st.one_of(
    JSON.map(json.dumps),
    st.text(max_size=200),
    st.fixed_dictionaries(
        {
            "value": st.lists(
                st.dictionaries(
                    st.sampled_from(
                        ["EntityEventSequence", "ResourceName", "ResourceRecordKey", "x"]
                    ),
                    JSON,
                ),
                max_size=4,
            )
        }
    ).map(json.dumps),
    st.fixed_dictionaries({"listingKeys": st.lists(JSON, max_size=5)}).map(json.dumps),
)


def _event(body: str, *, token: str | None, method: str, path: str, b64: bool, ctype: str) -> Any:
    headers = {"content-type": ctype}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return {
        "rawPath": path,
        "headers": headers,
        "requestContext": {"http": {"method": method}, "requestId": "r-1"},
        "body": base64.b64encode(body.encode("utf-8", "surrogatepass")).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


@FUZZ
@given(
    body=BODIES,
    token=st.none() | st.sampled_from(["", "wrong", TOKEN + " ", TOKEN.upper()]),
    method=st.sampled_from(["POST", "GET", "PUT"]),
    path=st.sampled_from(["/connections/c-1/events", "/connections/c-2/events", "/", "/x"]),
    b64=st.booleans(),
    ctype=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_without_the_token_nothing_is_read_or_queued(
    body: str, token: str | None, method: str, path: str, b64: bool, ctype: str
) -> None:
    deps, inbox, _ = _deps()
    request = PushRequest.from_event(
        _event(body, token=token, method=method, path=path, b64=b64, ctype=ctype)
    )
    receipt = receive(request, deps, now=NOW, correlation_id="r-1")
    assert 400 <= receipt.answer.status < 500
    assert inbox.added == []


@FUZZ
@given(body=BODIES, b64=st.booleans())
def test_with_the_token_any_body_is_answered_and_only_200_queues(body: str, b64: bool) -> None:
    deps, inbox, _ = _deps()
    event = _event(
        body,
        token=TOKEN,
        method="POST",
        path="/connections/c-1/events",
        b64=b64,
        ctype="application/json",
    )
    receipt = receive(PushRequest.from_event(event), deps, now=NOW, correlation_id="r-1")
    assert receipt.answer.status in {200, 400, 413}
    if receipt.answer.status != 200:
        assert inbox.added == []
        assert receipt.answer.body["error"]


@FUZZ
@given(payload=JSON)
def test_pushed_keys_answers_keys_or_a_body_error(payload: Any) -> None:
    if not isinstance(payload, dict):
        return
    try:
        found = pushed_keys(payload)
    except BodyError as exc:
        refused = exc.status
    else:
        assert len(found.keys) == len(set(found.keys)) <= 1000
        return
    assert refused in {400, 413}
