"""`mls-sync sim mls` and `mls-sync sim platforms`: a simulator in the foreground."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from mls_sync_local.cli import UsageError


def register(subparsers: Any) -> None:
    sim = subparsers.add_parser("sim", help="run an MLS or platform simulator in the foreground")
    kinds = sim.add_subparsers(dest="sim_kind", metavar="KIND", required=True)
    mls = kinds.add_parser("mls", help="a RESO Web API server (OAuth2, Property, $filter...)")
    mls.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    mls.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    mls.add_argument("--listings", type=int, default=20, help="listings to start with")
    mls.set_defaults(run=_run_mls)
    platforms = kinds.add_parser(
        "platforms", help="Facebook Graph, Instagram and LinkedIn delete endpoints"
    )
    platforms.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    platforms.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    platforms.set_defaults(run=_run_platforms)


def _check_host(host: str) -> None:
    # Simulators are test doubles: they only ever listen on this machine's loopback.
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--host {host!r} is not a loopback address (use 127.0.0.1)")


def _run_mls(args: argparse.Namespace) -> int:
    from mls_sync_local.sim.mls import serve_forever  # noqa: PLC0415 - only when asked

    _check_host(args.host)
    serve_forever(args.host, args.port, listings=args.listings)
    return 0


def _run_platforms(args: argparse.Namespace) -> int:
    from mls_sync_local.sim.platforms import serve_forever  # noqa: PLC0415 - only when asked

    _check_host(args.host)
    serve_forever(args.host, args.port)
    return 0
