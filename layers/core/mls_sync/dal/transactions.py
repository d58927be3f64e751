"""DynamoDB transactions in wire form, as the repositories build and read them.

``TransactWriteItems`` and ``BatchGetItem`` speak DynamoDB's typed wire form rather than the
resource layer's plain values: this module serialises values and items, builds the ``Update``
operation of a transaction from an update request (expression, condition, names, values), and
tells a transaction refused by a condition (which the caller explains) from one cancelled for
any other reason (which it raises).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from mls_sync.dal.base import is_condition_failure, plain, storable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

UpdateRequest = tuple[str, str, dict[str, str], dict[str, Any]]
"""An update: its expression, condition, attribute names and values."""


def av(value: Any) -> dict[str, Any]:
    """``value`` as a DynamoDB attribute value."""
    return dict(_serializer.serialize(value))


def wire_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain item in wire form (floats stored through their shortest text)."""
    return {k: av(v) for k, v in storable(dict(item)).items()}


def from_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    """A wire-form item as plain values."""
    return plain({k: _deserializer.deserialize(v) for k, v in item.items()})


def update_operation(
    table_name: str, key: Mapping[str, Any], request: UpdateRequest, *, all_old: bool = False
) -> TransactWriteItemTypeDef:
    """The ``Update`` of a transaction that makes ``request`` on the item at ``key``;
    ``all_old``: a refusal returns the item as it stood."""
    expression, condition, names, values = request
    update: Any = {
        "TableName": table_name,
        "Key": {k: av(v) for k, v in key.items()},
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {k: av(v) for k, v in values.items()},
    }
    if all_old:
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Update": update}


def refused_by_condition(exc: ClientError) -> bool:
    """Whether a write (a single one or a transaction) failed because a condition did not
    hold, rather than for throttling, a conflict or any other reason."""
    if is_condition_failure(exc):
        return True
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons", [])
    return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons
