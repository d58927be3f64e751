from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

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


@pytest.fixture
def atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each conditional write atomically; moto in-process checks the
    condition and then writes without a lock, so two threads can both pass the check. Make
    moto's write operations atomic, as the real service is, so that what the concurrent test
    measures is our condition expressions rather than moto's race. UpdateItem's response
    handler too: it deep-copies the item (for ``ReturnValues``) before the backend's write,
    and a copy taken while another thread writes the item fails ("dictionary changed size
    during iteration")."""
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415 - test-only
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415 - test-only

    lock = threading.RLock()

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return wrapper

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        monkeypatch.setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))
    monkeypatch.setattr(DynamoHandler, "update_item", atomic(DynamoHandler.update_item))
