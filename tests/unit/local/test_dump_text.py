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


def test_a_connection_that_never_reached_its_mls_shows_no_sync_time() -> None:
    # Given one connection synced, one that failed every attempt, one never attempted
    base = {"userId": "u-1", "vendor": "reso", "enabled": True}
    data: dict[str, list[dict[str, Any]]] = {
        "connections": [
            {"connectionId": "c-ok", **base, "lastAttemptAt": "2026-11-28T12:00:00.000000Z",
             "lastSuccessAt": "2026-11-28T12:00:00.000000Z"},
            {"connectionId": "c-zoe", **base, "lastAttemptAt": "2026-11-28T12:00:00.000000Z",
             "consecutiveFailures": 3},
            {"connectionId": "c-new", **base},
        ],
        "listings": [],
        "posts": [],
    }  # fmt: skip
    # When the dump is printed
    rows = {line.split()[0]: line.split() for line in render_text(data).splitlines() if line}
    # Then the last success, or "never", and the failures in a row
    assert rows["c-ok"][5] == "2026-11-28T12:00:00.000000Z"
    assert rows["c-zoe"][5:7] == ["never", "3"]
    assert rows["c-new"][5:7] == ["-", "-"]
