"""The analytics page's figures shared for a few seconds, and one viewer's loads paced.

Why both: the page is every view of up to two years of rollups — about 0.2 s of this
process's CPU and 0.1 s of PostgreSQL's a load — and the same process and database take the
reports. Figures for the same scope and question, computed once, serve every viewer asking
within `fresh` seconds (counts over days do not move in seconds); and a viewer's next load
starts at least `gap` seconds after their last, so a refresh loop, a script or a stuck key
cannot take the reporters' CPU. A load that comes sooner waits for its turn (a closed-loop
client is then paced by the answer, where a refusal would only make it retry faster);
beyond a short queue it is refused with a Retry-After. Grafana's `min_refresh_interval` is
the same guard. Both live in one process: two processes pace and share separately.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Figures(Generic[T]):
    """What was computed, and when (wall clock, for the page's "as of")."""

    value: T
    at: float


class Shared(Generic[T]):
    """Figures computed once per key and reused for `fresh` seconds (0: never reused). Who
    asks while they are computed waits for the same computation; a failure is not kept."""

    def __init__(self, fresh: float, *, size: int = 64,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.fresh, self.size = fresh, size
        self._clock, self._wall = clock, wall
        self._kept: OrderedDict[Hashable, tuple[float, Figures[T]]] = OrderedDict()
        self._running: dict[Hashable, asyncio.Task[Figures[T]]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> Figures[T]:
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < self.fresh:
            self._kept.move_to_end(key)
            return kept[1]
        task = self._running.get(key)
        if task is None:
            # Its own task: one waiter going away (a closed tab) must not cancel the others'.
            task = asyncio.ensure_future(self._compute(key, compute))
            self._running[key] = task
        return await asyncio.shield(task)

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> Figures[T]:
        started = self._clock()
        try:
            figures = Figures(await compute(), self._wall())
        finally:
            del self._running[key]
        if self.fresh > 0:
            # Fresh from when the computation started: its figures are as old as its reads.
            self._kept[key] = (started, figures)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return figures


class Pace:
    """One load per `gap` seconds per viewer (0: unpaced). `turn` answers how long this load
    waits for its turn, or None when `queue` loads of the viewer already wait."""

    def __init__(self, gap: float, *, queue: int = 3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gap, self.queue = gap, queue
        self._clock = clock
        self._next: dict[str, float] = {}

    def turn(self, viewer: str) -> float | None:
        if self.gap <= 0:
            return 0.0
        now = self._clock()
        start = max(now, self._next.get(viewer, now))
        wait = start - now
        if wait > self.gap * (self.queue - 1) + 1e-9:
            return None
        self._next[viewer] = start + self.gap
        if len(self._next) > 1024:  # viewers whose turn has come and gone need no entry
            self._next = {v: at for v, at in self._next.items() if at > now}
        return wait

    def retry_after(self, viewer: str) -> int:
        """Whole seconds until a refused viewer's next free turn."""
        return max(1, math.ceil(self._next.get(viewer, 0.0) - self._clock()))
