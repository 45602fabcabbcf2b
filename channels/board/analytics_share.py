"""The analytics page's figures shared for a few seconds, and one viewer's loads paced.

Why both: the page is every view of up to two years of rollups — about 0.2 s of this
process's CPU and 0.1 s of PostgreSQL's a load — and the same process and database take the
reports. Figures for the same scope and question, computed once, serve every viewer asking
within `fresh` seconds (counts over days do not move in seconds). And one viewer's loads,
after a burst of three (a person clicking through drill-downs never waits), start `gap`
seconds apart, so a refresh loop, a script or a stuck key cannot take the reporters' CPU. A
load that comes sooner waits for its turn (a closed-loop client is then paced by the
answer, where a refusal would only make it retry faster); beyond a short queue it is
refused with a Retry-After. Grafana's `min_refresh_interval` is the same guard. Both live in
one process: two processes pace and share separately.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from bot.waits import cancel_and_wait

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Figures(Generic[T]):
    """What was computed, and when (wall clock, for the page's "as of")."""

    value: T
    at: float


class Shared(Generic[T]):
    """Figures computed once per key and reused for `fresh` seconds (0: not kept once
    computed). Who asks while they are computed waits for the same computation; a failure
    reaches every waiter and is not kept."""

    def __init__(self, fresh: float, *, size: int = 64,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.fresh, self.size = fresh, size
        self._clock, self._wall = clock, wall
        self._kept: OrderedDict[Hashable, tuple[float, Figures[T]]] = OrderedDict()
        self._running: dict[Hashable, asyncio.Task[Figures[T]]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> Figures[T]:
        """The figures for `key`: kept ones while fresh, else `compute`'s (shared)."""
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < self.fresh:
            self._kept.move_to_end(key)
            return kept[1]
        task = self._running.get(key)
        if task is None:
            # Its own task, so one waiter going away (a closed tab) does not cancel it for
            # the others; in an empty context, so its log lines carry no asker's request.
            task = asyncio.get_running_loop().create_task(
                self._compute(key, compute), context=contextvars.Context())
            task.add_done_callback(lambda done: self._ended(key, done))
            self._running[key] = task
        return await asyncio.shield(task)

    def _ended(self, key: Hashable, task: asyncio.Task[Figures[T]]) -> None:
        # Here, not in the computation's own `finally`: a task cancelled before its first
        # step never runs that. Its failure is read even when every waiter has gone (no
        # "exception was never retrieved").
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()

    async def close(self) -> None:
        """Cancel the computations still running (the stores are closing) and wait for them;
        one that failed meanwhile is logged, not raised: the board is stopping either way."""
        try:
            await cancel_and_wait(*self._running.values())
        except Exception as exc:  # a stop must finish
            log.warning("analytics.compute_failed_at_stop", error=type(exc).__name__)

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> Figures[T]:
        started = self._clock()
        figures = Figures(await compute(), self._wall())
        if self.fresh > 0:
            # Fresh from when the computation started: its figures are as old as its reads.
            self._kept[key] = (started, figures)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return figures


class Pace:
    """One viewer's loads: `burst` at once, then one per `gap` seconds (0: unpaced) — a
    person clicking through three drill-downs never waits, a loop settles to one load a
    gap. A load beyond that waits for its turn, up to `waiting` of them; one more is
    refused. The generic cell rate algorithm: one "theoretical arrival time" per viewer."""

    def __init__(self, gap: float, *, burst: int = 3, waiting: int = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gap, self.burst, self.waiting = gap, burst, waiting
        self._clock = clock
        self._due: dict[str, float] = {}

    def turn(self, viewer: str) -> float | None:
        """Seconds this load of `viewer` waits before it starts, or None when refused."""
        if self.gap <= 0:
            return 0.0
        now = self._clock()
        due = max(now, self._due.get(viewer, now))
        wait = max(0.0, due - self.gap * (self.burst - 1) - now)
        if wait > self.gap * self.waiting + 1e-9:
            return None
        self._due[viewer] = due + self.gap
        if len(self._due) > 1024:  # viewers back to a full burst need no entry
            self._due = {v: at for v, at in self._due.items() if at > now}
        return wait

    def retry_after(self, viewer: str) -> int:
        """Whole seconds until a refused viewer's next load would start at once."""
        due = self._due.get(viewer, 0.0) - self.gap * (self.burst - 1)
        return max(1, math.ceil(due - self._clock()))
