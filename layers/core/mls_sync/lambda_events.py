"""The Lambda events our handlers parse, as plain pydantic models.

The same fields and validation as Powertools' parser models (``SqsRecordModel``,
``EventBridgeModel``; ``tests/unit/test_lambda_events.py`` holds them side by side), without
importing ``aws_lambda_powertools.utilities.parser``: any module of that package imports
every model and envelope it has (0.1-0.25 s of a cold start).

Subclass :class:`SqsRecord` with ``body: Json[YourModel]`` and pass it to
``mls_sync.sqs_batch.process_sqs_batch``.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SqsAttributes(BaseModel):
    ApproximateReceiveCount: str
    ApproximateFirstReceiveTimestamp: datetime
    MessageDeduplicationId: str | None = None
    MessageGroupId: str | None = None
    SenderId: str
    SentTimestamp: datetime
    SequenceNumber: str | None = None
    AWSTraceHeader: str | None = None
    DeadLetterQueueSourceArn: str | None = None


class SqsMessageAttribute(BaseModel):
    stringValue: str | None = None  # noqa: N815 - SQS's field names
    binaryValue: str | None = None  # noqa: N815
    stringListValues: list[str] = Field(default_factory=list)  # noqa: N815
    binaryListValues: list[str] = Field(default_factory=list)  # noqa: N815
    dataType: str  # noqa: N815


class SqsRecord(BaseModel):
    """One record of an SQS event source mapping's batch."""

    messageId: str  # noqa: N815 - SQS's field names
    receiptHandle: str  # noqa: N815
    body: str | type[BaseModel] | BaseModel
    attributes: SqsAttributes
    messageAttributes: dict[str, SqsMessageAttribute]  # noqa: N815
    md5OfBody: str  # noqa: N815
    md5OfMessageAttributes: str | None = None  # noqa: N815
    eventSource: Literal["aws:sqs"]  # noqa: N815
    eventSourceARN: str  # noqa: N815
    awsRegion: str  # noqa: N815


class ScheduledEvent(BaseModel):
    """An EventBridge event (the dispatcher's schedule firing)."""

    model_config = ConfigDict(populate_by_name=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any] | type[BaseModel] | BaseModel
    replay_name: str | None = Field(None, alias="replay-name")

    @model_validator(mode="before")
    @classmethod
    def _scheduler_detail(cls, data: Any) -> Any:
        # EventBridge Scheduler sends an empty payload as the string "{}" (as Powertools).
        scheduler = isinstance(data, dict) and data.get("source") == "aws.scheduler"
        if scheduler and data.get("detail") == "{}":
            return {**data, "detail": {}}
        return data
