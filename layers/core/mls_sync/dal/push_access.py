"""The push receiver's view of a connection: enabled, and the secret holding its push token.

Two attributes of the Connections item, read with a projection (the receiver never needs the
cursor, health or brake, and a connection item of any age reads the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mls_sync.dal.base import condition_failed_as

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


@dataclass(frozen=True, slots=True)
class PushAccess:
    enabled: bool
    push_secret_arn: str | None
    """None: push is not enabled for the connection."""


class PushAccessRepo:
    def __init__(self, client: DynamoDBClient, connections_table: str) -> None:
        self._client = client
        self._table = connections_table

    def get(self, connection_id: str) -> PushAccess | None:
        """Read consistently (a token just set works at once); None: no such connection."""
        item = self._client.get_item(
            TableName=self._table,
            Key={"connectionId": {"S": connection_id}},
            ProjectionExpression="enabled, pushSecretArn",
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        arn = item.get("pushSecretArn", {}).get("S")
        enabled = item.get("enabled", {}).get("BOOL")
        return PushAccess(enabled=enabled is not False, push_secret_arn=arn or None)

    def set_secret(self, connection_id: str, secret_arn: str) -> None:
        """Enables push with the token in ``secret_arn`` (`mls-sync push set-token`).
        ConditionFailed('missing') when the connection does not exist."""
        with condition_failed_as("missing"):
            self._client.update_item(
                TableName=self._table,
                Key={"connectionId": {"S": connection_id}},
                UpdateExpression="SET pushSecretArn = :s",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={":s": {"S": secret_arn}},
            )
