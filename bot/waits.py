"""Waiting in background loops without losing a cancel.

Shutdown cancels the service's loops (dispatcher, drainers, feeds) and waits for them. Two
common idioms lose that cancel on Python 3.11, and the loop then runs on and the shutdown hangs
on it (CI, stop 22: the dispatcher, in tests/test_metrics.py):

- `with suppress(CancelledError): await child` after `child.cancel()` swallows the caller's
  own cancel too, when it arrives during that await;
- `asyncio.wait_for(event.wait(), t)` returns normally when the cancel comes in the same tick
  as the event (https://github.com/python/cpython/issues/86296, fixed in 3.12).

`woken` and `cancel_and_wait` do the same jobs and always let the caller's cancel through.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; whether it is set. Cancels propagate."""
    if event.is_set():
        return True
    try:
        # asyncio.timeout tells its own cancel from anyone else's; wait_for on 3.11 does not.
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel `tasks` and wait until they have ended; the first failure other than the
    cancel is raised. A cancel of the caller meanwhile reaches the caller."""
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    # asyncio.wait raises CancelledError only for the caller's own cancel, never a child's.
    await asyncio.wait(set(tasks))
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
