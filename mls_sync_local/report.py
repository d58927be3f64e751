"""`mls-sync report [--out FILE]`: a local run on one self-contained HTML page.

What the on-call engineer sees in AWS, from the local stack at AWS_ENDPOINT_URL (a moto
server):
- **the dashboard's own widgets**: the deployed dashboard's body is read back and each
  widget rendered: metric widgets as charts of the metrics the handlers emitted (EMF,
  captured by the local runtime and put into moto's CloudWatch, with the Lambda and SQS
  metrics the services would add; ``runtime.telemetry``), log widgets as tables from their
  Logs Insights query run over the captured logs (``logs_insights``);
- **connection health** (`mls-sync status`'s table), **accounts needing re-authorisation**
  and the posts waiting for them, the **queues** now;
- the tables' figures: listings by status, transitions, posts by outcome, quarantined
  listings, the latest status changes.

Charts are inline SVG drawn here (bars per 5-minute period, as the dashboard's period):
no script, no stylesheet or font from elsewhere, readable offline. Each chart's series have
colours of their own (``data-colors``), which the integration tier's headless-Chromium
screenshot test looks for.
"""

from __future__ import annotations

import argparse
import colorsys
import html
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mls_sync.config import stack_environment
from mls_sync.dal.base import plain
from mls_sync.run_counts import RunCounts

from mls_sync_local.errors import UsageError
from mls_sync_local.runtime.clients import client
from mls_sync_local.runtime.stack import endpoint_from_env, region, stack_name

LOOKBACK = timedelta(days=14)
"""How far back (and, for ticks fired at later slots, ahead) metrics are read."""
MAX_BUCKETS = 24
"""Most periods a chart shows (the latest)."""


@dataclass
class Series:
    label: str
    color: str
    points: list[tuple[datetime, float]] = field(default_factory=list)
    stat: str = "Sum"

    def summary(self) -> str:
        """The legend's figure: the total of a Sum, else the latest value."""
        if not self.points:
            return "no data"
        if self.stat == "Sum":
            return f"total {_number(sum(v for _, v in self.points))}"
        return f"latest {_number(self.points[-1][1])}"


@dataclass
class Widget:
    kind: str  # "metric" | "log"
    title: str
    series: list[Series] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    query: str = ""
    problem: str | None = None

    @property
    def has_data(self) -> bool:
        return any(s.points for s in self.series) if self.kind == "metric" else bool(self.rows)


@dataclass
class RunData:
    listings: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    widgets: list[Widget] = field(default_factory=list)
    queues: dict[str, int] = field(default_factory=dict)
    period_seconds: int = 900
    dashboard_note: str | None = None


# --------------------------------------------------------------------------- collecting


def _scan(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    paginator = ddb.get_paginator("scan")
    for page in paginator.paginate(TableName=table):
        for item in page.get("Items", []):
            yield plain(_from_av(item))


def _from_av(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def collect(stack: str, endpoint: str, aws_region: str, *, now: datetime | None = None) -> RunData:
    env = stack_environment(stack)
    ddb = client("dynamodb", endpoint, aws_region)
    data = RunData(
        listings=list(_scan(ddb, env["LISTINGS_TABLE"])),
        posts=list(_scan(ddb, env["POSTS_TABLE"])),
        history=list(_scan(ddb, env["HISTORY_TABLE"])),
        runs=list(_scan(ddb, env["SYNC_RUNS_TABLE"])),
        connections=list(_scan(ddb, env["CONNECTIONS_TABLE"])),
        accounts=list(_scan(ddb, env["ACCOUNTS_TABLE"])),
    )
    _collect_stack(data, stack, endpoint, aws_region, now or datetime.now(UTC))
    return data


def _collect_stack(
    data: RunData, stack: str, endpoint: str, aws_region: str, now: datetime
) -> None:
    """The dashboard's widgets with their data, the queues, the schedule period."""
    from mls_sync.config import schedule_period_seconds  # noqa: PLC0415

    from mls_sync_local.runtime.stack import DeployedStack  # noqa: PLC0415

    deployed = DeployedStack.describe(stack, endpoint, aws_region)
    schedule = deployed.parameters.get("ScheduleExpression") or "rate(15 minutes)"
    data.period_seconds = schedule_period_seconds(schedule)
    sqs = deployed.client("sqs")
    for logical_id, url in sorted(deployed.physical_ids.items()):
        if not url.startswith("http") or "/" not in url:
            continue
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        data.queues[logical_id] = sum(int(v) for v in attrs.values())
    name = deployed.outputs.get("DashboardName") or deployed.physical_ids.get("Dashboard")
    if not name:
        data.dashboard_note = "the stack has no dashboard: deploy it again (mls-sync local deploy)"
        return
    body = json.loads(
        deployed.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"]
    )
    data.widgets = dashboard_widgets(body.get("widgets", []), deployed, now)


def dashboard_widgets(specs: list[dict[str, Any]], deployed: Any, now: datetime) -> list[Widget]:
    widgets = []
    log_cache: dict[str, list[dict[str, Any]]] = {}
    for index, spec in enumerate(specs):
        props = spec.get("properties", {})
        title = str(props.get("title") or f"widget {index + 1}")
        if spec.get("type") == "metric":
            widgets.append(_metric_widget(index, title, props, deployed, now))
        elif spec.get("type") == "log":
            widgets.append(_log_widget(title, str(props.get("query", "")), deployed, log_cache))
    return widgets


def palette(widget: int, count: int) -> list[str]:
    """Colours for a widget's series, distinct from every other widget's (the screenshot
    test tells the charts apart by them)."""
    colors = []
    for series in range(count):
        hue = ((widget * 0.137) + series * 0.23) % 1.0
        lightness = 0.34 + 0.05 * (series % 3)
        saturation = 0.55 + 0.02 * (widget % 10)
        r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
        colors.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return colors


def _metric_rows(
    props: dict[str, Any], stack: str = ""
) -> list[tuple[str, str, list[dict[str, str]], str, str]]:
    """(namespace, name, dimensions, stat, label) per row of a metric widget."""
    rows = []
    for row in props.get("metrics", []):
        options = row[-1] if row and isinstance(row[-1], dict) else {}
        plain_row = [str(x) for x in (row[:-1] if options else row)]
        namespace, name, rest = plain_row[0], plain_row[1], plain_row[2:]
        dims = [{"Name": rest[i], "Value": rest[i + 1]} for i in range(0, len(rest) - 1, 2)]
        stat = str(options.get("stat") or props.get("stat") or "Average")
        label = str(options.get("label") or _label(name, dims, stack))
        rows.append((namespace, name, dims, stat, label))
    return rows


_SHORT = {
    "ApproximateNumberOfMessagesVisible": "messages",
    "ApproximateAgeOfOldestMessage": "oldest (s)",
}


def _label(name: str, dims: list[dict[str, str]], stack: str = "") -> str:
    """A series' legend: the metric, with the queue or function it is about (without the
    stack's prefix)."""
    named = [d["Value"] for d in dims if d["Name"] in ("QueueName", "FunctionName")]
    if not named:
        return name
    subject = named[0].removeprefix(f"{stack}-") if stack else named[0]
    return f"{subject} {_SHORT.get(name, name)}"


def _metric_widget(
    index: int, title: str, props: dict[str, Any], deployed: Any, now: datetime
) -> Widget:
    rows = _metric_rows(props, str(getattr(deployed, "name", "")))
    period = int(props.get("period") or 300)
    colors = palette(index, len(rows))
    widget = Widget("metric", title)
    queries = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {"Namespace": ns, "MetricName": name, "Dimensions": dims},
                "Period": period,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for i, (ns, name, dims, stat, _) in enumerate(rows)
    ]
    found: dict[str, list[tuple[datetime, float]]] = {}
    if queries:
        # Periods start on multiples of the period, as CloudWatch's do (moto counts them
        # from StartTime).
        start = int((now - LOOKBACK).timestamp()) // period * period
        answer = deployed.client("cloudwatch").get_metric_data(
            MetricDataQueries=queries,
            StartTime=datetime.fromtimestamp(start, UTC),
            EndTime=now + LOOKBACK,
        )
        for result in answer.get("MetricDataResults", []):
            points = sorted(
                zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
            )
            found[result["Id"]] = [(t.astimezone(UTC), float(v)) for t, v in points]
    for i, (_, _, _, stat, label) in enumerate(rows):
        widget.series.append(Series(label, colors[i], found.get(f"m{i}", []), stat))
    return widget


def _log_events(group: str, deployed: Any) -> list[dict[str, Any]]:
    logs = deployed.client("logs")
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"logGroupName": group}
    while True:
        try:
            page = logs.filter_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            return events
        for event in page.get("events", []):
            try:
                record = json.loads(event["message"])
            except ValueError:
                record = {"@message": event["message"]}
            if isinstance(record, dict):
                events.append({**record, "@timestamp": event["timestamp"]})
        token = page.get("nextToken")
        if not token or token == kwargs.get("nextToken"):
            return events
        kwargs["nextToken"] = token


def _log_widget(
    title: str, query: str, deployed: Any, cache: dict[str, list[dict[str, Any]]]
) -> Widget:
    from mls_sync_local import logs_insights  # noqa: PLC0415

    widget = Widget("log", title, query=query)
    try:
        parsed = logs_insights.parse(query)
    except logs_insights.QueryError as exc:
        widget.problem = f"query not run locally: {exc}"
        return widget
    events = []
    for group in parsed.sources:
        if group not in cache:
            cache[group] = _log_events(group, deployed)
        events += cache[group]
    widget.rows = logs_insights.run(parsed, events)
    widget.columns = logs_insights.columns(parsed, widget.rows)
    return widget


# ---------------------------------------------------------------------------- rendering

CHART_W, CHART_H, PLOT_LEFT, PLOT_BOTTOM = 520, 150, 44, 22


def _number(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def chart(widget: Widget) -> str:
    """A metric widget as grouped bars per period: one bar per series, zero drawn as a
    thin mark (there was a datapoint), nothing drawn where there was none."""
    colors = ",".join(s.color for s in widget.series)
    head = (
        f'<svg class="chart" width="{CHART_W}" height="{CHART_H}" role="img" '
        f'aria-label="{html.escape(widget.title)}" data-widget="{html.escape(widget.title)}" '
        f'data-colors="{colors}" data-points="{sum(len(s.points) for s in widget.series)}">'
    )
    buckets = sorted({t for s in widget.series for t, _ in s.points})[-MAX_BUCKETS:]
    if not buckets:
        return head + '<text x="8" y="24" class="muted">no data</text></svg>'
    top = max((v for s in widget.series for _, v in s.points), default=0.0) or 1.0
    plot_w = CHART_W - PLOT_LEFT - 4
    plot_h = CHART_H - PLOT_BOTTOM - 8
    group_w = plot_w / len(buckets)
    bar_w = max(3.0, min(18.0, (group_w - 4) / max(1, len(widget.series))))
    parts = [
        head,
        f'<line x1="{PLOT_LEFT}" y1="{8 + plot_h}" x2="{CHART_W - 4}" y2="{8 + plot_h}" '
        'class="axis"/>',
        f'<text x="{PLOT_LEFT - 4}" y="16" class="tick" text-anchor="end">{_number(top)}</text>',
        f'<text x="{PLOT_LEFT - 4}" y="{8 + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    index = {t: i for i, t in enumerate(buckets)}
    for s_index, series in enumerate(widget.series):
        for when, value in series.points:
            if when not in index:
                continue
            x = PLOT_LEFT + index[when] * group_w + 2 + s_index * bar_w
            height = max(4.0, plot_h * value / top)
            y = 8 + plot_h - height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{height:.1f}" '
                f'fill="{series.color}"><title>{html.escape(series.label)} '
                f"{when:%H:%M}: {_number(value)}</title></rect>"
            )
    step = max(1, len(buckets) // 8)
    for i, when in enumerate(buckets):
        if i % step == 0:
            x = PLOT_LEFT + i * group_w + group_w / 2
            parts.append(
                f'<text x="{x:.1f}" y="{CHART_H - 6}" class="tick" text-anchor="middle">'
                f"{when:%H:%M}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _legend(widget: Widget) -> str:
    items = []
    for series in widget.series:
        shown = series.summary()
        items.append(
            f'<li><span class="swatch" style="background:{series.color}"></span>'
            f"{html.escape(series.label)} <span class=muted>{shown}</span></li>"
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _table(headers: list[str], rows: list[list[Any]], *, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _widget_html(widget: Widget) -> str:
    title = f"<h3>{html.escape(widget.title)}</h3>"
    if widget.kind == "metric":
        inner = chart(widget) + _legend(widget)
    elif widget.problem:
        inner = f"<p class=muted>{html.escape(widget.problem)}</p>"
    elif not widget.rows:
        inner = '<p class="muted empty-log">no rows: nothing logged that the query selects</p>'
    else:
        inner = _table(
            widget.columns, [[r.get(c) for c in widget.columns] for r in widget.rows], cls="log"
        )
    kind = html.escape(widget.kind)
    return f'<section class="widget {kind}" data-kind="{kind}">{title}{inner}</section>'


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
            f'<rect x="170" y="{y}" width="{width}" height="18" rx="3" class="count"></rect>'
            f'<text x="{176 + width}" y="{y + 14}">{value}</text>'
        )
    parts.append("</svg>")
    return f"<h2>{html.escape(title)}</h2>" + "".join(parts)


_BADGE = {
    "ok": "#2e8540",
    "failing": "#c0392b",
    "stale": "#d9822b",
    "braked": "#7d3c98",
    "disabled": "#7f8c8d",
}


def _health_table(data: RunData, now: datetime) -> str:
    from mls_sync.health import format_lag  # noqa: PLC0415

    from mls_sync_local.status import status_rows  # noqa: PLC0415

    rows = status_rows(data.connections, now=now, period_seconds=data.period_seconds)
    if not rows:
        return "<p class=muted>no connections</p>"
    head = "".join(
        f"<th>{h}</th>"
        for h in ("connection", "vendor", "health", "last success", "lag", "failures",
                  "quarantined", "last error")
    )  # fmt: skip
    body = []
    for row in rows:
        badges = "".join(
            f'<span class="badge" style="background:{_BADGE[flag]}">{flag}</span>'
            for flag in (row.health or ("ok",))
        )
        error = row.cause if row.consecutive_failures and row.cause else ""
        cells = [
            html.escape(row.connection_id),
            html.escape(row.vendor),
            badges,
            html.escape(row.last_success_at or "never"),
            html.escape(format_lag(row.lag_seconds)),
            str(row.consecutive_failures),
            str(row.quarantined),
            html.escape(error),
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    rows_html = "".join(body)
    return f'<table class="health"><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>'


def _accounts_table(data: RunData) -> str:
    waiting: Counter[str] = Counter(
        str(p.get("accountId")) for p in data.posts if p.get("status") == "reauth_required"
    )
    rows = [
        [
            a.get("accountId"),
            a.get("platform"),
            a.get("userId"),
            a.get("statusChangedAt") or a.get("updatedAt") or "",
            waiting.get(str(a.get("accountId")), 0),
        ]
        for a in sorted(data.accounts, key=lambda a: str(a.get("accountId")))
        if a.get("status") == "reauth_required" or waiting.get(str(a.get("accountId")))
    ]
    manual = Counter(
        str(p.get("platform")) for p in data.posts if p.get("status") == "manual_action_required"
    )
    parts = [
        _table(["account", "platform", "user", "since", "posts waiting"], rows)
        if rows
        else "<p class=muted>none: every account's token works</p>"
    ]
    if manual:
        parts.append(
            "<p>Posts the agent must delete by hand (Instagram Login accounts): "
            + ", ".join(f"{html.escape(k)} {v}" for k, v in sorted(manual.items()))
            + "</p>"
        )
    return "".join(parts)


def _records_read(run: dict[str, Any]) -> int:
    return RunCounts.from_stored(run.get("counts") or {}).records_read


def render(data: RunData, *, stack: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    when = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    listing_status = Counter(str(i.get("status")) for i in data.listings)
    post_status = Counter(f"{i.get('platform')}: {i.get('status')}" for i in data.posts)
    transitions = Counter(f"{i.get('from') or 'new'} → {i.get('to')}" for i in data.history)
    mls_requests = sum(int(r.get("mlsRequests", 0)) for r in data.runs)
    records = sum(_records_read(r) for r in data.runs)
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
                sum(_records_read(r) for r in runs),
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
        [h.get("detectedAt"), h.get("listingId"), h.get("from") or "new", h.get("to"),
         h.get("source")]
        for h in recent
    ]  # fmt: skip
    figures = _table(
        ["connections", "listings", "posts", "sync runs", "MLS requests", "records read",
         "failed runs"],
        [[len(data.connections), len(data.listings), len(data.posts), len(data.runs),
          mls_requests, records, failures]],
    )  # fmt: skip
    dashboard = "".join(_widget_html(w) for w in data.widgets) or (
        f"<p class=muted>{html.escape(data.dashboard_note or 'no widgets')}</p>"
    )
    queues = _table(["queue", "messages"], [[q, n] for q, n in sorted(data.queues.items())])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mls-sync report: {html.escape(stack)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1180px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 22px 0 6px; }}
h3 {{ font-size: 13px; margin: 0 0 4px; }}
.muted {{ color: #777; }} .grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 8px 32px; }}
.widgets {{ display: grid; grid-template-columns: 1fr 1fr; gap: 14px 24px; }}
.widget {{ border: 1px solid #e2e2e2; border-radius: 4px; padding: 8px 10px; min-width: 0; }}
.widget.log {{ grid-column: 1 / -1; }}
table {{ border-collapse: collapse; margin: 4px 0; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 10px 3px 0; text-align: left; }}
table.log td, table.health td {{ font-size: 12px; }}
svg text {{ font-size: 12px; fill: #333; }} svg text.tick {{ font-size: 10px; fill: #666; }}
svg text.muted {{ fill: #999; }} svg .axis {{ stroke: #bbb; }} svg rect.count {{ fill: #9fb6d6; }}
.legend {{ list-style: none; padding: 0; margin: 4px 0 0; font-size: 12px; }}
.legend li {{ display: inline-block; margin-right: 12px; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
.badge {{ color: #fff; border-radius: 3px; padding: 0 5px; margin-right: 3px; font-size: 11px; }}
</style></head><body>
<h1>mls-sync — {html.escape(stack)}</h1>
<p class=muted>generated {when} from the local stack: its tables, and the metrics and logs the
handlers emitted (bars per period; each tick charts at the schedule slot it fired)</p>
{figures}
<h2>Connection health</h2>
{_health_table(data, now)}
<h2>Dashboard</h2>
<div class="widgets">{dashboard}</div>
<h2>Accounts needing re-authorisation</h2>
{_accounts_table(data)}
<h2>Queues now</h2>
{queues}
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


def write_report(out: Path, *, stack: str, endpoint: str, aws_region: str) -> RunData:
    data = collect(stack, endpoint, aws_region)
    try:
        out.write_text(render(data, stack=stack), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
    return data


def _run(args: argparse.Namespace) -> int:
    endpoint = endpoint_from_env()
    stack = stack_name()
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        # The same page, as a picture taken by headless Chromium.
        import tempfile  # noqa: PLC0415

        from mls_sync_local.browser import BrowserUnavailableError, screenshot  # noqa: PLC0415

        with tempfile.TemporaryDirectory(prefix="mls-sync-report-") as folder:
            page = Path(folder) / "report.html"
            data = write_report(page, stack=stack, endpoint=endpoint, aws_region=region())
            try:
                screenshot(page, out)
            except BrowserUnavailableError as exc:
                raise UsageError(
                    f"--out {args.out}: {exc}; or write HTML (--out FILE.html)"
                ) from None
    else:
        data = write_report(out, stack=stack, endpoint=endpoint, aws_region=region())
    charted = sum(1 for w in data.widgets if w.kind == "metric" and w.has_data)
    charts = sum(1 for w in data.widgets if w.kind == "metric")
    print(
        f"report written to {out} ({len(data.listings)} listings, {len(data.posts)} posts, "
        f"{charted} of {charts} charts with data)"
    )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="a one-page HTML picture of a local run",
        description="Writes one self-contained HTML page: the dashboard's widgets drawn from "
        "the metrics and logs the handlers emitted locally, connection health, accounts "
        "needing re-authorisation, queues, and the tables' figures.",
    )
    parser.add_argument(
        "--out",
        default="report.html",
        help="file to write (default report.html); FILE.png: a picture by headless Chromium",
    )
    parser.set_defaults(run=_run)
