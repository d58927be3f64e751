"""Base URL policy: https only; loopback only in local mode; messages without secrets."""

from __future__ import annotations

import pytest
from mls_sync import container
from mls_sync.netpolicy import is_loopback_host
from mls_sync.reso.auth import BearerToken
from mls_sync.reso.client import ReplicationClient, ReplicationTarget
from mls_sync.reso.errors import InvalidBaseUrl
from mls_sync.reso.transport import check_url
from pydantic import SecretStr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "api.mlsgrid.com", "0.0.0.0", "localhost.evil.com", "localhost."]
)
def test_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


def test_https_is_accepted_and_trailing_slash_dropped() -> None:
    assert check_url("https://api.mlsgrid.com/v2/", allow_loopback=False) == (
        "https://api.mlsgrid.com/v2"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://api.mlsgrid.com/v2",
        "ftp://api.mlsgrid.com",
        "http://127.0.0.1:8080",
        "https://localhost/x",
        "https://user:pw@api.mlsgrid.com",
        "api.mlsgrid.com",
        "https://127.1",
        "https://0x7f000001",
        "https://2130706433",
        "https://0.0.0.0",
        "https://localhost.",
        "https://169.254.169.254",
    ],
)
def test_refused_without_local_mode(url: str) -> None:
    with pytest.raises(InvalidBaseUrl) as info:
        check_url(url, allow_loopback=False)
    assert "pw" not in str(info.value)


def test_loopback_http_allowed_in_local_mode_but_not_remote_http() -> None:
    assert check_url("http://127.0.0.1:8080", allow_loopback=True) == "http://127.0.0.1:8080"
    with pytest.raises(InvalidBaseUrl):
        check_url("http://example.com", allow_loopback=True)


def _client(url: str, allow: bool | None = None) -> ReplicationClient:
    return ReplicationClient(
        ReplicationTarget(vendor="reso", base_url=url),
        BearerToken(token=SecretStr("t")),
        allow_loopback=allow,
    )


def test_local_mode_comes_from_the_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLS_SYNC_ALLOW_LOOPBACK", raising=False)
    container.reset()  # the environment is read once per container
    with pytest.raises(InvalidBaseUrl):
        _client("http://127.0.0.1:9")
    monkeypatch.setenv("MLS_SYNC_ALLOW_LOOPBACK", "true")
    container.reset()
    _client("http://127.0.0.1:9").close()
    with pytest.raises(InvalidBaseUrl):
        _client("http://127.0.0.1:9", allow=False)
    container.reset()


def test_first_sync_is_not_a_full_download() -> None:
    client = _client("https://mls.example.com")
    with pytest.raises(ValueError, match="initial_cursor"):
        client.changes(None)
    client.close()


def test_mlsgrid_target_needs_its_originating_system() -> None:
    with pytest.raises(ValueError, match="originating_system_name"):
        ReplicationTarget(vendor="mlsgrid", base_url="https://api.mlsgrid.com/v2")
