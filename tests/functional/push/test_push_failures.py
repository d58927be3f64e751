"""When the inbox is full or AWS does not answer: 429 / 503 with Retry-After, and no key is
lost (the producer's retry, or the job already queued, takes it)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any, cast

from botocore.exceptions import ClientError
from mls_sync import aws
from mls_sync.dal.push_inbox import PushInboxRepo
from mls_sync.models import SyncJob
from mls_sync.push.jobs import PushJobSender

from tests.functional.push.conftest import CONNECTION, PushWorld, http_event


def _error(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, operation)


class FlakySender(PushJobSender):
    """The real sender, whose next ``failures`` sends fail as SQS would when unreachable."""

    def __init__(self, real: PushJobSender, failures: int) -> None:
        self._real = real
        self.failures = failures

    def send(
        self, connection_id: str, ticket: int, *, now: datetime, correlation_id: str
    ) -> SyncJob:
        if self.failures > 0:
            self.failures -= 1
            raise _error("SendMessage")
        return self._real.send(connection_id, ticket, now=now, correlation_id=correlation_id)


def _keys(*keys: str) -> dict[str, Any]:
    return http_event({"listingKeys": list(keys)})


def test_a_full_inbox_answers_429_with_retry_after_and_keeps_its_keys(push: PushWorld) -> None:
    deps = dataclasses.replace(push.deps, cap=2)
    assert push.post(_keys("K1", "K2"), deps)["statusCode"] == 200
    answer = push.post(_keys("K3"), deps)
    assert answer["statusCode"] == 429
    assert int(answer["headers"]["retry-after"]) > 0
    assert push.inbox().keys == ["K1", "K2"]
    assert len(push.jobs()) == 1  # the job already queued will empty it


def test_a_failed_send_answers_503_and_the_retry_sends_the_job(push: PushWorld) -> None:
    # Given SQS refusing the first send
    flaky = dataclasses.replace(push.deps, jobs=FlakySender(push.deps.jobs, failures=1))
    # When a push arrives: 503 + Retry-After, its keys kept, no job
    answer = push.post(_keys("K1"), flaky)
    assert answer["statusCode"] == 503
    assert answer["headers"]["retry-after"] == "5"
    assert push.inbox().keys == ["K1"]
    assert push.jobs() == []
    # Then the producer's retry sends the job (the flip was put back)
    assert push.post(_keys("K1"), flaky)["statusCode"] == 200
    assert [j.reason for j in push.jobs()] == ["push"]


def test_another_push_during_a_failed_send_is_covered_by_the_retry(push: PushWorld) -> None:
    flaky = dataclasses.replace(push.deps, jobs=FlakySender(push.deps.jobs, failures=1))
    assert push.post(_keys("K1"), flaky)["statusCode"] == 503
    assert push.post(_keys("K2"), flaky)["statusCode"] == 200
    assert push.inbox().keys == ["K1", "K2"]
    assert len(push.jobs()) == 1


class DownInbox:
    def add(self, *args: Any, **kwargs: Any) -> Any:
        raise _error("UpdateItem")


class DownSecrets:
    def read_json(self, secret_id: str, *, fresh: bool = False) -> dict[str, Any]:
        raise _error("GetSecretValue")


def test_dynamodb_down_answers_503(push: PushWorld) -> None:
    deps = dataclasses.replace(push.deps, inbox=DownInbox())  # type: ignore[arg-type]
    answer = push.post(_keys("K1"), deps)
    assert (answer["statusCode"], answer["headers"]["retry-after"]) == (503, "5")
    assert push.jobs() == []


def test_an_unreadable_secret_answers_503_not_401(push: PushWorld) -> None:
    # A producer told 401 may stop pushing; the secret's outage is ours, not its fault.
    deps = dataclasses.replace(push.deps, secrets=DownSecrets())
    answer = push.post(_keys("K1"), deps)
    assert answer["statusCode"] == 503
    assert "down" not in json.loads(answer["body"])["error"]  # no AWS detail in the answer
    assert push.inbox().keys == []


class AgainFails:
    """A DynamoDB client whose second write of a push (marking keys pushed again) fails."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def update_item(self, **kwargs: Any) -> Any:
        if str(kwargs.get("UpdateExpression", "")).startswith("ADD again"):
            raise _error("UpdateItem")
        return self._real.update_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_failed_second_write_still_sends_the_job_and_asks_for_a_retry(
    push: PushWorld,
) -> None:
    # Given K1 taken by a worker (its job consumed)
    assert push.post(_keys("K1"))["statusCode"] == 200
    push.jobs()
    inbox = push.inbox_repo()
    batch = inbox.open(CONNECTION)
    # When K1 is pushed again and the write that marks it fails after the first went in
    table = inbox.table_name
    flaky = dataclasses.replace(
        push.deps, inbox=PushInboxRepo(cast(Any, AgainFails(aws.dynamodb(quick=True))), table)
    )
    answer = push.post(_keys("K1"), flaky)
    # Then the flip's job was sent all the same, and the producer is told to retry
    assert answer["statusCode"] == 503
    assert len(push.jobs()) == 1
    # And its retry marks K1, which the worker's done then leaves for the next take
    assert push.post(_keys("K1"))["statusCode"] == 200
    inbox.done(CONNECTION, batch.keys, opened=batch)
    assert inbox.open(CONNECTION).keys == ["K1"]


def test_a_job_owed_for_15_minutes_is_sent_by_the_next_push(push: PushWorld) -> None:
    # Given a flip 25 minutes ago whose job never left (the push's answer was lost)
    push.inbox_repo().add(CONNECTION, ["K1"], cap=10, now="2026-11-28T16:40:00.000000Z")
    # When the MLS pushes again
    assert push.post(_keys("K2"))["statusCode"] == 200
    # Then that push sends the owed job, and records it (the next push sends none)
    assert len(push.jobs()) == 1
    assert push.post(_keys("K3"))["statusCode"] == 200
    assert push.jobs() == []
