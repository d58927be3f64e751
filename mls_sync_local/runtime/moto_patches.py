"""One fix to moto's DynamoDB emulation, applied wherever we run moto (the local runtime's
server and the tests' in-process mock).

moto's ``transact_write_items`` keeps a backup of each table a transaction touches, to roll
back on a failed condition, but takes it once per *item*: a transaction of 100 updates on a
table of 10,000 items deep-copies the table 100 times (minutes; the client times out and the
worker falls back to single writes). Here each table is copied once per transaction, before
any write, which is the same backup. Transactions are also serialised, as the rollback
swaps whole tables. Real DynamoDB is unaffected: this is about the emulator only.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.RLock()


class _OncePerObject:
    """``copy`` for one transaction: the same object deep-copied once."""

    def __init__(self) -> None:
        self._copies: dict[int, Any] = {}

    def deepcopy(self, value: Any) -> Any:
        key = id(value)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(value)
        return self._copies[key]


def transactions_copy_tables_once() -> None:
    """Idempotent; patches moto's DynamoDB backend in this process."""
    from moto.dynamodb import models  # noqa: PLC0415 - moto is loaded only where it runs

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "_copies_once", False):
        return
    original = backend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _LOCK:
            setattr(models, "copy", _OncePerObject())  # noqa: B010 - moto's own module
            try:
                original(self, transact_items)
            finally:
                setattr(models, "copy", copy)  # noqa: B010

    transact_write_items._copies_once = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def serialise_dynamodb_writes(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """DynamoDB applies each write atomically and answers ``ReturnValues`` with what that
    write saw. moto checks a condition and then writes without a lock, and its UpdateItem
    handler deep-copies the item for ``ReturnValues`` before the write: under threads two
    writers can both pass a check, two updates be told the same old value, and a copy taken
    while another thread writes fail ("dictionary changed size during iteration"). This puts
    every DynamoDB write of this process's moto, and UpdateItem's answer, under one lock.
    ``patch`` is how attributes are set (a test's ``monkeypatch.setattr`` undoes it)."""
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415 - moto only where it runs
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415

    lock = threading.RLock()

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return wrapper

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        patch(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))
    patch(DynamoHandler, "update_item", atomic(DynamoHandler.update_item))
