"""An SQS batch is answered record by record: only the records that failed are named (the
rest are deleted by SQS), a record that does not parse fails alone, and on a FIFO queue a
failed record fails the later records of its message group without handling them."""

from __future__ import annotations

from typing import Any

from mls_sync.sqs_batch import process_sqs_batch
from pydantic import BaseModel


class Job(BaseModel):
    messageId: str  # noqa: N815 - SQS's field name
    body: str


def _record(message_id: str, body: str = "ok", group: str | None = None) -> dict[str, Any]:
    attributes = {"MessageGroupId": group} if group else {}
    return {"messageId": message_id, "body": body, "attributes": attributes}


class Recorder:
    def __init__(self, fail_on: frozenset[str] = frozenset()) -> None:
        self.fail_on = fail_on
        self.handled: list[str] = []
        self.failures: list[tuple[str, str]] = []

    def handle(self, job: Job) -> str:
        self.handled.append(job.messageId)
        if job.body in self.fail_on:
            raise RuntimeError(f"job {job.messageId} failed")
        return "done"

    def on_failure(self, record: Any, exc: Exception) -> None:
        self.failures.append((record["messageId"], type(exc).__name__))


def _failed(response: Any) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_all_handled_names_no_failure() -> None:
    rec = Recorder()
    response = process_sqs_batch(
        [_record("m1"), _record("m2")], Job, rec.handle, on_failure=rec.on_failure
    )
    assert response == {"batchItemFailures": []}
    assert rec.handled == ["m1", "m2"]


def test_only_the_records_that_failed_are_named_and_the_others_still_run() -> None:
    rec = Recorder(fail_on=frozenset({"bad"}))
    records = [_record("m1"), _record("m2", "bad"), _record("m3")]
    response = process_sqs_batch(records, Job, rec.handle, on_failure=rec.on_failure)
    assert _failed(response) == ["m2"]
    assert rec.handled == ["m1", "m2", "m3"]
    assert rec.failures == [("m2", "RuntimeError")]


def test_a_record_that_does_not_parse_fails_alone_and_is_not_handled() -> None:
    rec = Recorder()
    records = [_record("m1"), {"messageId": "m2", "attributes": {}}, _record("m3")]
    response = process_sqs_batch(records, Job, rec.handle, on_failure=rec.on_failure)
    assert _failed(response) == ["m2"]
    assert rec.handled == ["m1", "m3"]
    assert rec.failures == [("m2", "ValidationError")]


def test_every_record_failed_is_still_an_answer_not_an_error() -> None:
    rec = Recorder(fail_on=frozenset({"bad"}))
    records = [_record("m1", "bad"), _record("m2", "bad")]
    response = process_sqs_batch(records, Job, rec.handle, on_failure=rec.on_failure)
    assert _failed(response) == ["m1", "m2"]


def test_fifo_a_failure_skips_the_rest_of_its_group_only() -> None:
    rec = Recorder(fail_on=frozenset({"bad"}))
    records = [
        _record("a1", "bad", group="a"),
        _record("b1", group="b"),
        _record("a2", group="a"),
        _record("b2", group="b"),
        _record("a3", "not even parsed: skipped", group="a"),
    ]
    response = process_sqs_batch(
        records, Job, rec.handle, on_failure=rec.on_failure, skip_group_on_error=True
    )
    assert _failed(response) == ["a1", "a2", "a3"]
    assert rec.handled == ["a1", "b1", "b2"]
    assert rec.failures == [("a1", "RuntimeError")]  # the skipped ones did nothing wrong


def test_fifo_an_unparsable_record_skips_the_rest_of_its_group() -> None:
    rec = Recorder()
    records = [{"messageId": "a1", "attributes": {"MessageGroupId": "a"}}, _record("a2", group="a")]
    response = process_sqs_batch(
        records, Job, rec.handle, on_failure=rec.on_failure, skip_group_on_error=True
    )
    assert _failed(response) == ["a1", "a2"]
    assert rec.handled == []


def test_without_fifo_groups_a_failure_does_not_skip_its_group() -> None:
    rec = Recorder(fail_on=frozenset({"bad"}))
    records = [_record("a1", "bad", group="a"), _record("a2", group="a")]
    response = process_sqs_batch(records, Job, rec.handle, on_failure=rec.on_failure)
    assert _failed(response) == ["a1"]
    assert rec.handled == ["a1", "a2"]
