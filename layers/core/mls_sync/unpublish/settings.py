"""What only the publisher is given (template.yaml PublisherFunction's Environment), on top of
what every function is given."""

from __future__ import annotations

from pydantic import Field

from mls_sync.config import Settings
from mls_sync.platforms.settings import PlatformSettings


class PublisherSettings(Settings):
    """The publisher's settings: :class:`~mls_sync.config.Settings` and its own."""

    unpublish_max_receives: int = Field(ge=1)
    """UnpublishQueue's ``maxReceiveCount``: the receive on which a job that still fails
    records ``failed`` (the template sets both from one figure; tests/unit/test_template.py
    checks they agree)."""
    linkedin_app_secret_arn: str | None = None
    """A LinkedIn partner app's ``{"clientId", "clientSecret"}``, which can refresh tokens;
    unset (the template's parameter left empty): LinkedIn tokens are not refreshed."""
    platforms: PlatformSettings = Field(default_factory=PlatformSettings)
    """Where the platform APIs are (the same variables, read as a group)."""
