"""Data access: the only code that touches DynamoDB. Every state write is conditional."""

from mls_sync.dal.accounts import AccountsRepo
from mls_sync.dal.base import ConditionFailed, Tables
from mls_sync.dal.connections import ConnectionsRepo
from mls_sync.dal.history import HistoryRepo
from mls_sync.dal.listings import ApplyResult, ListingsRepo
from mls_sync.dal.posts import PostsRepo
from mls_sync.dal.sync_runs import SyncRunsRepo

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
