"""A manual sync whose job cannot be sent leaves nothing "queued" behind: asking again sends
it (and the manual sync role's DeleteItem on SyncRuns is proven used, issue 19)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from mls_sync.dal import SyncRunsRepo
from mls_sync.pipeline.deps import build_manual_deps
from mls_sync.queues import OutgoingMessage

from functions.manual_sync import app as manual_sync
from tests.functional.pipeline.test_dispatcher_and_manual import NOW, _context, _queued, _seed
from tests.support.pipeline import load_event
from tests.support.stack import LocalStack


class SendFails:
    """A sync queue that is down (throttled, unreachable) for this one request."""

    def send(self, messages: Sequence[OutgoingMessage]) -> int:
        raise ConnectionError(f"SQS unreachable ({len(messages)} message(s) not sent)")


def test_a_job_that_could_not_be_sent_is_not_left_queued(stack: LocalStack) -> None:
    _seed(stack)
    event = load_event("manual_sync.connection.json")
    deps = build_manual_deps(stack.settings)
    failing = dataclasses.replace(deps, sync_queue=SendFails())  # type: ignore[arg-type]
    # Given a manual sync whose job cannot be sent
    with pytest.raises(ConnectionError):
        manual_sync.handle(event, _context(), failing, clock=lambda: NOW)
    # Then its run is not left recorded `queued` (it would answer "already queued" forever)
    assert SyncRunsRepo(stack.tables.sync_runs).list_for_connection("c-ben-trestle") == []
    assert _queued(stack) == []
    # And asked again within the minute, the job goes
    again = manual_sync.handle(event, _context(), deps, clock=lambda: NOW)
    assert again["statusCode"] == 202
    assert again["body"]["jobs"] == 1
    assert len(_queued(stack)) == 1
