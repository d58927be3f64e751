from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import LocalStack, moto_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """moto in-process holding the template's tables, the queues and the bus; the
    environment names them as a deployed function would see them."""
    with moto_stack() as created:
        for key, value in created.env.items():
            monkeypatch.setenv(key, value)
        yield created
