"""Our event models (mls_sync.lambda_events) accept and refuse what Powertools' parser
models do, field for field, on the real-shaped events in events/."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    EventBridgeModel,
    SqsAttributesModel,
    SqsRecordModel,
)
from aws_lambda_powertools.utilities.parser.models.sqs import SqsMsgAttributeModel
from mls_sync.lambda_events import (
    ScheduledEvent,
    SqsAttributes,
    SqsMessageAttribute,
    SqsRecord,
)
from pydantic import BaseModel, ValidationError

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (SqsRecord, SqsRecordModel),
        (SqsAttributes, SqsAttributesModel),
        (SqsMessageAttribute, SqsMsgAttributeModel),
        (ScheduledEvent, EventBridgeModel),
    ],
)
def test_same_fields_required_and_aliases(ours: type[BaseModel], theirs: type[BaseModel]) -> None:
    def shape(model: type[BaseModel]) -> dict[str, tuple[bool, str | None]]:
        return {n: (f.is_required(), f.alias) for n, f in model.model_fields.items()}

    assert shape(ours) == shape(theirs)


@pytest.mark.parametrize("name", ["worker.sqs.json", "publisher.sqs.json"])
def test_sqs_records_parse_to_the_same_values(name: str) -> None:
    for record in _event(name)["Records"]:
        ours = SqsRecord.model_validate(record).model_dump()
        theirs = SqsRecordModel.model_validate(record).model_dump()
        assert ours == theirs


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("messageId"),
        lambda r: r.pop("md5OfBody"),
        lambda r: r["attributes"].pop("SentTimestamp"),
        lambda r: r["attributes"].update(ApproximateFirstReceiveTimestamp="soon"),
        lambda r: r.update(eventSource="aws:sns"),
        lambda r: r.update(messageAttributes={"a": {"stringValue": "x"}}),
    ],
)
def test_a_damaged_sqs_record_is_refused_by_both(damage: Any) -> None:
    record = copy.deepcopy(_event("worker.sqs.json")["Records"][0])
    damage(record)
    with pytest.raises(ValidationError):
        SqsRecordModel.model_validate(record)
    with pytest.raises(ValidationError):
        SqsRecord.model_validate(record)


def test_the_schedule_event_parses_to_the_same_values() -> None:
    event = _event("dispatcher.schedule.json")
    assert (
        ScheduledEvent.model_validate(event).model_dump()
        == EventBridgeModel.model_validate(event).model_dump()
    )


def test_a_scheduler_event_with_an_empty_string_detail() -> None:
    event = {**_event("dispatcher.schedule.json"), "source": "aws.scheduler", "detail": "{}"}
    assert ScheduledEvent.model_validate(event).detail == {}
    assert EventBridgeModel.model_validate(event).detail == {}
