"""One unpublish job: take one post down and record what became of it.

Decisions, in order: a post that is not ``published`` is never touched; a post whose listing
is no longer in ``UnpublishOnStatuses`` (relisted before the job ran) is left up; otherwise
the platform is asked to delete it and the outcome is written on the post, conditionally on
it still being ``published``, together with its outbox (``outbox.py``: the account's status,
the ``PostUnpublishOutcome`` event, the listing's announcement), which is then delivered. A
crash between the delete and the write is safe: the retry deletes again, the platform
answers "already gone", and the post converges to ``unpublished`` with no second effect.
A failure after the write (the bus, the account write) is safe too: the job is retried,
finds the post settled with effects pending, and delivers only those.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from aws_lambda_powertools import Logger

from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.base import ConditionFailed
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo, SettledPost
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
from mls_sync.unpublish.outbox import (
    DELIVERY_ORDER,
    EFFECT_ACCOUNT,
    EFFECT_ANNOUNCE,
    EFFECT_EVENT,
    PostsDownClaims,
    owner_of,
)
from mls_sync.unpublish.tokens import (
    RefreshBusyError,
    StoredToken,
    TokenService,
    account_ref,
    is_expired,
)

logger = Logger(child=True)

Result = Literal[
    "unpublished",
    "manual_action_required",
    "reauth_required",
    "failed",
    "skipped_not_published",
    "skipped_relisted",
    "skipped_missing",
    "effects_delivered",
]


_NEEDS_A_PERSON = frozenset(
    {PostStatus.REAUTH_REQUIRED, PostStatus.MANUAL_ACTION_REQUIRED, PostStatus.FAILED}
)


class RetryLater(Exception):  # noqa: N818 - reads as the instruction it carries
    """The job must be retried: after ``delay`` seconds when the platform said how long."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class EffectsPending(RetryLater):
    """The outcome is recorded but some of its effects could not be delivered: the job is
    retried, and the retry delivers what is still pending (and nothing else)."""

    def __init__(self, post_id: str, failed: dict[str, str]) -> None:
        detail = "; ".join(f"{effect}: {error}" for effect, error in failed.items())
        super().__init__(f"post {post_id}: effects still pending ({detail})")
        self.failed = failed


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
        claims: PostsDownClaims,
        clock: Clock = utc_now,
    ) -> None:
        self._claims = claims
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
        sold, relisted and sold again would keep its posts up. A post already settled whose
        outcome still has effects pending (a previous delivery failed after the write) gets
        them delivered here: raises :class:`EffectsPending` if some still fail.
        """
        settled = self._posts.get_settled(job.post_id)
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
        listing = self._listings.get(post.listing_id)
        if listing is None or not self._policy.should_unpublish(listing.status):
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
        settled = self._posts.get_settled(post_id)
        return settled.takedown_round if settled is not None else 0

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
        outcome = client.delete_post(account_ref(account, token), post_ref)
        if outcome.kind == "reauth_required" and client.supports_refresh:
            refreshed = self._refresh(account, client, token)
            if not isinstance(refreshed, StoredToken):
                return refreshed
            outcome = client.delete_post(account_ref(account, refreshed), post_ref)
        elif outcome.kind == "reauth_required":
            # The token read may be a cached copy, older than one an admin stored since.
            current = self._tokens.read(account, fresh=True)
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
        effects = [EFFECT_EVENT, EFFECT_ANNOUNCE]
        if status is PostStatus.REAUTH_REQUIRED:
            effects.insert(0, EFFECT_ACCOUNT)
        listing = self._listings.get_raw(post.listing_id)
        try:
            settled = self._posts.record_outcome(
                post.post_id,
                status,
                reason=reason,
                at=at,
                effects=effects,
                correlation_id=job.correlation_id,
                sale=_sale_of(listing) if listing is not None else "",
            )
        except ConditionFailed as exc:
            # Another delivery recorded it first: its outcome (and outbox) stands.
            logger.info(
                "post outcome already recorded", extra={"postId": post.post_id, "why": exc.reason}
            )
            return "skipped_not_published"
        if status in _NEEDS_A_PERSON:
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

    # ------------------------------------------------------------------ the outbox

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
                self._posts.complete_effect(settled.post.post_id, effect)
            except Exception as exc:  # noqa: BLE001 - kept pending, retried with the job
                logger.warning(
                    "post outcome effect not delivered; kept pending",
                    extra={"postId": settled.post.post_id, "effect": effect, "error": str(exc)},
                )
                failed[effect] = f"{type(exc).__name__}: {exc}"
        if failed:
            raise EffectsPending(settled.post.post_id, failed)

    def _mark_account(self, settled: SettledPost) -> None:
        at = settled.post.updated_at or format_utc(self._clock())
        try:
            self._accounts.set_status(settled.post.account_id, "reauth_required", at=at)
        except ConditionFailed:
            logger.warning("the post's account is gone", extra={"postId": settled.post.post_id})

    @staticmethod
    def _correlation(settled: SettledPost, job: UnpublishJob | None) -> str:
        return settled.correlation_id or (job.correlation_id if job else "") or "unknown"

    def _send_outcome(self, settled: SettledPost, job: UnpublishJob | None) -> None:
        post = settled.post
        self._events.publish(
            [
                Event(
                    "PostUnpublishOutcome",
                    PostUnpublishOutcomeDetail(
                        post_id=post.post_id,
                        listing_id=post.listing_id,
                        platform=post.platform,
                        outcome=post.status,
                        reason=post.outcome_reason,
                        at=post.updated_at or format_utc(self._clock()),
                        correlation_id=self._correlation(settled, job),
                        permalink=post.permalink
                        if post.status is PostStatus.MANUAL_ACTION_REQUIRED
                        else None,
                    ),
                )
            ]
        )

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
            (self._posts.get(p.post_id) or p) if p.status is PostStatus.PUBLISHED else p
            for p in self._posts.list_by_listing(post.listing_id)
        ]
        if any(p.status is PostStatus.PUBLISHED for p in posts):
            return  # a later one announces
        listing = self._listings.get_raw(post.listing_id)
        if listing is None:
            return
        sale = settled.sale if settled.sale is not None else _sale_of(listing)
        owner = owner_of(post.post_id, settled.takedown_round)
        if not self._claims.claim(post.listing_id, sale, owner):
            return  # another post announces this sale
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
                        at=post.updated_at or format_utc(self._clock()),
                        correlation_id=self._correlation(settled, job),
                    ),
                )
            ]
        )

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


_TAKEN_DOWN = frozenset(
    {
        PostStatus.UNPUBLISHED,
        PostStatus.MANUAL_ACTION_REQUIRED,
        PostStatus.REAUTH_REQUIRED,
        PostStatus.FAILED,
    }
)


def _sale_of(listing: dict[str, object]) -> str:
    """The listing change a takedown is for: its MLS time (else when its status changed)."""
    return str(listing.get("mlsModifiedKey") or listing.get("statusChangedAt") or "")
