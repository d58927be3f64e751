"""The common ground of the repositories whose items are keyed by one attribute.

Connections, listings, posts and platform accounts are each one model per item under one
key (``connectionId``, ``listingId``, …): each is added only when its key is free, read
consistently (raw, or validated into its model), and listed through an index by one
attribute (the agent's ``byUser``, a listing's ``byListing``), and updated under a condition
(``update_if``: did it hold; ``update_or_fail``: ConditionFailed when not). :class:`ItemRepo`
does that once; each repository adds what is its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from boto3.dynamodb.conditions import Key

from mls_sync.dal.base import Update, put_new, query_all, read, update_if, update_or_fail
from mls_sync.models import ItemModel

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

M = TypeVar("M", bound=ItemModel)


class ItemRepo(Generic[M]):
    """A table of ``model`` items keyed by the attribute ``key``."""

    model: type[M]
    key: str

    def __init__(self, table: Table) -> None:
        self._table = table

    def create(self, item: M) -> None:
        """Adds ``item``; ConditionFailed('exists') with the stored item when its key is taken."""
        put_new(self._table, item.to_item(), self.key)

    def get_raw(self, item_id: str) -> dict[str, Any] | None:
        return read(self._table, {self.key: item_id})

    def get(self, item_id: str) -> M | None:
        item = self.get_raw(item_id)
        return self.model.model_validate(item) if item else None

    def _by_index(self, index: str, attribute: str, value: str) -> list[M]:
        return [
            self.model.model_validate(i)
            for i in query_all(
                self._table, IndexName=index, KeyConditionExpression=Key(attribute).eq(value)
            )
        ]

    def _update_if(self, item_id: str, update: Update) -> bool:
        """Makes ``update`` on the item; False when its condition does not hold."""
        return update_if(self._table, {self.key: item_id}, update)

    def _update_or_fail(
        self, reason: str, item_id: str, update: Update, *, all_old: bool = False
    ) -> None:
        """Makes ``update`` on the item, else raises ConditionFailed(``reason``)."""
        update_or_fail(reason, self._table, {self.key: item_id}, update, all_old=all_old)
