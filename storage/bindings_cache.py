"""Responder and volunteer bindings, answered from memory (PostgreSQL).

Every private event asks whether its chat is a registered responder's or volunteer's
(bot.inbound), every submit who serves its areas (the router), and the answers change only
when a binding is made or removed, by any process or the CLI. The trigger of migration 0200
NOTIFYs `ess_bindings` at every commit that changes the table; a listening process forgets
every answer then, and its own changes forget them at once. While it is not listening (its
connection dropped), every call reads, and a listen is tried again every few seconds. An
answer is kept `TTL` seconds at most, a bound on what a lost notification could leave stale.

Most private chats are reporters' with no binding, nearly every one of them new, so an
answer kept per address would still be a read for each of them: one statement in every
report's first step. While the table holds at most `WHOLE` bindings, the first question
after a change reads all of them, and every chat is answered from that copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg
import structlog

from storage.pg_records import PgBindings
from storage.ports import Binding

log = structlog.get_logger(__name__)

CHANNEL = "ess_bindings"
TTL = 30.0
LIMIT = 10_000  # addresses remembered (most are reporters, with no binding)
WHOLE = 20_000  # bindings held whole in memory; a larger table is read per address
RELISTEN = 5.0  # seconds between attempts to listen again
MIN_POOL = 3  # connections the pool must allow before one is held for listening


class ListenedBindings(PgBindings):
    """`PgBindings` whose reads are served from memory while PostgreSQL notifies."""

    def __init__(self, pool: asyncpg.Pool):
        super().__init__(pool)
        self._answers: OrderedDict[tuple[str, ...], tuple[float, list[Binding]]] = OrderedDict()
        self._generation = 0  # moves at every forget: a read that raced one is not kept
        # Every binding by address, read whole (`WHOLE`), and until when; a generation at
        # which the table was found larger, so it is read per address until a change.
        self._whole: dict[str, list[Binding]] | None = None
        self._whole_until = 0.0
        self._too_large = -1
        self._reading = asyncio.Lock()  # one whole read at a time: the others wait for it
        # After a whole read failed, until when chats are read per address: the callers
        # queued behind it must not each wait out a store that is away, one after another.
        self._whole_retry = 0.0
        self._conn: asyncpg.Connection | None = None
        self._next_listen = 0.0

    async def start(self) -> None:
        """Listen for changes; on failure every call reads until a later attempt works."""
        self._next_listen = time.monotonic() + RELISTEN
        if self._pool.get_max_size() < MIN_POOL:
            return  # holding one of so few connections would starve the rest: read instead
        try:
            conn = await self._pool.acquire()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("bindings.listen_failed", error=type(exc).__name__)
            return
        try:
            await conn.add_listener(CHANNEL, self._changed)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("bindings.listen_failed", error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
            return
        conn.add_termination_listener(self._lost)
        self._forget()  # what was read before listening may have changed unseen
        self._conn = conn

    async def stop(self) -> None:
        conn, self._conn = self._conn, None
        self._forget()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.remove_termination_listener(self._lost)
                await conn.remove_listener(CHANNEL, self._changed)
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    @property
    def listening(self) -> bool:
        return self._conn is not None

    def _changed(self, *_: object) -> None:
        self._forget()

    def _lost(self, *_: object) -> None:
        self._conn = None
        self._forget()
        log.warning("bindings.listen_lost")

    def _forget(self) -> None:
        self._answers.clear()
        self._whole = None
        self._generation += 1

    async def for_address(self, address: str) -> list[Binding]:
        whole = await self._whole_table()
        if whole is not None:
            return list(whole.get(address, ()))
        return await self._answer(("address", address),
                                  lambda: PgBindings.for_address(self, address))

    async def _whole_table(self) -> dict[str, list[Binding]] | None:
        """Every binding by address, while listening and the table is small; else None."""
        if self._conn is None and time.monotonic() >= self._next_listen:
            await self.start()
        if self._whole_retry > time.monotonic():
            return None
        async with self._reading:
            now = time.monotonic()
            if self._conn is None or self._too_large == self._generation \
                    or self._whole_retry > now:
                return None
            if self._whole is not None and self._whole_until > now:
                return self._whole
            generation = self._generation
            try:
                rows = await self._pool.fetch(
                    "SELECT address, area, agency, bound_at FROM bindings ORDER BY bound_at "
                    "LIMIT $1", WHOLE + 1)
            except Exception:
                self._whole_retry = time.monotonic() + RELISTEN
                raise
            if len(rows) > WHOLE:
                self._too_large = generation
                return None
            whole: dict[str, list[Binding]] = {}
            for row in rows:
                whole.setdefault(row[0], []).append(Binding(*row))
            if generation == self._generation and self._conn is not None:
                self._whole, self._whole_until = whole, now + TTL
            return whole

    async def for_areas(self, areas: Sequence[str]) -> list[Binding]:
        # The router's question at every submit: who serves these areas.
        return await self._answer(("areas", *areas), lambda: PgBindings.for_areas(self, areas))

    async def _answer(self, key: tuple[str, ...],
                      read: Callable[[], Awaitable[list[Binding]]]) -> list[Binding]:
        now = time.monotonic()
        if self._conn is None and now >= self._next_listen:
            await self.start()
        kept = self._answers.get(key) if self._conn is not None else None
        if kept is not None and kept[0] > now:
            self._answers.move_to_end(key)
            return list(kept[1])
        generation = self._generation
        found = await read()
        if generation == self._generation and self._conn is not None:
            self._answers[key] = (now + TTL, found)
            self._answers.move_to_end(key)
            while len(self._answers) > LIMIT:
                self._answers.popitem(last=False)
        return list(found)

    async def redeem(self, code: str, address: str, now: datetime) -> Binding | None:
        try:
            return await super().redeem(code, address, now)
        finally:
            self._forget()

    async def unbind(self, address: str) -> int:
        try:
            return await super().unbind(address)
        finally:
            self._forget()
