"""Waiting in background loops without losing a cancel.

Shutdown cancels the service's loops (dispatcher, drainers, feeds) and waits for them. Two
common idioms lose that cancel on Python 3.11, and the loop then runs on and the shutdown hangs
on it (CI of 2026-12-03: the dispatcher, in tests/test_metrics.py):

- `with suppress(CancelledError): await child` after `child.cancel()` swallows the caller's
  own cancel too, when it arrives during that await;
- `asyncio.wait_for(event.wait(), t)` returns normally when the cancel comes in the same tick
  as the event (https://github.com/python/cpython/issues/86296, fixed in 3.12).

`woken` and `cancel_and_wait` do the same jobs and always let the caller's cancel through.
A third way is a client library that turns the cancel into its own error (redis-py does): a
loop's `except Exception` would take it for a failure and go on, so those loops ask
`cancelling()` first.
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
    try:
        await asyncio.wait(set(tasks))
    finally:
        # Every failure read (else asyncio logs each as never retrieved); the first raised.
        errors = [error for task in tasks if task.done() and not task.cancelled()
                  and (error := task.exception()) is not None]
    if errors:
        raise errors[0]


def cancelling() -> bool:
    """Whether the current task was asked to cancel: an error caught meanwhile may be that
    cancel in a client library's clothes, and must end the loop, not be logged and retried."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
