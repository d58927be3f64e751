"""PlatformAccounts: an agent's connected social accounts, and the token-refresh lease."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key

from mls_sync.dal.base import condition_failed_as, conditional, put_new, query_all, read
from mls_sync.models import PlatformAccount

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class AccountsRepo:
    def __init__(self, table: Table) -> None:
        self._table = table

    def create(self, account: PlatformAccount) -> None:
        put_new(self._table, account.to_item(), "accountId")

    def get_raw(self, account_id: str) -> dict[str, Any] | None:
        return read(self._table, {"accountId": account_id})

    def get(self, account_id: str) -> PlatformAccount | None:
        item = self.get_raw(account_id)
        return PlatformAccount.model_validate(item) if item else None

    def list_by_user(self, user_id: str) -> list[PlatformAccount]:
        return [
            PlatformAccount.model_validate(i)
            for i in query_all(
                self._table, IndexName="byUser", KeyConditionExpression=Key("userId").eq(user_id)
            )
        ]

    def acquire_refresh_lease(self, account_id: str, owner: str, *, now: str, until: str) -> bool:
        """Takes the account's refresh lease; False when another refresher holds a live one.
        Timestamps are fixed-width UTC text, so string order is time order."""
        return conditional(
            lambda: self._table.update_item(
                Key={"accountId": account_id},
                UpdateExpression="SET leaseOwner = :o, leaseExpiresAt = :u",
                ConditionExpression=(
                    "attribute_exists(accountId) AND (attribute_not_exists(leaseOwner)"
                    " OR leaseExpiresAt < :now OR leaseOwner = :o)"
                ),
                ExpressionAttributeValues={":o": owner, ":u": until, ":now": now},
            )
        )

    def release_refresh_lease(
        self, account_id: str, owner: str, *, token_expires_at: str | None = None
    ) -> None:
        """Releases a lease we hold (and records the new token's expiry); a lease taken over
        by someone else after ours expired is left alone."""
        expression = "REMOVE leaseOwner, leaseExpiresAt"
        values: dict[str, Any] = {":o": owner}
        if token_expires_at is not None:
            expression = "SET tokenExpiresAt = :x " + expression
            values[":x"] = token_expires_at
        with condition_failed_as("lease lost"):
            self._table.update_item(
                Key={"accountId": account_id},
                UpdateExpression=expression,
                ConditionExpression="leaseOwner = :o",
                ExpressionAttributeValues=values,
            )

    def set_status(self, account_id: str, status: str, *, at: str) -> None:
        with condition_failed_as("missing"):
            self._table.update_item(
                Key={"accountId": account_id},
                UpdateExpression="SET #s = :s, statusChangedAt = :at",
                ConditionExpression="attribute_exists(accountId)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": status, ":at": at},
            )
