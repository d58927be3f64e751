"""Platform tokens: read from Secrets Manager, refreshed by one worker per account.

A refresh takes the account's conditional lease, stores the new pair (refresh token first)
back in the secret, and releases the lease; every other worker waits and re-reads the
secret instead of calling the platform. Ten concurrent refreshers make one token call.
"""

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, SecretStr

from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.base import ConditionFailed
from mls_sync.models import PlatformAccount
from mls_sync.platforms.base import AccountRef, PlatformClient, RefreshNotSupported, Token
from mls_sync.secrets import SecretStore
from mls_sync.timeutil import Clock, format_utc, parse_utc, utc_now

logger = Logger(child=True)

LEASE_SECONDS = 30.0
"""Longer than one refresh call with its retries; a crashed refresher's lease lapses."""


class StoredToken(BaseModel):
    """The token secret's JSON (``seed`` writes it; refreshes rewrite it)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    accessToken: SecretStr  # noqa: N815 - the secret's JSON field names
    refreshToken: SecretStr | None = None  # noqa: N815
    expiresAt: str | None = None  # noqa: N815

    def as_json(self) -> dict[str, str]:
        value = {"accessToken": self.accessToken.get_secret_value()}
        if self.refreshToken is not None:
            value["refreshToken"] = self.refreshToken.get_secret_value()
        if self.expiresAt is not None:
            value["expiresAt"] = self.expiresAt
        return value


class RefreshBusyError(RuntimeError):
    """Another worker held the refresh lease for longer than we waited."""


class TokenService:
    def __init__(
        self,
        accounts: AccountsRepo,
        secrets: SecretStore,
        *,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        owner: str | None = None,
        wait_seconds: float = 10.0,
    ) -> None:
        self._accounts = accounts
        self._secrets = secrets
        self._clock = clock
        self._sleep = sleep
        self._owner = owner or f"refresher-{uuid.uuid4().hex[:12]}"
        self._wait_seconds = wait_seconds

    def read(self, account: PlatformAccount, *, fresh: bool = False) -> StoredToken:
        """The account's token: possibly a cached copy (the store's max age), unless
        ``fresh``, which asks Secrets Manager."""
        return StoredToken.model_validate(
            self._secrets.read_json(account.token_secret_arn, fresh=fresh)
        )

    def refreshed(
        self, account: PlatformAccount, client: PlatformClient, stale: StoredToken
    ) -> StoredToken:
        """A token newer than ``stale``: someone else's fresh one, or one we refresh now.

        Raises RefreshNotSupported / RefreshError from the client, or RefreshBusyError.
        """
        waited = 0.0
        delay = 0.05
        while True:
            current = self.read(account, fresh=True)
            if current.accessToken != stale.accessToken:
                return current
            now = self._clock()
            if self._accounts.acquire_refresh_lease(
                account.account_id,
                self._owner,
                now=format_utc(now),
                until=format_utc(now + timedelta(seconds=LEASE_SECONDS)),
            ):
                return self._refresh_holding_lease(account, client, stale)
            if waited >= self._wait_seconds:
                raise RefreshBusyError(f"token refresh of account {account.account_id} is busy")
            self._sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)

    def _refresh_holding_lease(
        self, account: PlatformAccount, client: PlatformClient, stale: StoredToken
    ) -> StoredToken:
        expires_at: str | None = None
        try:
            current = self.read(account, fresh=True)
            if current.accessToken != stale.accessToken:
                return current  # refreshed while we were taking the lease
            if current.refreshToken is None:
                raise RefreshNotSupported(f"account {account.account_id} has no refresh token")
            token = client.refresh(account_ref(account, current), current.refreshToken)
            fresh = _stored(token, previous=current)
            # The platform may have rotated the refresh token: store before anyone uses it.
            self._secrets.update_json(account.token_secret_arn, fresh.as_json())
            expires_at = fresh.expiresAt
            return fresh
        finally:
            try:
                self._accounts.release_refresh_lease(
                    account.account_id, self._owner, token_expires_at=expires_at
                )
            except ConditionFailed:
                # Our lease lapsed and another worker took it: the token we stored stands
                # (never lose a refreshed token to bookkeeping); theirs will re-read it.
                logger.warning(
                    "refresh lease lapsed before release", extra={"accountId": account.account_id}
                )


def _stored(token: Token, *, previous: StoredToken) -> StoredToken:
    return StoredToken(
        accessToken=token.access_token,
        refreshToken=token.refresh_token or previous.refreshToken,
        expiresAt=format_utc(token.expires_at) if token.expires_at else None,
    )


def account_ref(account: PlatformAccount, token: StoredToken) -> AccountRef:
    """The account as a platform client takes it, with ``token``."""
    return AccountRef(
        platform=account.platform.value,
        external_id=account.external_id,
        connected_via=account.connected_via,
        access_token=token.accessToken,
    )


def is_expired(token: StoredToken, now: Clock = utc_now, margin_seconds: float = 300) -> bool:
    """True when the access token expires within ``margin_seconds`` (refresh lazily)."""
    if token.expiresAt is None:
        return False
    return parse_utc(token.expiresAt) <= now() + timedelta(seconds=margin_seconds)
