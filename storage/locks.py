"""Per-conversation locks inside one process.

`asyncio.Lock` wakes waiters in the order they arrived, which is what keeps one
conversation's events in arrival order. Entries are dropped when nobody holds or waits, so a
million conversations do not leave a million locks behind.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class LocalLocks:
    """Locks for a single process (the SQLite default); Redis provides the shared kind."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._tokens = itertools.count(1)

    @asynccontextmanager
    async def hold(self, conversation: str) -> AsyncIterator[int]:
        lock, users = self._locks.get(conversation, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[conversation] = (lock, users + 1)
        try:
            async with lock:
                yield next(self._tokens)
        finally:
            lock, users = self._locks[conversation]
            if users <= 1:
                del self._locks[conversation]
            else:
                self._locks[conversation] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
