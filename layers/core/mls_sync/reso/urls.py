"""Which URLs one MLS connection calls: the outbound policy on the base, token and next
links, a nextLink kept on the base URL's origin, and our own query encoding."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from mls_sync import netpolicy
from mls_sync.reso.errors import InvalidBaseUrl, MlsProtocolError
from mls_sync.reso.odata import encode_query


def check_url(url: str, *, allow_loopback: bool, what: str = "base URL") -> str:
    """The outbound policy (``mls_sync.netpolicy``): https and a public DNS name; http and
    loopback hosts only when local mode allows loopback. The message names the URL's scheme
    and host, never its query (which may carry a token)."""
    try:
        return netpolicy.check_url(url, allow_loopback=allow_loopback, what=what)
    except netpolicy.OutboundRefusedError as exc:
        raise InvalidBaseUrl(str(exc)) from None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def same_service(url: str, base_url: str) -> str:
    """``url`` if it is on the base URL's origin. A server behind a TLS-terminating proxy may
    write its nextLinks with ``http://`` and the same host: that link is upgraded to https
    (never the reverse). Any other origin is refused, so the token never leaves the MLS."""
    scheme, host, port = _origin(url)
    b_scheme, b_host, b_port = _origin(base_url)
    if host == b_host and scheme == "http" and b_scheme == "https" and port in (80, b_port):
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if parts.port == 80:
            netloc = netloc.rsplit(":", 1)[0]
        return urlunsplit(("https", netloc, parts.path, parts.query, ""))
    if (scheme, host, port) != (b_scheme, b_host, b_port):
        raise MlsProtocolError(f"{b_host} sent a nextLink to another origin ({host}); not followed")
    return url


def build_url(url: str, params: Mapping[str, str] | None) -> str:
    """The request URL: our own encoding of the query (see :func:`encode_query`), never the
    HTTP library's (which writes ``%24filter`` and ``+`` for spaces)."""
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{encode_query(params)}"


__all__ = ["build_url", "check_url", "same_service"]
