"""`mls-sync invoke FUNCTION --event FILE`: one handler, one event, in this process."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from mls_sync_local.errors import CommandError, UsageError
from mls_sync_local.runtime.handlers import handler_output_to
from mls_sync_local.runtime.local import LocalRuntime


def read_event(path: str) -> Any:
    """The event from a JSON file (``-`` for stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from None


def _run(args: argparse.Namespace) -> int:
    event = read_event(args.event)
    runtime = LocalRuntime.connect()
    out = sys.stdout
    # Handler logs go to stderr: stdout carries the result only, as JSON.
    with handler_output_to(sys.stderr):
        try:
            result = runtime.invoke(args.function, event)
        except CommandError:
            raise
        except Exception as exc:
            # The first line only (a pydantic error is dozens): --debug has the rest.
            first = next(iter(str(exc).splitlines()), "")
            raise CommandError(f"{args.function} raised {type(exc).__name__}: {first}") from exc
    out.write(json.dumps(result, indent=2, default=str) + "\n")
    code, problem = exit_code_of(result)
    if problem:
        print(f"mls-sync: {args.function} {problem}", file=sys.stderr)
    return code


def exit_code_of(result: Any) -> tuple[int, str | None]:
    """1 when the handler's answer says it failed: an HTTP-style ``statusCode`` of 400 or
    more (manual-sync's 404, 409...), or an SQS batch with ``batchItemFailures``."""
    if not isinstance(result, dict):
        return 0, None
    status = result.get("statusCode")
    if isinstance(status, int) and status >= 400:
        body = result.get("body")
        if isinstance(body, str):
            with contextlib.suppress(json.JSONDecodeError):
                body = json.loads(body)
        error = body.get("error") if isinstance(body, dict) else None
        return 1, f"answered {status}" + (f": {error}" if error else "")
    failures = result.get("batchItemFailures")
    if isinstance(failures, list) and failures:
        return 1, f"reported {len(failures)} failed record(s) in batchItemFailures"
    return 0, None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="run one handler with one event and its template environment (like sam local invoke)",
        description=(
            "Runs one handler in this process with the function's environment read from the "
            "deployed stack; its result as JSON on stdout, its logs on stderr. Exit 1 when the "
            "answer is a failure: statusCode >= 400 or batchItemFailures."
        ),
    )
    parser.add_argument(
        "function", help="dispatcher, worker, publisher, manual-sync (or a logical id)"
    )
    parser.add_argument("--event", "-e", required=True, help="event JSON file ('-' for stdin)")
    parser.set_defaults(run=_run)
