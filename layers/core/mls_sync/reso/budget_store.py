"""Where the shared budget's items live: the store protocol, and an in-memory store.

A store loads an item strongly consistently, saves one only over the version the writer read
(optimistic concurrency: a lost race returns the item as it now is) and raises a credential's
``blockedUntil``. ``mls_sync.dal.budget.DynamoBudgetStore`` is the real one; the memory store
here serves unit tests and is the model the DynamoDB one follows.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Protocol

from mls_sync.reso.budget_policy import BudgetState


class BudgetStore(Protocol):
    """Where the items live: DynamoDB (``mls_sync.dal.budget.DynamoBudgetStore``) or memory."""

    def load(self, key: str) -> BudgetState:
        """The item, read strongly consistently (an empty state when there is none)."""
        ...

    def save(self, key: str, state: BudgetState, expected_version: int) -> BudgetState | None:
        """Writes ``state`` if the item is still at ``expected_version``: ``None``; else the
        item as it now is (nothing written)."""
        ...

    def block(self, key: str, until: float) -> None:
        """Raises ``blockedUntil`` to ``until`` (never lowers it) and bumps the version."""
        ...


class MemoryBudgetStore:
    """A store in this process's memory (unit tests, and a model of the DynamoDB one)."""

    def __init__(self) -> None:
        self.items: dict[str, BudgetState] = {}
        self.reads = 0
        self.writes = 0
        self._lock = threading.Lock()

    def load(self, key: str) -> BudgetState:
        with self._lock:
            self.reads += 1
            return self.items.get(key, BudgetState())

    def save(self, key: str, state: BudgetState, expected_version: int) -> BudgetState | None:
        with self._lock:
            self.writes += 1
            current = self.items.get(key, BudgetState())
            if current.version != expected_version:
                return current
            self.items[key] = state
            return None

    def block(self, key: str, until: float) -> None:
        with self._lock:
            self.writes += 1
            current = self.items.get(key, BudgetState())
            if until > current.blocked_until:
                self.items[key] = replace(current, version=current.version + 1, blocked_until=until)
