from __future__ import annotations

from collections.abc import Iterator

import pytest

from mls_sync_local.sim.mls import MlsSimulator
from tests.support.clock import FakeMonotonic
from tests.support.pipeline import World, event_tap
from tests.support.stack import LocalStack


@pytest.fixture
def world(stack: LocalStack) -> Iterator[World]:
    """moto in-process with the stack, an MLS simulator on loopback (trestle-style keyset
    paging, OAuth client credentials), and an event tap on the bus."""
    with MlsSimulator(vendor="trestle") as sim:
        yield World(
            stack=stack,
            sim=sim,
            mono=FakeMonotonic(),
            events_tap_url=event_tap(stack.settings.event_bus_name),
        )
