"""MLS credentials: a static bearer token, or OAuth2 client credentials with the access token
cached until shortly before it expires and refreshed once when the server says 401."""

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from mls_sync.reso.limits import credential_fingerprint
from mls_sync.timeutil import Clock


class BearerToken(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["bearer"] = "bearer"
    token: SecretStr


class ClientCredentials(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["client_credentials"] = "client_credentials"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    token_url: str = Field(min_length=1)
    scope: str | None = None
    auth_method: Literal["auto", "basic", "body"] = "auto"
    """How the client authenticates at the token endpoint (RFC 6749 §2.3.1): HTTP Basic,
    ``client_id``/``client_secret`` in the form body, or ``auto`` (the vendor's usual one
    first, the other once on ``invalid_client``; never both in one request, which §2.3 forbids)."""


Credentials = BearerToken | ClientCredentials


def credentials_key(credentials: Credentials) -> str:
    """Fingerprint of the credential that a vendor counts quota against."""
    if isinstance(credentials, BearerToken):
        return credential_fingerprint("bearer", credentials.token.get_secret_value())
    return credential_fingerprint(
        "cc",
        credentials.token_url,
        credentials.client_id,
        credentials.client_secret.get_secret_value(),
    )


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    refresh_after: datetime

    def __repr__(self) -> str:  # never print the token
        return f"AccessToken(refresh_after={self.refresh_after.isoformat()})"


class TokenCache:
    """Access tokens by credential fingerprint, shared by every client in the process so a warm
    Lambda instance does not fetch a token per invocation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessToken] = {}
        self._methods: dict[str, str] = {}

    def method(self, key: str) -> str | None:
        """The token-endpoint authentication that last worked for this credential."""
        with self._lock:
            return self._methods.get(key)

    def remember_method(self, key: str, method: str) -> None:
        with self._lock:
            self._methods[key] = method

    def get(self, key: str, now: datetime) -> AccessToken | None:
        with self._lock:
            token = self._tokens.get(key)
        return token if token is not None and now < token.refresh_after else None

    def put(self, key: str, token: AccessToken) -> None:
        with self._lock:
            self._tokens[key] = token

    def drop(self, key: str, value: str | None = None) -> None:
        """Forgets the key's token (only if it is still ``value``, when given: another client
        may already have refreshed it)."""
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and (value is None or current.value == value):
                del self._tokens[key]


DEFAULT_TOKEN_CACHE = TokenCache()


def refresh_after(now: datetime, expires_in: float, clock_skew: float = 60.0) -> datetime:
    """When to stop using a token that lives ``expires_in`` seconds: a minute early, or at 90 %
    of its life for short-lived tokens."""
    margin = min(clock_skew, expires_in * 0.1)
    return now + timedelta(seconds=max(0.0, expires_in - margin))


class TokenState:
    """What one client knows about its credential; the transport asks it for a header."""

    def __init__(self, credentials: Credentials, clock: Clock, cache: TokenCache) -> None:
        self.credentials = credentials
        self.clock = clock
        self.cache = cache
        self.key = credentials_key(credentials)

    @property
    def static(self) -> bool:
        return isinstance(self.credentials, BearerToken)

    def cached(self) -> str | None:
        if isinstance(self.credentials, BearerToken):
            return self.credentials.token.get_secret_value()
        token = self.cache.get(self.key, self.clock())
        return token.value if token else None

    def store(self, value: str, expires_in: float) -> None:
        self.cache.put(self.key, AccessToken(value, refresh_after(self.clock(), expires_in)))

    def invalidate(self, value: str) -> None:
        self.cache.drop(self.key, value)
