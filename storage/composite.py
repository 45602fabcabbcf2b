"""PostgreSQL for what must last, Redis for the hot per-message state, as one Storage."""

from __future__ import annotations

from storage.postgres import PostgresStorage
from storage.redis import RedisState


class CompositeStorage:
    """Sessions, locks, dedupe, web transcripts and rate limits from Redis; incidents, outbox,
    timers, bindings, STOP (a durable record), SMS menus and the inbound journal from
    PostgreSQL (what was answered 200 must outlive a Redis restart)."""

    def __init__(self, database: PostgresStorage, state: RedisState):
        self.database = database
        self.state = state
        # Redis holds the sealed sessions and transcripts, PostgreSQL's vault their keys.
        state.seal_with(database.conversation_keys)
        self.sessions = state.sessions
        self.locks = state.locks
        self.incidents = database.incidents
        self.cases = database.cases
        self.case_photos = database.case_photos
        self.outbox = database.outbox
        self.timers = database.timers
        self.bindings = database.bindings
        self.optouts = database.optouts
        self.menus = database.menus  # a menu must outlive a Redis restart too
        self.dedupe = state.dedupe
        self.transcripts = state.transcripts
        self.limits = state.limits
        self.vault = database.vault
        self.privacy = database.privacy
        # A sealed export waits minutes for one download: PostgreSQL's DELETE … RETURNING
        # gives it to exactly one taker, and a file of megabytes stays out of Redis's memory.
        self.exports = database.exports
        self.audit = database.audit  # durable and chained in PostgreSQL
        self.revocations = database.revocations  # durable: a Redis flush must not undo one
        self.staff = database.staff  # accounts and board sessions: durable and revocable
        self.board = database.board  # the log is written with the incident, in PostgreSQL
        self.journal = database.journal

    async def ping(self) -> bool:
        # Both are needed to take a message: ready only when both answer.
        return await self.database.ping() and await self.state.ping()

    async def close(self) -> None:
        try:
            await self.state.close()
        finally:
            await self.database.close()
