"""The one interface every platform client implements, and the values it speaks in.

``delete_post`` never raises for anything the platform says: every answer becomes an
:data:`Outcome`. Exceptions are kept for programming errors and for ``refresh``, whose
result is a token or nothing.
"""

from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
)

from mls_sync.http.retry_after import (
    MAX_WAIT_SECONDS as MAX_WAIT_SECONDS,  # noqa: PLC0414 - re-exported: outcomes' bound
)
from mls_sync.http.retry_after import clamp_wait

PlatformName = Literal["facebook", "instagram", "linkedin", "x", "google_business"]
ConnectedVia = Literal["facebook_login", "instagram_login"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# The longest wait any outcome carries (``MAX_WAIT_SECONDS``, shared with the MLS client).
# Platforms may announce absurd waits (a Retry-After of years, an
# `estimated_time_to_regain_access` of 1e300 minutes, Infinity); consumers turn waits into
# ints and SQS visibility timeouts, so an outcome never holds more than this.


class AccountRef(BaseModel):
    """The account a post was published with, and the token to act as it."""

    model_config = _FROZEN

    platform: PlatformName
    external_id: str = Field(min_length=1)
    connected_via: ConnectedVia | None = None
    access_token: SecretStr


class PostRef(BaseModel):
    model_config = _FROZEN

    platform_post_id: str = Field(min_length=1)
    permalink: str | None = None


class Token(BaseModel):
    """A token pair as a platform issued it. ``expires_at`` values are UTC."""

    model_config = _FROZEN

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: AwareDatetime | None = None
    refresh_expires_at: AwareDatetime | None = None


# --- Outcomes --------------------------------------------------------------------------
# One small tagged union. ``reason`` is human-readable, scrubbed of secrets, and safe to
# store on the post item and put in events.


class _OutcomeBase(BaseModel):
    model_config = _FROZEN

    reason: str = ""
    http_status: int | None = None
    error_code: int | None = None
    error_subcode: int | None = None


class Deleted(_OutcomeBase):
    """The post is gone after our call.

    ``confirmed`` is False when the platform answers a delete of an already-deleted post the
    same way (LinkedIn's 204): the post is gone, but not provably by this call.
    """

    kind: Literal["deleted"] = "deleted"
    confirmed: bool = True


class AlreadyGone(_OutcomeBase):
    kind: Literal["already_gone"] = "already_gone"


class NotSupported(_OutcomeBase):
    """The platform cannot delete this post through its API: a person must do it."""

    kind: Literal["not_supported"] = "not_supported"
    permalink: str | None = None


class ReauthRequired(_OutcomeBase):
    """The token is dead or lacks a permission; refresh it if possible, else ask the agent."""

    kind: Literal["reauth_required"] = "reauth_required"


class RateLimited(_OutcomeBase):
    """Throttled: do not call this platform for this account again before ``retry_after``."""

    kind: Literal["rate_limited"] = "rate_limited"
    retry_after: float = Field(ge=0, le=MAX_WAIT_SECONDS)

    @field_validator("retry_after", mode="before")
    @classmethod
    def _clamp(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            clamped = clamp_wait(float(value))
            return MAX_WAIT_SECONDS if clamped is None else clamped
        return value


class Transient(_OutcomeBase):
    """Worth retrying later (5xx, timeouts, platform-flagged transient errors)."""

    kind: Literal["transient"] = "transient"
    retry_after: float | None = Field(default=None, ge=0, le=MAX_WAIT_SECONDS)

    @field_validator("retry_after", mode="before")
    @classmethod
    def _clamp(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return clamp_wait(float(value))
        return value


class PermanentError(_OutcomeBase):
    """Retrying cannot help (policy block, no permission on this post, refused request)."""

    kind: Literal["permanent_error"] = "permanent_error"


Outcome = Annotated[
    Deleted
    | AlreadyGone
    | NotSupported
    | ReauthRequired
    | RateLimited
    | Transient
    | PermanentError,
    Field(discriminator="kind"),
]
OutcomeKind = Literal[
    "deleted",
    "already_gone",
    "not_supported",
    "reauth_required",
    "rate_limited",
    "transient",
    "permanent_error",
]
OUTCOME_ADAPTER: TypeAdapter[Outcome] = TypeAdapter(Outcome)


# --- Errors ----------------------------------------------------------------------------


class PlatformError(Exception):
    """Base class. Messages never contain tokens."""


class RefreshNotSupported(PlatformError):  # noqa: N818 - the interface's agreed name
    """This platform (or this app) has no refresh tokens: the agent must log in again."""


class RefreshError(PlatformError):
    """A refresh call failed; ``outcome`` says whether to retry or to ask for re-auth."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"token refresh failed: {outcome.kind}: {outcome.reason}")
        self.outcome = outcome


class TokenCheckError(PlatformError):
    """The token check itself failed (network, 5xx): nothing is known about the token."""


class WrongPlatformError(PlatformError, ValueError):
    """An account of one platform was handed to another platform's client."""


# --- The interface ---------------------------------------------------------------------


@runtime_checkable
class PlatformClient(Protocol):
    @property
    def platform(self) -> str: ...

    @property
    def supports_refresh(self) -> bool:
        """False: :meth:`refresh` always raises :class:`RefreshNotSupported`."""
        ...

    def delete_post(self, account: AccountRef, post: PostRef) -> Outcome:
        """Delete one post. Never raises for platform answers; see :data:`Outcome`."""
        ...

    def refresh(self, account: AccountRef, refresh_token: SecretStr) -> Token:
        """A new token pair. Raises :class:`RefreshNotSupported` or :class:`RefreshError`."""
        ...


@runtime_checkable
class TokenVerifier(Protocol):
    def verify_token(self, account: AccountRef) -> bool:
        """True when the token works, False when it is dead.

        Raises :class:`TokenCheckError` when the check could not be made.
        """
        ...


def check_platform(client_platform: str, account: AccountRef) -> None:
    if account.platform != client_platform:
        raise WrongPlatformError(f"{client_platform} client was given a {account.platform} account")
