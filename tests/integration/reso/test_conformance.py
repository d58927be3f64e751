"""The client against simulator variants that other, spec-conformant servers choose: token
endpoints that take only one client authentication, token responses in other spellings,
relative and 4.01-style nextLinks, RFC 3986 query decoding, no ``in`` operator."""

from __future__ import annotations

from typing import Literal

import pytest
from mls_sync.models import Cursor
from mls_sync.reso.errors import MlsAuthError

from mls_sync_local.sim import MlsSimulator
from mls_sync_local.sim.mls import ClientAuth
from tests.integration.reso.conftest import ClientFactory, cursor_at, drain, oauth


def feed(sim: MlsSimulator, count: int, prefix: str = "C") -> list[str]:
    sim.advance(1)
    keys = []
    for i in range(count):
        sim.advance(0.001)
        keys.append(sim.add_listing(f"{prefix}{i:03d}").key)
    return keys


@pytest.mark.parametrize("accepts", ["either", "basic"])
def test_token_endpoint_taking_basic_costs_one_token_request(
    make_sim: type[MlsSimulator], make_client: ClientFactory, accepts: ClientAuth
) -> None:
    sim = make_sim(client_auth=accepts)
    start = cursor_at(sim)
    keys = feed(sim, 3)
    client, _ = make_client(sim, credentials=oauth(sim))
    _, seen = drain(client.changes(start, overlap_seconds=0))
    assert seen == keys
    assert sim.token_requests == 1


def test_token_endpoint_taking_only_the_form_body_costs_one_extra_request_once(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a (non-conformant but real) endpoint that reads credentials from the body only
    sim = make_sim(client_auth="body", token_lifetime=600)
    start = cursor_at(sim)
    keys = feed(sim, 3)
    client, _ = make_client(sim, credentials=oauth(sim))
    # When two cycles run, the second after the token expired
    _, seen = drain(client.changes(start, overlap_seconds=0))
    sim.advance(700)
    drain(client.changes(start, overlap_seconds=0))
    # Then Basic was refused once, and the body form used from then on
    assert seen == keys
    assert sim.token_requests == 3  # basic (401), body, body


def test_wrong_secret_against_a_body_only_endpoint_is_one_clear_auth_error(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim(client_auth="body")
    client, _ = make_client(sim, credentials=oauth(sim, secret="wrong-secret-value"))
    with pytest.raises(MlsAuthError, match="invalid_client") as info:
        drain(client.changes(cursor_at(sim), overlap_seconds=0))
    assert "wrong-secret" not in str(info.value)
    assert sim.token_requests == 2  # each method once, never both in one request


@pytest.mark.parametrize(("form", "issued"), [("string", "bearer"), ("missing", "BEARER")])
def test_token_response_spellings(
    make_sim: type[MlsSimulator],
    make_client: ClientFactory,
    form: Literal["string", "missing"],
    issued: str,
) -> None:
    sim = make_sim(expires_form=form, issued_type=issued)
    start = cursor_at(sim)
    keys = feed(sim, 4)
    client, _ = make_client(sim, credentials=oauth(sim), page_size=2)
    _, seen = drain(client.changes(start, overlap_seconds=0))
    sim.advance(300)
    drain(client.changes(start, overlap_seconds=0))
    assert seen == keys
    assert sim.token_requests == 1  # cached across cycles whatever the spelling


@pytest.mark.parametrize("prefix", [True, False])
def test_relative_next_links_in_traverse_mode_and_lookups(
    make_sim: type[MlsSimulator], make_client: ClientFactory, prefix: bool
) -> None:
    # Given a Spark-like server (skiptoken links) writing relative URLs, with or without the
    # 4.0 "odata." prefix, and pages of 3
    sim = make_sim(
        vendor="spark", nextlink="cursor", link_form="relative", odata_prefix=prefix, page_cap=3
    )
    start = cursor_at(sim)
    keys = feed(sim, 8)
    client, _ = make_client(sim, page_size=3)
    # When changes are read and listings looked up by key
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    lookup = client.fetch_by_keys(keys)
    # Then every record came through the server's own links
    assert sorted(seen) == keys
    assert pages[-1].complete
    assert sorted(lookup.found) == keys
    assert 404 not in [e.status for e in sim.log]


def test_bridge_relative_links_resolve_under_the_dataset(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    sim = make_sim(vendor="bridge", link_form="relative", page_cap=2)
    keys = feed(sim, 5)
    client, _ = make_client(sim)
    lookup = client.fetch_by_keys(keys)
    assert sorted(lookup.found) == keys
    assert {e.path for e in sim.log} == {"/test/Property"}


def test_strict_rfc3986_server_with_offset_timestamps_and_quotes_in_keys(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given a server that decodes queries per RFC 3986 ('+' is a plus, "%24filter" is not
    # $filter) and serves timestamps with a +00:00 offset
    sim = make_sim(query_decoding="strict", ts_offset="+00:00", page_cap=2)
    start = cursor_at(sim)
    sim.advance(1)
    keys = []
    for name in ("O'Neil 1", "O'Neil 2", "Smith+3", "Z 4"):
        sim.advance(0.001)
        keys.append(sim.add_listing(name).key)
    client, _ = make_client(sim, page_size=2)
    # When a cycle runs from the server's own spelling, and again from the last cursor
    pages, seen = drain(client.changes(start, overlap_seconds=0))
    _, repeat = drain(client.changes(pages[-1].cursor, overlap_seconds=0))
    lookup = client.fetch_by_keys(keys)
    # Then the filters were read as written: everything once, nothing again, keys found
    assert seen == keys
    assert pages[-1].cursor.timestamp.endswith("+00:00")
    assert repeat == []
    assert sorted(lookup.found) == sorted(keys)
    assert all("$filter" in e.params for e in sim.log)


def test_server_without_in_operator_gets_or_chains(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # Given an OData 4.0 server that answers 400 to `in`
    sim = make_sim(supports_in=False)
    keys = sim.add_many(45)
    sim.remove_listing(keys[3])
    client, _ = make_client(sim)
    # When listings are looked up by key
    lookup = client.fetch_by_keys(keys)
    # Then one refused `in`, then or-chains of at most 20 keys; the vanished one is missing
    assert lookup.missing == [keys[3]]
    assert len(lookup.found) == 44
    statuses = [e.status for e in sim.log]
    assert statuses.count(400) == 1
    ors = [e.params["$filter"].count(" or ") for e in sim.log if e.status == 200]
    assert max(ors) <= 19


def test_cursor_literal_without_zone_is_accepted_by_a_server(
    make_sim: type[MlsSimulator], make_client: ClientFactory
) -> None:
    # A cursor persisted from a server that spelled timestamps without a zone
    sim = make_sim()
    start = Cursor(timestamp=sim.now.strftime("%Y-%m-%d %H:%M:%S"), listing_key="")
    keys = feed(sim, 2)
    client, _ = make_client(sim)
    _, seen = drain(client.changes(start, overlap_seconds=0))
    assert seen == keys
    assert 400 not in [e.status for e in sim.log]
