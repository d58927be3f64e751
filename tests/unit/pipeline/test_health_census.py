"""The dispatcher's census counts connections under each of their health flags, and reports
every flag (zeros included) in one order: the gauges and the log line read it as is."""

from __future__ import annotations

from datetime import UTC, datetime

from mls_sync.dal.connection_health import ConnectionHealthFields
from mls_sync.pipeline.dispatch import health_census

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _connection(
    cid: str, *, enabled: bool = True, braked: bool = False, failures: int = 0
) -> ConnectionHealthFields:
    return ConnectionHealthFields(
        enabled=enabled,
        braked=braked,
        last_attempt_at="2026-12-01T11:55:00Z",
        last_success_at="2026-12-01T11:00:00Z",
        failing_since=None,
        consecutive_failures=failures,
        connection_id=cid,
        error_class="MlsUnavailable" if failures else None,
        cause="down" if failures else None,
        quarantined_records=0,
    )


def test_each_flag_is_counted_and_every_flag_reported() -> None:
    census = health_census(
        [
            _connection("ok-recent"),
            _connection("braked", braked=True),
            _connection("off", enabled=False, failures=3),
            _connection("down", failures=2),
        ],
        now=NOW,
        period_seconds=3600,
    )
    assert census.connections == 4
    # "off" counts only as disabled; nobody is stale within two hourly periods
    assert census.by_flag() == {"stale": 0, "failing": 1, "braked": 1, "disabled": 1}
    # the unhealthy named, the longest lag first (ties by id); the disabled one is not
    assert [w.connection_id for w in census.worst] == ["braked", "down"]


def test_an_empty_census_reports_zeros() -> None:
    census = health_census([], now=NOW, period_seconds=900)
    assert list(census.by_flag().items()) == [
        ("stale", 0),
        ("failing", 0),
        ("braked", 0),
        ("disabled", 0),
    ]
