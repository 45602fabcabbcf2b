"""Live updates for the board: one reader per process follows the durable event log and
fans each event out to the viewers connected to this process.

The log (storage `BoardLog`) is the truth: every process reads the same numbered events,
so a viewer on any process sees what was done on any other, and a viewer that reconnects
with `Last-Event-ID` is replayed exactly what it missed, in order, once. The reader polls
(`interval`) and, on PostgreSQL, wakes at once on the log's NOTIFY; each event costs one
read of its incident, whatever the number of viewers. With no viewer connected it reads
nothing at all (a NOTIFY per report would otherwise cost a query on the report's hot path):
the first viewer to connect takes the log's current number as the reader's place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from bot.incident import Incident, dispatched_agencies
from bot.staff import BoardEvent, agencies_in_scope, in_scope
from storage.ports import Storage

log = structlog.get_logger(__name__)
QUEUE = 1000  # a viewer this far behind is cut off; its browser reconnects and replays


@dataclass(frozen=True, slots=True)
class Change:
    """An event with its incident as read once for every viewer; `rendered` keeps the bytes
    sent per language, so a hundred viewers cost one rendering each."""

    event: BoardEvent
    incident: Incident | None
    rendered: dict[str, bytes] = field(default_factory=dict)


class Feed:
    """The process's reader of the board log, and its viewers' queues."""

    def __init__(self, storage: Storage, interval: float = 0.5):
        self.storage = storage
        self.interval = interval
        self.viewers: set[asyncio.Queue[Change | None]] = set()
        self.last = 0
        # Whether `last` is the reader's place in the log; False while nobody watches (the
        # reader then skips every wake-up) until a viewer connects and sets it.
        self.following = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unlisten: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        self._unlisten = await self.storage.board.wake_on_append(self.poke)
        self._task = asyncio.create_task(self._run(), name="ess-board-feed")

    async def stop(self) -> None:
        if self._unlisten is not None:
            with contextlib.suppress(Exception):
                await self._unlisten()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for q in list(self.viewers):
            q.put_nowait(None)

    def poke(self) -> None:
        """Read now (this process just changed an incident)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store outage: keep trying, viewers keep their place
                log.warning("board.feed_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def _read(self) -> None:
        while True:
            if not self.viewers:
                # Nobody is watching: no query at all. The first viewer to connect sets our
                # place (and replays from its own number what it missed before).
                self.following = False
                return
            if not self.following:
                return  # a viewer is connecting: it sets our place, then wakes us
            events = await self.storage.board.after(self.last)
            if not events:
                return
            for change in await self.changes(events):
                for q in list(self.viewers):
                    if q.qsize() >= QUEUE:
                        self.viewers.discard(q)
                        q.put_nowait(None)
                    else:
                        q.put_nowait(change)
            self.last = events[-1].seq

    async def changes(self, events: list[BoardEvent]) -> list[Change]:
        """Each event with its incident as it stands now (one read per incident)."""
        incidents: dict[str, Incident | None] = {}
        for e in events:
            if e.incident_id not in incidents:
                incidents[e.incident_id] = await self.storage.incidents.get_by_id(e.incident_id)
        return [Change(e, incidents[e.incident_id]) for e in events]

    async def follow(self, areas: tuple[str, ...], after: int | None,
                     agencies: tuple[str, ...] = ()) -> AsyncIterator[list[Change]]:
        """The changes within `areas` (and `agencies`: those of incidents dispatched to one
        of them, as the stores' scoped reads), in batches (what is there at once goes out as
        one write): first those after `after` (a reconnect), then live."""

        def within(change: Change) -> bool:
            if not in_scope(areas, change.event.area_codes):
                return False
            # The agencies recorded with the event: one told later (an escalation) does not
            # see what happened before it was told. A row older than that record: the
            # incident's agencies now.
            dispatched = change.event.agencies
            if dispatched is None:
                dispatched = (tuple(dispatched_agencies(change.incident.details))
                              if change.incident else ())
            return agencies_in_scope(areas, agencies, dispatched)

        queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self.viewers.add(queue)  # before the replay: nothing can fall between the two
        try:
            if not self.following:
                # The reader stood still while nobody watched: it starts from the log's
                # number now, which the replay below reaches (it reads until nothing is
                # left), so the live events take over where it ends.
                place = await self.storage.board.last()
                if not self.following:
                    self.last, self.following = place, True
                    self.poke()
            sent = after if after is not None else self.last
            if after is not None:
                while True:
                    missed = await self.storage.board.after(sent)
                    if not missed:
                        break
                    changes = await self.changes(missed)
                    sent = changes[-1].event.seq
                    batch = [c for c in changes if within(c)]
                    if batch:
                        yield batch
            while True:
                pending = [await queue.get()]
                while not queue.empty():
                    pending.append(queue.get_nowait())
                batch = []
                for live in pending:
                    if live is None:
                        if batch:
                            yield batch
                        return
                    if live.event.seq <= sent:
                        continue  # already replayed
                    sent = live.event.seq
                    if within(live):
                        batch.append(live)
                if batch:
                    yield batch
        finally:
            self.viewers.discard(queue)
