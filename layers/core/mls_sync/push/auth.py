"""Is this the connection's producer? Its bearer token against the connection's push secret.

The secret (``<stack>/push/<connectionId>``, JSON ``{"token": "..."}``) is read through the
secrets cache, so a warm receiver asks Secrets Manager at most once per
``SECRET_MAX_AGE_SECONDS`` per connection; a replaced token is accepted everywhere within
that time. Tokens are compared in constant time (``hmac.compare_digest`` of their SHA-256
digests, so the length of neither shows either).
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from typing import Any, Protocol

from mls_sync.dal.push_access import PushAccess


class SecretSource(Protocol):
    def read_json(self, secret_id: str, *, fresh: bool = False) -> dict[str, Any]: ...


class Verdict(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    """Unknown connection, no push secret, no token or a wrong one: one answer for all."""
    MISCONFIGURED = "misconfigured"
    """The connection's push secret holds no usable token (an operator's mistake)."""


def judge(presented: str | None, access: PushAccess | None, secrets: SecretSource) -> Verdict:
    """SecretError (the secret cannot be read) passes: the caller answers 503."""
    if presented is None or access is None or access.push_secret_arn is None:
        return Verdict.DENIED
    try:
        expected = secrets.read_json(access.push_secret_arn).get("token")
    except ValueError:  # not JSON (SecretError, which is a RuntimeError, passes)
        return Verdict.MISCONFIGURED
    if not isinstance(expected, str) or not expected:
        return Verdict.MISCONFIGURED
    # Digests of equal length: compare_digest's time then tells nothing of either length.
    if hmac.compare_digest(_digest(presented), _digest(expected)):
        return Verdict.GRANTED
    return Verdict.DENIED


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
