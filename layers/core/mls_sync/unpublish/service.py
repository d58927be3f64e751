"""One unpublish job: take one post down and record what became of it.

Decisions, in order: a post that is not ``published`` is never touched; a post whose listing
is no longer in ``UnpublishOnStatuses`` (relisted before the job ran) is left up; otherwise
the platform is asked to delete it and the outcome is written on the post, conditionally on
it still being ``published``, then announced. A crash between the delete and the write is
safe: the retry deletes again, the platform answers "already gone", and the post converges
to ``unpublished`` with no second effect.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from aws_lambda_powertools import Logger

from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.base import ConditionFailed
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo
from mls_sync.events import Event, EventPublisher
from mls_sync.models import (
    ListingPostsUnpublishedDetail,
    PlatformAccount,
    Post,
    PostStatus,
    PostUnpublishOutcomeDetail,
    UnpublishJob,
)
from mls_sync.platforms.base import (
    AccountRef,
    Outcome,
    PlatformClient,
    PlatformError,
    PostRef,
    RateLimited,
    RefreshError,
    RefreshNotSupported,
    Transient,
)
from mls_sync.platforms.registry import PlatformRegistry
from mls_sync.policy import TransitionPolicy
from mls_sync.timeutil import Clock, format_utc, utc_now
from mls_sync.unpublish.tokens import RefreshBusyError, StoredToken, TokenService, is_expired

logger = Logger(child=True)

Result = Literal[
    "unpublished",
    "manual_action_required",
    "reauth_required",
    "failed",
    "skipped_not_published",
    "skipped_relisted",
    "skipped_missing",
]


class RetryLater(Exception):  # noqa: N818 - reads as the instruction it carries
    """The job must be retried: after ``delay`` seconds when the platform said how long."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class GaveUp(Exception):  # noqa: N818 - reads as what happened
    """Retries are spent: the post is recorded ``failed`` and the message must be reported
    failed, so that SQS moves it to the dead-letter queue for a person to look at."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Attempt:
    """Which delivery of the job this is, so the last one can record ``failed``."""

    receive_count: int = 1
    max_receives: int = 5

    @property
    def is_last(self) -> bool:
        return self.receive_count >= self.max_receives


class UnpublishService:
    def __init__(
        self,
        *,
        posts: PostsRepo,
        listings: ListingsRepo,
        accounts: AccountsRepo,
        tokens: TokenService,
        platforms: PlatformRegistry,
        events: EventPublisher,
        policy: TransitionPolicy,
        clock: Clock = utc_now,
    ) -> None:
        self._posts = posts
        self._listings = listings
        self._accounts = accounts
        self._tokens = tokens
        self._platforms = platforms
        self._events = events
        self._policy = policy
        self._clock = clock

    def process(self, job: UnpublishJob, attempt: Attempt | None = None) -> Result:
        """Checks the job still applies, then takes the post down."""
        return self.precheck(job) or self.take_down(job, attempt)

    def precheck(self, job: UnpublishJob) -> Result | None:
        """Why the job no longer applies, or None when the post must come down.

        Kept outside the idempotent section: a skip must never be remembered, or a listing
        sold, relisted and sold again would keep its posts up.
        """
        post = self._posts.get(job.post_id)
        if post is None:
            logger.warning("unpublish job for an unknown post", extra={"postId": job.post_id})
            return "skipped_missing"
        if post.status is not PostStatus.PUBLISHED:
            logger.info(
                "post is not published; left alone",
                extra={"postId": post.post_id, "status": post.status.value},
            )
            return "skipped_not_published"
        listing = self._listings.get(post.listing_id)
        if listing is None or not self._policy.should_unpublish(listing.status):
            logger.info(
                "listing no longer calls for unpublishing (relisted?); post left up",
                extra={"postId": post.post_id, "listingStatus": listing and listing.status.value},
            )
            return "skipped_relisted"
        return None

    def take_down(self, job: UnpublishJob, attempt: Attempt | None = None) -> Result:
        """Deletes the post on its platform and records the outcome (run once per post)."""
        attempt = attempt or Attempt()
        post = self._posts.get(job.post_id)
        if post is None or post.status is not PostStatus.PUBLISHED:
            return "skipped_not_published"
        outcome = self._delete(post)
        return self._record(post, job, outcome, attempt)

    # ------------------------------------------------------------------ the call

    def _delete(self, post: Post) -> Outcome | Result:
        account = self._accounts.get(post.account_id)
        if account is None:
            return "failed"
        if account.status == "reauth_required":
            return "reauth_required"
        client = self._platforms.client(post.platform.value)
        token = self._tokens.read(account)
        post_ref = PostRef(platform_post_id=post.platform_post_id, permalink=post.permalink)
        if (
            client.supports_refresh
            and token.refreshToken is not None
            and is_expired(token, self._clock)
        ):
            fresh = self._refresh(account, client, token)
            if not isinstance(fresh, StoredToken):
                return fresh
            token = fresh
        outcome = client.delete_post(_ref(account, token), post_ref)
        if outcome.kind == "reauth_required" and client.supports_refresh:
            refreshed = self._refresh(account, client, token)
            if not isinstance(refreshed, StoredToken):
                return refreshed
            outcome = client.delete_post(_ref(account, refreshed), post_ref)
        return outcome

    def _refresh(
        self, account: PlatformAccount, client: PlatformClient, token: StoredToken
    ) -> StoredToken | Outcome | Result:
        """A fresh token, or what to record instead: a refresh that failed for a passing
        reason (5xx, throttle) is retried like a delete that did, never turned into a
        re-authorisation request."""
        try:
            return self._tokens.refreshed(account, client, token)
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
        status, reason, gave_up = self._status_for(outcome, attempt)
        at = format_utc(self._clock())
        try:
            self._posts.record_outcome(post.post_id, status, reason=reason, at=at)
        except ConditionFailed as exc:
            # Another delivery recorded it first: its outcome stands, nothing more to do.
            logger.info(
                "post outcome already recorded", extra={"postId": post.post_id, "why": exc.reason}
            )
            return "skipped_not_published"
        if status is PostStatus.REAUTH_REQUIRED:
            self._accounts.set_status(post.account_id, "reauth_required", at=at)
        self._events.publish(
            [
                Event(
                    "PostUnpublishOutcome",
                    PostUnpublishOutcomeDetail(
                        post_id=post.post_id,
                        listing_id=post.listing_id,
                        platform=post.platform,
                        outcome=status,
                        reason=reason,
                        at=at,
                        correlation_id=job.correlation_id,
                        permalink=post.permalink
                        if status is PostStatus.MANUAL_ACTION_REQUIRED
                        else None,
                    ),
                )
            ]
        )
        self._announce_when_all_down(post, job, at)
        if gave_up:
            raise GaveUp(reason)
        return status.value  # type: ignore[return-value]

    def _status_for(
        self, outcome: Outcome | Result, attempt: Attempt
    ) -> tuple[PostStatus, str, bool]:
        """The post's new status, its reason, and whether retries were spent on the way."""
        if isinstance(outcome, str):
            reasons = {
                "reauth_required": "the account must be connected again",
                "failed": "the post's account is missing",
            }
            return PostStatus(outcome), reasons.get(outcome, outcome), False
        match outcome.kind:
            case "deleted":
                return PostStatus.UNPUBLISHED, outcome.reason or "deleted", False
            case "already_gone":
                return PostStatus.UNPUBLISHED, outcome.reason or "already gone", False
            case "not_supported":
                reason = outcome.reason or "delete it by hand"
                return PostStatus.MANUAL_ACTION_REQUIRED, reason, False
            case "reauth_required":
                return PostStatus.REAUTH_REQUIRED, outcome.reason or "token rejected", False
            case "permanent_error":
                return PostStatus.FAILED, outcome.reason or "refused", False
            case "rate_limited":
                if attempt.is_last:
                    reason = f"gave up after {attempt.receive_count} tries: rate limited: "
                    return PostStatus.FAILED, reason + outcome.reason, True
                raise RetryLater(f"rate limited: {outcome.reason}", delay=outcome.retry_after)
            case "transient":
                if attempt.is_last:
                    reason = f"gave up after {attempt.receive_count} tries: "
                    return PostStatus.FAILED, reason + (outcome.reason or "transient failure"), True
                raise RetryLater(outcome.reason or "transient failure", delay=outcome.retry_after)
        raise PlatformError(f"unexpected outcome {outcome.kind}")  # pragma: no cover

    def _announce_when_all_down(self, post: Post, job: UnpublishJob, at: str) -> None:
        """One ListingPostsUnpublished per sale: when no post of the listing is published."""
        # The byListing index lags behind writes: confirm every post it still shows as
        # published with a consistent read, or two workers taking down a listing's last two
        # posts at once could each see the other's as still up, and nobody would announce.
        posts = [
            (self._posts.get(p.post_id) or p) if p.status is PostStatus.PUBLISHED else p
            for p in self._posts.list_by_listing(post.listing_id)
        ]
        if any(p.status is PostStatus.PUBLISHED for p in posts):
            return
        listing = self._listings.get_raw(post.listing_id)
        if listing is None:
            return
        marker = str(listing.get("mlsModifiedKey") or listing.get("statusChangedAt") or "")
        if not self._listings.mark_posts_down(post.listing_id, marker):
            return  # another worker announced it
        outcomes: dict[str, Counter[str]] = {}
        for p in posts:
            if p.status not in _TAKEN_DOWN:
                continue  # drafts and scheduled posts were never up
            outcomes.setdefault(p.platform.value, Counter())[p.status.value] += 1
        self._events.publish(
            [
                Event(
                    "ListingPostsUnpublished",
                    ListingPostsUnpublishedDetail(
                        listing_id=post.listing_id,
                        user_id=str(listing.get("userId")),
                        outcomes={k: dict(v) for k, v in outcomes.items()},
                        at=at,
                        correlation_id=job.correlation_id,
                    ),
                )
            ]
        )


_TAKEN_DOWN = frozenset(
    {
        PostStatus.UNPUBLISHED,
        PostStatus.MANUAL_ACTION_REQUIRED,
        PostStatus.REAUTH_REQUIRED,
        PostStatus.FAILED,
    }
)


def _ref(account: PlatformAccount, token: StoredToken) -> AccountRef:
    return AccountRef(
        platform=account.platform.value,
        external_id=account.external_id,
        connected_via=account.connected_via,
        access_token=token.accessToken,
    )
