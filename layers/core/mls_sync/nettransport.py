"""An httpx transport that enforces the outbound policy (``mls_sync.netpolicy``) where it
matters: on the addresses a host resolves to, at connect time.

A URL checked when it was configured can still resolve, later, to this machine, the VPC or
the metadata service (DNS rebinding, a hijacked record). :class:`GuardedBackend` resolves
the host itself, refuses the connection when *any* address is not allowed, and then
connects to the vetted address, never to the name again (no second lookup to rebind). TLS
still verifies the certificate against the URL's host name (httpcore passes it as
``server_hostname``).

A refusal is an ``httpcore.ConnectError`` subclass, which httpx reports as
``httpx.ConnectError`` naming the host and the address: callers treat it as any other
failure to connect.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpcore
import httpx

from mls_sync.container import per_container
from mls_sync.http.failures import FailureKind
from mls_sync.netpolicy import IPAddress, address_refusal

Resolver = Callable[[str, int], Sequence[tuple[Any, ...]]]
"""``(host, port) -> getaddrinfo``-shaped results."""


@per_container
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying context per container for every guarded transport: building one loads
    the CA bundle (~25 ms CPU), and the worker makes a client per job. A context is made to
    be shared by many connections; the only change httpcore makes to it, at each connect,
    sets the same ALPN list (``http/1.1``: no guarded pool speaks HTTP/2), as it does when
    one client's connections share its context."""
    return httpx.create_ssl_context()


def system_resolver(host: str, port: int) -> Sequence[tuple[Any, ...]]:
    # Looked up at call time, so a test's (or the local runtime's) patched resolver applies.
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class OutboundConnectRefused(httpcore.ConnectError):
    """A connection the outbound policy refuses (the host resolved somewhere forbidden)."""

    failure_kind = FailureKind.BLOCKED


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks every address, connects to a vetted one."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        resolver: Resolver | None = None,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.allow_loopback = allow_loopback
        self._resolve = resolver or system_resolver
        self._inner = inner or httpcore.SyncBackend()

    def vetted_addresses(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, if all are allowed; else the refusal."""
        try:
            infos = self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses: list[str] = []
        for info in infos:
            sockaddr = info[4]
            text = str(sockaddr[0])
            try:
                address: IPAddress = ipaddress.ip_address(text)
            except ValueError:
                raise OutboundConnectRefused(
                    f"outbound policy: {host} resolved to {text!r}, not an IP address"
                ) from None
            refusal = address_refusal(address, allow_loopback=self.allow_loopback)
            if refusal is not None:
                raise OutboundConnectRefused(
                    f"outbound policy: {host} resolves to {address} ({refusal}); refused"
                )
            if text not in addresses:
                addresses.append(text)
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        options = list(socket_options or [])
        last: Exception | None = None
        for address in self.vetted_addresses(host, port):
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,  # noqa: ARG002 - the interface's signature
        timeout: float | None = None,  # noqa: ARG002
        socket_options: Iterable[Any] | None = None,  # noqa: ARG002
    ) -> httpcore.NetworkStream:
        raise OutboundConnectRefused("outbound policy: unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through :class:`GuardedBackend`. No proxy
    (an environment proxy would connect on our behalf, unchecked)."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        resolver: Resolver | None = None,
        limits: httpx.Limits | None = None,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        # HTTPTransport.__init__ only builds a pool (and an SSL context); this one builds
        # its own, with the guarded backend and the container's context.
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self.backend = GuardedBackend(allow_loopback=allow_loopback, resolver=resolver, inner=inner)
        self._pool = httpcore.ConnectionPool(
            ssl_context=shared_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )


def guarded_client(*, allow_loopback: bool, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` that never follows redirects and connects only where the policy
    allows."""
    kwargs.setdefault("follow_redirects", False)
    return httpx.Client(transport=GuardedTransport(allow_loopback=allow_loopback), **kwargs)


__all__ = [
    "GuardedBackend",
    "GuardedTransport",
    "OutboundConnectRefused",
    "guarded_client",
    "system_resolver",
]
