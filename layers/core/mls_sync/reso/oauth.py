"""The OAuth2 client-credentials grant (RFC 6749 §4.4) as the MLS token endpoints speak it:
how a token request is written with either client-authentication method, and how the
answer is read. The transport sends it; nothing here does I/O."""

from __future__ import annotations

import base64
import json
import math
from typing import Any
from urllib.parse import quote_plus

from mls_sync.reso.auth import ClientCredentials
from mls_sync.reso.errors import MlsAuthError

TOKEN_MAX_BYTES = 1_000_000
"""Largest token endpoint answer read: a token response is a few hundred bytes."""

RETRY_OTHER_METHOD = frozenset({"invalid_client", "invalid_request", "unauthorized_client", None})
"""OAuth2 errors after which the other client-authentication method is worth one try: the
server did not recognise how we authenticated (RFC 6749 §5.2)."""


class TokenRefused(Exception):  # noqa: N818 - internal signal, never escapes the transport
    def __init__(self, status: int, error: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail

    @property
    def other_method_may_do(self) -> bool:
        return self.status == 401 or self.error in RETRY_OTHER_METHOD

    def as_error(self, host: str) -> MlsAuthError:
        return MlsAuthError(
            f"token endpoint of {host} refused the credentials ({self.status}: {self.detail})",
            endpoint="token endpoint",
            status=self.status,
            error_code=self.error,
        )


def methods_to_try(creds: ClientCredentials, remembered: str | None, default: str) -> list[str]:
    """The client-authentication methods to try, in order: the configured one alone, or
    (``auto``) the one that worked last time (else the vendor's usual), then the other."""
    if creds.auth_method != "auto":
        return [creds.auth_method]
    first = remembered or default
    return [first, "body" if first == "basic" else "basic"]


def basic_credentials(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret form-urlencoded, then joined and base64-encoded."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def oauth_error(content: bytes) -> str | None:
    """The ``error`` code of an OAuth2 error answer (RFC 6749 §5.2), if it has one."""
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, str) else None


def lifetime(value: object, default: float = 3600.0) -> float:
    """``expires_in`` as seconds: a number or a numeric string (both seen); missing, unreadable
    or non-positive → ``default`` (a 401 still forces a refresh if that guess is long)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float | str):
        try:
            seconds = float(value)
        except ValueError:
            return default
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    return default


def token_request(creds: ClientCredentials, method: str) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers of one token request: the client's id and secret in an HTTP
    Basic header (``basic``) or in the form (``body``), RFC 6749 §2.3.1."""
    form = {"grant_type": "client_credentials"}
    headers: dict[str, str] = {}
    secret = creds.client_secret.get_secret_value()
    if method == "basic":
        headers["Authorization"] = basic_credentials(creds.client_id, secret)
    else:
        form["client_id"] = creds.client_id
        form["client_secret"] = secret
    if creds.scope:
        form["scope"] = creds.scope
    return form, headers


def accept_token(body: dict[str, Any], host: str) -> tuple[str, float]:
    """The access token of a token answer and its lifetime in seconds; an answer without
    one, or with a token type other than Bearer, is refused."""
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise MlsAuthError(
            f"token endpoint of {host} answered without an access_token",
            endpoint="token endpoint",
        )
    kind = body.get("token_type")
    # RFC 6749 §7.1: the type is case-insensitive; we can only send Bearer (RFC 6750).
    if isinstance(kind, str) and kind.strip().lower() != "bearer":
        raise MlsAuthError(
            f"token endpoint of {host} issued a {kind.strip()!r} token; only Bearer "
            "tokens are supported",
            endpoint="token endpoint",
        )
    return token, lifetime(body.get("expires_in"))


__all__ = [
    "RETRY_OTHER_METHOD",
    "TOKEN_MAX_BYTES",
    "TokenRefused",
    "accept_token",
    "basic_credentials",
    "lifetime",
    "methods_to_try",
    "oauth_error",
    "token_request",
]
