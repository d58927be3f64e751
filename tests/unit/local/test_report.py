"""The report shows what the run's tables hold: figures, statuses and transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mls_sync_local.report import RunData, Series, Widget, chart, palette, render


def test_report_shows_figures_and_transitions() -> None:
    # Given a run with two connections, a sale and an unpublished post
    data = RunData(
        connections=[{"connectionId": "c-1", "vendor": "reso"}, {"connectionId": "c-2"}],
        listings=[{"status": "sold"}, {"status": "active"}, {"status": "active"}],
        posts=[{"platform": "facebook", "status": "unpublished"}],
        history=[{"from": "active", "to": "sold", "listingId": "l-1", "detectedAt": "t"}],
        runs=[
            {"connectionId": "c-1", "mlsRequests": 3, "counts": {"recordsRead": 7}},
            {"connectionId": "c-1", "mlsRequests": 1, "outcome": "failed", "errors": ["x"]},
        ],
    )
    # When it is rendered
    page = render(data, stack="demo", now=datetime(2026, 11, 28, tzinfo=UTC))
    # Then the figures and the transition appear
    assert "<td>4</td>" in page  # MLS requests summed over runs
    assert "<td>7</td>" in page  # records read
    assert "active → sold" in page
    assert "facebook: unpublished" in page
    assert "2026-11-28 00:00:00 UTC" in page


def test_report_escapes_values() -> None:
    data = RunData(listings=[{"status": "<script>"}])
    page = render(data, stack="s")
    assert "<script>" not in page.split("<style>")[1]
    assert "&lt;script&gt;" in page


def test_report_lists_quarantined_listings_with_their_reason() -> None:
    # Given a listing whose MLS record the table refused
    data = RunData(
        connections=[{"connectionId": "c-1", "vendor": "reso"}],
        listings=[
            {
                "listingId": "l-9",
                "connectionId": "c-1",
                "listingKey": "K9",
                "status": "active",
                "quarantined": True,
                "quarantinedAt": "2026-11-28T12:15:00.000000Z",
                "quarantineAttempts": 1,
                "quarantineReason": "ClientError: ValidationException: Item size too large",
            }
        ],
    )
    # When it is rendered
    page = render(data, stack="demo")
    # Then the listing, its connection's count and the reason are shown
    assert "<h2>Quarantined listings</h2>" in page
    assert "<td>l-9</td>" in page
    assert "Item size too large" in page


# ------------------------------------------------------------------ the dashboard's widgets


def _widget(points: list[float], stat: str = "Sum") -> Widget:
    start = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
    series = Series(
        "Sync_failed",
        palette(1, 1)[0],
        [(start + timedelta(minutes=15 * i), v) for i, v in enumerate(points)],
        stat,
    )
    return Widget("metric", "Sync outcomes", series=[series])


def test_a_chart_draws_a_bar_per_datapoint_in_its_series_colour() -> None:
    widget = _widget([3.0, 0.0, 1.0])
    svg = chart(widget)
    color = widget.series[0].color
    # three datapoints, three bars (a zero is a thin mark: there was a datapoint)
    assert svg.count(f'fill="{color}"') == 3
    assert 'data-points="3"' in svg
    assert f'data-colors="{color}"' in svg
    assert "18:00" in svg
    assert "18:30" in svg


def test_a_chart_without_data_says_so_and_draws_nothing() -> None:
    svg = chart(_widget([]))
    assert "no data" in svg
    assert "<rect" not in svg
    assert 'data-points="0"' in svg


def test_the_legend_totals_a_sum_and_shows_a_gauges_latest_value() -> None:
    assert _widget([3.0, 0.0, 1.0]).series[0].summary() == "total 4"
    assert _widget([3.0, 0.0, 1.0], stat="Maximum").series[0].summary() == "latest 1"
    assert _widget([]).series[0].summary() == "no data"


def test_every_widget_and_series_has_colours_of_its_own() -> None:
    # The screenshot test tells charts apart by colour: no two series share one, and none
    # is a colour the rest of the page uses.
    colors = [c for widget in range(30) for c in palette(widget, 6)]
    assert len(set(colors)) == len(colors)
    page = {"#ffffff", "#222222", "#2e8540", "#c0392b", "#d9822b", "#7d3c98", "#7f8c8d"}
    assert not page & set(colors)


def test_the_report_shows_health_widgets_and_accounts_needing_reauth() -> None:
    # Given a failing connection, a log widget's rows and an account whose token was refused
    data = RunData(
        connections=[
            {
                "connectionId": "c-zoe",
                "vendor": "reso",
                "lastAttemptAt": "2026-11-28T18:00:00Z",
                "failingSince": "2026-11-28T17:00:00Z",
                "consecutiveFailures": 3,
                "lastError": {
                    "errorClass": "MlsUnavailable",
                    "message": "MLS unreachable: connection refused (5 attempts)",
                    "at": "2026-11-28T18:00:00Z",
                },
            }
        ],
        accounts=[{"accountId": "a-fb", "platform": "facebook", "status": "reauth_required"}],
        posts=[{"postId": "p-1", "accountId": "a-fb", "status": "reauth_required"}],
        widgets=[
            _widget([1.0]),
            Widget(
                "log",
                "Top sync errors",
                columns=["errorClass", "failedRuns"],
                rows=[{"errorClass": "MlsUnavailable", "failedRuns": 3}],
            ),
        ],
    )
    # When it is rendered
    page = render(data, stack="demo", now=datetime(2026, 11, 28, 18, 10, tzinfo=UTC))
    # Then the health table names the connection, its state and its cause
    assert "c-zoe" in page
    assert ">stale</span>" in page
    assert ">failing</span>" in page
    assert "MLS unreachable: connection refused (5 attempts)" in page
    # the widgets are there: a chart, a table of the log query's rows
    assert 'class="chart"' in page
    assert "<td>MlsUnavailable</td><td>3</td>" in page
    # and the account waiting for its agent, with its post
    assert "<td>a-fb</td><td>facebook</td>" in page
    # one self-contained page
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page
