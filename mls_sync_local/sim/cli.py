"""`mls-sync sim mls` and `mls-sync sim platforms`: a simulator in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from mls_sync.netpolicy import is_loopback_host

from mls_sync_local.errors import UsageError


def register(subparsers: Any) -> None:
    sim = subparsers.add_parser("sim", help="run an MLS or platform simulator in the foreground")
    kinds = sim.add_subparsers(dest="sim_kind", metavar="KIND", required=True)
    mls = kinds.add_parser("mls", help="a RESO Web API server (OAuth2, Property, $filter...)")
    mls.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    mls.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    mls.add_argument("--listings", type=int, default=20, help="listings to start with")
    mls.add_argument(
        "--entity-events",
        action="store_true",
        help="serve the RESO EntityEvent log (RCP-027) and name it in $metadata",
    )
    mls.set_defaults(run=_run_mls)
    platforms = kinds.add_parser(
        "platforms",
        help="Facebook Graph, Instagram and LinkedIn delete endpoints",
        description=(
            "Prints `export` lines for the platform clients, then serves in the foreground. "
            "By default it accepts the tokens and posts seeded into the stack at "
            "AWS_ENDPOINT_URL (read when a request names one it does not know); --strict "
            "accepts only those registered over /_sim/tokens and /_sim/posts."
        ),
    )
    platforms.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    platforms.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    platforms.add_argument(
        "--strict",
        action="store_true",
        help="accept only tokens and posts registered over /_sim/ (not the stack's)",
    )
    platforms.set_defaults(run=_run_platforms)


def _check_host(host: str) -> None:
    # Simulators are test doubles: they only ever listen on this machine's loopback.
    if not is_loopback_host(host):
        raise UsageError(f"--host {host!r} is not a loopback address (use 127.0.0.1)")


def _line_buffered() -> None:
    # The simulators print their URL and variables once, then serve: whoever reads them
    # (a file, a pipe, a test) must see each line as it is printed.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


def _run_mls(args: argparse.Namespace) -> int:
    from mls_sync_local.sim.mls import serve_forever  # noqa: PLC0415 - only when asked

    _check_host(args.host)
    _line_buffered()
    serve_forever(args.host, args.port, listings=args.listings, entity_events=args.entity_events)
    return 0


def _run_platforms(args: argparse.Namespace) -> int:
    from mls_sync_local.sim.platforms import serve_forever  # noqa: PLC0415 - only when asked

    _check_host(args.host)
    _line_buffered()
    serve_forever(args.host, args.port, source=None if args.strict else _stack_source())
    return 0


def _stack_source() -> Any:
    """The stack at AWS_ENDPOINT_URL (a loopback one) as the simulator's source, or None."""
    from mls_sync_local.runtime.stack import region, require_loopback, stack_name  # noqa: PLC0415
    from mls_sync_local.sim.stack_source import stack_source  # noqa: PLC0415

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    try:
        require_loopback(endpoint)
    except UsageError:
        print(
            "# AWS_ENDPOINT_URL is not a loopback URL: only tokens and posts registered "
            "over /_sim/ are accepted",
            file=sys.stderr,
            flush=True,
        )
        return None
    stack = stack_name()
    print(f"# accepting the tokens and posts seeded into {stack} at {endpoint}", flush=True)
    return stack_source(stack, endpoint, region())
