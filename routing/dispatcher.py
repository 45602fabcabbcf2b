"""The dispatcher: drains the outbox through the channels and fires durable timers.

At-least-once: a row is leased (`Outbox.claim`), handed to its channel with the row's own
idempotency key, and only then completed; a process that dies holding a lease loses it when
the lease runs out and another dispatcher (or itself, restarted) sends the row again with
the same key, which the channel uses to drop the duplicate. Transient failures back off
exponentially with full jitter; a bound later, or on a permanent failure, the row goes to
the dead-letter state with an alert in the logs. Timers are rows claimed by the same loop,
so an escalation survives a restart and two processes never fire one timer twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from bot.histograms import OUTBOX_AGE
from bot.incident import Notification
from bot.outbound import SendOutcome, SendResult
from bot.types import utcnow
from bot.waits import cancel_and_wait, cancelling, woken
from routing.messages import KIND_NEW, KIND_REMINDER
from routing.responders import Responders
from routing.sender import Sender, scheme
from storage.ports import Storage, Timer

# Timers whose kind starts so belong to welfare cases (bot.casework), not to incidents.
CASE_TIMER_PREFIX = "case_"


class TimerHandler(Protocol):
    async def fire(self, timer: Timer) -> str: ...

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DispatchPolicy:
    """Retry and lease bounds (seconds)."""

    batch: int = 50
    lease_seconds: float = 60.0
    send_timeout: float = 20.0
    base_backoff: float = 2.0
    max_backoff: float = 300.0
    max_attempts: int = 10
    interval: float = 1.0


def backoff(attempt: int, policy: DispatchPolicy, rng: random.Random) -> float:
    """Full jitter (uniform up to the exponential bound): retries of many rows that failed
    together spread out instead of hitting a recovering channel all at once."""
    bound = min(policy.max_backoff, policy.base_backoff * 2 ** max(0, attempt - 1))
    return rng.uniform(bound / 2, bound)


class Dispatcher:
    """One instance per process; several processes may share a database."""

    def __init__(self, storage: Storage, sender: Sender, responders: Responders,
                 policy: DispatchPolicy = DispatchPolicy(), owner: str | None = None,
                 clock: Callable[[], datetime] = utcnow, rng: random.Random | None = None):
        self.storage = storage
        self.sender = sender
        self.responders = responders
        self.policy = policy
        self.owner = owner or f"dispatcher-{random.getrandbits(48):012x}"
        self.clock = clock
        self.rng = rng or random.Random()
        self.wake = asyncio.Event()
        self.cases: TimerHandler | None = None  # set by the composition root

    def poke(self) -> None:
        """New rows are waiting: run now rather than at the next poll."""
        self.wake.set()

    async def drain_once(self) -> int:
        """Send every due row once; return how many were claimed."""
        rows = await self.storage.outbox.claim(self.owner, self.policy.batch,
                                               self.policy.lease_seconds, self.clock())
        if rows:
            keeper = asyncio.create_task(self._keep_leases([n.id for n in rows]))
            try:
                results = await asyncio.gather(*(self._deliver(n) for n in rows),
                                               return_exceptions=True)
                # Group commit: the batch's sent rows are completed in one statement. A
                # crash before it sends them again with the same key (at-least-once).
                await self._complete([r for r in results if isinstance(r, Notification)])
            finally:
                await cancel_and_wait(keeper)
            for result in results:
                if isinstance(result, BaseException):
                    # The row stays leased and comes back when the lease runs out.
                    log.error("dispatch.failed", error=type(result).__name__)
        return len(rows)

    async def _complete(self, sent: list[Notification]) -> None:
        if not sent:
            return
        now = self.clock()
        done = set(await self.storage.outbox.complete_all([n.id for n in sent], self.owner,
                                                          now))
        for n in sent:
            channel = scheme(n.recipient)
            if n.id not in done:
                log.warning("dispatch.lease_lost", kind=n.kind, channel=channel)
            log.info("dispatch.delivered", kind=n.kind, channel=channel, attempt=n.attempts)
            OUTBOX_AGE.labels(channel).observe(
                max(0.0, ((n.sent_at or now) - n.created_at).total_seconds()))

    async def _keep_leases(self, ids: list[str]) -> None:
        # A batch slower than the lease (a slow channel, a loaded host) would otherwise be
        # claimed by another dispatcher and sent twice; a dead process stops renewing, so
        # its rows still come back when the lease runs out.
        while True:  # until cancelled
            await asyncio.sleep(self.policy.lease_seconds / 3)
            try:
                await self.storage.outbox.extend(ids, self.owner, self.policy.lease_seconds,
                                                 self.clock())
            except Exception as exc:
                log.warning("dispatch.extend_failed", error=type(exc).__name__)

    async def _deliver(self, notification: Notification) -> Notification | None:
        """Send one row; the row when it was sent (to complete), else None."""
        try:
            async with asyncio.timeout(self.policy.send_timeout):
                result = await self.sender.send(notification)
        except TimeoutError:
            result = SendResult.retry(0, "timeout")
        except Exception as exc:  # a channel bug must not stop the dispatcher
            result = SendResult.retry(0, type(exc).__name__)
        now = self.clock()
        channel = scheme(notification.recipient)
        if result.outcome is SendOutcome.SENT:
            if notification.kind in (KIND_NEW, KIND_REMINDER):
                # Before completing: if we die in between, the row is sent again (same key)
                # and arming again is a no-op; the other order could lose the clock.
                try:
                    await self.responders.delivered(notification)
                except Exception as exc:
                    # Send again soon (the channel drops the repeat by its key) and arm then.
                    log.error("dispatch.arm_failed", error=type(exc).__name__)
                    await self.storage.outbox.retry(notification.id, self.owner,
                                                    now + timedelta(seconds=1), "arm failed")
                    return None
            notification.sent_at = now
            return notification  # completed with the rest of its batch (drain_once)
        reason = result.error or result.outcome.value
        if result.outcome is SendOutcome.FAILED or \
                notification.attempts >= self.policy.max_attempts:
            await self.storage.outbox.bury(notification.id, self.owner, reason)
            # The alert: a person must look at a message that will never arrive.
            log.error("dispatch.dead_letter", alert=True, kind=notification.kind,
                      channel=channel, attempts=notification.attempts, reason=reason,
                      recipient=notification.recipient)
            return None
        delay = max(result.retry_after or 0.0,
                    backoff(notification.attempts, self.policy, self.rng))
        await self.storage.outbox.retry(notification.id, self.owner,
                                        now + timedelta(seconds=delay), reason)
        log.warning("dispatch.retry", kind=notification.kind, channel=channel,
                    attempt=notification.attempts, delay=round(delay, 1), reason=reason)
        return None

    async def fire_timers_once(self) -> int:
        """Fire every due timer once; return how many."""
        timers = await self.storage.timers.claim_due(self.owner, self.clock(),
                                                     self.policy.batch,
                                                     self.policy.lease_seconds)
        for timer in timers:
            try:
                if timer.kind.startswith(CASE_TIMER_PREFIX) and self.cases is not None:
                    await self.cases.fire(timer)
                else:
                    await self.responders.fire(timer)
            except Exception as exc:
                # Leave it leased: it comes back when the lease runs out.
                log.error("timer.failed", kind=timer.kind, error=type(exc).__name__)
                continue
            await self.storage.timers.done(timer.id, self.owner)
        return len(timers)

    async def run_once(self) -> int:
        return await self.fire_timers_once() + await self.drain_once()

    async def run(self) -> None:
        """Until cancelled: drain and fire, then sleep a little unless woken.

        Timers are minutes apart, so they are looked at once per `interval`, not at every
        wake. A pass that claimed less than a full batch, with nothing queued during it,
        left nothing due: the loop waits instead of claiming again to find nothing (rows of
        other processes and retries come with the next poll).
        """
        timers_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            # Cleared before the pass, so a poke during it makes the wait return at once.
            self.wake.clear()
            busy = 0
            try:
                if loop.time() >= timers_at:
                    timers_at = loop.time() + self.policy.interval
                    busy += await self.fire_timers_once()
                claimed = await self.drain_once()
                busy += claimed
            except Exception as exc:
                if cancelling():
                    raise asyncio.CancelledError from exc  # see bot/waits.py
                log.warning("dispatch.loop_failed", error=type(exc).__name__)
                busy = claimed = 0
            if claimed >= self.policy.batch or (busy and self.wake.is_set()):
                continue
            await woken(self.wake, self.policy.interval)
