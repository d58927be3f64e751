from __future__ import annotations

from collections.abc import Iterator

import pytest

from mls_sync_local.runtime.moto_patches import serialise_dynamodb_writes
from tests.support.stack import LocalStack, moto_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """moto in-process holding the template's tables, the queues and the bus; the
    environment names them as a deployed function would see them."""
    with moto_stack() as created:
        for key, value in created.env.items():
            monkeypatch.setenv(key, value)
        yield created


@pytest.fixture
def atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's DynamoDB writes atomic, as the real service's are (``moto_patches``), so that
    what a concurrent test measures is our condition expressions rather than moto's races."""
    serialise_dynamodb_writes(monkeypatch.setattr)
