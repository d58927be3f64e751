"""One unpublish job: take one post down and record what became of it.

Decisions, in order: a post that is not ``published`` is never touched; a post whose listing
is no longer in ``UnpublishOnStatuses`` (relisted before the job ran) is left up; otherwise
the platform is asked to delete it and the outcome is written on the post, conditionally on
it still being ``published``, together with its outbox (``outbox.py``: the account's status,
the ``PostUnpublishOutcome`` event, the listing's announcement), which is then delivered. A
crash between the delete and the write is safe: the retry deletes again, the platform
answers "already gone", and the post converges to ``unpublished`` with no second effect.
A failure after the write (the bus, the account write) is safe too: the job is retried,
finds the post settled with effects pending, and delivers only those. What an outcome means
for the post is ``outcomes.py``; the delivery of its effects ``delivery.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.base import ConditionFailed
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo, SettledPost
from mls_sync.events import EventPublisher
from mls_sync.models import PlatformAccount, Post, PostStatus, UnpublishJob
from mls_sync.platforms.base import (
    Outcome,
    PlatformClient,
    PostRef,
    RateLimited,
    RefreshError,
    RefreshNotSupported,
    Transient,
)
from mls_sync.platforms.registry import PlatformRegistry
from mls_sync.policy import TransitionPolicy
from mls_sync.timeutil import Clock, format_utc, utc_now
from mls_sync.unpublish.delivery import OutcomeDelivery, sale_of
from mls_sync.unpublish.outbox import EFFECT_ACCOUNT, EFFECT_ANNOUNCE, EFFECT_EVENT, PostsDownClaims
from mls_sync.unpublish.outcomes import (
    NEEDS_A_PERSON,
    Attempt,
    EffectsPending,
    GaveUp,
    Result,
    RetryLater,
    status_for,
)
from mls_sync.unpublish.tokens import (
    RefreshBusyError,
    StoredToken,
    TokenService,
    account_ref,
    is_expired,
)

__all__ = ["Attempt", "EffectsPending", "GaveUp", "Result", "RetryLater", "UnpublishService"]

logger = Logger(child=True)


@dataclass(kw_only=True)
class UnpublishService:
    """Takes posts down, one job at a time, and records what became of each."""

    posts: PostsRepo
    listings: ListingsRepo
    accounts: AccountsRepo
    tokens: TokenService
    platforms: PlatformRegistry
    events: EventPublisher
    policy: TransitionPolicy
    claims: PostsDownClaims
    clock: Clock = utc_now
    _delivery: OutcomeDelivery = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._delivery = OutcomeDelivery(
            posts=self.posts,
            listings=self.listings,
            accounts=self.accounts,
            events=self.events,
            claims=self.claims,
            clock=self.clock,
        )

    def precheck(self, job: UnpublishJob) -> Result | None:
        """Why the job no longer applies, or None when the post must come down.

        Kept outside the idempotent section: a skip must never be remembered, or a listing
        sold, relisted and sold again would keep its posts up. A post already settled whose
        outcome still has effects pending (a previous delivery failed after the write) gets
        them delivered here: raises :class:`EffectsPending` if some still fail.
        """
        settled = self.posts.get_settled(job.post_id)
        if settled is None:
            logger.warning("unpublish job for an unknown post", extra={"postId": job.post_id})
            return "skipped_missing"
        post = settled.post
        if post.status is not PostStatus.PUBLISHED and settled.pending:
            logger.info(
                "post already settled; delivering its pending effects",
                extra={"postId": post.post_id, "pending": sorted(settled.pending)},
            )
            self.deliver(settled, job)
            return "effects_delivered"
        if post.status is not PostStatus.PUBLISHED:
            logger.info(
                "post is not published; left alone",
                extra={"postId": post.post_id, "status": post.status.value},
            )
            return "skipped_not_published"
        listing = self.listings.get(post.listing_id)
        if listing is None or not self.policy.should_unpublish(listing.status):
            logger.info(
                "listing no longer calls for unpublishing (relisted?); post left up",
                extra={"postId": post.post_id, "listingStatus": listing and listing.status.value},
            )
            return "skipped_relisted"
        return None

    def takedown_round(self, post_id: str) -> int:
        """The post's takedown round: part of the idempotency key, so a post put back to
        ``published`` (its account re-authorised) is taken down afresh, not answered from
        the stored result of its earlier try."""
        settled = self.posts.get_settled(post_id)
        return settled.takedown_round if settled is not None else 0

    def take_down(self, job: UnpublishJob, attempt: Attempt | None = None) -> Result:
        """Deletes the post on its platform and records the outcome (run once per post)."""
        attempt = attempt or Attempt()
        post = self.posts.get(job.post_id)
        if post is None or post.status is not PostStatus.PUBLISHED:
            return "skipped_not_published"
        outcome = self._delete(post)
        return self._record(post, job, outcome, attempt)

    # ------------------------------------------------------------------ the call

    def _delete(self, post: Post) -> Outcome | Result:
        account = self.accounts.get(post.account_id)
        if account is None:
            return "failed"
        if account.status == "reauth_required":
            return "reauth_required"
        client = self.platforms.client(post.platform.value)
        token = self.tokens.read(account)
        post_ref = PostRef(platform_post_id=post.platform_post_id, permalink=post.permalink)
        if (
            client.supports_refresh
            and token.refreshToken is not None
            and is_expired(token, self.clock)
        ):
            fresh = self._refresh(account, client, token)
            if not isinstance(fresh, StoredToken):
                return fresh
            token = fresh
        outcome = client.delete_post(account_ref(account, token), post_ref)
        if outcome.kind == "reauth_required" and client.supports_refresh:
            refreshed = self._refresh(account, client, token)
            if not isinstance(refreshed, StoredToken):
                return refreshed
            outcome = client.delete_post(account_ref(account, refreshed), post_ref)
        elif outcome.kind == "reauth_required":
            # The token read may be a cached copy, older than one an admin stored since.
            current = self.tokens.read(account, fresh=True)
            if current.accessToken != token.accessToken:
                outcome = client.delete_post(account_ref(account, current), post_ref)
        return outcome

    def _refresh(
        self, account: PlatformAccount, client: PlatformClient, token: StoredToken
    ) -> StoredToken | Outcome | Result:
        """A fresh token, or what to record instead: a refresh that failed for a passing
        reason (5xx, throttle) is retried like a delete that did, never turned into a
        re-authorisation request."""
        try:
            return self.tokens.refreshed(account, client, token)
        except RefreshNotSupported:
            return "reauth_required"
        except RefreshBusyError as exc:
            raise RetryLater(str(exc), delay=5) from None
        except RefreshError as exc:
            outcome = exc.outcome
            if isinstance(outcome, Transient | RateLimited):
                return outcome.model_copy(update={"reason": f"token refresh: {outcome.reason}"})
            return "reauth_required"

    # ------------------------------------------------------------------ the record

    def _record(
        self, post: Post, job: UnpublishJob, outcome: Outcome | Result, attempt: Attempt
    ) -> Result:
        status, reason, gave_up = status_for(outcome, attempt)
        at = format_utc(self.clock())
        effects = [EFFECT_EVENT, EFFECT_ANNOUNCE]
        if status is PostStatus.REAUTH_REQUIRED:
            effects.insert(0, EFFECT_ACCOUNT)
        listing = self.listings.get(post.listing_id)
        try:
            settled = self.posts.record_outcome(
                post.post_id,
                status,
                reason=reason,
                at=at,
                effects=effects,
                correlation_id=job.correlation_id,
                sale=sale_of(listing) if listing is not None else "",
            )
        except ConditionFailed as exc:
            # Another delivery recorded it first: its outcome (and outbox) stands.
            logger.info(
                "post outcome already recorded", extra={"postId": post.post_id, "why": exc.reason}
            )
            return "skipped_not_published"
        if status in NEEDS_A_PERSON:
            # Which post, which account: the dashboard's "posts that need a person" widget.
            logger.warning(
                "post needs a person",
                extra={
                    "postId": post.post_id,
                    "listingId": post.listing_id,
                    "platform": post.platform.value,
                    "accountId": post.account_id,
                    "outcome": status.value,
                    "reason": reason,
                },
            )
        self.deliver(settled, job)
        if gave_up:
            raise GaveUp(reason)
        return status.value  # type: ignore[return-value]

    def deliver(self, settled: SettledPost, job: UnpublishJob | None = None) -> None:
        """Delivers each effect still pending on a settled post (see ``OutcomeDelivery``);
        raises :class:`EffectsPending` naming those that failed, for the job to be retried."""
        self._delivery.deliver(settled, job)
