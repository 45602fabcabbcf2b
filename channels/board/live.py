"""Live updates for the board: one reader per process follows the durable event log and
fans each event out to the viewers connected to this process.

The log (storage `BoardLog`) is the truth: every process reads the same numbered events,
so a viewer on any process sees what was done on any other, and a viewer that reconnects
with `Last-Event-ID` is replayed exactly what it missed, in order, once. The reader polls
(`interval`) and, on PostgreSQL, wakes at once on the log's NOTIFY; each event costs one
read of its incident, whatever the number of viewers. With no viewer connected it reads
nothing at all (a NOTIFY per report would otherwise cost a query on the report's hot path):
the first viewer to connect takes the log's current number as the reader's place.

The fan-out is the reader's own loop, not a task per viewer: viewers are grouped into
audiences (the same scope and language), each event is checked once per audience against
a precomputed scope, its SSE bytes are made once per language, and the same bytes are
handed to every viewer of the audience by a synchronous `Sink.deliver` (for a browser, a
write to its socket; `channels/board/wire.py`). A viewer that cannot keep up (its socket's
buffer past a bound, or its catch-up queue past `QUEUE`) is dropped at once: it never holds
the others back nor grows memory, and its browser resumes with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from bot.incident import Incident, dispatched_agencies
from bot.staff import NATIONAL, BoardEvent
from bot.types import utcnow
from bot.waits import cancel_and_wait, cancelling, woken
from channels.board.metrics import BOARD_LAG
from storage.ports import Storage

log = structlog.get_logger(__name__)
QUEUE = 1000  # events a catching-up viewer may fall behind by before it is cut off
GAP = 0.1  # seconds at least between two reads of the log (a wake inside it waits)


@dataclass(frozen=True, slots=True)
class Change:
    """An event with its incident as read once for every viewer, and the areas and agencies
    it is visible to (computed once, so each audience's check is two set tests); `rendered`
    keeps its SSE bytes per language, made once for all viewers."""

    event: BoardEvent
    incident: Incident | None
    areas: frozenset[str]
    agencies: frozenset[str]
    rendered: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, event: BoardEvent, incident: Incident | None) -> Change:
        # The agencies recorded with the event: one told later (an escalation) does not see
        # what happened before it was told. A row older than that record: the incident's
        # agencies now.
        told: Iterable[str] = event.agencies if event.agencies is not None else (
            dispatched_agencies(incident.details) if incident else ())
        return cls(event, incident, frozenset(event.area_codes), frozenset(told))


@dataclass(frozen=True, slots=True)
class Scope:
    """A viewer's areas and agencies, precomputed: the stores' rule for scoped reads
    (`bot.staff.in_scope` and `agencies_in_scope`) as two set tests. Hashable, so viewers
    with the same scope share one check per event."""

    national: bool
    areas: frozenset[str]
    agencies: frozenset[str]

    @classmethod
    def of(cls, areas: Iterable[str], agencies: Iterable[str] = ()) -> Scope:
        areas = frozenset(areas)
        if NATIONAL in areas:  # the national centre sees all, whatever else it lists
            return cls(True, frozenset(), frozenset())
        return cls(False, areas, frozenset(agencies))

    def sees(self, change: Change) -> bool:
        """Whether `change` is within these areas and (if any) these agencies."""
        return self.national or (
            not self.areas.isdisjoint(change.areas)
            and (not self.agencies or not self.agencies.isdisjoint(change.agencies)))


class Batch:
    """What one audience is sent at once: its changes and their SSE bytes; the same bytes
    framed as one HTTP/1.1 chunk are made on first use and shared by every viewer."""

    __slots__ = ("_chunk", "changes", "sse")

    def __init__(self, changes: list[Change], sse: bytes):
        self.changes = changes
        self.sse = sse
        self._chunk: bytes | None = None

    def chunk(self) -> bytes:
        if self._chunk is None:
            self._chunk = b"%x\r\n%b\r\n" % (len(self.sse), self.sse)
        return self._chunk


class Sink(Protocol):
    """Where one viewer's live events go."""

    def deliver(self, batch: Batch) -> bool:
        """Hand over `batch` without waiting; False when the viewer cannot take it (gone,
        or too far behind) and must be dropped."""

    def end(self, slow: bool) -> None:
        """The stream is over (`slow`: dropped for not keeping up)."""


class Viewer:
    """One connected viewer: its scope, language (None: it takes changes, not bytes) and
    sink. Until its catch-up ends it is not `live`: the reader keeps what arrives for it in
    `pending` (bounded), and the catch-up hands those over after the replay."""

    __slots__ = ("lang", "live", "pending", "scope", "since", "sink")

    def __init__(self, scope: Scope, lang: str | None, sink: Sink):
        self.scope = scope
        self.lang = lang
        self.sink = sink
        self.live = False
        self.since = 0  # the last number its catch-up sent; live events at or below it are old
        self.pending: list[Change] = []


Render = Callable[[Change, str], bytes]


class Feed:
    """The process's reader of the board log, and its viewers grouped by audience."""

    def __init__(self, storage: Storage, interval: float = 0.5, render: Render | None = None,
                 gap: float = GAP):
        self.storage = storage
        self.interval = interval
        self.gap = gap
        self.render = render
        self.viewers: set[Viewer] = set()
        self.audiences: dict[tuple[Scope, str | None], set[Viewer]] = {}
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
            await cancel_and_wait(self._task)
        for viewer in list(self.viewers):
            self.remove(viewer)
            viewer.sink.end(slow=False)

    def poke(self) -> None:
        """Read now (this process just changed an incident)."""
        self._wake.set()

    def join(self, scope: Scope, lang: str | None, sink: Sink) -> Viewer:
        """Register a viewer (before its catch-up: nothing can fall between the two)."""
        viewer = Viewer(scope, lang, sink)
        self.viewers.add(viewer)
        self.audiences.setdefault((scope, lang), set()).add(viewer)
        return viewer

    def remove(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        key = (viewer.scope, viewer.lang)
        group = self.audiences.get(key)
        if group is not None:
            group.discard(viewer)
            if not group:
                del self.audiences[key]

    def _drop(self, viewer: Viewer) -> None:
        self.remove(viewer)
        viewer.sink.end(slow=True)

    def frames(self, changes: list[Change], lang: str | None) -> bytes:
        """The SSE bytes of `changes` in `lang`, each event rendered once per language."""
        if lang is None or self.render is None:
            return b""
        out = []
        for change in changes:
            sse = change.rendered.get(lang)
            if sse is None:
                sse = change.rendered[lang] = self.render(change, lang)
            out.append(sse)
        return b"".join(out)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store outage: keep trying, viewers keep their place
                if cancelling():
                    raise asyncio.CancelledError from exc  # see bot/waits.py
                log.warning("board.feed_failed", error=type(exc).__name__)
            await woken(self._wake, self.interval)
            # Under a burst every commit wakes us: the events of the gap's rest go out in the
            # next batch (one read, one write per viewer) rather than in one batch each. A
            # wake after a quiet spell reads at once.
            rest = began + self.gap - loop.time()
            if rest > 0:
                await asyncio.sleep(rest)
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
            self.fan_out(await self.changes(events))
            self.last = events[-1].seq

    def fan_out(self, changes: list[Change]) -> None:
        """Hand `changes` to every viewer that may see them: one scope check and one
        rendering per audience, the same bytes to each of its viewers, no task woken."""
        reached: set[int] = set()
        for (scope, lang), group in list(self.audiences.items()):
            seen = [c for c in changes if scope.sees(c)]
            if not seen:
                continue
            batch = Batch(seen, self.frames(seen, lang))
            for viewer in list(group):
                if not viewer.live:  # catching up: it takes these once its replay ends
                    viewer.pending.extend(seen)
                    if len(viewer.pending) > QUEUE:
                        self._drop(viewer)
                    continue
                out = batch
                if seen[0].event.seq <= viewer.since:  # its replay already read some
                    late = [c for c in seen if c.event.seq > viewer.since]
                    if not late:
                        continue
                    out = Batch(late, self.frames(late, lang))
                if viewer.sink.deliver(out):
                    reached.update(c.event.seq for c in out.changes)
                else:
                    self._drop(viewer)
        if reached:
            now = utcnow()
            for change in changes:
                if change.event.seq in reached:
                    BOARD_LAG.observe(max(0.0, (now - change.event.at).total_seconds()))

    async def changes(self, events: list[BoardEvent]) -> list[Change]:
        """Each event with its incident as it stands now (one read per incident)."""
        incidents: dict[str, Incident | None] = {}
        for e in events:
            if e.incident_id not in incidents:
                incidents[e.incident_id] = await self.storage.incidents.get_by_id(e.incident_id)
        return [Change.of(e, incidents[e.incident_id]) for e in events]

    async def catch_up(self, viewer: Viewer, after: int | None) -> AsyncIterator[list[Change]]:
        """The changes `viewer` missed (those after `after`, a reconnect; none without), then
        those that arrived for it meanwhile, in batches; the viewer is live when it ends."""
        if not self.following:
            # The reader stood still while nobody watched: it starts from the log's number
            # now, which the replay below reaches (it reads until nothing is left), so the
            # live events take over where it ends.
            place = await self.storage.board.last()
            if not self.following:
                self.last, self.following = place, True
                self.poke()
        sent = after if after is not None else self.last
        if after is not None:
            while viewer in self.viewers:
                missed = await self.storage.board.after(sent)
                if not missed:
                    break
                changes = await self.changes(missed)
                sent = changes[-1].event.seq
                batch = [c for c in changes if viewer.scope.sees(c)]
                if batch:
                    yield batch
        while viewer.pending:  # what the reader kept for it during the replay
            pending, viewer.pending = viewer.pending, []
            batch = [c for c in pending if c.event.seq > sent]
            if batch:
                sent = batch[-1].event.seq
                yield batch
        # No await since the last check: the reader's next batch goes straight to the sink.
        viewer.since, viewer.live = sent, True

    async def follow(self, areas: tuple[str, ...], after: int | None,
                     agencies: tuple[str, ...] = ()) -> AsyncIterator[list[Change]]:
        """The changes within `areas` (and `agencies`: those of incidents dispatched to one
        of them, as the stores' scoped reads), in batches: first those after `after` (a
        reconnect), then live. The same path as a browser's stream, with a queue for sink."""
        box = Collect()
        viewer = self.join(Scope.of(areas, agencies), None, box)
        try:
            async for batch in self.catch_up(viewer, after):
                yield batch
            while (changes := await box.queue.get()) is not None:
                yield changes
        finally:
            self.remove(viewer)


class Collect:
    """A sink that queues the changes themselves (for `Feed.follow`), bounded by `QUEUE`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[Change] | None] = asyncio.Queue()

    def deliver(self, batch: Batch) -> bool:
        if self.queue.qsize() >= QUEUE:
            return False
        self.queue.put_nowait(batch.changes)
        return True

    def end(self, slow: bool) -> None:
        self.queue.put_nowait(None)
