"""A simulator running in another process (`mls-sync sim mls`) is scripted over HTTP: a
status change posted to /_sim/listings is what the next replication read sees."""

from __future__ import annotations

import httpx

from mls_sync_local.sim import MlsSimulator


def test_control_api_changes_adds_and_hides_listings() -> None:
    with MlsSimulator() as sim:
        sim.add_listing("K1", "Active")
        with httpx.Client(base_url=sim.url, timeout=5) as http:
            changed = http.post(
                "/_sim/listings", json={"ListingKey": "K1", "StandardStatus": "Closed"}
            )
            added = http.post("/_sim/listings", json={"ListingKey": "K2"})
            hidden = http.post("/_sim/listings", json={"ListingKey": "K2", "hidden": True})
            missing = http.post("/_sim/listings", json={"ListingKey": "K9", "hidden": True})
            bad = http.post("/_sim/listings", content=b"not json")
        assert [r.status_code for r in (changed, added, hidden, missing, bad)] == [
            200,
            200,
            200,
            404,
            400,
        ]
        assert sim.listing("K1").fields["StandardStatus"] == "Closed"
        keys = set(sim.keys())
        assert "K2" not in keys  # the generic profile has no visibility flag
