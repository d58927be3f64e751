"""An account re-authorised: its posts that could not come down are tried again.

When a platform refuses an account's token, the post being taken down is recorded
``reauth_required`` and so is the account (every later post of it is then recorded the same
way without a call). Once the agent has logged in again and the account's token secret holds
the new token (``mls-sync accounts set-token`` locally; ``aws secretsmanager
put-secret-value`` then an admin invoke of PublisherFunction in AWS, docs/platforms.md),
:meth:`Reauthorization.reauthorized`:

1. reads the secret (it must hold a token: ``{"accessToken", "refreshToken"?, "expiresAt"?}``);
2. finds the account's posts in ``reauth_required`` (through the user's listings, then each
   listing's posts: the Posts table has no index by account), and first delivers whatever
   their outcomes still have pending (so a late "mark the account" cannot undo step 3);
3. sets the account ``active``;
4. puts each such post back to ``published`` as a new takedown round (it is still on the
   platform), and, when its listing's status is still in ``UnpublishOnStatuses``, sends an
   unpublish job for it. A post of a listing relisted since stays up, ``published``, so a
   later sale takes it down like any other.

Running it again changes nothing more: the posts are no longer ``reauth_required``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import Field, ValidationError

from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.listings import ListingsRepo
from mls_sync.dal.posts import PostsRepo, SettledPost
from mls_sync.models import Model, PostStatus, UnpublishJob
from mls_sync.policy import TransitionPolicy
from mls_sync.queues import OutgoingMessage, QueueSender
from mls_sync.secrets import SecretError
from mls_sync.timeutil import Clock, format_utc, utc_now
from mls_sync.unpublish.tokens import TokenService

logger = Logger(child=True)

ADMIN_ACTION = "accountReauthorized"
"""``{"action": "accountReauthorized", "accountId": "..."}``: a direct invoke of
PublisherFunction after the account's token secret was replaced."""


class ReauthorizationError(ValueError):
    """The request cannot be carried out as asked (unknown account, no usable token)."""


class Reauthorized(Model):
    """What a re-authorisation did: the admin invoke's answer (camelCase on the wire)."""

    account_id: str
    correlation_id: str
    requeued: list[str] = Field(default_factory=list)
    """Posts put back to ``published`` with an unpublish job sent."""
    restored: list[str] = Field(default_factory=list)
    """Posts put back to ``published`` and left up: their listing was relisted since."""
    skipped: list[str] = Field(default_factory=list)
    """Posts that changed under us (another delivery settled them meanwhile)."""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


@dataclass(kw_only=True)
class Reauthorization:
    """Puts an account's posts that could not come down back in line once it works again."""

    posts: PostsRepo
    listings: ListingsRepo
    accounts: AccountsRepo
    tokens: TokenService
    policy: TransitionPolicy
    unpublish_queue: QueueSender
    deliver: Callable[[SettledPost], None]
    """Delivers what a settled post's outcome still has pending (``UnpublishService.deliver``)."""
    clock: Clock = utc_now

    def reauthorized(self, account_id: str, correlation_id: str | None = None) -> Reauthorized:
        account = self.accounts.get(account_id)
        if account is None:
            raise ReauthorizationError(f"no platform account {account_id!r}")
        try:
            self.tokens.read(account, fresh=True)  # the token the admin just stored
        except (SecretError, ValidationError, ValueError) as exc:
            raise ReauthorizationError(
                f"account {account_id}: no usable token in its secret ({type(exc).__name__})"
            ) from None
        result = Reauthorized(
            account_id=account_id, correlation_id=correlation_id or f"reauth-{uuid.uuid4()}"
        )
        # The account's posts awaiting re-authorisation, each with its listing's verdict.
        found: list[tuple[SettledPost, bool]] = []
        for listing in self.listings.list_by_user(account.user_id):
            for post in self.posts.list_by_listing(listing.listing_id):
                if post.account_id != account_id or post.status is not PostStatus.REAUTH_REQUIRED:
                    continue
                settled = self.posts.get_settled(post.post_id)  # the index lags: re-read
                if settled is None or settled.post.status is not PostStatus.REAUTH_REQUIRED:
                    continue
                found.append((settled, self.policy.should_unpublish(listing.status)))
        for settled, _ in found:
            if settled.pending:
                self.deliver(settled)  # raises when the effects still cannot go out
        at = format_utc(self.clock())
        self.accounts.set_status(account_id, "active", at=at)
        jobs: list[OutgoingMessage] = []
        for settled, take_down in found:
            post = settled.post
            if not self.posts.reopen(post.post_id, at=at):
                result.skipped.append(post.post_id)
                continue
            if not take_down:
                result.restored.append(post.post_id)
                continue
            result.requeued.append(post.post_id)
            jobs.append(
                OutgoingMessage(
                    UnpublishJob(
                        post_id=post.post_id,
                        listing_id=post.listing_id,
                        platform=post.platform,
                        correlation_id=result.correlation_id,
                    )
                )
            )
        if jobs:
            self.unpublish_queue.send(jobs)
        logger.info("account re-authorised", extra=result.to_json())
        return result
