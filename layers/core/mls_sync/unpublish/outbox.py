"""The publisher's outbox: what must follow a post's outcome, delivered at least once.

A post's outcome is written with its pending effects in the same item write
(``PostsRepo.record_outcome``); each effect is delivered, then ticked off
(``PostsRepo.complete_effect``). A redelivery of the job that finds the post already settled
delivers what is still pending. The listing's announcement is decided by a conditional
claim on the listing item, owned by one post (and takedown round) per sale, so it is made
once however many workers and redeliveries get there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mls_sync.dal.base import Update, update_if

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

EFFECT_ACCOUNT = "account"
"""Mark the post's account ``reauth_required`` (its token was refused)."""
EFFECT_EVENT = "event"
"""Send ``PostUnpublishOutcome``."""
EFFECT_ANNOUNCE = "announce"
"""When no post of the listing is published any more: one ``ListingPostsUnpublished``."""

DELIVERY_ORDER = (EFFECT_ACCOUNT, EFFECT_EVENT, EFFECT_ANNOUNCE)
"""The account first: the account's other posts must stop calling with a dead token."""


def owner_of(post_id: str, takedown_round: int) -> str:
    """Who may announce a sale: one post in one takedown round. A post put back to
    ``published`` for another try is a new round and cannot announce the same sale twice."""
    return post_id if takedown_round == 0 else f"{post_id}#{takedown_round}"


class PostsDownClaims:
    """The listing item's ``postsDownFor`` (the sale, as its MLS time) and ``postsDownBy``
    (the owner who announces it)."""

    def __init__(self, listings: Table) -> None:
        self._table = listings

    def claim(self, listing_id: str, sale: str, owner: str) -> bool:
        """True for the one owner of this sale's announcement: the first to claim it, and
        that same owner again on a redelivery (its announcement may not have gone out)."""
        return update_if(
            self._table,
            {"listingId": listing_id},
            Update(
                "SET postsDownFor = :m, postsDownBy = :o",
                "attribute_exists(listingId) AND (attribute_not_exists(postsDownFor)"
                " OR postsDownFor <> :m OR postsDownBy = :o)",
                values={":m": sale, ":o": owner},
            ),
        )
