"""Platform endpoints and versions, read once from the environment (CONTRACT section 5)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mls_sync.netpolicy import OutboundRefusedError, check_url

_ENV_NAMES = {
    "facebook_graph_url": "FACEBOOK_GRAPH_URL",
    "facebook_graph_version": "FACEBOOK_GRAPH_VERSION",
    "linkedin_api_url": "LINKEDIN_API_URL",
    "linkedin_oauth_url": "LINKEDIN_OAUTH_URL",
    "linkedin_version": "LINKEDIN_VERSION",
    "allow_loopback": "MLS_SYNC_ALLOW_LOOPBACK",
}


class InsecureUrlError(ValueError):
    """A platform base URL that would send tokens in clear text or to this machine."""


def check_base_url(url: str, *, allow_loopback: bool) -> str:
    """Return ``url`` without a trailing slash, or raise :class:`InsecureUrlError`.

    Tokens travel in these requests: the outbound policy (``mls_sync.netpolicy``) applies,
    https to a public DNS name. Local mode (``MLS_SYNC_ALLOW_LOOPBACK=true``) additionally
    accepts loopback hosts, and plain http only towards loopback: even then a token never
    crosses a network in clear text.
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise InsecureUrlError(f"{url!r}: a base URL has no query or fragment")
    try:
        return check_url(url, allow_loopback=allow_loopback, what="platform URL")
    except OutboundRefusedError as exc:
        hint = "; set MLS_SYNC_ALLOW_LOOPBACK=true" if "local mode" in str(exc) else ""
        raise InsecureUrlError(f"{exc}{hint}") from None


class PlatformSettings(BaseModel):
    """Where the platform APIs are. Build with :meth:`from_env` (once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    facebook_graph_url: str = "https://graph.facebook.com"
    facebook_graph_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")
    linkedin_api_url: str = "https://api.linkedin.com"
    linkedin_oauth_url: str = "https://www.linkedin.com"
    linkedin_version: str = Field(default="202608", pattern=r"^\d{6}(\.\d{2})?$")
    allow_loopback: bool = False

    @field_validator("allow_loopback", mode="before")
    @classmethod
    def _strict_true(cls, value: object) -> bool:
        # Only the exact word enables local mode: "1", "yes" or a typo must not open it.
        if isinstance(value, bool):
            return value
        return isinstance(value, str) and value.strip().lower() == "true"

    @model_validator(mode="after")
    def _urls_are_safe(self) -> Self:
        for name in ("facebook_graph_url", "linkedin_api_url", "linkedin_oauth_url"):
            cleaned = check_base_url(getattr(self, name), allow_loopback=self.allow_loopback)
            object.__setattr__(self, name, cleaned)
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PlatformSettings:
        env = os.environ if environ is None else environ
        values = {field: env[var] for field, var in _ENV_NAMES.items() if env.get(var)}
        return cls.model_validate(values)
