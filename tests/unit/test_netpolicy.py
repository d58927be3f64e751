"""The outbound URL policy (mls_sync.netpolicy): which URLs the service may call, in
production (public https DNS names only) and in local mode (plus loopback), and the local
runtime's mirror rule (loopback only) on the same parser; then the connect-time check on
resolved addresses (mls_sync.nettransport), with the resolver patched, never the network."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import httpcore
import httpx
import pytest
from mls_sync import container
from mls_sync.netpolicy import (
    BLOCKED_NETWORKS,
    OutboundRefusedError,
    check_url,
    is_loopback_host,
    loopback_allowed_from_env,
    parse_host,
)
from mls_sync.nettransport import GuardedTransport, shared_ssl_context

# ----------------------------------------------------------------------------- the table

REFUSED_IN_PRODUCTION = [
    # loopback, every spelling
    "https://127.0.0.1/",
    "https://127.1/",
    "https://127.0.1/",
    "https://0x7f000001/",
    "https://0x7F000001/",
    "https://0x7f.0x0.0x0.0x1/",
    "https://0x7f.1/",
    "https://0177.0.0.1/",
    "https://017700000001/",
    "https://2130706433/",
    "https://127.0.0.1./",
    "https://[::1]/",
    "https://[0:0:0:0:0:0:0:1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[64:ff9b::7f00:1]/",
    "https://[2002:7f00:1::]/",
    "https://localhost/",
    "https://LOCALHOST/",
    "https://localhost./",
    "https://foo.localhost/",
    "https://localhost.localdomain/",
    "https://0.0.0.0/",
    "https://0/",
    "https://[::]/",
    # the metadata service and private networks
    "https://169.254.169.254/latest/meta-data/",
    "https://0251.0376.0251.0376/",
    "https://2852039166/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://[fe80::1]/",
    "https://[fd00::1]/",
    "https://10.0.0.1/",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://3232235777/",
    "https://100.64.0.1/",
    # a public address is still an IP literal: names only
    "https://8.8.8.8/",
    "https://[2606:4700::1111]/",
    # names that are not public
    "https://metadata.google.internal/",
    "https://intranet/",
    "https://mls.corp/",
    "https://printer.local/",
    "https://api.mlsgrid.com./",
    "https://api.example.1/",
    "https://a..b.com/",
    "https://-bad.example.com/",
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",  # fullwidth digits
    "https://127.0.0.1%2e/",
    # scheme, credentials, shape
    "http://api.mlsgrid.com/v2",
    "ftp://api.mlsgrid.com/",
    "https://user:pw@api.mlsgrid.com/",
    "https://api.mlsgrid.com\\@127.0.0.1/",
    "https://127.0.0.1:443@api.mlsgrid.com/",
    "https:///v2",
    "api.mlsgrid.com",
    "https://api.mlsgrid.com:99999/",
]

ALLOWED_IN_PRODUCTION = [
    "https://api.mlsgrid.com/v2",
    "https://API.MLSGRID.COM/v2",
    "https://graph.facebook.com",
    "https://www.linkedin.com",
    "https://api-trestle.corelogic.com/trestle/odata",
    "https://sub-domain.example-mls.com:8443/odata",
    "https://xn--bcher-kva.example/",
    "https://1e100.net/",
    "https://mls.example.com",
]

ALLOWED_IN_LOCAL_MODE = [
    "http://127.0.0.1:8080",
    "http://127.8.9.10:1/x",
    "http://localhost:9000",
    "http://[::1]:80/x",
    "https://127.0.0.1:8443",
    "https://api.mlsgrid.com/v2",  # parses; the local runtime's guard refuses to connect
]

REFUSED_IN_LOCAL_MODE = [
    "http://example.com",
    "https://localhost./",
    "http://foo.localhost/",
    "http://10.0.0.1/",
    "https://169.254.169.254/",
    "http://0.0.0.0:8080/",
    "https://[fe80::1]/",
    "http://user:pw@127.0.0.1/",
]


def test_the_table_is_at_least_forty_spellings() -> None:
    assert len(REFUSED_IN_PRODUCTION) >= 40
    assert len(set(REFUSED_IN_PRODUCTION)) == len(REFUSED_IN_PRODUCTION)


@pytest.mark.parametrize("url", REFUSED_IN_PRODUCTION)
def test_refused_in_production(url: str) -> None:
    # When the production policy judges the URL
    with pytest.raises(OutboundRefusedError) as info:
        check_url(url, allow_loopback=False)
    # Then it is refused, and the message repeats neither credentials nor path
    message = str(info.value)
    assert "pw" not in message
    assert "meta-data" not in message


@pytest.mark.parametrize("url", ALLOWED_IN_PRODUCTION)
def test_public_https_names_are_allowed(url: str) -> None:
    assert check_url(url, allow_loopback=False) == url.rstrip("/")


@pytest.mark.parametrize("url", ALLOWED_IN_LOCAL_MODE + ALLOWED_IN_PRODUCTION)
def test_local_mode_adds_loopback(url: str) -> None:
    assert check_url(url, allow_loopback=True) == url.rstrip("/")


@pytest.mark.parametrize("url", REFUSED_IN_LOCAL_MODE)
def test_local_mode_refuses_what_is_neither_public_nor_loopback(url: str) -> None:
    with pytest.raises(OutboundRefusedError):
        check_url(url, allow_loopback=True)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ],
)
def test_the_parser_reads_numeric_hosts_as_the_resolver_does(host: str, address: str) -> None:
    parsed = parse_host(host)
    assert parsed.kind in {"ipv4", "ipv6"}
    assert str(parsed.address) == address
    if parsed.kind == "ipv4":
        # inet_aton is what the system resolver uses for a numeric host
        assert socket.inet_ntoa(socket.inet_aton(host)) == address


# ----------------------------------------------------------------------------- mirror rule


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", b"127.0.0.1", None],
)
def test_the_local_runtime_takes_loopback(host: str | bytes | None) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "localhost.",
        "foo.localhost",
        "localhost.localdomain",
        "localhost.evil.com",
        "10.0.0.1",
        "0.0.0.0",
        "169.254.169.254",
        "graph.facebook.com",
        "",
        "::",
    ],
)
def test_the_local_runtime_refuses_the_rest(host: str) -> None:
    assert not is_loopback_host(host)


def test_local_mode_is_the_exact_word_true() -> None:
    assert loopback_allowed_from_env({"MLS_SYNC_ALLOW_LOOPBACK": "true"})
    assert loopback_allowed_from_env({"MLS_SYNC_ALLOW_LOOPBACK": " TRUE "})
    for value in ("1", "yes", "on", "truee", ""):
        assert not loopback_allowed_from_env({"MLS_SYNC_ALLOW_LOOPBACK": value})


# ----------------------------------------------------------------------------- connect time


class RecordingBackend(httpcore.MockBackend):
    """Answers every connection with one HTTP 200 and remembers where it was asked to go."""

    def __init__(self) -> None:
        super().__init__([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\n", b"ok"])
        self.connected: list[str] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        self.connected.append(host)
        return super().connect_tcp(host, port, timeout, local_address, socket_options)


def _resolves_to(*addresses: str) -> Any:
    def resolver(host: str, port: int, *_args: Any, **_kwargs: Any) -> Sequence[tuple[Any, ...]]:
        infos: list[tuple[Any, ...]] = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr: tuple[Any, ...] = (
                (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            )
            infos.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return infos

    return resolver


def _get(url: str, *, allow_loopback: bool, backend: RecordingBackend) -> httpx.Response:
    transport = GuardedTransport(allow_loopback=allow_loopback, inner=backend)
    with httpx.Client(transport=transport) as client:
        return client.get(url)


def test_a_name_resolving_to_loopback_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a public-looking name that DNS (patched) resolves to 127.0.0.1
    monkeypatch.setattr(socket, "getaddrinfo", _resolves_to("127.0.0.1"))
    backend = RecordingBackend()
    assert check_url("https://mls.example.com/odata", allow_loopback=False)
    # When production connects to it
    with pytest.raises(httpx.ConnectError, match=r"mls\.example\.com resolves to 127\.0\.0\.1"):
        _get("https://mls.example.com/odata", allow_loopback=False, backend=backend)
    # Then no connection was opened at all
    assert backend.connected == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.5.4",
        "172.31.255.255",
        "192.168.0.10",
        "169.254.169.254",
        "100.64.1.1",
        "0.0.0.0",
        "::1",
        "fd12:3456::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_dns_rebinding_to_inside_addresses_is_refused(address: str) -> None:
    backend = RecordingBackend()
    transport = GuardedTransport(
        allow_loopback=False, resolver=_resolves_to(address), inner=backend
    )
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.get("https://rebind.example.com/")
    assert backend.connected == []


def test_every_blocked_network_is_tested_above() -> None:
    import ipaddress  # noqa: PLC0415

    tested = [
        ipaddress.ip_address(a)
        for a in (
            *("127.0.0.1", "10.1.2.3", "172.16.5.4", "192.168.0.10", "169.254.169.254"),
            *("100.64.1.1", "0.0.0.0", "::1", "fd12:3456::1", "fe80::1"),
        )
    ]
    named = {"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
    named |= {"100.64.0.0/10", "0.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10"}
    for network in BLOCKED_NETWORKS:
        if str(network) in named:
            assert any(a.version == network.version and a in network for a in tested)


def test_one_inside_address_among_public_ones_refuses_the_name() -> None:
    backend = RecordingBackend()
    transport = GuardedTransport(
        allow_loopback=False, resolver=_resolves_to("93.184.216.34", "10.0.0.5"), inner=backend
    )
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.get("https://mixed.example.com/")
    assert backend.connected == []


def test_a_public_address_is_connected_to_by_address_not_by_name_again() -> None:
    # Given a name resolving to a public address
    backend = RecordingBackend()
    transport = GuardedTransport(
        allow_loopback=False, resolver=_resolves_to("93.184.216.34"), inner=backend
    )
    # When production fetches it
    with httpx.Client(transport=transport) as client:
        response = client.get("https://mls.example.com/odata")
    # Then the connection went to the vetted address (no second lookup to rebind)
    assert response.status_code == 200
    assert backend.connected == ["93.184.216.34"]


def test_local_mode_connects_to_loopback_and_still_refuses_private() -> None:
    backend = RecordingBackend()
    ok = GuardedTransport(allow_loopback=True, resolver=_resolves_to("127.0.0.1"), inner=backend)
    with httpx.Client(transport=ok) as client:
        assert client.get("http://localhost:8080/").status_code == 200
    private = GuardedTransport(
        allow_loopback=True, resolver=_resolves_to("10.0.0.1"), inner=backend
    )
    with httpx.Client(transport=private) as client, pytest.raises(httpx.ConnectError):
        client.get("https://sim.example.com/")
    assert backend.connected == ["127.0.0.1"]


def test_production_clients_connect_through_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    from mls_sync.platforms.base import Transient  # noqa: PLC0415
    from mls_sync.platforms.http import PlatformHttp, RetryPolicy  # noqa: PLC0415
    from mls_sync.reso.auth import BearerToken  # noqa: PLC0415
    from mls_sync.reso.client import ReplicationClient, ReplicationTarget  # noqa: PLC0415
    from pydantic import SecretStr  # noqa: PLC0415

    # Given a platform's name that DNS (patched) resolves to the metadata service
    monkeypatch.setattr(socket, "getaddrinfo", _resolves_to("169.254.169.254"))
    # When the platform client, as the publisher builds it, calls it
    with PlatformHttp(retry=RetryPolicy(attempts=1), allow_loopback=False) as http:
        result = http.call("DELETE", "https://graph.facebook.com/v25.0/1", classify=lambda _r: 1)
    # Then no connection is made: a transient failure naming the policy
    assert isinstance(result, Transient)
    assert "outbound policy" in result.reason
    # and the MLS client's own HTTP client goes through the same guard
    client = ReplicationClient(
        ReplicationTarget(vendor="reso", base_url="https://mls.example.com"),
        BearerToken(token=SecretStr("t")),
        allow_loopback=False,
    )
    try:
        assert isinstance(client._transport.http._transport, GuardedTransport)
    finally:
        client.close()


def test_guarded_transports_of_a_container_share_one_verifying_ssl_context() -> None:
    # Given two guarded transports made in one container (the worker makes one per job)
    first = GuardedTransport(allow_loopback=False)
    second = GuardedTransport(allow_loopback=True)
    # Then they use one context (its CA bundle loaded once), and it verifies certificates
    # and host names
    context = first._pool._ssl_context
    assert context is second._pool._ssl_context is shared_ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    # And a fresh container makes a new one
    container.reset()
    assert GuardedTransport(allow_loopback=False)._pool._ssl_context is not context
