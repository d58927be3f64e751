"""While handlers run in this process, connections go to loopback hosts only.

The handlers' settings come from template.yaml, which names the real platforms, and seeded
connections may name a real MLS (events/portfolio.sample.yaml does): a local run must never
reach them with fake or local credentials. Every client (httpx, urllib3/botocore) resolves
its host through ``socket.getaddrinfo`` before connecting, so refusing there, before any DNS
query, covers them all; the refusal is an ``OSError``, which the clients report as a
connection error (a transient failure to the handler), naming the host.

What counts as loopback is ``mls_sync.netpolicy.is_loopback_host``, the parser production's
outbound policy uses (the mirror image of its "public DNS names only"): ``localhost``
exactly (not ``localhost.`` nor ``*.localhost``, which a resolver may send to DNS) or an IP
literal denoting a loopback address; and the addresses a name resolves to must be loopback
too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from mls_sync.http.failures import FailureKind
from mls_sync.netpolicy import IPAddress, is_loopback_address, is_loopback_host

_lock = threading.Lock()
_depth = 0
_original: Callable[..., Any] | None = None


class NonLoopbackHostError(ConnectionRefusedError):
    """A connection to a host that is not this machine, refused by the local runtime."""

    failure_kind = FailureKind.NOT_LOOPBACK
    """How health names it (``mls_sync.http.failures``): blocked, not a refusing server."""


def _address(answer: Any) -> IPAddress | None:
    try:
        return ipaddress.ip_address(str(answer[4][0]).split("%", 1)[0])
    except (IndexError, TypeError, ValueError):
        return None


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback_host(host):
            raise NonLoopbackHostError(
                f"mls-sync local runtime: refusing to connect to non-loopback host {host!r} "
                "(point it at a simulator on 127.0.0.1)"
            )
        answers = original(host, *args, **kwargs)
        # The mirror of production's connect-time check: what the name resolved to must be
        # this machine too (an /etc/hosts entry for "localhost" could say otherwise).
        for answer in answers:
            address = _address(answer)
            if address is not None and not is_loopback_address(address):
                raise NonLoopbackHostError(
                    f"mls-sync local runtime: {host!r} resolved to {address}, not loopback"
                )
        return answers

    return getaddrinfo


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Refuse, process-wide, connections to anything but loopback for the block (nestable,
    and safe with handler threads: the patch stays until the outermost block ends)."""
    global _depth, _original  # noqa: PLW0603 - one patch of a process-wide function
    with _lock:
        if _depth == 0:
            _original = socket.getaddrinfo
            socket.getaddrinfo = _guarded(_original)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _original is not None:
                socket.getaddrinfo = _original
                _original = None


__all__ = ["NonLoopbackHostError", "is_loopback_host", "loopback_only"]
