"""What a takedown can come to: the job's results, its retry signals, the post's new status.

A job ends in one :data:`Result`; a passing failure raises :class:`RetryLater` (the message
comes back, after the platform's ``Retry-After`` when it gave one) until the last delivery
(:class:`Attempt`), which records the post ``failed`` and raises :class:`GaveUp` so SQS moves
the message to the dead-letter queue. :func:`status_for` turns a platform's answer into the
post's status and reason, deciding that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mls_sync.models import PostStatus
from mls_sync.platforms.base import Outcome, PlatformError

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


NEEDS_A_PERSON = frozenset(
    {PostStatus.REAUTH_REQUIRED, PostStatus.MANUAL_ACTION_REQUIRED, PostStatus.FAILED}
)
"""Outcomes a person must act on (the dashboard's "posts that need a person")."""


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


def status_for(outcome: Outcome | Result, attempt: Attempt) -> tuple[PostStatus, str, bool]:
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
