"""events/publisher.sqs.json is a batch the real handler accepts (sam local invoke, mls-sync
invoke)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mls_sync.models import UnpublishJob

from functions.publisher import app
from tests.integration.publisher.conftest import Publisher, lambda_context

EVENT = Path(__file__).resolve().parents[3] / "events" / "publisher.sqs.json"


def test_sample_event_is_a_well_formed_sqs_batch_of_unpublish_jobs() -> None:
    event = json.loads(EVENT.read_text(encoding="utf-8"))
    records = event["Records"]
    assert len(records) >= 2
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].endswith("-unpublish")
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1
        UnpublishJob.model_validate_json(record["body"])
        app.UnpublishRecord.model_validate(record)


def test_sample_event_runs_through_the_handler(pub: Publisher) -> None:
    # Given the sample's posts do not exist in this (empty) stack
    event = json.loads(EVENT.read_text(encoding="utf-8"))
    # When the handler gets the sample batch
    response = app.handle(event, lambda_context(), pub.deps)
    # Then every record is processed (skipped: unknown post) and none touches a platform
    assert response == {"batchItemFailures": []}
    assert pub.sim.requests() == []
