"""The dashboard's Logs Insights queries run locally over captured log events, with the
results CloudWatch would give."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mls_sync_local import logs_insights
from mls_sync_local.template import load_template, resources_of_type


def _log_widget_queries() -> list[str]:
    dashboard = next(
        iter(resources_of_type(load_template(), "AWS::CloudWatch::Dashboard").values())
    )
    body = re.sub(r"\$\{[^}]+\}", "x", dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    return [w["properties"]["query"] for w in json.loads(body)["widgets"] if w["type"] == "log"]


def _unhealthy(cid: str, lag: int, at: int, cause: str | None = None) -> dict[str, Any]:
    return {
        "@timestamp": at,
        "message": "connection unhealthy",
        "connectionId": cid,
        "health": "stale,failing" if cause else "braked",
        "lagSeconds": lag,
        "consecutiveFailures": 3 if cause else 0,
        "cause": cause,
    }


def test_every_log_widget_query_of_the_template_runs_locally() -> None:
    queries = _log_widget_queries()
    assert len(queries) >= 3
    for query in queries:
        parsed = logs_insights.parse(query)
        assert parsed.sources, query
        logs_insights.run(parsed, [])


def test_unhealthy_connections_longest_lag_first() -> None:
    query = next(q for q in _log_widget_queries() if "connection unhealthy" in q)
    events = [
        _unhealthy("c-down", 1800, at=1, cause="MLS unreachable: connection refused (5 attempts)"),
        _unhealthy("c-down", 2700, at=2, cause="MLS unreachable: connection refused (5 attempts)"),
        _unhealthy("c-braked", 600, at=2),
        {"@timestamp": 3, "message": "dispatched", "connections": 4},
    ]
    parsed = logs_insights.parse(query)
    rows = logs_insights.run(parsed, events)
    assert [(r["connectionId"], r["lagSeconds"]) for r in rows] == [
        ("c-down", 2700),
        ("c-braked", 600),
    ]
    assert rows[0]["failures"] == 3
    assert rows[0]["cause"] == "MLS unreachable: connection refused (5 attempts)"
    assert logs_insights.columns(parsed, rows) == [
        "connectionId",
        "health",
        "lagSeconds",
        "failures",
        "cause",
    ]


def test_top_errors_count_runs_and_distinct_connections() -> None:
    query = next(q for q in _log_widget_queries() if "connection failing" in q)
    refused = {"errorClass": "MlsUnavailable", "cause": "MLS unreachable: connection refused"}
    auth = {"errorClass": "MlsAuthError", "cause": "MLS refused the credentials (401)"}
    events = [
        {"@timestamp": 1, "message": "connection failing", "connectionId": "c-1", **refused},
        {"@timestamp": 2, "message": "connection failing", "connectionId": "c-2", **refused},
        {"@timestamp": 3, "message": "connection failing", "connectionId": "c-2", **refused},
        {"@timestamp": 4, "message": "connection failing", "connectionId": "c-3", **auth},
    ]
    rows = logs_insights.run(logs_insights.parse(query), events)
    assert [(r["errorClass"], r["failedRuns"], r["connections"]) for r in rows] == [
        ("MlsUnavailable", 3, 2),
        ("MlsAuthError", 1, 1),
    ]
    assert rows[0]["example"] == "c-2"


def test_filters_fields_sort_and_limit() -> None:
    events = [{"@timestamp": i, "n": i, "kind": "a" if i % 2 else "b"} for i in range(10)]
    query = logs_insights.parse(
        "fields n, kind | filter kind = 'a' and n >= 3 or n = 0 | sort n desc | limit 3"
    )
    assert logs_insights.run(query, events) == [
        {"n": 9, "kind": "a"},
        {"n": 7, "kind": "a"},
        {"n": 5, "kind": "a"},
    ]
    like = logs_insights.parse("filter kind like /^b/ and n in [2, 4] | fields n")
    assert logs_insights.run(like, events) == [{"n": 4}, {"n": 2}]  # newest first


@pytest.mark.parametrize(
    "query",
    ["parse @message 'a * b' as x", "stats pct(n, 50) by kind", "filter n ~ 3", "sort n up"],
)
def test_what_is_not_understood_is_an_error_not_an_empty_table(query: str) -> None:
    with pytest.raises(logs_insights.QueryError):
        logs_insights.parse(query)
