"""The sweep that fires stored deadlines: idle sessions now, escalation timers later.

Deadlines live in storage, never in in-process timers, so they survive a restart and can be
shared by several processes (each sweep is a conditional update; two sweepers do no harm).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from bot.types import utcnow
from bot.waits import cancelling
from storage.ports import DEDUPE_WINDOW, TRANSCRIPT_KEEP, Storage

log = structlog.get_logger(__name__)

DEDUPE_KEEP = DEDUPE_WINDOW
RETENTION_EVERY = timedelta(hours=1)  # retention periods are days: hourly is on time
Retention = Callable[[datetime], Awaitable[int]]


class Sweeper:
    """Runs `sweep_once` every `interval` seconds until stopped."""

    def __init__(self, storage: Storage, interval: float = 15.0,
                 clock: Callable[[], datetime] = utcnow, retention: Retention | None = None):
        self.storage = storage
        self.interval = interval
        self.clock = clock
        self.retention = retention  # bot.privacy.retention.run, bound to its policy
        self._retained_at: datetime | None = None

    async def sweep_once(self) -> int:
        now = self.clock()
        ended = await self.storage.sessions.sweep_idle(now)
        forgotten = await self.storage.sessions.forget_events(now - DEDUPE_KEEP)
        # The channels' shared state (zero work on Redis, where it expires by itself).
        forgotten += await self.storage.dedupe.forget(now)
        transcripts = await self.storage.transcripts.forget(now - TRANSCRIPT_KEEP)
        await self.storage.limits.forget(now)
        exports = await self.storage.exports.sweep(now)  # sealed files nobody downloaded
        if self.retention is not None and (self._retained_at is None
                                           or now - self._retained_at >= RETENTION_EVERY):
            self._retained_at = now
            erased = await self.retention(now)
            if erased:
                log.info("sweep.retention", erased=erased)
        if ended or forgotten or transcripts or exports:
            log.info("sweep", sessions_ended=ended, events_forgotten=forgotten,
                     transcripts_forgotten=transcripts, exports_expired=exports)
        return ended

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:
                if cancelling():
                    raise asyncio.CancelledError from exc  # see bot/waits.py
                log.warning("sweep.failed", error=type(exc).__name__)
            await asyncio.sleep(self.interval)
