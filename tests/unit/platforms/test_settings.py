"""Platform settings from the environment, and which URLs may carry tokens."""

from __future__ import annotations

import pytest
from mls_sync.config import ConfigError
from mls_sync.platforms.settings import PlatformSettings


def test_defaults_are_the_contract_values() -> None:
    s = PlatformSettings.from_env({})
    assert s.facebook_graph_url == "https://graph.facebook.com"
    assert s.facebook_graph_version == "v25.0"
    assert s.linkedin_api_url == "https://api.linkedin.com"
    assert s.linkedin_oauth_url == "https://www.linkedin.com"
    assert s.linkedin_version == "202608"
    assert s.allow_loopback is False


def test_local_mode_allows_http_loopback() -> None:
    s = PlatformSettings.from_env(
        {
            "MLS_SYNC_ALLOW_LOOPBACK": "true",
            "FACEBOOK_GRAPH_URL": "http://127.0.0.1:8081/",
            "LINKEDIN_API_URL": "http://localhost:8081",
            "LINKEDIN_OAUTH_URL": "http://[::1]:8081",
            "LINKEDIN_VERSION": "202701",
            "FACEBOOK_GRAPH_VERSION": "v26.0",
        }
    )
    assert s.facebook_graph_url == "http://127.0.0.1:8081"
    assert s.linkedin_version == "202701"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FACEBOOK_GRAPH_URL": "http://127.0.0.1:8081"}, "loopback"),
        ({"FACEBOOK_GRAPH_URL": "http://graph.facebook.com"}, "https"),
        (
            {"MLS_SYNC_ALLOW_LOOPBACK": "true", "LINKEDIN_API_URL": "http://api.linkedin.com"},
            "https",
        ),
        ({"MLS_SYNC_ALLOW_LOOPBACK": "1", "LINKEDIN_API_URL": "http://127.0.0.1:1"}, "loopback"),
        ({"LINKEDIN_OAUTH_URL": "https://localhost"}, "loopback"),
        ({"LINKEDIN_OAUTH_URL": "ftp://www.linkedin.com"}, "http"),
        ({"LINKEDIN_API_URL": "https://user:pw@api.linkedin.com"}, "credentials"),
        ({"FACEBOOK_GRAPH_VERSION": "25.0"}, "pattern"),
        ({"LINKEDIN_VERSION": "2026-08"}, "pattern"),
    ],
)
def test_unsafe_or_malformed_settings_fail_loudly(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        PlatformSettings.from_env(env)
    # naming the variable at fault
    assert any(name in str(caught.value) for name in env if name != "MLS_SYNC_ALLOW_LOOPBACK")
