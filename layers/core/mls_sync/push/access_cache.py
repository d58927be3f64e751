"""The receiver's view of a connection, kept a short while by a warm container.

Without it every push reads the Connections item before touching the inbox: two DynamoDB
requests a push where one does the work, and under a flood (an MLS pushing every event of
a busy afternoon) the read is half the cost and half the latency. A connection's push
settings change rarely, and the token itself is already cached for
``SECRET_MAX_AGE_SECONDS`` (300 s), so keeping the access answer ``ACCESS_MAX_AGE_SECONDS``
changes what a producer can see only here:

- only an answer that could grant is kept (the connection exists and names a push secret):
  an unknown connection, or one whose token is not set yet, is read again on every push, so
  ``mls-sync push set-token`` works at once and a stranger's pushes are never answered
  from what another push left;
- a connection disabled (or deleted, or its push secret removed) is refused within
  ``ACCESS_MAX_AGE_SECONDS``; a push accepted meanwhile only adds keys to the inbox, and
  the worker reads the connection itself before syncing anything (a disabled connection is
  not synced).

The clock is monotonic and injected (tests step it); entries are bounded so that a
container serving many connections keeps at most ``MAX_ENTRIES``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from mls_sync.dal.push_access import PushAccess

ACCESS_MAX_AGE_SECONDS = 30.0
MAX_ENTRIES = 1024


class AccessSource(Protocol):
    def get(self, connection_id: str) -> PushAccess | None: ...


class CachedAccess:
    """``get`` as ``AccessSource``, answering a granting read from memory for a while."""

    def __init__(
        self,
        source: AccessSource,
        *,
        max_age: float = ACCESS_MAX_AGE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._source = source
        self._max_age = max_age
        self._monotonic = monotonic
        self._max_entries = max_entries
        self._kept: OrderedDict[str, tuple[float, PushAccess]] = OrderedDict()

    def get(self, connection_id: str) -> PushAccess | None:
        now = self._monotonic()
        kept = self._kept.get(connection_id)
        if kept is not None and now - kept[0] < self._max_age:
            return kept[1]
        access = self._source.get(connection_id)
        if access is None or access.push_secret_arn is None:
            self._kept.pop(connection_id, None)
            return access
        self._kept[connection_id] = (now, access)
        self._kept.move_to_end(connection_id)
        while len(self._kept) > self._max_entries:
            self._kept.popitem(last=False)
        return access
