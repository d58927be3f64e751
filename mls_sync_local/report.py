"""`mls-sync report [--out FILE]`: a one-page HTML picture of a local run.

Reads the stack's tables at AWS_ENDPOINT_URL (a moto server): listings by status, posts by
outcome, status changes by transition, and each connection's sync runs (MLS requests,
records read, failures, duration). Plain HTML with inline SVG bars: no browser scripts, no
extra libraries, readable offline.
"""

from __future__ import annotations

import argparse
import html
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mls_sync.config import stack_environment
from mls_sync.dal.base import plain

from mls_sync_local.cli import UsageError
from mls_sync_local.runtime.clients import client
from mls_sync_local.runtime.stack import endpoint_from_env, region, stack_name


@dataclass
class RunData:
    listings: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)


def _scan(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    paginator = ddb.get_paginator("scan")
    for page in paginator.paginate(TableName=table):
        for item in page.get("Items", []):
            yield plain(_from_av(item))


def _from_av(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def collect(stack: str, endpoint: str, aws_region: str) -> RunData:
    env = stack_environment(stack)
    ddb = client("dynamodb", endpoint, aws_region)
    return RunData(
        listings=list(_scan(ddb, env["LISTINGS_TABLE"])),
        posts=list(_scan(ddb, env["POSTS_TABLE"])),
        history=list(_scan(ddb, env["HISTORY_TABLE"])),
        runs=list(_scan(ddb, env["SYNC_RUNS_TABLE"])),
        connections=list(_scan(ddb, env["CONNECTIONS_TABLE"])),
    )


def _bars(title: str, counts: Counter[str]) -> str:
    if not counts:
        return f"<h2>{html.escape(title)}</h2><p class=muted>none</p>"
    rows = counts.most_common()
    top = max(v for _, v in rows)
    height = 22 * len(rows) + 4
    parts = [f'<svg width="560" height="{height}" role="img" aria-label="{html.escape(title)}">']
    for i, (label, value) in enumerate(rows):
        width = max(2, int(360 * value / top))
        y = 22 * i + 2
        parts.append(
            f'<text x="0" y="{y + 14}" class=l>{html.escape(label)}</text>'
            f'<rect x="170" y="{y}" width="{width}" height="18" rx="3"></rect>'
            f'<text x="{176 + width}" y="{y + 14}">{value}</text>'
        )
    parts.append("</svg>")
    return f"<h2>{html.escape(title)}</h2>" + "".join(parts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(data: RunData, *, stack: str, now: datetime | None = None) -> str:
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    listing_status = Counter(str(i.get("status")) for i in data.listings)
    post_status = Counter(f"{i.get('platform')}: {i.get('status')}" for i in data.posts)
    transitions = Counter(f"{i.get('from') or 'new'} → {i.get('to')}" for i in data.history)
    mls_requests = sum(int(r.get("mlsRequests", 0)) for r in data.runs)
    records = sum(int(r.get("counts", {}).get("recordsRead", 0)) for r in data.runs)
    failures = sum(1 for r in data.runs if r.get("outcome") in ("failed", "partial"))
    per_connection = []
    for conn in sorted(data.connections, key=lambda c: str(c.get("connectionId"))):
        cid = conn.get("connectionId")
        runs = [r for r in data.runs if r.get("connectionId") == cid]
        per_connection.append(
            [
                cid,
                conn.get("vendor"),
                len(runs),
                sum(int(r.get("mlsRequests", 0)) for r in runs),
                sum(int(r.get("counts", {}).get("recordsRead", 0)) for r in runs),
                sum(len(r.get("errors", [])) for r in runs),
                max((int(r.get("durationMs", 0)) for r in runs), default=0),
                sum(
                    1
                    for li in data.listings
                    if li.get("connectionId") == cid and li.get("quarantined")
                ),
            ]
        )
    quarantined_rows = [
        [
            li.get("listingId"),
            li.get("connectionId"),
            li.get("listingKey"),
            li.get("quarantinedAt"),
            li.get("quarantineAttempts"),
            str(li.get("quarantineReason") or "")[:120],
        ]
        for li in sorted(data.listings, key=lambda i: str(i.get("listingId")))
        if li.get("quarantined")
    ]
    recent = sorted(data.history, key=lambda h: str(h.get("detectedAt")), reverse=True)[:25]
    recent_rows = [
        [
            h.get("detectedAt"),
            h.get("listingId"),
            h.get("from") or "new",
            h.get("to"),
            h.get("source"),
        ]
        for h in recent
    ]
    figures = _table(
        [
            "connections",
            "listings",
            "posts",
            "sync runs",
            "MLS requests",
            "records read",
            "failed runs",
        ],
        [
            [
                len(data.connections),
                len(data.listings),
                len(data.posts),
                len(data.runs),
                mls_requests,
                records,
                failures,
            ]
        ],
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mls-sync report: {html.escape(stack)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1180px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 15px; margin: 18px 0 6px; }}
.muted {{ color: #777; }} .grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 8px 32px; }}
table {{ border-collapse: collapse; margin: 4px 0; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 10px 3px 0; text-align: left; }}
svg text {{ font-size: 12px; }} svg rect {{ fill: #3b7dd8; }}
</style></head><body>
<h1>mls-sync — {html.escape(stack)}</h1>
<p class=muted>generated {when} from the local stack's tables</p>
{figures}
<div class=grid>
<div>{_bars("Listings by status", listing_status)}</div>
<div>{_bars("Status changes by transition", transitions)}</div>
<div>{_bars("Posts by platform and status", post_status)}</div>
<div><h2>Connections</h2>{
        _table(
            [
                "connection",
                "vendor",
                "runs",
                "MLS requests",
                "records",
                "errors",
                "longest ms",
                "quarantined",
            ],
            per_connection,
        )
    }</div>
</div>
<h2>Quarantined listings</h2>
{
        _table(["listing", "connection", "key", "since", "attempts", "reason"], quarantined_rows)
        if quarantined_rows
        else "<p class=muted>none</p>"
    }
<h2>Latest status changes</h2>
{_table(["detected", "listing", "from", "to", "source"], recent_rows)}
</body></html>
"""


def _run(args: argparse.Namespace) -> int:
    endpoint = endpoint_from_env()
    stack = stack_name()
    data = collect(stack, endpoint, region())
    out = Path(args.out)
    try:
        out.write_text(render(data, stack=stack), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write: {exc.strerror or exc}") from None
    print(f"report written to {out} ({len(data.listings)} listings, {len(data.posts)} posts)")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="a one-page HTML picture of a local run")
    parser.add_argument("--out", default="report.html", help="file to write (default report.html)")
    parser.set_defaults(run=_run)
