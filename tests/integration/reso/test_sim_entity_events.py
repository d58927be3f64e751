"""The simulator's EntityEvent resource (RCP-027) and push (RCP-028), read over HTTP the way
any client would: one event per write, filters, order, paging, each variant a real server
may choose or commit, ``$metadata`` with and without the log, and push delivery including a
consumer that answers 429."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from mls_sync_local.sim import MlsSimulator
from mls_sync_local.sim.event_push import RESO_CONTEXT, retry_after_seconds

AUTH = {"Authorization": "Bearer sim-static-token"}
PROPERTY = "ResourceName eq 'Property'"
# One client for the module: building one per request costs ~40 ms (an SSL context each).
HTTP = httpx.Client(timeout=5, trust_env=False)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture
def sim() -> Iterator[MlsSimulator]:
    with MlsSimulator(entity_events=True) as started:
        yield started


def get(sim: MlsSimulator, params: dict[str, str] | None = None, **headers: str) -> httpx.Response:
    return HTTP.get(f"{sim.service_root}/EntityEvent", params=params, headers={**AUTH, **headers})


def events(
    sim: MlsSimulator, condition: str = "EntityEventSequence gt 0", **extra: str
) -> list[dict[str, Any]]:
    params = {"$filter": condition, "$orderby": "EntityEventSequence asc", "$top": "1000"}
    params.update(extra)
    answer = get(sim, params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["value"])


def sequences(values: list[dict[str, Any]]) -> list[int]:
    return [v["EntityEventSequence"] for v in values]


# ---------------------------------------------------------------------------- the log


def test_every_write_appends_one_property_event_in_order(sim: MlsSimulator) -> None:
    # Given every kind of scripted write, an empty one (touch) and a delete included
    sim.add_many(2)
    sim.set_status("L000000", "Pending")
    sim.touch("L000001")
    sim.hide("L000000")
    sim.add_listing("K9")
    sim.remove_listing("K9")
    sim.remove_listing("never-there")  # not a write: nothing to delete
    # When the log is read
    got = events(sim)
    # Then one event per write, in the order written, the sequence growing by one
    assert [v["ResourceRecordKey"] for v in got] == [
        "L000000",
        "L000001",
        "L000000",
        "L000001",
        "L000000",
        "K9",
        "K9",
    ]
    assert sequences(got) == list(range(1, 8))
    assert {v["ResourceName"] for v in got} == {"Property"}
    assert set(got[0]) == {"EntityEventSequence", "ResourceName", "ResourceRecordKey"}


def test_lookup_noise_shares_the_sequence_and_is_filtered_by_resource(
    sim: MlsSimulator,
) -> None:
    sim.add_listing("A")
    sim.add_lookup_events(3)
    sim.add_listing("B")
    everything = events(sim)
    only_property = events(sim, f"EntityEventSequence gt 0 and {PROPERTY}")
    assert sequences(everything) == [1, 2, 3, 4, 5]
    assert [v["ResourceName"] for v in everything[1:4]] == ["Lookup"] * 3
    assert [(v["EntityEventSequence"], v["ResourceRecordKey"]) for v in only_property] == [
        (1, "A"),
        (5, "B"),
    ]


def test_filters_ge_gt_lt_and_descending_order(sim: MlsSimulator) -> None:
    sim.add_many(6)
    assert sequences(events(sim, "EntityEventSequence ge 3")) == [3, 4, 5, 6]
    assert sequences(events(sim, "EntityEventSequence gt 3")) == [4, 5, 6]
    assert sequences(events(sim, "EntityEventSequence lt 3")) == [1, 2]
    assert sequences(events(sim, "EntityEventSequence ge 2 and EntityEventSequence lt 4")) == [
        2,
        3,
    ]
    newest = get(
        sim, {"$filter": PROPERTY, "$orderby": "EntityEventSequence desc", "$top": "1"}
    ).json()["value"]
    assert newest == [
        {"EntityEventSequence": 6, "ResourceName": "Property", "ResourceRecordKey": "L000005"}
    ]


def test_refuses_an_order_it_does_not_offer(sim: MlsSimulator) -> None:
    sim.add_many(1)
    assert get(sim, {"$orderby": "ResourceRecordKey asc"}).status_code == 400
    assert get(sim, {"$filter": "EntityEventSequence gt"}).status_code == 400


def test_pages_follow_nextlinks_and_honour_maxpagesize(sim: MlsSimulator) -> None:
    sim.add_many(7)
    params = {"$filter": "EntityEventSequence gt 0", "$orderby": "EntityEventSequence asc"}
    first = get(sim, {**params, "$top": "3"}).json()
    assert sequences(first["value"]) == [1, 2, 3]
    second = HTTP.get(first["@odata.nextLink"], headers=AUTH).json()
    third = HTTP.get(second["@odata.nextLink"], headers=AUTH).json()
    assert sequences(second["value"]) == [4, 5, 6]
    assert sequences(third["value"]) == [7]
    assert "@odata.nextLink" not in third
    capped = get(sim, {**params, "$top": "100"}, Prefer="odata.maxpagesize=4")
    assert sequences(capped.json()["value"]) == [1, 2, 3, 4]
    assert capped.headers["Preference-Applied"] == "odata.maxpagesize=4"
    assert "@odata.nextLink" in capped.json()


def test_without_the_option_the_resource_is_404_and_metadata_does_not_name_it() -> None:
    with MlsSimulator() as plain:
        plain.add_many(2)
        assert get(plain).status_code == 404
        metadata = HTTP.get(f"{plain.service_root}/$metadata", headers=AUTH)
        assert metadata.status_code == 200
        assert metadata.headers["Content-Type"] == "application/xml"
        assert 'EntitySet Name="Property"' in metadata.text
        assert "EntityEvent" not in metadata.text


def test_metadata_names_the_entity_event_set_and_its_three_fields(sim: MlsSimulator) -> None:
    answer = HTTP.get(f"{sim.url}/$metadata", headers=AUTH)
    assert answer.status_code == 200
    text = answer.text
    assert text.startswith("<?xml")
    assert 'EntitySet Name="EntityEvent"' in text
    for name, kind in (
        ("EntityEventSequence", "Edm.Int64"),
        ("ResourceName", "Edm.String"),
        ("ResourceRecordKey", "Edm.String"),
    ):
        assert f'Property Name="{name}" Type="{kind}"' in text
    assert HTTP.get(f"{sim.url}/$metadata").status_code == 401


def test_metadata_and_events_live_under_a_dataset() -> None:
    with MlsSimulator(vendor="bridge", entity_events=True) as bridge:
        bridge.add_many(1)
        assert get(bridge).status_code == 200
        root = f"{bridge.url}/{bridge.dataset}"
        assert HTTP.get(f"{root}/$metadata", headers=AUTH).status_code == 200
        assert HTTP.get(f"{bridge.url}/EntityEvent", headers=AUTH).status_code == 404


def test_event_requests_share_auth_faults_and_the_request_log(sim: MlsSimulator) -> None:
    sim.add_many(1)
    assert HTTP.get(f"{sim.url}/EntityEvent").status_code == 401
    sim.throttle_next(1, retry_after="7")
    throttled = get(sim)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    sim.fail_next(1, status=503)
    assert get(sim).status_code == 503
    assert get(sim).status_code == 200
    assert [e.path for e in sim.log[-3:]] == ["/EntityEvent"] * 3


# ---------------------------------------------------------------------------- variants


def test_compaction_serves_only_the_newest_event_per_record() -> None:
    with MlsSimulator(entity_events=True, event_compaction=True) as sim:
        sim.add_many(3)  # 1, 2, 3
        sim.set_status("L000000", "Closed")  # 4: hides 1
        sim.touch("L000001")  # 5: hides 2
        got = events(sim)
        assert [(v["EntityEventSequence"], v["ResourceRecordKey"]) for v in got] == [
            (3, "L000002"),
            (4, "L000000"),
            (5, "L000001"),
        ]
        # A sequence asked for directly is gone too (hidden, not merely unlisted).
        assert events(sim, "EntityEventSequence ge 1 and EntityEventSequence lt 3") == []


def test_sparse_sequences_step_past_missing_numbers() -> None:
    with MlsSimulator(entity_events=True, event_step=7) as sim:
        sim.add_many(3)
        assert sequences(events(sim)) == [1, 8, 15]
        assert sequences(events(sim, "EntityEventSequence gt 1")) == [8, 15]


def test_reset_restarts_the_sequence_at_one(sim: MlsSimulator) -> None:
    sim.add_many(4)
    sim.reset_event_log()
    sim.add_listing("NEW")
    got = events(sim)
    assert [(v["EntityEventSequence"], v["ResourceRecordKey"]) for v in got] == [(1, "NEW")]


def test_expiry_drops_a_prefix_of_the_log(sim: MlsSimulator) -> None:
    sim.add_many(5)
    assert sim.expire_events(before=4) == 3
    assert sequences(events(sim)) == [4, 5]
    sim.add_listing("X")
    assert sequences(events(sim)) == [4, 5, 6]


def test_short_pages_end_at_top_without_a_nextlink_though_more_exist() -> None:
    with MlsSimulator(entity_events=True, event_short_pages=True) as sim:
        sim.add_many(5)
        params = {"$filter": "EntityEventSequence gt 0", "$orderby": "EntityEventSequence asc"}
        first = get(sim, {**params, "$top": "2"}).json()
        assert sequences(first["value"]) == [1, 2]
        assert "@odata.nextLink" not in first
        # Asking again after the last sequence seen is how the rest is read.
        again = get(sim, {**params, "$filter": "EntityEventSequence gt 2", "$top": "2"}).json()
        assert sequences(again["value"]) == [3, 4]
        # A page cut by the server's own cap (not by $top) still carries its nextLink.
        capped = get(sim, {**params, "$top": "10"}, Prefer="odata.maxpagesize=2").json()
        assert "@odata.nextLink" in capped


def test_the_option_off_costs_nothing_and_scripting_it_is_refused() -> None:
    with MlsSimulator() as plain:
        plain.add_many(3)
        assert plain.events is None
        with pytest.raises(RuntimeError, match="EntityEvent is off"):
            plain.reset_event_log()


# ---------------------------------------------------------------------------- push


class Receiver:
    """A tiny loopback consumer: answers each POST with the next scripted (status, headers),
    then 200, and keeps what it was sent."""

    def __init__(self, script: list[tuple[int, dict[str, str]]] | None = None) -> None:
        self.script = list(script or [])
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                return

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(json.loads(self.rfile.read(size)))
                receiver.auth.append(self.headers.get("Authorization"))
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.close()


def test_push_delivers_reso_batches_with_the_bearer_token(
    sim: MlsSimulator, receiver: Receiver
) -> None:
    pusher = sim.push_to(receiver.url, "push-secret", batch=3)
    sim.add_many(2)
    sim.add_lookup_events(1)
    sim.set_status("L000000", "Closed")
    assert sim.flush_push(timeout=5)
    sent = [v for body in receiver.bodies for v in body["value"]]
    assert all(body["@reso.context"] == RESO_CONTEXT for body in receiver.bodies)
    assert all(len(body["value"]) <= 3 for body in receiver.bodies)
    assert [(v["EntityEventSequence"], v["ResourceName"]) for v in sent] == [
        (1, "Property"),
        (2, "Property"),
        (3, "Lookup"),
        (4, "Property"),
    ]
    assert set(receiver.auth) == {"Bearer push-secret"}
    assert pusher.delivered == 4
    assert all(a.outcome == "delivered" for a in sim.push_attempts)


def test_push_keys_style_sends_property_keys_only(sim: MlsSimulator, receiver: Receiver) -> None:
    sim.push_to(receiver.url, "t", style="keys", batch=10)
    sim.add_lookup_events(2)  # nothing to send for a keys webhook
    assert sim.flush_push(timeout=5)
    sim.add_listing("A")
    assert sim.flush_push(timeout=5)
    assert receiver.bodies == [{"listingKeys": ["A"]}]


def test_push_honours_429_retry_after_seconds_and_http_date(sim: MlsSimulator) -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    consumer = Receiver([(429, {"Retry-After": "3"}), (429, {"Retry-After": later})])
    waits: list[float] = []
    try:
        sim.push_to(consumer.url, "t", sleep=waits.append, clock=lambda: now)
        sim.add_listing("A")
        assert sim.flush_push(timeout=5)
    finally:
        consumer.close()
    assert waits == [3.0, 42.0]
    assert [(a.status, a.outcome) for a in sim.push_attempts] == [
        (429, "retry"),
        (429, "retry"),
        (200, "delivered"),
    ]
    assert len(consumer.bodies) == 3  # the same batch, three times


def test_push_retries_5xx_with_backoff_then_gives_up(sim: MlsSimulator) -> None:
    consumer = Receiver([(503, {})] * 10)
    waits: list[float] = []
    try:
        pusher = sim.push_to(consumer.url, "t", sleep=waits.append, max_attempts=4)
        sim.add_listing("A")
        assert sim.flush_push(timeout=5)
    finally:
        consumer.close()
    assert [a.outcome for a in sim.push_attempts] == ["retry", "retry", "retry", "gave_up"]
    assert len(waits) == 3
    assert all(0 <= w <= 5 for w in waits)
    assert pusher.given_up == 1
    assert pusher.delivered == 0


def test_push_gives_up_at_once_on_a_refusal(sim: MlsSimulator) -> None:
    consumer = Receiver([(401, {})])
    try:
        sim.push_to(consumer.url, "wrong", sleep=lambda _: None)
        sim.add_listing("A")
        assert sim.flush_push(timeout=5)
    finally:
        consumer.close()
    assert [(a.status, a.outcome) for a in sim.push_attempts] == [(401, "gave_up")]


def test_push_refuses_anything_but_loopback(sim: MlsSimulator) -> None:
    for url in ("https://example.com/hook", "http://10.0.0.1/hook", "file:///etc/passwd"):
        with pytest.raises(ValueError, match="loopback"):
            sim.push_to(url, "t")


def test_retry_after_reading() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("60", now) == 60.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=5), usegmt=True), now) == 5
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
