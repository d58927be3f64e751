"""PlatformAccounts: an agent's connected social accounts, and the token-refresh lease."""

from __future__ import annotations

from typing import Any

from mls_sync.dal.base import Update
from mls_sync.dal.item_repo import ItemRepo
from mls_sync.models import PlatformAccount


class AccountsRepo(ItemRepo[PlatformAccount]):
    model = PlatformAccount
    key = "accountId"

    def list_by_user(self, user_id: str) -> list[PlatformAccount]:
        return self._by_index("byUser", "userId", user_id)

    def acquire_refresh_lease(self, account_id: str, owner: str, *, now: str, until: str) -> bool:
        """Takes the account's refresh lease; False when another refresher holds a live one.
        Timestamps are fixed-width UTC text, so string order is time order."""
        return self._update_if(
            account_id,
            Update(
                "SET leaseOwner = :o, leaseExpiresAt = :u",
                "attribute_exists(accountId) AND (attribute_not_exists(leaseOwner)"
                " OR leaseExpiresAt < :now OR leaseOwner = :o)",
                values={":o": owner, ":u": until, ":now": now},
            ),
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
        self._update_or_fail(
            "lease lost", account_id, Update(expression, "leaseOwner = :o", values=values)
        )

    def set_status(self, account_id: str, status: str, *, at: str) -> None:
        self._update_or_fail(
            "missing",
            account_id,
            Update(
                "SET #s = :s, statusChangedAt = :at",
                "attribute_exists(accountId)",
                values={":s": status, ":at": at},
                names={"#s": "status"},
            ),
        )
