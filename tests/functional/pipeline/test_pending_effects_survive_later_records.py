"""A crash between a status write and its effects must not lose the effects when the MLS
changes the listing again before the job is delivered again (SQS redelivers only after the
visibility timeout, 30 minutes later, and MLS records are re-stamped all the time).

Found by tests/functional/pipeline/test_nothing_lost_property.py (delayed redelivery)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_sync import aws
from mls_sync.dal import ListingsRepo
from mls_sync.dal.listings import ApplyResult, MlsUpdate
from mls_sync.models import Listing, PostStatus, StatusChange
from mls_sync.status import Status

from tests.support.pipeline import World


class Crash(BaseException):
    """The process dies here (nothing in the worker may catch it)."""


class DiesAfterStatusWrite(ListingsRepo):
    """The real repository; the process dies right after the first status change lands."""

    def __init__(self, world: World) -> None:
        super().__init__(
            world.stack.tables.listings,
            aws.dynamodb(),
            world.stack.settings.history_table,
            world.stack.settings.listing_keys_table,
        )

    def apply(self, listing: Listing, update: MlsUpdate, change: StatusChange | None) -> Any:
        result: ApplyResult = super().apply(listing, update, change)
        if result.applied and change is not None:
            raise Crash
        return result


@pytest.mark.parametrize("later", ["restamped", "withdrawn"])
def test_effects_pending_from_a_crash_are_delivered_before_a_later_record(
    world: World, later: str
) -> None:
    # Given a listing with a published post that sold, and a worker that dies right after
    # writing the sale (its event and unpublish job still pending)
    world.add_connection()
    world.track("l-1", "K1", Status.ACTIVE)
    world.post("p-1", "l-1", PostStatus.PUBLISHED, "facebook")
    world.run_worker([world.job(slot="2026-11-28T12:00:00Z")])
    world.sim.advance(60)
    world.sim.set_status("K1", "Closed")
    job = world.job(slot="2026-11-28T12:15:00Z")
    with pytest.raises(Crash):
        world.run_worker([job], deps=world.sync_deps(listings=DiesAfterStatusWrite(world)))
    assert world.status("l-1") is Status.SOLD
    # When the MLS changes the record again before SQS delivers the job again
    world.sim.advance(1800)
    if later == "restamped":
        world.sim.touch("K1")
    else:
        world.sim.set_status("K1", "Withdrawn")
    world.run_worker([job])
    # Then the sale's event and unpublish job were delivered all the same, once, and no
    # history entry keeps effects pending
    events = world.events()
    sold = [e for e in events if e["detail"]["to"] == "sold"]
    assert len(sold) == 1
    assert [j["postId"] for j in world.unpublish_jobs()] == ["p-1"]
    assert all(c.pending_effects == [] for c in world.changes("l-1"))
