"""Platform endpoints and versions (CONTRACT section 5), a group of the publisher's settings."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from mls_sync.config import EnvSettings, LocalMode, read_settings
from mls_sync.netpolicy import OutboundRefusedError, check_url


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


class PlatformSettings(EnvSettings):
    """Where the platform APIs are: a group of the publisher's settings
    (``mls_sync.unpublish.settings``), read from the same variables. Every value is
    optional: the defaults are CONTRACT section 5's public endpoints and versions, which
    template.yaml also sets explicitly; local mode points them at the simulator."""

    # First: the URL checks below read it.
    allow_loopback: LocalMode = Field(default=False, validation_alias="MLS_SYNC_ALLOW_LOOPBACK")
    facebook_graph_url: str = Field(default="https://graph.facebook.com")
    facebook_graph_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")
    linkedin_api_url: str = Field(default="https://api.linkedin.com")
    linkedin_oauth_url: str = Field(default="https://www.linkedin.com")
    linkedin_version: str = Field(default="202608", pattern=r"^\d{6}(\.\d{2})?$")

    @field_validator("facebook_graph_url", "linkedin_api_url", "linkedin_oauth_url")
    @classmethod
    def _url_is_safe(cls, value: str, info: ValidationInfo) -> str:
        # Per field, so that a refusal names its variable.
        return check_base_url(value, allow_loopback=bool(info.data.get("allow_loopback")))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PlatformSettings:
        """From a mapping of variables (tests, the local tools); raises ``ConfigError``."""
        return read_settings(cls, environ)
