"""`mls-sync reconcile CONNECTION_ID`: a reconcile job through the real handlers, on a moto
server with the stack deployed from template.yaml, against the MLS simulator in MLS Grid
mode (which refuses ListingKey filters: asking by the wrong field fails the run)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from mls_sync import aws
from mls_sync.dal import ListingsRepo
from mls_sync.secrets import SecretStore
from mls_sync.status import Status

from mls_sync_local.cli import main
from mls_sync_local.errors import EXIT_USAGE
from mls_sync_local.portfolio import Portfolio
from mls_sync_local.reconcile import ReconcileSummary, run_reconcile
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.moto_server import moto_server
from mls_sync_local.seed import Seeder, stack_tables
from mls_sync_local.sim.mls import MlsSimulator

STACK = "mls-sync-reconcile-test"
CONNECTION = "c-grid"


@dataclass
class Env:
    endpoint: str
    sim: MlsSimulator

    def listings(self) -> ListingsRepo:
        tables = stack_tables(STACK)
        return ListingsRepo(
            tables.listings, aws.dynamodb(), tables.history.name, tables.listing_keys_name
        )

    def status(self, listing_id: str) -> Status:
        listing = self.listings().get(listing_id)
        assert listing is not None
        return listing.status

    def reconcile(self, connection_id: str = CONNECTION) -> ReconcileSummary:
        runtime = LocalRuntime.connect(self.endpoint, stack=STACK)
        return run_reconcile(runtime, connection_id, handler_output=io.StringIO())


def _portfolio(sim: MlsSimulator) -> Portfolio:
    listings = [
        {"listingId": f"l-{n}", "userId": "u-1", "connectionId": CONNECTION,
         "listingKey": f"K{n}", "status": "active"}
        | ({"mlsListingId": f"ID-{n}"} if n != 4 else {})
        for n in (1, 2, 3, 4)
    ]  # fmt: skip
    return Portfolio.model_validate(
        {
            "users": [{"userId": "u-1"}],
            "connections": [
                {
                    "connectionId": CONNECTION,
                    "userId": "u-1",
                    "vendor": "mlsgrid",
                    "baseUrl": sim.url,
                    "originatingSystemName": sim.originating_system,
                    "credentials": {"token": sorted(sim.static_tokens)[0]},
                },
                {
                    "connectionId": "c-off",
                    "userId": "u-1",
                    "vendor": "mlsgrid",
                    "baseUrl": sim.url,
                    "originatingSystemName": sim.originating_system,
                    "credentials": {"token": sorted(sim.static_tokens)[0]},
                    "enabled": False,
                },
            ],
            "listings": listings,
        }
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with moto_server() as url, MlsSimulator(vendor="mlsgrid") as sim:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("MLS_SYNC_STACK", STACK)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        aws.reset_clients()
        deploy(url, stack=STACK)
        # The MLS's records changed long before any sync: only lookups see them.
        yesterday = sim.now - timedelta(days=1)
        for n in (1, 2, 3, 4):
            sim.add_listing(f"K{n}", "Active", listing_id=f"ID-{n}", modified=yesterday)
        Seeder(stack_tables(STACK), SecretStore(aws.secrets()), STACK).seed(_portfolio(sim))
        yield Env(url, sim)
    aws.reset_clients()


def test_reconcile_deletes_what_left_the_feed_and_nothing_else(env: Env) -> None:
    # Given a connection already reconciled once (every listing present)
    first = env.reconcile()
    assert first.outcome == "succeeded", first.render()
    # And the MLS then drops K2 without a trace, hides K3 and drops K4 (whose ListingId we
    # were never told)
    env.sim.remove_listing("K2")
    env.sim.hide("K3")
    env.sim.remove_listing("K4")
    env.sim.log.clear()
    # When `reconcile` runs again
    summary = env.reconcile()
    # Then it succeeded, asking by ListingId only
    assert summary.outcome == "succeeded", summary.render()
    assert not summary.failed
    filters = [entry.params.get("$filter", "") for entry in env.sim.log]
    assert any("ListingId" in f for f in filters)
    assert not any("ListingKey" in f for f in filters)
    # And the removed and the hidden listing are deleted; the others untouched
    assert env.status("l-2") is Status.DELETED
    assert env.status("l-3") is Status.DELETED
    assert env.status("l-1") is Status.ACTIVE
    assert env.status("l-4") is Status.ACTIVE
    # And the summary says so, from what the worker wrote
    assert summary.tick.status_changes == {"active>deleted": 2}
    assert summary.counts.tracked == 4
    assert summary.counts.not_reconcilable == 1
    assert summary.tick.connections == 1
    assert summary.tick.mls_requests >= 1


def test_cli_reconcile_prints_json_and_exits_0(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.sim.remove_listing("K1")
    code = main(["reconcile", CONNECTION, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    figures = json.loads(out)
    assert figures["connectionId"] == CONNECTION
    assert figures["outcome"] == "succeeded"
    assert figures["statusChanges"] == {"active>deleted": 1}
    assert env.status("l-1") is Status.DELETED


@pytest.mark.parametrize(
    ("connection_id", "message"),
    [("c-nope", "connection c-nope not found"), ("c-off", "connection c-off is disabled")],
)
def test_cli_unknown_or_disabled_connection_exits_2_with_one_line(
    env: Env, capsys: pytest.CaptureFixture[str], connection_id: str, message: str
) -> None:
    code = main(["reconcile", connection_id])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.strip() == f"mls-sync: error: {message}"
