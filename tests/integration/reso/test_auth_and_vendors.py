"""OAuth2 tokens, deletion signals, reconciliation by key and vendor quirks vs the simulator."""

from __future__ import annotations

import pytest
from mls_sync.reso.auth import BearerToken
from mls_sync.reso.errors import MlsAuthError
from mls_sync.status import StandardStatus
from pydantic import SecretStr

from mls_sync_local.sim import MlsSimulator
from tests.integration.reso.conftest import ClientFactory, cursor_at, drain, oauth


def test_oauth_token_revoked_mid_run_is_refreshed_once(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given client credentials and three pages of changes
    sim = make_sim()
    start = cursor_at(sim)
    sim.advance(1)
    keys = [sim.add_listing(f"A{i}").key for i in range(6)]
    client, _ = make_client(sim, credentials=oauth(sim), page_size=2)
    # And every token dies after the first page
    sim.after_request = lambda e: sim.expire_tokens() if len(sim.log) == 1 else None
    # When a cycle runs
    _, seen = drain(client.changes(start, overlap_seconds=0))
    # Then one 401, one new token, and nothing lost
    assert seen == keys
    assert [e.status for e in sim.log].count(401) == 1
    assert client.token_requests == 2
    assert sim.token_requests == 2


def test_token_is_cached_until_shortly_before_expiry(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim(token_lifetime=600)
    start = cursor_at(sim)
    client, _ = make_client(sim, credentials=oauth(sim))
    drain(client.changes(start, overlap_seconds=0))
    sim.advance(400)
    drain(client.changes(start, overlap_seconds=0))
    assert client.token_requests == 1  # still fresh: reused
    sim.advance(160)  # 560 s: inside the last minute of its life
    drain(client.changes(start, overlap_seconds=0))
    assert client.token_requests == 2  # renewed before the server would refuse it
    assert 401 not in [e.status for e in sim.log]


def test_wrong_secret_is_an_auth_error_that_never_shows_the_secret(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    client, _ = make_client(sim, credentials=oauth(sim, secret="hunter2-very-secret"))
    with pytest.raises(MlsAuthError) as info:
        drain(client.changes(cursor_at(sim), overlap_seconds=0))
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(oauth(sim, secret="hunter2-very-secret"))


def test_static_bearer_refused_is_an_auth_error_without_retry(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    client, _ = make_client(sim, credentials=BearerToken(token=SecretStr("stale-token-xyz")))
    with pytest.raises(MlsAuthError) as info:
        drain(client.changes(cursor_at(sim), overlap_seconds=0))
    assert "stale-token" not in str(info.value)
    assert client.requests_made == 1


def test_mlsgrid_mlgcanview_false_and_missing_by_key(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given an MLS Grid feed (OriginatingSystemName required, ListingKey not searchable)
    sim = make_sim(vendor="mlsgrid", originating_system="actris")
    for i in range(5):
        sim.add_listing(f"ACT10{i}", listing_id=f"ACT{i}")
    start = cursor_at(sim)
    sim.advance(60)
    # When one listing leaves the feed (MlgCanView false) and one vanishes entirely
    sim.hide("ACT101")
    sim.remove_listing("ACT102")
    client, _ = make_client(sim)
    pages, _ = drain(client.changes(start, overlap_seconds=0))

    # Then the change feed reports the hidden one as not visible (a deletion signal)
    records = {r.listing_key: r for p in pages for r in p.records}
    assert records["ACT101"].visible is False
    assert 400 not in [e.status for e in sim.log]
    assert all("OriginatingSystemName eq 'actris'" in e.params["$filter"] for e in sim.log)
    # And reconciliation by ListingId finds the rest and calls the vanished one missing
    lookup = client.fetch_by_keys(["ACT0", "ACT1", "ACT2", "ACT3", "ACT4"])
    assert client.lookup_field == "ListingId"
    assert lookup.missing == ["ACT2"]
    assert lookup.found["ACT1"].visible is False
    assert lookup.found["ACT0"].standard_status is StandardStatus.ACTIVE
    assert all("ListingKey" not in e.params.get("$filter", "") for e in sim.log)


def test_mlsgrid_refuses_listingkey_filters(make_sim: type[MlsSimulator]) -> None:
    # The simulator's quirk is real enough to catch a client that filters ListingKey.
    sim = make_sim(vendor="mlsgrid")
    status, body = sim.query({"$filter": "OriginatingSystemName eq 'actris' and ListingKey eq 'X'"})
    assert status == 400
    assert "ListingKey" in body["error"]["message"]
    status, _ = sim.query({"$filter": "ModificationTimestamp ge 2026-01-01T00:00:00Z"})
    assert status == 400


def test_mlsgrid_more_than_a_page_on_one_timestamp(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given 12 changes on one timestamp and a server page of 5 (MLS Grid orders by time only)
    sim = make_sim(vendor="mlsgrid", page_cap=5)
    start = cursor_at(sim)
    sim.advance(5)
    keys = [sim.add_listing(f"ACT{i:03d}").key for i in range(12)]
    sim.advance(1)
    later = sim.add_listing("ACT999").key
    client, _ = make_client(sim, page_size=5)
    # When read
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    # Then each is yielded once and the later record too
    assert sorted(seen) == sorted([*keys, later])
    assert len(seen) == len(set(seen))
    assert pages[-1].cursor.listing_key == later


def test_fetch_by_keys_batches_and_confirms_missing(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    keys = sim.add_many(250)
    sim.remove_listing(keys[7])
    client, _ = make_client(sim)  # reso: 100 keys a batch
    lookup = client.fetch_by_keys(keys)
    assert lookup.missing == [keys[7]]
    assert len(lookup.found) == 249
    assert client.requests_made == 3 + 1  # 3 batches + 1 confirmation of the missing key


def test_fetch_by_keys_never_deletes_a_listing_that_came_back_unreadable(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim()
    sim.add_listing("OK1")
    sim.add_listing("BAD1", emit={"StandardStatus": "Sould"})
    client, _ = make_client(sim)
    lookup = client.fetch_by_keys(["OK1", "BAD1", "GONE1"])
    assert lookup.missing == ["GONE1"]
    assert [s.listing_key for s in lookup.skipped] == ["BAD1"]


def test_bridge_dataset_path_and_its_own_timestamp(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim(vendor="bridge", dataset="abor")
    start = cursor_at(sim)
    sim.advance(1)
    sim.add_listing("B1")
    client, _ = make_client(sim)
    _, seen = drain(client.changes(start, overlap_seconds=0))
    assert seen == ["B1"]
    assert sim.log[0].path == "/abor/Property"
    assert sim.log[0].params["$filter"].startswith("BridgeModificationTimestamp ge")


def test_spark_traversal_moves_the_cursor_only_at_the_end(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a server that pages by $skiptoken in ListingKey order
    sim = make_sim(nextlink="cursor", page_cap=2)
    start = cursor_at(sim)
    sim.advance(1)
    sim.add_listing("S3")
    sim.advance(1)
    sim.add_listing("S1")
    sim.advance(1)
    sim.add_listing("S2")
    client, _ = make_client(sim, vendor="spark")
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    assert sorted(seen) == ["S1", "S2", "S3"]
    assert [p.complete for p in pages] == [False, True]
    assert pages[0].cursor == start  # nothing is safe until the traversal is whole
    assert pages[-1].cursor.listing_key == "S2"  # the newest record
    assert "$orderby" not in sim.log[0].params
