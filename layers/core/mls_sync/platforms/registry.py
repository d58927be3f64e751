"""Platform name → client. X and Google Business Profile plug in with :func:`register`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mls_sync.config import load_settings
from mls_sync.platforms.base import PlatformClient, PlatformError
from mls_sync.platforms.facebook import FacebookClient
from mls_sync.platforms.http import PlatformHttp
from mls_sync.platforms.instagram import InstagramClient
from mls_sync.platforms.linkedin import AppSource, LinkedInClient, OAuthApp
from mls_sync.platforms.settings import PlatformSettings


class UnknownPlatformError(PlatformError, LookupError):
    pass


@dataclass(frozen=True)
class PlatformDeps:
    """What a client factory may use."""

    settings: PlatformSettings
    http: PlatformHttp
    linkedin_app: OAuthApp | AppSource | None = None


ClientFactory = Callable[[PlatformDeps], PlatformClient]

_FACTORIES: dict[str, ClientFactory] = {
    "facebook": lambda d: FacebookClient(settings=d.settings, http=d.http),
    "instagram": lambda d: InstagramClient(settings=d.settings, http=d.http),
    "linkedin": lambda d: LinkedInClient(settings=d.settings, http=d.http, app=d.linkedin_app),
}


def register(platform: str, factory: ClientFactory) -> None:
    _FACTORIES[platform] = factory


def supported_platforms() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


class PlatformRegistry:
    """Builds each platform's client once and hands it out by name."""

    def __init__(self, deps: PlatformDeps) -> None:
        self.deps = deps
        self._clients: dict[str, PlatformClient] = {}

    def client(self, platform: str) -> PlatformClient:
        if platform not in self._clients:
            factory = _FACTORIES.get(platform)
            if factory is None:
                known = ", ".join(supported_platforms())
                raise UnknownPlatformError(f"no client for platform {platform!r} (known: {known})")
            self._clients[platform] = factory(self.deps)
        return self._clients[platform]


def build_registry(
    settings: PlatformSettings | None = None,
    *,
    http: PlatformHttp | None = None,
    linkedin_app: OAuthApp | AppSource | None = None,
) -> PlatformRegistry:
    return PlatformRegistry(
        PlatformDeps(
            settings=settings or load_settings(PlatformSettings),
            http=http or PlatformHttp(),
            linkedin_app=linkedin_app,
        )
    )
