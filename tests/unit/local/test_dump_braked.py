"""`mls-sync dump` shows, per connection, whether the mass-change brake holds its takedowns:
the run that tripped it and when, or ``-``."""

from __future__ import annotations

from typing import Any

from mls_sync_local.dump import render_text


def _connection(connection_id: str) -> dict[str, Any]:
    return {"connectionId": connection_id, "userId": "u-1", "vendor": "reso", "enabled": True}


def test_dump_shows_the_brake_run_and_time_or_a_dash() -> None:
    data: dict[str, list[dict[str, Any]]] = {
        "connections": [
            {
                **_connection("c-braked"),
                "braked": {
                    "runKey": "2026-11-28T12:15:00.000000Z#schedule",
                    "at": "2026-11-28T12:15:03.000000Z",
                    "listings": 30,
                    "share": 0.3,
                },
            },
            _connection("c-free"),
        ],
        "listings": [],
        "posts": [],
    }
    lines = render_text(data).splitlines()
    assert "BRAKED" in lines[1]
    braked = next(line for line in lines if line.startswith("c-braked"))
    assert braked.endswith("2026-11-28T12:15:00.000000Z#schedule at 2026-11-28T12:15:03.000000Z")
    free = next(line for line in lines if line.startswith("c-free"))
    assert free.endswith("-")
