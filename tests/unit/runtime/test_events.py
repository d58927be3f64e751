"""The pure parts of the pollers: event shapes and how a handler's answer is read."""

from __future__ import annotations

import hashlib

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from mls_sync_local.runtime.pollers import AcceleratedClock, interpret_response, sqs_event

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:mls-sync-dev-sync.fifo"


def _message(message_id: str = "m-1", body: str = '{"connectionId": "c-1"}') -> dict[str, object]:
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "Body": body,
        "Attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1795889141748",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1795889141750",
            "MessageGroupId": "c-1",
            "MessageDeduplicationId": "c-1#slot",
            "SequenceNumber": "1",
            "SqsManagedSseEnabled": "true",
        },
        "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "sync"}},
    }


def test_event_has_lambdas_record_shape_and_powertools_accepts_it() -> None:
    # When a received message becomes an event
    event = sqs_event([_message()], queue_arn=QUEUE_ARN, region="us-east-1")
    # Then Powertools' model of a Lambda SQS event parses it
    parsed = SqsModel.model_validate(event)
    record = event["Records"][0]
    assert parsed.Records[0].attributes.MessageGroupId == "c-1"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == QUEUE_ARN
    assert record["awsRegion"] == "us-east-1"
    assert record["receiptHandle"] == "rh-m-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "sync",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    # And attributes Lambda does not pass on are left out
    assert "SqsManagedSseEnabled" not in record["attributes"]


def test_md5_of_body_is_computed_when_absent() -> None:
    message = _message(body="hello")
    del message["MD5OfBody"]
    record = sqs_event([message], queue_arn=QUEUE_ARN, region="us-east-1")["Records"][0]
    assert record["md5OfBody"] == hashlib.md5(b"hello").hexdigest()


IDS = ("a", "b", "c")


@pytest.mark.parametrize(
    "response",
    [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, {"other": 1}],
)
def test_answers_lambda_reads_as_complete_success(response: object) -> None:
    outcome = interpret_response(response, IDS, report_batch_item_failures=True)
    assert outcome.failed == frozenset()


def test_listed_items_fail_and_only_those() -> None:
    outcome = interpret_response(
        {"batchItemFailures": [{"itemIdentifier": "b"}]}, IDS, report_batch_item_failures=True
    )
    assert outcome.failed == {"b"}


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemId": "a"}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": "a"},
        "ok",
    ],
)
def test_invalid_answers_fail_the_whole_batch(response: object) -> None:
    outcome = interpret_response(response, IDS, report_batch_item_failures=True)
    assert outcome.failed == frozenset(IDS)
    assert outcome.problem


def test_without_report_batch_item_failures_any_answer_is_success() -> None:
    outcome = interpret_response(
        {"batchItemFailures": [{"itemIdentifier": "a"}]}, IDS, report_batch_item_failures=False
    )
    assert outcome.failed == frozenset()


def test_accelerated_clock_moves_forward_only() -> None:
    # Given a clock over a fake base at 100 s
    clock = AcceleratedClock(base=lambda: 100.0)
    # When it jumps 180 s, and a negative jump is asked for
    clock.advance(180)
    clock.advance(-50)
    # Then it reads 280 s and remembers the 180 s skipped
    assert clock() == 280.0
    assert clock.skipped == 180.0
