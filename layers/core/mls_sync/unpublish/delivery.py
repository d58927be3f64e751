"""Delivery of a settled post's outbox: the account, the outcome event, the announcement.

A post's outcome is written with the effects that must follow it (``outbox.py``); this module
delivers each one still pending and ticks it off, each independently (a bus failure does not
hold the account write back): the account marked ``reauth_required``, one
``PostUnpublishOutcome`` event, and, when no post of the listing is published any more, one
``ListingPostsUnpublished`` per sale, announced by the post whose claim on the listing wins.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.base import ConditionFailed
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo, SettledPost
from mls_sync.events import Event, EventPublisher
from mls_sync.models import (
    Listing,
    ListingPostsUnpublishedDetail,
    PostStatus,
    PostUnpublishOutcomeDetail,
    UnpublishJob,
)
from mls_sync.timeutil import Clock, format_utc
from mls_sync.unpublish.outbox import (
    DELIVERY_ORDER,
    EFFECT_ACCOUNT,
    EFFECT_EVENT,
    PostsDownClaims,
    owner_of,
)
from mls_sync.unpublish.outcomes import EffectsPending

logger = Logger(child=True)


@dataclass(frozen=True, kw_only=True)
class OutcomeDelivery:
    """Delivers the effects still pending on settled posts (a part of ``UnpublishService``)."""

    posts: PostsRepo
    listings: ListingsRepo
    accounts: AccountsRepo
    events: EventPublisher
    claims: PostsDownClaims
    clock: Clock

    def deliver(self, settled: SettledPost, job: UnpublishJob | None = None) -> None:
        """Delivers each effect still pending on a settled post, ticking each off once done.
        Each is tried independently (a bus failure does not hold the account write back);
        raises :class:`EffectsPending` naming those that failed, for the job to be retried."""
        failed: dict[str, str] = {}
        for effect in DELIVERY_ORDER:
            if effect not in settled.pending:
                continue
            try:
                if effect == EFFECT_ACCOUNT:
                    self._mark_account(settled)
                elif effect == EFFECT_EVENT:
                    self._send_outcome(settled, job)
                else:
                    self._announce_when_all_down(settled, job)
                self.posts.complete_effect(settled.post.post_id, effect)
            except Exception as exc:  # noqa: BLE001 - kept pending, retried with the job
                logger.warning(
                    "post outcome effect not delivered; kept pending",
                    extra={"postId": settled.post.post_id, "effect": effect, "error": str(exc)},
                )
                failed[effect] = f"{type(exc).__name__}: {exc}"
        if failed:
            raise EffectsPending(settled.post.post_id, failed)

    def _mark_account(self, settled: SettledPost) -> None:
        at = settled.post.updated_at or format_utc(self.clock())
        try:
            self.accounts.set_status(settled.post.account_id, "reauth_required", at=at)
        except ConditionFailed:
            logger.warning("the post's account is gone", extra={"postId": settled.post.post_id})

    @staticmethod
    def _correlation(settled: SettledPost, job: UnpublishJob | None) -> str:
        return settled.correlation_id or (job.correlation_id if job else "") or "unknown"

    def _at(self, settled: SettledPost) -> str:
        """When the post's outcome was recorded (now, for a record without the time)."""
        return settled.post.updated_at or format_utc(self.clock())

    def _send_outcome(self, settled: SettledPost, job: UnpublishJob | None) -> None:
        post = settled.post
        manual = post.status is PostStatus.MANUAL_ACTION_REQUIRED
        detail = PostUnpublishOutcomeDetail(
            post_id=post.post_id,
            listing_id=post.listing_id,
            platform=post.platform,
            outcome=post.status,
            reason=post.outcome_reason,
            at=self._at(settled),
            correlation_id=self._correlation(settled, job),
            permalink=post.permalink if manual else None,
        )
        self.events.publish([Event("PostUnpublishOutcome", detail)])

    def _announce_when_all_down(self, settled: SettledPost, job: UnpublishJob | None) -> None:
        """One ListingPostsUnpublished per sale: when no post of the listing is published.

        Every settled post checks after its own write, so the last of them to settle sees
        all down. Of those that see it, the one whose claim on the listing wins announces
        (``outbox.PostsDownClaims``); a redelivery of that same post may claim again, since
        its announcement may not have gone out; any other post's claim fails.
        """
        post = settled.post
        # The byListing index lags behind writes: confirm every post it still shows as
        # published with a consistent read, or two workers taking down a listing's last two
        # posts at once could each see the other's as still up, and nobody would announce.
        posts = [
            (self.posts.get(p.post_id) or p) if p.status is PostStatus.PUBLISHED else p
            for p in self.posts.list_by_listing(post.listing_id)
        ]
        if any(p.status is PostStatus.PUBLISHED for p in posts):
            return  # a later one announces
        listing = self.listings.get(post.listing_id)
        if listing is None:
            return
        sale = settled.sale if settled.sale is not None else sale_of(listing)
        owner = owner_of(post.post_id, settled.takedown_round)
        if not self.claims.claim(post.listing_id, sale, owner):
            return  # another post announces this sale
        outcomes: dict[str, Counter[str]] = {}
        for p in posts:
            if p.status not in _TAKEN_DOWN:
                continue  # drafts and scheduled posts were never up
            outcomes.setdefault(p.platform.value, Counter())[p.status.value] += 1
        detail = ListingPostsUnpublishedDetail(
            listing_id=post.listing_id,
            user_id=listing.user_id,
            outcomes={k: dict(v) for k, v in outcomes.items()},
            at=self._at(settled),
            correlation_id=self._correlation(settled, job),
        )
        self.events.publish([Event("ListingPostsUnpublished", detail)])


_TAKEN_DOWN = frozenset(
    {
        PostStatus.UNPUBLISHED,
        PostStatus.MANUAL_ACTION_REQUIRED,
        PostStatus.REAUTH_REQUIRED,
        PostStatus.FAILED,
    }
)


def sale_of(listing: Listing) -> str:
    """The listing change a takedown is for: its MLS time (else when its status changed)."""
    return listing.mls_modified_key or listing.status_changed_at or ""
