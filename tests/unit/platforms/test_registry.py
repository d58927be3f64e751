"""Platform name → client, with room for more platforms."""

from __future__ import annotations

import pytest
from mls_sync.platforms import registry as module
from mls_sync.platforms.base import PlatformClient, TokenVerifier
from mls_sync.platforms.facebook import FacebookClient
from mls_sync.platforms.instagram import InstagramClient
from mls_sync.platforms.linkedin import LinkedInClient
from mls_sync.platforms.registry import (
    PlatformDeps,
    PlatformRegistry,
    UnknownPlatformError,
    build_registry,
    register,
    supported_platforms,
)

from tests.unit.platforms.helpers import SETTINGS, Recorder


def test_each_platform_has_a_client_that_implements_the_interface() -> None:
    registry = build_registry(SETTINGS, http=Recorder().http())
    fb, ig, li = (registry.client(p) for p in ("facebook", "instagram", "linkedin"))
    assert isinstance(fb, FacebookClient)
    assert isinstance(ig, InstagramClient)
    assert isinstance(li, LinkedInClient)
    for client in (fb, ig, li):
        assert isinstance(client, PlatformClient)
    assert isinstance(fb, TokenVerifier)
    assert isinstance(ig, TokenVerifier)
    assert [c.platform for c in (fb, ig, li)] == ["facebook", "instagram", "linkedin"]
    # Built once per registry
    assert registry.client("facebook") is fb


def test_unknown_platform_names_the_known_ones() -> None:
    registry = build_registry(SETTINGS, http=Recorder().http())
    with pytest.raises(UnknownPlatformError, match="facebook, instagram, linkedin"):
        registry.client("myspace")


def test_a_new_platform_plugs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_FACTORIES", dict(module._FACTORIES))
    register("x", lambda deps: FacebookClient(settings=deps.settings, http=deps.http, platform="x"))
    assert "x" in supported_platforms()
    reg = PlatformRegistry(PlatformDeps(settings=SETTINGS, http=Recorder().http()))
    assert reg.client("x").platform == "x"
