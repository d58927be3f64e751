"""The report shows what the run's tables hold: figures, statuses and transitions."""

from __future__ import annotations

from datetime import UTC, datetime

from mls_sync_local.report import RunData, render


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
