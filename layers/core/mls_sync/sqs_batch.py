"""SQS batches answered record by record (partial batch responses), without Powertools'
batch utility.

What the worker and publisher need of a batch: parse each record with a pydantic model, run
a handler on it, and name the records that failed so that SQS delivers only those again
(the event source mapping's ``ReportBatchItemFailures``; the answer is
``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}``, an empty list when all
succeeded, per the AWS Lambda developer guide, "Handling errors for an SQS event source").
Powertools' ``utilities.batch`` does the same, and importing it loads the data classes of
every event source it knows and asyncio: ~0.09 s of every cold start of both functions
(docs/performance.md "Cold start").

FIFO queues (``skip_group_on_error``, as Powertools' ``SqsFifoPartialProcessor``): once a
record fails, the later records of its message group are failed without being handled, so
that the group is retried in order; other groups go on. A record that is reported failed
is never handled twice in one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class ItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    batchItemFailures: list[ItemFailure]


def _group_id(record: Mapping[str, Any]) -> str | None:
    attributes = record.get("attributes")
    group = attributes.get("MessageGroupId") if isinstance(attributes, Mapping) else None
    return group if isinstance(group, str) and group else None


def process_sqs_batch(
    records: Sequence[Mapping[str, Any]],
    model: type[M],
    handler: Callable[[M], object],
    *,
    on_failure: Callable[[Mapping[str, Any], Exception], None],
    skip_group_on_error: bool = False,
) -> BatchResponse:
    """Each record of ``records`` (an SQS event's ``Records``, every one with a
    ``messageId``: ``mls_sync.inputs.sqs_batch_problem``) parsed by ``model`` and given to
    ``handler``; a record that does not parse or whose handler raises is reported failed
    and passed to ``on_failure`` with the exception (a record skipped for its group is not:
    nothing went wrong with it)."""
    failures: list[ItemFailure] = []
    failed_groups: set[str] = set()
    for record in records:
        group = _group_id(record) if skip_group_on_error else None
        if group is not None and group in failed_groups:
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        try:
            handler(model.model_validate(record))
        except Exception as exc:  # noqa: BLE001 - a record's failure is reported, not raised
            on_failure(record, exc)
            failures.append({"itemIdentifier": record["messageId"]})
            if group is not None:
                failed_groups.add(group)
    return {"batchItemFailures": failures}
