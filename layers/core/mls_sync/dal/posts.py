"""Posts: an agent's social posts about a listing, and what became of them.

A post's outcome is written together with its outbox (``pendingEffects``: what must still
follow from it — the account's status, the ``PostUnpublishOutcome`` event, the listing's
"all posts down" announcement), the job's correlation id and the listing change it was for;
each effect is ticked off once delivered (:meth:`PostsRepo.complete_effect`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mls_sync.dal.base import ConditionFailed, Update, condition_failed_as, plain
from mls_sync.dal.item_repo import ItemRepo
from mls_sync.models import Post, PostStatus

# Outcomes a published post may move to; anything else is never written over it.
_FROM_PUBLISHED = {
    PostStatus.UNPUBLISHED,
    PostStatus.MANUAL_ACTION_REQUIRED,
    PostStatus.REAUTH_REQUIRED,
    PostStatus.FAILED,
}


@dataclass(frozen=True, slots=True)
class SettledPost:
    """A post item with its outbox: the effects of its outcome still to deliver."""

    post: Post
    pending: frozenset[str]
    correlation_id: str | None
    """The correlation id of the job that recorded the outcome."""
    sale: str | None
    """The listing change (its ``postsDownFor`` marker) the takedown was for."""
    takedown_round: int
    """How many times the post was put back to ``published`` for another takedown."""

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SettledPost:
        return cls(
            post=Post.model_validate(item),
            pending=frozenset(str(e) for e in item.get("pendingEffects") or ()),
            correlation_id=item.get("outcomeCorrelationId"),
            sale=item.get("outcomeFor"),
            takedown_round=int(item.get("takedownRound") or 0),
        )


class PostsRepo(ItemRepo[Post]):
    model = Post
    key = "postId"

    def get_settled(self, post_id: str) -> SettledPost | None:
        item = self.get_raw(post_id)
        return SettledPost.from_item(item) if item else None

    def list_by_listing(self, listing_id: str) -> list[Post]:
        return self._by_index("byListing", "listingId", listing_id)

    def record_outcome(
        self,
        post_id: str,
        status: PostStatus,
        *,
        reason: str | None,
        at: str,
        expected: PostStatus = PostStatus.PUBLISHED,
        effects: Iterable[str] = (),
        correlation_id: str | None = None,
        sale: str | None = None,
    ) -> SettledPost:
        """Moves a post from ``expected`` to ``status`` with the time and reason, and with
        the outbox of that outcome (``effects`` still to deliver, the job's correlation id,
        the listing change ``sale`` it was for) in the same write. Returns the item as written.

        Only a post still in ``expected`` changes: a post that is no longer published is never
        touched (ConditionFailed('status <current>')).
        """
        if expected is PostStatus.PUBLISHED and status not in _FROM_PUBLISHED:
            raise ValueError(f"a published post cannot become {status.value}")
        sets = ["#s = :s", "outcomeReason = :r", "updatedAt = :at"]
        values: dict[str, Any] = {
            ":s": status.value,
            ":r": reason,
            ":at": at,
            ":expected": expected.value,
        }
        if status is PostStatus.UNPUBLISHED:
            sets.append("unpublishedAt = :at")
        pending = set(effects)
        if pending:
            sets.append("pendingEffects = :e")
            values[":e"] = pending
        for name, value in (("outcomeCorrelationId", correlation_id), ("outcomeFor", sale)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        try:
            with condition_failed_as("status moved"):
                found = self._table.update_item(
                    Key={"postId": post_id},
                    UpdateExpression="SET " + ", ".join(sets),
                    ConditionExpression="#s = :expected",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ConditionFailed as refused:  # named by the post as the refusal found it
            state = refused.current.get("status") if refused.current else "missing"
            raise ConditionFailed(f"status {state}", refused.current) from None
        return SettledPost.from_item(plain(found["Attributes"]))

    def complete_effect(self, post_id: str, effect: str) -> None:
        """Ticks one delivered effect off the post's outbox (idempotent)."""
        self._update_or_fail(
            "missing",
            post_id,
            Update("DELETE pendingEffects :e", "attribute_exists(postId)", values={":e": {effect}}),
        )

    def reopen(
        self, post_id: str, *, at: str, expected: PostStatus = PostStatus.REAUTH_REQUIRED
    ) -> bool:
        """Puts a post the platform still shows back to ``published`` (its account works
        again), as a new takedown round: the publisher's idempotency is keyed on the round,
        so the next job for it makes a fresh call. Only from ``expected`` and with nothing
        left in its outbox; False when the post is not (or no longer) in that state."""
        return self._update_if(
            post_id,
            Update(
                "SET #s = :published, updatedAt = :at"
                " ADD takedownRound :one"
                " REMOVE outcomeReason, outcomeCorrelationId, outcomeFor",
                "#s = :expected AND attribute_not_exists(pendingEffects)",
                values={
                    ":published": PostStatus.PUBLISHED.value,
                    ":expected": expected.value,
                    ":at": at,
                    ":one": 1,
                },
                names={"#s": "status"},
            ),
        )
