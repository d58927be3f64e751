"""Where this service may connect: the one outbound URL policy (issue 19).

Two modes, one parser:

- **public** (production, the default): ``https``, a host that is a public DNS name (two
  labels or more, ASCII, no reserved suffix like ``localhost`` or ``internal``, no trailing
  dot), never an IP literal in any spelling (dotted, short ``127.1``, hex ``0x7f000001``,
  octal ``0177.0.0.1``, integer ``2130706433``, IPv6, IPv4-mapped IPv6), and no credentials
  in the URL. At connect time every address the name resolves to must be public
  (:func:`address_refusal`; ``mls_sync.nettransport`` checks it on the resolved address,
  so DNS rebinding cannot reach this machine, the VPC or the metadata service).
- **loopback** (the local runtime, ``MLS_SYNC_ALLOW_LOOPBACK=true``): the same, plus
  loopback hosts (``localhost`` exactly, ``127.0.0.0/8``, ``::1``) over http or https, and
  loopback addresses at connect time. The local runtime's own guard
  (``mls_sync_local.runtime.loopback_guard``) is the mirror image: loopback *only*, decided
  by :func:`is_loopback_host` on this same parser.

Messages name the URL's scheme and host, never its path, query or credentials (a query may
carry a token).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_LOOPBACK_ENV = "MLS_SYNC_ALLOW_LOOPBACK"

BLOCKED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches this machine on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (also used inside VPC endpoints)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: the instance metadata service lives here
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",
    )
)
"""Never reachable in public mode (Python's ``is_global`` is checked as well)."""

RESERVED_SUFFIXES = (
    "localhost",
    "local",
    "localdomain",
    "internal",
    "intranet",
    "lan",
    "home",
    "corp",
    "home.arpa",
    "arpa",
    "invalid",
    "onion",
)
"""Names that never denote a public service (RFC 6761, 6762, 8375; common private TLDs)."""

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(?:0[x][0-9a-f]*|[0-9]+)$")


class OutboundRefusedError(ValueError):
    """A URL or an address this service must not connect to. The message names scheme and
    host only."""


@dataclass(frozen=True, slots=True)
class Host:
    """A URL's host as the parser read it."""

    text: str
    """Lower-cased, brackets removed."""
    kind: Literal["name", "ipv4", "ipv6"]
    address: IPAddress | None = None
    """The address an IP literal denotes (in whatever spelling it was written)."""


def _ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """What ``inet_aton`` (and so the system resolver, and WHATWG URL parsing) makes of a
    numeric host: 1 to 4 parts, each decimal, ``0x`` hex or ``0``-prefixed octal, the last
    filling the remaining bytes (``127.1``, ``0x7f000001``, ``2130706433``, ``0177.0.0.1``)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if not part:
            return None
        try:
            if part.startswith("0x"):
                value = int(part[2:] or "0", 16)
            elif len(part) > 1 and part.startswith("0"):
                value = int(part[1:], 8)
            else:
                value = int(part, 10) if part.isdigit() else -1
        except ValueError:
            return None
        if value < 0:
            return None
        values.append(value)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


def parse_host(host: str | bytes | None) -> Host:
    """Classify a URL's host. Raises :class:`OutboundRefusedError` for what is not a host at all
    (empty, non-ASCII, characters no DNS name has)."""
    if host is None:
        raise OutboundRefusedError("no host")
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    text = text.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text:
        raise OutboundRefusedError("no host")
    if not text.isascii():
        # IDNA would map fullwidth digits and dots to ASCII ones: a name must arrive as ASCII
        # (punycode) to be judged as it will be resolved.
        raise OutboundRefusedError(f"host {text!r} is not ASCII (write it in punycode)")
    if ":" in text:
        try:
            return Host(text=text, kind="ipv6", address=ipaddress.IPv6Address(text))
        except ValueError:
            raise OutboundRefusedError(f"host {text!r} is not a valid IPv6 address") from None
    bare = text[:-1] if text.endswith(".") else text
    address = _ipv4_loose(bare)
    if address is not None:
        return Host(text=text, kind="ipv4", address=address)
    labels = bare.split(".")
    if labels and _NUMERIC_LABEL.fullmatch(labels[-1]):
        # WHATWG: a host whose last label is a number is parsed as IPv4 (and fails here):
        # never a name.
        raise OutboundRefusedError(f"host {text!r} looks like an IP address but is not one")
    if not all(_LABEL.fullmatch(label) for label in labels) or len(bare) > 253:
        raise OutboundRefusedError(f"host {text!r} is not a valid DNS name")
    return Host(text=text, kind="name")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_loopback_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is not None:
            return embedded.is_loopback
    return address.is_loopback


def public_address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public internet address (None if it is one)."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (link-local) IPv6 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
    for candidate in candidates:
        for network in BLOCKED_NETWORKS:
            if candidate.version == network.version and candidate in network:
                return f"in {network}"
        if not candidate.is_global or candidate.is_multicast or candidate.is_reserved:
            return "not a public address"
    return None


def address_refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why a connection to ``address`` is refused (None: allowed). Public addresses always
    pass; loopback ones only in local mode."""
    if allow_loopback and is_loopback_address(address):
        return None
    return public_address_refusal(address)


def is_loopback_host(host: str | bytes | None) -> bool:
    """The local runtime's rule: ``localhost`` exactly (no trailing dot, no subdomain, which
    a resolver may send to DNS), or an IP literal that denotes a loopback address;
    ``None`` (``getaddrinfo(None, port)``) is this machine too."""
    if host is None:
        return True
    try:
        parsed = parse_host(host)
    except OutboundRefusedError:
        return False
    if parsed.kind == "name":
        return parsed.text == "localhost"
    return parsed.address is not None and is_loopback_address(parsed.address)


def _public_name_refusal(host: Host) -> str | None:
    if host.kind != "name":
        return "is an IP address literal (only DNS names are allowed)"
    if host.text.endswith("."):
        return "ends with a dot (write the name without it)"
    labels = host.text.split(".")
    if len(labels) < 2:
        return "is a single-label name (not a public DNS name)"
    for suffix in RESERVED_SUFFIXES:
        if host.text == suffix or host.text.endswith("." + suffix):
            return f"is a reserved name (.{suffix})"
    return None


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise OutboundRefusedError("not a valid URL") from None
    return parts


def check_url(url: str, *, allow_loopback: bool, what: str = "URL") -> str:
    """``url`` (trailing slash dropped) if this service may call it; else
    :class:`OutboundRefusedError` naming ``what`` and the URL's scheme and host."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    raw_host = parts.netloc.rsplit("@", 1)[-1]
    raw_host = raw_host.rsplit(":", 1)[0] if not raw_host.endswith("]") else raw_host
    if not parts.hostname:
        raise OutboundRefusedError(f"{what} has no host")
    try:
        host = parse_host(parts.hostname)
    except OutboundRefusedError as exc:
        raise OutboundRefusedError(f"{what}: {exc}") from None
    where = f"{scheme or 'no scheme'}://{host.text}"
    if scheme not in ("https", "http"):
        raise OutboundRefusedError(f"{what} must be https, got {where}")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefusedError(f"{what} must not carry credentials ({where})")
    if "%" in raw_host or "\\" in raw_host:
        raise OutboundRefusedError(f"{what}: host of {where} is escaped")
    loopback = allow_loopback and is_loopback_host(parts.hostname)
    if loopback:
        return url.strip().rstrip("/")
    if not allow_loopback and is_loopback_host(parts.hostname):
        raise OutboundRefusedError(f"{what} {where} is a loopback host (local mode only)")
    refusal = _public_name_refusal(host)
    if refusal is not None:
        raise OutboundRefusedError(f"{what} {where}: the host {refusal}")
    if scheme != "https":
        raise OutboundRefusedError(f"{what} must be https, got {where}")
    return url.strip().rstrip("/")


def loopback_allowed_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Local mode (``MLS_SYNC_ALLOW_LOOPBACK``, exactly ``true``): from ``environ``, or
    this process's settings (``mls_sync.config``, read once per container)."""
    # Here, not at the top: a module that only checks URLs need not build the settings models.
    from mls_sync.config import RuntimeSettings, read_settings, runtime_settings  # noqa: PLC0415

    runtime = runtime_settings() if environ is None else read_settings(RuntimeSettings, environ)
    return runtime.allow_loopback


__all__ = [
    "ALLOW_LOOPBACK_ENV",
    "BLOCKED_NETWORKS",
    "Host",
    "OutboundRefusedError",
    "address_refusal",
    "check_url",
    "is_loopback_address",
    "is_loopback_host",
    "loopback_allowed_from_env",
    "parse_host",
    "public_address_refusal",
]
