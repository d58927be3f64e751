"""What a Lambda container keeps between invocations, and the one way to forget it.

Settings, boto3 clients and each handler's dependencies are built on first use and kept for
the life of the container (``@per_container`` instead of ``functools.cache``). ``reset()``
forgets every one of them, for a process that stands in for a fresh container after its
environment changed (the local runtime, tests). The list is explicit: a cache is reset
because it was declared per container, not because some attribute has a ``cache_clear``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import _lru_cache_wrapper, cache
from typing import TypeVar

T = TypeVar("T")
_CLEARS: list[Callable[[], None]] = []


def per_container(build: Callable[..., T]) -> _lru_cache_wrapper[T]:
    """``functools.cache``, and forgotten by ``reset()``."""
    cached = cache(build)
    _CLEARS.append(cached.cache_clear)
    return cached


def reset() -> None:
    """Forgets everything kept per container (of the modules imported so far: the others
    have kept nothing yet)."""
    for clear in _CLEARS:
        clear()
