"""The durable inbound path: a verified event is kept before its webhook is answered, and
handled from the journal by whichever process is alive.

    channel ── accept(Arrival) ──► journal (store)  ── 200
                     │ store down ─► spool (fsync'd file) ── 200, replayed when it returns
                     │ spool fails ─► InboxUnavailable ── 5xx: the platform retries
    drainer ── claim(conversations, lease, handled) ─► channel.arrived(arrival) ─► handled

`accept` is the one entry point for channels. The drainer (`run`, started by `ess serve`
beside the dispatcher) leases whole conversations, so each is handled by one owner at a
time in arrival order (the entries it handled are forgotten by its next claim); a crashed
owner's conversations come back when its lease runs out, and a restart resumes them.
Handling an entry is what a channel's background task did before: engine.handle, then
render and send. A re-handle after a crash is harmless: the engine dedupes on the event
id, so the replies of an event are sent at most once (a reply lost in the crash is not
resent); the receipt of a report is the outbox's, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

from bot.metrics import Metrics, standard
from bot.types import RETRIED_IF_FAILED, Inbound, Kind, Location, utcnow
from bot.waits import cancel_and_wait, cancelling, woken
from storage.crypto import Sealer
from storage.ports import JournalEntry, Storage
from storage.spool import Spool

log = structlog.get_logger(__name__)
T = TypeVar("T")

LEASE_SECONDS = 30.0
LANES = 8  # conversations in hand at once per process (more only queue on the store)
POLL_SECONDS = 0.5  # for entries other processes (or a spool replay) added
GIVE_UP_ATTEMPTS = 5  # then the person is told to try again, or a raising entry is dropped


class InboxUnavailable(Exception):
    """Neither the store nor the local spool could keep the event: answer 5xx."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A verified event as a channel hands it over.

    `inbound` names the conversation (ordering) and the event id (kept once), in neutral
    form; `event` is the channel's own verified event when it must re-read more than the
    neutral form carries (LINE: reply token, redelivery flag, group source).
    """

    inbound: Inbound
    event: Mapping[str, Any] = field(default_factory=dict)


# What handles an arrival: the channel that accepted it (`Channel.arrived`).
Handler = Callable[[Arrival], Awaitable[None]]


def arrival_data(arrival: Arrival) -> dict[str, Any]:
    i = arrival.inbound
    payload: Any = i.payload.to_dict() if isinstance(i.payload, Location) else i.payload
    return {"channel": i.channel, "sender": i.sender, "kind": i.kind.value,
            "event_id": i.event_id, "payload": payload,
            "location": isinstance(i.payload, Location), "at": i.at.isoformat(),
            "hints": dict(i.hints), "event": dict(arrival.event)}


def arrival_of(data: Mapping[str, Any]) -> Arrival:
    payload: Any = data.get("payload")
    if data.get("location"):
        payload = Location.from_dict(payload)
    inbound = Inbound(str(data["channel"]), str(data["sender"]), Kind(data["kind"]),
                      str(data["event_id"]), payload, datetime.fromisoformat(data["at"]),
                      {str(k): str(v) for k, v in (data.get("hints") or {}).items()})
    return Arrival(inbound, dict(data.get("event") or {}))


class Batcher(Generic[T]):
    """Group commit: `submit` waits until its items are written; items submitted while a
    write is under way go together in the next one, in submission order."""

    def __init__(self, write: Callable[[list[T]], Awaitable[None]]):
        self._write = write
        self._waiting: list[tuple[Sequence[T], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[T]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="ess-inbox-batch")
        await done

    async def _drain(self) -> None:
        while self._waiting:  # ends: each round takes everything waiting
            batch, self._waiting = self._waiting, []
            try:
                await self._write([item for items, _ in batch for item in items])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


class Inbox:
    """The journal's front (accept) and its drainer (run)."""

    def __init__(self, storage: Storage, spool: Spool, *, lease_seconds: float = LEASE_SECONDS,
                 lanes: int = LANES, metrics: Metrics | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.storage = storage
        self.spool = spool
        self.lease_seconds = lease_seconds
        self.lanes = lanes
        self.metrics = metrics or standard()
        self.clock = clock
        self.owner = f"inbox-{random.getrandbits(48):012x}"
        # Set by the application: channel name → its handler.
        self.handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()
        self._lanes: set[asyncio.Task[None]] = set()
        # Conversations in hand → whether this process took another of their events since
        # they were claimed. A lane that ends with nothing new, after a claim that left no
        # free lane behind (`_full` False), has nothing to claim: no empty claim follows it.
        # An event another process took for a lane in our hand waits for the poll.
        self._in_hand: dict[str, bool] = {}
        self._full = False
        # Shutdown asks the drainer to end between claims (`stop`), never cancels it inside
        # one: a claim cancelled after the store committed it leaves its entries leased to
        # this process with no lane to handle them, so an event just answered 200 would wait
        # out the lease instead of being handled before the process goes.
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        # While anything of ours is in the spool, new events go there too: a conversation's
        # events must reach the journal in the order they arrived.
        self._spooling = spool.waiting()
        # Group commit: webhooks that arrive while a write is under way share the next one
        # (one transaction, one fsync on SQLite).
        self._appends: Batcher[JournalEntry] = Batcher(self._append)
        # Entries handled since the last claim: the next claim forgets them in its own round
        # trip (a delete of their own was one statement per step). While a lane is free,
        # claims come at every arrival and at least every POLL_SECONDS; while none is, the
        # next claim follows the first lane to end. Until then they stay leased and renewed;
        # a crash in between only re-handles them, and the engine dedupes.
        self._handled: list[str] = []
        # The entries of the lanes running: only these (and the handled ones) are renewed.
        # One left out, its handling failed or no lane took it, comes back when its lease
        # runs out, even while this process stays busy with other conversations.
        self._held: set[str] = set()

    async def _append(self, entries: list[JournalEntry]) -> None:
        await self.storage.journal.append(entries)

    async def _forget_handled(self) -> None:
        """Forget the handled entries no claim has carried yet (at shutdown)."""
        handled, self._handled = self._handled, []
        if handled:
            await self.storage.journal.done(handled, self.owner)

    @classmethod
    def open(cls, storage: Storage, folder: Path, sealer: Sealer, **options: Any) -> Inbox:
        return cls(storage, Spool(folder, sealer), **options)

    # -- the front: called by the channels, before they answer -------------------------------

    async def accept(self, arrivals: Sequence[Arrival]) -> None:
        """Keep `arrivals` durably (store, else spool); InboxUnavailable when neither can."""
        if not arrivals:
            return
        now = self.clock()
        entries = [JournalEntry(uuid.uuid4().hex, a.inbound.channel, a.inbound.conversation,
                                f"{a.inbound.channel}:{a.inbound.event_id}", arrival_data(a),
                                now) for a in arrivals]
        if not self._spooling:
            try:
                await self._appends.submit(entries)
                self.metrics.inc("ess_journal_total", outcome="stored")
                for entry in entries:
                    if entry.conversation in self._in_hand:
                        self._in_hand[entry.conversation] = True
                self._wake.set()
                return
            except Exception as exc:
                log.warning("inbox.store_unavailable", error=type(exc).__name__)
        try:
            # Blocking, on purpose: nothing else may be answered before this is on disk.
            self.spool.write(entries)
        except OSError as exc:
            log.error("inbox.spool_failed", alert=True, error=type(exc).__name__)
            self.metrics.inc("ess_journal_total", outcome="refused")
            raise InboxUnavailable("neither the store nor the spool took the event") from None
        self._spooling = True
        self.metrics.inc("ess_journal_total", outcome="spooled")
        log.warning("inbox.spooled", events=len(entries))

    # -- the drainer ------------------------------------------------------------------------

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Replay the spool, claim, handle; until `stop` (or cancelled). Never raises for a
        failure."""
        self._runner = asyncio.current_task()
        renewer = asyncio.create_task(self._renew_forever(), name="ess-inbox-renew")
        try:
            while not self._stopping:
                # Cleared before the claim, not after: an arrival (or a lane finishing)
                # while the claim is under way keeps its wake, so it is not left for the
                # next poll.
                self._wake.clear()
                try:
                    if self._spooling:
                        await self.replay()
                    await self.drain_once()
                except Exception as exc:
                    if cancelling():
                        raise asyncio.CancelledError from exc  # see bot/waits.py
                    log.error("inbox.drain_failed", error=type(exc).__name__)
                    self._wake.clear()
                if len(self._lanes) < self.lanes:
                    # Room left after a claim: nothing else was free. Claiming again at once
                    # would only find nothing; wait for an arrival, a lane done, or the poll.
                    await woken(self._wake, POLL_SECONDS)
        finally:
            await cancel_and_wait(renewer)

    async def replay(self) -> int:
        """Hand the spool to the journal; how many events; the files stay if the store fails."""
        replayed = 0
        for _ in range(100):  # bounded: each round empties what was written before it
            files = self.spool.take()
            if not files:
                self._spooling = False
                break
            for path in files:
                entries = self.spool.read(path)
                if entries:
                    await self.storage.journal.append(entries)  # raises: stays for next time
                path.unlink()
                replayed += len(entries)
        if replayed:
            log.info("inbox.spool_replayed", events=replayed)
            self._wake.set()
        return replayed

    async def drain_once(self) -> int:
        """Claim free conversations up to the lane limit and start handling them."""
        room = self.lanes - len(self._lanes)
        if room <= 0:
            await asyncio.wait(set(self._lanes), return_when=asyncio.FIRST_COMPLETED)
            return 1
        handled, self._handled = self._handled, []
        try:
            entries = await self.storage.journal.claim(self.owner, room, self.lease_seconds,
                                                       self.clock(), handled=handled)
        except BaseException:
            # Not known to be forgotten: carried again by the next claim (`done` is
            # idempotent), or left leased, to be re-handled as a duplicate.
            self._handled[:0] = handled
            raise
        lanes: dict[str, list[JournalEntry]] = {}
        for entry in entries:
            lanes.setdefault(entry.conversation, []).append(entry)
        # As many lanes as there was room for: more may be waiting behind them.
        self._full = len(lanes) >= room
        for conversation, lane in lanes.items():
            self._in_hand[conversation] = False
            self._held.update(entry.id for entry in lane)
            task = asyncio.create_task(self._lane(lane), name="ess-inbox-lane")
            self._lanes.add(task)
            task.add_done_callback(self._lanes.discard)
        return len(entries)

    async def _lane(self, entries: list[JournalEntry]) -> None:
        try:
            await self._lane_entries(entries)
        finally:
            more = self._in_hand.pop(entries[0].conversation, False)
            self._held.difference_update(entry.id for entry in entries)
        if more or self._full:
            self._wake.set()  # the conversation (or another one) may have more waiting

    async def _lane_entries(self, entries: list[JournalEntry]) -> None:
        for entry in entries:
            try:
                await self._handle(entry)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if entry.attempts < GIVE_UP_ATTEMPTS:
                    # Left leased: it comes back, in order, when the lease runs out.
                    log.warning("inbox.handle_failed", channel=entry.channel,
                                attempts=entry.attempts, error=type(exc).__name__)
                    return
                log.error("inbox.gave_up", alert=True, channel=entry.channel,
                          error=type(exc).__name__, exc_info=exc)
            self._handled.append(entry.id)

    async def _handle(self, entry: JournalEntry) -> None:
        handler = self.handlers.get(entry.channel)
        if handler is None:
            raise LookupError(f"no channel {entry.channel!r} to handle the entry")
        # Before the last attempt, a failure leaves the entry to come back; on the last, the
        # engine answers the person as it would without a journal ("try again").
        retried = RETRIED_IF_FAILED.set(entry.attempts < GIVE_UP_ATTEMPTS)
        try:
            await handler(arrival_of(entry.data))
        finally:
            RETRIED_IF_FAILED.reset(retried)
        self.metrics.inc("ess_journal_total", outcome="handled")

    async def _renew_forever(self) -> None:
        while True:  # until cancelled
            await asyncio.sleep(self.lease_seconds / 3)
            # Not every lease of this owner: an entry whose handling failed would be renewed
            # for as long as other lanes kept the process busy, its conversation stuck.
            held = sorted(self._held.union(self._handled))
            if held:
                with contextlib.suppress(Exception):
                    await self.storage.journal.renew(self.owner, self.lease_seconds,
                                                     self.clock(), held)

    async def settle(self, seconds: float = 30.0) -> None:
        """Until the journal is empty and nothing is in hand (tests, benches); bounded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            if self._spooling:
                with contextlib.suppress(Exception):
                    await self.replay()
            if self._lanes:
                await asyncio.wait(set(self._lanes), timeout=max(0.0, deadline - loop.time()))
                continue
            if not self._spooling and await self.storage.journal.pending() == 0:
                return
            if not await self.drain_once():
                await asyncio.sleep(0.01)
        raise TimeoutError("the inbound journal did not settle")

    async def stop(self, seconds: float) -> None:
        """At shutdown: handle what is waiting, up to `seconds` (the events this process
        just answered 200, most of all); what is left stays in the journal, leased, and comes
        back to whoever claims after the lease."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._stopping = True
        self._wake.set()
        runner = self._runner
        if runner is not None and not runner.done():
            # It ends after the claim it may be in (its lanes join ours); cancelled only
            # if it cannot within the drain's time.
            await asyncio.wait({runner}, timeout=seconds)
            if not runner.done():
                await cancel_and_wait(runner)
        with contextlib.suppress(Exception):
            if self._spooling:
                await self.replay()  # the spool stays if the store is still away
            while loop.time() < deadline:
                if len(self._lanes) >= self.lanes:
                    # All lanes busy: drain_once would wait for one without the deadline.
                    await asyncio.wait(set(self._lanes), timeout=deadline - loop.time(),
                                       return_when=asyncio.FIRST_COMPLETED)
                    continue
                if not await self.drain_once():
                    break
                if self._lanes:
                    await asyncio.wait(set(self._lanes), timeout=deadline - loop.time(),
                                       return_when=asyncio.FIRST_COMPLETED)
        if self._lanes:
            _, late = await asyncio.wait(set(self._lanes),
                                         timeout=max(0.0, deadline - loop.time()))
            await cancel_and_wait(*late)
        # What the last lanes handled: no claim comes after them to carry it. Bounded, as a
        # store that is away would otherwise hold the shutdown; left, it is only re-handled.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(max(1.0, deadline - loop.time())):
                await self._forget_handled()
