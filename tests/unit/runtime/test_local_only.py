"""The local runtime never reaches beyond this machine: handlers' connections to other hosts
are refused before any DNS query, the caller's simulator URLs replace the template's real
platforms, and `seed` / `dump` refuse a missing or non-loopback endpoint."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from mls_sync.netpolicy import is_loopback_host

from mls_sync_local.cli import main
from mls_sync_local.errors import EXIT_USAGE
from mls_sync_local.runtime.loopback_guard import NonLoopbackHostError, loopback_only

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "events" / "portfolio.sample.yaml"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", b"127.0.0.1", None]
)
def test_loopback_hosts_pass(host: str | bytes | None) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        *("graph.facebook.com", "api.mlsgrid.com", "10.0.0.1", "0.0.0.0", "169.254.169.254"),
        # by name, a resolver may send these to DNS (issue 19)
        *("sim.localhost", "localhost.", "localhost.localdomain"),
    ],
)
def test_other_hosts_do_not(host: str) -> None:
    assert not is_loopback_host(host)


def test_inside_the_guard_other_hosts_are_refused_before_resolution() -> None:
    original = socket.getaddrinfo
    # When a handler's client resolves a real platform's host inside the guard
    with loopback_only(), pytest.raises(NonLoopbackHostError, match=r"graph\.facebook\.com"):
        socket.getaddrinfo("graph.facebook.com", 443)
    # Then it is refused (an OSError, so clients report a connection error), and afterwards
    # the process's resolver is its own again
    assert socket.getaddrinfo is original


def test_inside_the_guard_a_name_must_resolve_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a resolver on which "localhost" names another machine
    def rebinding(host: object, port: object, *args: object, **kwargs: object) -> list[object]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    # When a handler resolves it inside the guard, then the answer is refused
    with loopback_only(), pytest.raises(NonLoopbackHostError, match=r"10\.0\.0\.7"):
        socket.getaddrinfo("localhost", 80)


def test_inside_the_guard_loopback_goes_to_the_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the process's resolver (a recording stand-in: sockets are off in this tier)
    asked: list[object] = []

    def resolver_stand_in(host: object, *args: object, **kwargs: object) -> list[object]:
        asked.append(host)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", resolver_stand_in)
    resolver = socket.getaddrinfo
    # When loopback hosts are resolved inside nested guards, as a tick inside a fixture may be
    with loopback_only(), loopback_only():
        socket.getaddrinfo("127.0.0.1", 80)
        socket.getaddrinfo("localhost", 80)
        assert socket.getaddrinfo is not resolver
    # Then they reached the resolver, and the resolver is back once the outer block ends
    assert asked == ["127.0.0.1", "localhost"]
    assert socket.getaddrinfo is resolver


@pytest.mark.parametrize("command", [["seed", str(SAMPLE)], ["dump"], ["dump", "--json"]])
@pytest.mark.parametrize("endpoint", [None, "https://dynamodb.us-east-1.amazonaws.com"])
def test_seed_and_dump_refuse_without_a_loopback_endpoint(
    command: list[str],
    endpoint: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given no endpoint, or a real AWS one
    if endpoint is None:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    # When seed or dump runs
    code = main(command)
    # Then it refuses with one line and exit 2, before any AWS call (sockets are off here)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.count("\n") == 1
    assert "AWS_ENDPOINT_URL" in err or "non-loopback" in err
