"""Per-conversation locks inside one process, and the renewal of a lock with an expiry.

`asyncio.Lock` wakes waiters in the order they arrived, which is what keeps one
conversation's events in arrival order. Entries are dropped when nobody holds or waits, so a
million conversations do not leave a million locks behind.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog

from bot.waits import cancelling

log = structlog.get_logger(__name__)


class LocalLocks:
    """Locks for a single process (the SQLite default); Redis provides the shared kind."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._tokens = itertools.count(1)

    @asynccontextmanager
    async def hold(self, conversation: str,
                   event_key: str | None = None) -> AsyncIterator[int]:
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


@asynccontextmanager
async def renewed(renew: Callable[[], Awaitable[bool]], every: float) -> AsyncIterator[None]:
    """Call `renew` every `every` seconds while the block runs.

    A step longer than the lock's expiry keeps its lock while its process is alive; a dead
    process renews nothing, so its lock still expires. `renew` returns False once the lock
    is lost (fencing then refuses the holder's save); a failed call is tried again.

    Nearly every block ends long before its first renewal, so it costs one timer, not a
    task: the renewing task starts only when the timer fires.
    """
    loop = asyncio.get_running_loop()
    done = False
    task: asyncio.Task[None] | None = None

    async def renewing() -> None:
        while not done:
            try:
                if not await renew():
                    log.warning("lock.lost")
                    return
            except Exception as exc:
                # A client library may turn our own cancellation into its timeout error
                # (redis-py does): a loop that caught it would renew a released lock forever,
                # and the holder would wait for it forever. Stop, whatever it was.
                if done or cancelling():
                    return
                log.warning("lock.renew_failed", error=type(exc).__name__)
            await asyncio.sleep(every)

    def start() -> None:
        nonlocal task
        if not done:
            task = loop.create_task(renewing(), name="lock-renewal")

    timer = loop.call_later(every, start)
    try:
        yield
    finally:
        done = True
        timer.cancel()
        if task is not None:
            task.cancel()
            # Bounded: the holder's release never waits on its renewal.
            await asyncio.wait({task}, timeout=1.0)
