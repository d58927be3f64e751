"""`mls-sync accounts set-token ACCOUNT_ID [--token-file FILE] [--json]`: a platform account's
new token, and its posts that waited for it taken down.

Reads the token JSON (``{"accessToken", "refreshToken"?, "expiresAt"?}``) from ``--token-file``
or stdin, checks it whole, writes it to the account's Secrets Manager secret, then makes the
same admin invoke of PublisherFunction that AWS uses (``{"action": "accountReauthorized",
"accountId": ...}``, ``mls_sync.unpublish.reauth``): the account is set back to ``active`` and
its ``reauth_required`` posts of listings still in ``UnpublishOnStatuses`` get unpublish jobs,
which the pollers run to quiescence through the real handlers, as `tick` does.

Exit 0 when every retried post came down (or needs a person, as an Instagram Login post
does), 1 when one did not or anything failed, 2 for an unknown account or bad input (nothing
written then). The token never appears in any output.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from mls_sync_local.errors import EXIT_FAILED, CommandError, UsageError
from mls_sync_local.portfolio import PlatformToken
from mls_sync_local.runtime.context import make_context
from mls_sync_local.runtime.handlers import process_environment
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.pollers import AcceleratedClock
from mls_sync_local.runtime.tick import TickSummary, drain

PUBLISHER = "PublisherFunction"
_DONE = frozenset({"unpublished", "manual_action_required"})


@dataclass
class SetTokenSummary:
    account_id: str
    tick: TickSummary
    account_status: str = ""
    requeued: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    """Each retried post's status at the end."""

    @property
    def failed(self) -> bool:
        return (
            self.tick.failed
            or self.account_status != "active"
            or any(status not in _DONE for status in self.outcomes.values())
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "accountStatus": self.account_status,
            "requeued": self.requeued,
            "restored": self.restored,
            "outcomes": dict(sorted(self.outcomes.items())),
            **self.tick.to_json(),
        }

    def render(self) -> str:
        counts: dict[str, int] = {}
        for status in self.outcomes.values():
            counts[status] = counts.get(status, 0) + 1
        results = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        lines = [
            f"account {self.account_id}: token replaced, {self.account_status}; "
            f"{len(self.requeued)} post(s) retried ({results}), "
            f"{len(self.restored)} left up (listing no longer sold), "
            f"{self.tick.duration_ms} ms",
            f"  failures: {self.tick.failures}, dead letters: {self.tick.dead_letters}",
        ]
        lines.extend(
            f"  ! post {post_id}: {status}"
            for post_id, status in sorted(self.outcomes.items())
            if status not in _DONE
        )
        lines.extend(f"  ! {note}" for note in self.tick.failure_notes[:10])
        return "\n".join(lines)


def parse_token(text: str) -> dict[str, str]:
    """The token JSON as the secret stores it; UsageError (naming no secret) otherwise."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the token is not JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise UsageError('the token must be a JSON object {"accessToken", ...}')
    try:
        token = PlatformToken.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'token'}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(f"invalid token: {problems}") from None
    return token.secret_value()


def set_token(
    runtime: LocalRuntime,
    account_id: str,
    token: dict[str, str],
    *,
    now: datetime | None = None,
    handler_output: TextIO | None = None,
    clock: AcceleratedClock | None = None,
    accelerate: bool = True,
) -> SetTokenSummary:
    """Stores ``token`` as the account's secret, re-authorises the account through
    PublisherFunction's admin invoke, and runs the re-queued takedowns to quiescence. An
    unknown account is a UsageError (exit 2), and nothing is written."""
    from mls_sync import aws  # noqa: PLC0415 - needs the functions' environment
    from mls_sync.dal.accounts import AccountsRepo  # noqa: PLC0415
    from mls_sync.secrets import SecretStore  # noqa: PLC0415

    from mls_sync_local.seed import stack_tables  # noqa: PLC0415

    when = now or datetime.now(UTC)
    answers: list[dict[str, Any]] = []

    def start(accelerated: AcceleratedClock, summary: TickSummary) -> None:  # noqa: ARG001
        accounts = AccountsRepo(stack_tables(runtime.deployed.name).accounts)
        account = accounts.get(account_id)
        if account is None:
            raise UsageError(f"no platform account {account_id!r}")
        SecretStore(aws.secrets()).update_json(account.token_secret_arn, token)
        spec = runtime.facts.functions[PUBLISHER]
        context = make_context(
            runtime.deployed.physical(PUBLISHER),
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
            region=runtime.deployed.region,
            clock=accelerated,
        )
        event = {
            "action": "accountReauthorized",
            "accountId": account_id,
            "correlationId": f"set-token-{uuid.uuid4()}",
        }
        answer = runtime.registry.get(PUBLISHER)(event, context)
        if not isinstance(answer, dict) or "error" in answer:
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise CommandError(f"re-authorising {account_id} failed: {error}")
        answers.append(answer)

    tick = drain(
        runtime, when, start, handler_output=handler_output, clock=clock, accelerate=accelerate
    )
    answer = answers[0]
    summary = SetTokenSummary(
        account_id=account_id,
        tick=tick,
        requeued=list(answer.get("requeued", [])),
        restored=list(answer.get("restored", [])),
    )
    with process_environment(runtime.shared_environment()):
        from mls_sync.dal.posts import PostsRepo  # noqa: PLC0415

        tables = stack_tables(runtime.deployed.name)
        account = AccountsRepo(tables.accounts).get(account_id)
        summary.account_status = account.status if account is not None else "missing"
        posts = PostsRepo(tables.posts)
        for post_id in summary.requeued:
            post = posts.get(post_id)
            summary.outcomes[post_id] = post.status.value if post is not None else "missing"
    return summary


# ------------------------------------------------------------------------------ CLI


def _read_token(path: str | None) -> dict[str, str]:
    if path is None or path == "-":
        if sys.stdin.isatty():
            raise UsageError("give the token JSON on stdin or with --token-file FILE")
        return parse_token(sys.stdin.read())
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_token(text)


def _set_token(args: argparse.Namespace) -> int:
    if not args.account_id.strip():
        raise UsageError("ACCOUNT_ID is empty")
    token = _read_token(args.token_file)
    runtime = LocalRuntime.connect()
    summary = set_token(runtime, args.account_id, token, accelerate=not args.real_time)
    print(json.dumps(summary.to_json()) if args.json else summary.render())
    return EXIT_FAILED if summary.failed else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("accounts", help="platform accounts: replace a token")
    commands = parser.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    set_parser = commands.add_parser(
        "set-token",
        help="store an account's new token; its reauth_required posts are taken down",
    )
    set_parser.add_argument("account_id", metavar="ACCOUNT_ID")
    set_parser.add_argument(
        "--token-file",
        metavar="FILE",
        help='the token JSON {"accessToken", "refreshToken"?, "expiresAt"?}; default: stdin',
    )
    set_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    set_parser.add_argument(
        "--real-time",
        action="store_true",
        help="wait out visibility timeouts for real instead of skipping ahead",
    )
    set_parser.set_defaults(run=_set_token)
