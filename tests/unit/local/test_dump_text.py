"""`mls-sync dump` shows, per listing, whether the sync skips it and why, and per connection
a by-key read still in progress."""

from __future__ import annotations

from typing import Any

from mls_sync_local.dump import render_text


def test_dump_names_quarantined_listings_and_phases_in_progress() -> None:
    # Given a connection halfway through a reconciliation and a quarantined listing
    data: dict[str, list[dict[str, Any]]] = {
        "connections": [
            {
                "connectionId": "c-1",
                "userId": "u-1",
                "vendor": "reso",
                "enabled": True,
                "byKeyPhase": {
                    "kind": "reconcile",
                    "startedAt": "2026-11-28T12:00:00.000000Z",
                    "after": "K0420",
                },
            }
        ],
        "listings": [
            {"listingId": "l-1", "connectionId": "c-1", "listingKey": "K1", "status": "active"},
            {
                "listingId": "l-2",
                "connectionId": "c-1",
                "listingKey": "K2",
                "status": "active",
                "quarantined": True,
                "quarantinedAt": "2026-11-28T12:15:00.000000Z",
                "quarantineAttempts": 3,
                "quarantineReason": "ClientError: " + "x" * 300,
            },
        ],
        "posts": [],
    }
    # When it is printed
    text = render_text(data)
    # Then the phase, the listing's sync state and a width-capped reason appear
    assert "reconcile since 2026-11-28T12:00:00.000000Z, after K0420" in text
    assert "QUARANTINED" in text
    row = next(line for line in text.splitlines() if line.startswith("l-2") and "K2" in line)
    assert "quarantined" in row
    reason = next(line for line in text.splitlines() if "ClientError" in line)
    assert len(reason) < 160
