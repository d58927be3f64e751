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
