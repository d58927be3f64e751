"""A budgeted client hands out the pages of its feeds (changes, the event log) as everyday
work: a by-key read between two pages (which marks the budget bulk) does not make the next
page bulk, and a deadline that stops a feed keeps the client's place in line."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest
from mls_sync.models import Cursor
from mls_sync.reso.auth import BearerToken
from mls_sync.reso.budget import (
    BudgetedClient,
    BudgetPolicy,
    BudgetSettings,
    MemoryBudgetStore,
    SharedBudget,
)
from mls_sync.reso.client import ReplicationTarget
from mls_sync.reso.entity_events import EventAnchor
from mls_sync.reso.errors import DeadlineReached
from mls_sync.reso.profiles import PROFILES
from pydantic import SecretStr

T0 = 1_795_000_000.0
DATE = "Wed, 18 Nov 2026 08:26:40 GMT"
CURSOR = Cursor(timestamp="2026-11-18T08:00:00Z", listing_key="")


def _answer(request: httpx.Request) -> httpx.Response:
    # one empty page of every feed: no records, no nextLink
    return httpx.Response(200, json={"value": []}, headers={"Date": DATE})


def _client() -> tuple[BudgetedClient, SharedBudget]:
    policy = BudgetPolicy.for_quotas(PROFILES["mlsgrid"].quotas, BudgetSettings())
    assert policy is not None
    now = [T0]
    budget = SharedBudget(
        MemoryBudgetStore(), "reso#k", policy, clock=lambda: now[0], rng=random.Random(1)
    )
    client = BudgetedClient(
        ReplicationTarget(vendor="reso", base_url="https://mls.example.com/odata"),
        BearerToken(token=SecretStr("t")),
        budget=budget,
        http=httpx.Client(transport=httpx.MockTransport(_answer)),
        clock=lambda: datetime.fromtimestamp(now[0], UTC),
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        monotonic=lambda: now[0],
    )
    return client, budget


@pytest.mark.parametrize("feed", ["changes", "events_after"])
def test_a_feeds_pages_are_everyday_work(feed: str) -> None:
    client, budget = _client()
    pages = (
        client.changes(CURSOR)
        if feed == "changes"
        else client.events_after(EventAnchor(sequence=0, key=None))
    )
    budget.bulk = True  # as a by-key read leaves it, were it read between two pages
    read = 0
    for _page in pages:
        assert budget.bulk is False
        read += 1
    assert read >= 1
    client.close()


def test_a_feed_stopped_by_its_deadline_keeps_the_place_in_line() -> None:
    client, budget = _client()
    with pytest.raises(DeadlineReached):
        list(client.changes(CURSOR, deadline=T0 - 1))  # no request fits
    assert budget.keep_place is True
    client.close()
