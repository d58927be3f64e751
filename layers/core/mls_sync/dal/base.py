"""Shared plumbing of the repositories: table handles, item conversion, condition errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from mls_sync import aws
from mls_sync.config import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table


class ConditionFailed(Exception):  # noqa: N818 - reads as the DynamoDB outcome it reports
    """A conditional write lost: ``reason`` says why, ``current`` is the item as it now is."""

    def __init__(self, reason: str, current: Mapping[str, Any] | None = None) -> None:
        self.reason = reason
        self.current = dict(current) if current else None
        super().__init__(reason)


@dataclass(frozen=True)
class Tables:
    """Handles on the service's tables, by role."""

    connections: Table
    listings: Table
    posts: Table
    accounts: Table
    history: Table
    sync_runs: Table
    idempotency_name: str
    listing_keys_name: str

    @classmethod
    def from_settings(
        cls, settings: Settings, resource: DynamoDBServiceResource | None = None
    ) -> Tables:
        db = resource or aws.dynamodb_resource()
        return cls(
            connections=db.Table(settings.connections_table),
            listings=db.Table(settings.listings_table),
            posts=db.Table(settings.posts_table),
            accounts=db.Table(settings.accounts_table),
            history=db.Table(settings.history_table),
            sync_runs=db.Table(settings.sync_runs_table),
            idempotency_name=settings.idempotency_table,
            listing_keys_name=settings.listing_keys_table,
        )


_deserializer = TypeDeserializer()


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@contextmanager
def condition_failed_as(reason: str) -> Iterator[None]:
    """A write in the block whose condition fails raises ``ConditionFailed(reason, item)``,
    ``item`` being what DynamoDB returned with the refusal (a write that asks for it with
    ``ReturnValuesOnConditionCheckFailure="ALL_OLD"``), else None. Other errors pass."""
    try:
        yield
    except ClientError as exc:
        if not is_condition_failure(exc):
            raise
        raise ConditionFailed(reason, old_item(exc)) from None


def conditional(write: Callable[[], object]) -> bool:
    """Makes ``write``; False when its condition failed (other errors pass)."""
    try:
        write()
    except ClientError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


@dataclass(frozen=True)
class Update:
    """One conditional UpdateItem: its update expression, the condition it lands under, and
    the attribute values and names they use."""

    expression: str
    condition: str
    values: Mapping[str, Any] | None = None
    names: Mapping[str, str] | None = None

    def request(self, key: Mapping[str, Any]) -> dict[str, Any]:
        """UpdateItem's arguments for the item at ``key`` (DynamoDB refuses empty name or
        value maps: they are left out then)."""
        kwargs: dict[str, Any] = {
            "Key": dict(key),
            "UpdateExpression": self.expression,
            "ConditionExpression": self.condition,
        }
        if self.values:
            kwargs["ExpressionAttributeValues"] = dict(self.values)
        if self.names:
            kwargs["ExpressionAttributeNames"] = dict(self.names)
        return kwargs


def update_if(table: Table, key: Mapping[str, Any], update: Update) -> bool:
    """Makes ``update`` on the item at ``key``; False when its condition does not hold
    (other errors pass)."""
    return conditional(lambda: table.update_item(**update.request(key)))


def update_or_fail(
    reason: str, table: Table, key: Mapping[str, Any], update: Update, *, all_old: bool = False
) -> None:
    """Makes ``update`` on the item at ``key``, else raises ``ConditionFailed(reason, item)``:
    ``item`` is the item as the refusal returned it when ``all_old`` asks for it
    (``ReturnValuesOnConditionCheckFailure``), else None."""
    kwargs = update.request(key)
    if all_old:
        kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    with condition_failed_as(reason):
        table.update_item(**kwargs)


def old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item as it stood when a write's condition failed (``ALL_OLD``), if DynamoDB
    returned it: on the error itself, or on a transaction's first cancellation reason."""
    response: Any = exc.response
    wire = response.get("Item")
    if wire is None:
        reasons = response.get("CancellationReasons") or []
        wire = reasons[0].get("Item") if reasons else None
    if not wire:
        return None
    return plain({k: _deserializer.deserialize(v) for k, v in wire.items()})


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item with Decimals turned back into ints/floats and sets into sorted lists."""
    return {k: _plain(v) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def storable(value: Any) -> Any:
    """``value`` as boto3's DynamoDB serializer takes it: floats become Decimals (through
    their shortest text, so 0.2 is stored as 0.2, not 0.2000000000000000111)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def read(table: Table, key: Mapping[str, Any], **kwargs: Any) -> dict[str, Any] | None:
    """The item at ``key``, read consistently, as plain values; None when there is none."""
    item = table.get_item(Key=key, ConsistentRead=True, **kwargs).get("Item")
    return plain(item) if item else None


def put_new(table: Table, item: Mapping[str, Any], key: str) -> None:
    """Writes ``item`` unless an item with its ``key`` exists: then ConditionFailed('exists')
    with the stored item, as the refusal returned it."""
    with condition_failed_as("exists"):
        table.put_item(
            Item=item,
            ConditionExpression=f"attribute_not_exists({key})",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )


def newest(table: Table, key: str, value: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` items whose partition key ``key`` is ``value``, highest sort key
    (newest) first, as plain values."""
    page = table.query(
        KeyConditionExpression=Key(key).eq(value), ScanIndexForward=False, Limit=limit
    )
    return [plain(i) for i in page.get("Items", [])]


def query_all(table: Table, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a query, following LastEvaluatedKey."""
    while True:
        page = table.query(**kwargs)
        for item in page.get("Items", []):
            yield plain(item)
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last
