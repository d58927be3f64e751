"""`mls-sync dump [--json]`: what a stack holds, for people (a table) or tools (JSON).

``--json`` prints the portfolio shape (CONTRACT section 4) with ``credentialsSecretArn`` /
``tokenSecretArn`` where the file had secrets, plus the stored status fields. Users have no
table of their own: they are listed by the ids the records carry.

A local tool reading whole tables: it scans (consistently), which the service never does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError
from mls_sync.dal.base import plain
from mls_sync.models import Connection, ItemModel, Listing, PlatformAccount, Post

from mls_sync_local.errors import EXIT_FAILED, EXIT_OK
from mls_sync_local.seed import stack_name, stack_tables, use_local_aws

if TYPE_CHECKING:
    from mls_sync.dal import Tables
    from mypy_boto3_dynamodb.service_resource import Table


def scan_all(table: Table) -> list[dict[str, Any]]:
    """Every item of a table (consistent read, all pages)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    while True:
        page = table.scan(**kwargs)
        items.extend(plain(i) for i in page.get("Items", []))
        last = page.get("LastEvaluatedKey")
        if not last:
            return items
        kwargs["ExclusiveStartKey"] = last


def _records(table: Table, model: type[ItemModel], key: str) -> list[dict[str, Any]]:
    # Through the model: bookkeeping attributes (enabledShard, mlsModifiedKey) drop out and
    # anything malformed fails loudly instead of being printed as if it were fine.
    items = [model.model_validate(i).to_item() for i in scan_all(table)]
    return sorted(items, key=lambda i: str(i[key]))


def collect(tables: Tables) -> dict[str, list[dict[str, Any]]]:
    """The stack's contents in the portfolio shape."""
    connections = _records(tables.connections, Connection, "connectionId")
    accounts = _records(tables.accounts, PlatformAccount, "accountId")
    listings = _records(tables.listings, Listing, "listingId")
    posts = _records(tables.posts, Post, "postId")
    user_ids = sorted({r["userId"] for r in (*connections, *accounts, *listings)})
    return {
        "users": [{"userId": u} for u in user_ids],
        "connections": connections,
        "platformAccounts": accounts,
        "listings": listings,
        "posts": posts,
    }


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [f"{title} ({len(rows)})", line(columns), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return out


def _cap(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _phase(phase: Any) -> str:
    """A by-key phase in progress: which, and how far (the last key applied)."""
    if not isinstance(phase, dict):
        return "-"
    after = phase.get("after") or "(start)"
    return f"{phase.get('kind')} since {phase.get('startedAt')}, after {_cap(str(after), 24)}"


def _last_success(connection: dict[str, Any]) -> str:
    """When a run last succeeded; ``never`` for a connection attempted but never successful
    (one that never reached its MLS shows no sync time); ``-`` before any attempt."""
    if connection.get("lastSuccessAt"):
        return str(connection["lastSuccessAt"])
    if connection.get("lastAttemptAt"):
        return "never"
    return str(connection.get("lastSyncedAt") or "-")


def _braked(braked: Any) -> str:
    """The mass-change brake: the run that tripped it and when, or ``-``."""
    if not isinstance(braked, dict):
        return "-"
    return f"{_cap(str(braked.get('runKey')), 48)} at {braked.get('at')}"


def render_text(data: dict[str, list[dict[str, Any]]]) -> str:
    def s(value: Any) -> str:
        return "-" if value is None or value == "" else str(value)

    connections = [
        [
            s(c["connectionId"]),
            s(c["userId"]),
            s(c["vendor"]),
            "yes" if c.get("enabled") else "no",
            s((c.get("cursor") or {}).get("timestamp")),
            _last_success(c),
            s(c.get("consecutiveFailures") or None),
            _phase(c.get("byKeyPhase")),
            _braked(c.get("braked")),
        ]
        for c in data["connections"]
    ]
    listings = [
        [
            s(li["listingId"]),
            s(li["connectionId"]),
            s(li["listingKey"]),
            s(li["status"]),
            s(li.get("standardStatus")),
            s(li.get("mlsModifiedAt")),
            "quarantined"
            if li.get("quarantined")
            else ("excluded" if li.get("syncExcluded") else "-"),
        ]
        for li in data["listings"]
    ]
    quarantined = [
        [
            s(li["listingId"]),
            s(li["listingKey"]),
            s(li.get("quarantinedAt")),
            s(li.get("quarantineAttempts")),
            _cap(s(li.get("quarantineReason")), 80),
        ]
        for li in data["listings"]
        if li.get("quarantined")
    ]
    posts = [
        [
            s(p["postId"]),
            s(p["listingId"]),
            s(p["platform"]),
            s(p["status"]),
            _cap(s(p.get("outcomeReason")), 60),
            s(p.get("unpublishedAt")),
        ]
        for p in data["posts"]
    ]
    lines = [
        *_table(
            "CONNECTIONS",
            [
                "ID",
                "USER",
                "VENDOR",
                "ENABLED",
                "CURSOR",
                "LAST SUCCESS",
                "FAILURES",
                "READING BY KEY",
                "BRAKED",
            ],
            connections,
        ),
        "",
        *_table(
            "LISTINGS",
            ["ID", "CONNECTION", "KEY", "STATUS", "STANDARD STATUS", "MLS MODIFIED", "SYNC"],
            listings,
        ),
        "",
        *(
            [
                *_table(
                    "QUARANTINED (skipped until a read by key applies them)",
                    ["LISTING", "KEY", "SINCE", "ATTEMPTS", "REASON"],
                    quarantined,
                ),
                "",
            ]
            if quarantined
            else []
        ),
        *_table("POSTS", ["ID", "LISTING", "PLATFORM", "STATUS", "REASON", "UNPUBLISHED"], posts),
    ]
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dump",
        help="print connections, listings with status, posts with status",
        description="Prints what the stack holds. --json prints the portfolio file's shape "
        "with secret ARNs in place of secrets, plus the stored status fields.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (portfolio shape)")
    parser.set_defaults(run=run)


def run(
    args: argparse.Namespace,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    local_only: bool = True,
) -> int:
    """``local_only=False`` is for callers that set up AWS themselves (moto in-process)."""
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    if local_only:
        use_local_aws()
    stack = stack_name()
    try:
        data = collect(stack_tables(stack))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        hint = (
            " (is the stack deployed? `mls-sync local deploy`)"
            if error.get("Code") == "ResourceNotFoundException"
            else ""
        )
        print(f"mls-sync: dump: {stack}: {error.get('Code', 'error')}{hint}", file=stderr)
        return EXIT_FAILED
    except BotoCoreError as exc:
        print(f"mls-sync: dump: AWS unreachable: {type(exc).__name__}", file=stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=False), file=stdout)
    else:
        print(render_text(data), file=stdout)
    return EXIT_OK


__all__ = ["collect", "register", "render_text", "run", "scan_all"]
