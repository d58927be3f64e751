"""Data access: the only code that touches DynamoDB. Every state write is conditional."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mls_sync.dal.accounts import AccountsRepo
    from mls_sync.dal.base import ConditionFailed, Tables
    from mls_sync.dal.connections import ConnectionsRepo
    from mls_sync.dal.history import HistoryRepo
    from mls_sync.dal.listings import ApplyResult, ListingsRepo
    from mls_sync.dal.posts import PostsRepo
    from mls_sync.dal.sync_runs import SyncRunsRepo

# Each name is imported on first use, not with the package: importing any module of dal/
# runs this file, and a handler needs a few of the repositories (the dispatcher only
# ConnectionsRepo: the others cost it ~20 ms of a cold start).
_HOME = {
    "AccountsRepo": "mls_sync.dal.accounts",
    "ApplyResult": "mls_sync.dal.listings",
    "ConditionFailed": "mls_sync.dal.base",
    "ConnectionsRepo": "mls_sync.dal.connections",
    "HistoryRepo": "mls_sync.dal.history",
    "ListingsRepo": "mls_sync.dal.listings",
    "PostsRepo": "mls_sync.dal.posts",
    "SyncRunsRepo": "mls_sync.dal.sync_runs",
    "Tables": "mls_sync.dal.base",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later reads do not come here
    return value


__all__ = [
    "AccountsRepo",
    "ApplyResult",
    "ConditionFailed",
    "ConnectionsRepo",
    "HistoryRepo",
    "ListingsRepo",
    "PostsRepo",
    "SyncRunsRepo",
    "Tables",
]
