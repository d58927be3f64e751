"""`mls-sync push`: the push receiver on this machine.

- ``push set-token CONNECTION_ID [--token-file FILE | --generate]``: stores the bearer token
  the connection's MLS will present (secret ``<stack>/push/<connectionId>``, JSON
  ``{"token"}``) and sets the connection's ``pushSecretArn``: push is then enabled for it.
  The token comes from a file or stdin; ``--generate`` makes a random one and prints it
  once (it is what the MLS must be given). Otherwise no output carries the token.
- ``push serve [--port N]``: PushFunction behind a loopback function URL
  (``runtime.function_url``), in the foreground, printing the URL the MLS pushes to
  (``<url>/connections/<connectionId>/events``). A warm container: nothing else runs in
  this process.

Both need ``AWS_ENDPOINT_URL`` naming a moto server on loopback with the stack deployed.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from mls_sync_local.errors import UsageError
from mls_sync_local.runtime.local import LocalRuntime

PUSH = "PushFunction"


def set_push_token(runtime: LocalRuntime, connection_id: str, token: str) -> str:
    """Stores ``token`` as the connection's push secret and points the connection at it;
    returns the secret's ARN. An unknown connection is a UsageError and nothing is written."""
    from mls_sync import aws  # noqa: PLC0415 - needs the functions' environment
    from mls_sync.dal.push_access import PushAccessRepo  # noqa: PLC0415
    from mls_sync.secrets import SecretStore, push_secret_name  # noqa: PLC0415

    from mls_sync_local.runtime.handlers import process_environment  # noqa: PLC0415

    if not token or token != token.strip() or any(c.isspace() for c in token):
        raise UsageError("a push token must be one word: no spaces, not empty")
    environment = runtime.function_environment(PUSH)
    with process_environment(environment):
        access = PushAccessRepo(aws.dynamodb(), environment["CONNECTIONS_TABLE"])
        if access.get(connection_id) is None:
            raise UsageError(f"no connection {connection_id!r}")
        name = push_secret_name(f"{runtime.deployed.name}/", connection_id)
        arn = SecretStore(aws.secrets()).put_json(name, {"token": token})
        access.set_secret(connection_id, arn)
        return arn


def _read_token(args: argparse.Namespace) -> tuple[str, bool]:
    """The token, and whether it was generated here (then it is printed)."""
    if args.generate:
        return secrets.token_urlsafe(32), True
    if args.token_file in (None, "-"):
        if sys.stdin.isatty():
            raise UsageError("give the token on stdin, with --token-file FILE, or --generate")
        return sys.stdin.read().strip(), False
    try:
        return Path(args.token_file).read_text(encoding="utf-8").strip(), False
    except OSError as exc:
        raise UsageError(f"cannot read {args.token_file}: {exc.strerror or exc}") from None


def _set_token(args: argparse.Namespace) -> int:
    token, generated = _read_token(args)
    runtime = LocalRuntime.connect()
    set_push_token(runtime, args.connection_id, token)
    print(f"connection {args.connection_id}: push enabled")
    if generated:
        print(f"token: {token}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mls_sync_local.runtime.function_url import FunctionUrlFront, warm  # noqa: PLC0415

    runtime = LocalRuntime.connect()
    with warm(runtime, PUSH) as invoke, FunctionUrlFront(invoke, port=args.port) as front:
        print(f"PushFunction at {front.url} (Ctrl-C to stop)")
        print(f"  POST {front.url}/connections/<connectionId>/events", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("push", help="the push receiver: set a token, serve it")
    commands = parser.add_subparsers(dest="push_command", metavar="ACTION", required=True)
    token = commands.add_parser(
        "set-token", help="enable push for a connection with the token its MLS will present"
    )
    token.add_argument("connection_id", metavar="CONNECTION_ID")
    source = token.add_mutually_exclusive_group()
    source.add_argument("--token-file", metavar="FILE", help="the token; default: stdin")
    source.add_argument("--generate", action="store_true", help="make one and print it once")
    token.set_defaults(run=_set_token)
    serve = commands.add_parser(
        "serve", help="PushFunction behind a function URL on loopback, in the foreground"
    )
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.set_defaults(run=_serve)
