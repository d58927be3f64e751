"""Posts: an agent's social posts about a listing, and what became of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from mls_sync.dal.base import ConditionFailed, is_condition_failure, plain, query_all
from mls_sync.models import Post, PostStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

# Outcomes a published post may move to; anything else is never written over it.
_FROM_PUBLISHED = {
    PostStatus.UNPUBLISHED,
    PostStatus.MANUAL_ACTION_REQUIRED,
    PostStatus.REAUTH_REQUIRED,
    PostStatus.FAILED,
}


class PostsRepo:
    def __init__(self, table: Table) -> None:
        self._table = table

    def create(self, post: Post) -> None:
        try:
            self._table.put_item(
                Item=post.to_item(), ConditionExpression="attribute_not_exists(postId)"
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConditionFailed("exists", self.get_raw(post.post_id)) from None
            raise

    def get_raw(self, post_id: str) -> dict[str, Any] | None:
        found = self._table.get_item(Key={"postId": post_id}, ConsistentRead=True)
        item = found.get("Item")
        return plain(item) if item else None

    def get(self, post_id: str) -> Post | None:
        item = self.get_raw(post_id)
        return Post.model_validate(item) if item else None

    def list_by_listing(self, listing_id: str) -> list[Post]:
        return [
            Post.model_validate(i)
            for i in query_all(
                self._table,
                IndexName="byListing",
                KeyConditionExpression=Key("listingId").eq(listing_id),
            )
        ]

    def record_outcome(
        self,
        post_id: str,
        status: PostStatus,
        *,
        reason: str | None,
        at: str,
        expected: PostStatus = PostStatus.PUBLISHED,
    ) -> None:
        """Moves a post from ``expected`` to ``status`` with the time and reason.

        Only a post still in ``expected`` changes: a post that is no longer published is never
        touched (ConditionFailed('status <current>')).
        """
        if expected is PostStatus.PUBLISHED and status not in _FROM_PUBLISHED:
            raise ValueError(f"a published post cannot become {status.value}")
        sets = ["#s = :s", "outcomeReason = :r", "updatedAt = :at"]
        if status is PostStatus.UNPUBLISHED:
            sets.append("unpublishedAt = :at")
        try:
            self._table.update_item(
                Key={"postId": post_id},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#s = :expected",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":s": status.value,
                    ":r": reason,
                    ":at": at,
                    ":expected": expected.value,
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                current = self.get_raw(post_id)
                state = current.get("status") if current else "missing"
                raise ConditionFailed(f"status {state}", current) from None
            raise
