"""The production database: PostgreSQL through an asyncpg connection pool.

Every hot-path call is one SQL statement, hence one round trip: a statement is atomic by
itself, and data-modifying CTEs let one statement write a session and its dedupe record, or an
incident, its timeline event and its outbox rows together (invariant 1). The schema comes from
versioned migrations applied by `ess db migrate`; opening checks the version and refuses a
database that is behind or ahead of the code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg

from bot.session import Session
from config.settings import Settings, mask_url
from storage.audit import PgAudit
from storage.bindings_cache import ListenedBindings
from storage.case_photos import PgCasePhotos
from storage.cases import PgCases
from storage.conversation_keys import ConversationKeys, session_from
from storage.crypto import Sealer
from storage.exports import SqlExports
from storage.inbound_journal import PgJournal
from storage.locks import LocalLocks
from storage.menus import PgMenus
from storage.migrations import check_version, missing
from storage.pg_records import PgIncidents, PgOutbox, PgTimers, changed
from storage.ports import Loaded, SchemaMismatch, StaleSession, StorageError
from storage.privacy import SqlPrivacy
from storage.revocations import PgRevocations
from storage.shared_postgres import PgDedupe, PgOptOuts, PgRateLimits, PgTranscripts
from storage.staff import PgBoardLog, PgStaff
from storage.vault import Keyring, PgVault

BACKEND = "postgres"
Init = Callable[[asyncpg.Connection], Awaitable[None]]
# Any constant: it makes two `ess db migrate` runs at once take turns.
_MIGRATE_LOCK = 0x455353_4D4947


def describe_dsn(url: str) -> str:
    """`host:port/db` for messages and logs: never the user name or the password."""
    parts = urlsplit(url)
    try:
        port = str(parts.port or 5432)
    except ValueError:  # a malformed port: say so without echoing the rest
        port = "?"
    return f"{parts.hostname or 'localhost'}:{port}{parts.path or '/'}"


async def _no_reset(conn: asyncpg.Connection) -> None:
    # asyncpg rolls back an open transaction before calling this; the default reset would add
    # a round trip per call (RESET ALL, UNLISTEN *) for session state this code never sets.
    return None


async def create_pool(settings: Settings, *, minimum: int | None = None,
                      maximum: int | None = None, reset: bool = False,
                      init: Init | None = None) -> asyncpg.Pool:
    """A pool, or StorageError naming the server (without credentials) and the reason."""
    try:
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=minimum or settings.database_pool_min,
            max_size=maximum or settings.database_pool_max,
            timeout=settings.store_timeout,  # connecting
            command_timeout=settings.store_timeout,  # every statement
            max_inactive_connection_lifetime=60.0,
            # The incident update that moves the rollups is a long statement (about 90 kB,
            # storage/rollups.py): prepared once per connection, not planned every time.
            max_cacheable_statement_size=256 * 1024,
            reset=None if reset else _no_reset,
            init=init,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StorageError(f"cannot reach PostgreSQL at {describe_dsn(settings.database_url)} "
                           f"(ESS_DATABASE_URL): {type(exc).__name__}: "
                           f"{mask_url(_reason(exc))}") from None
    except ValueError:
        # The parser's message may quote the URL, password included: name the setting only.
        raise StorageError("ESS_DATABASE_URL is not a valid PostgreSQL URL "
                           "(postgresql://user:password@host:port/database)") from None
    assert pool is not None
    return pool


def _reason(exc: BaseException) -> str:
    # Server messages name roles and databases, never passwords; the DSN itself is not quoted.
    return str(exc).split("\n")[0][:200] or "no answer"


class PgSessions:
    """Sessions keyed by a keyed hash of the conversation (an SMS key is a phone number),
    sealed with the conversation's own key (storage/conversation_keys.py)."""

    def __init__(self, pool: asyncpg.Pool, sealer: Sealer, keys: ConversationKeys):
        self._pool = pool
        self._sealer = sealer
        self._keys = keys

    async def load(self, conversation: str, event_key: str) -> Loaded:
        record = self._keys.record(conversation)
        row = await self._pool.fetchrow(
            "SELECT EXISTS (SELECT 1 FROM handled_events WHERE event_key = $1), s.data, "
            "s.version, s.updated_at, s.expires_at FROM (SELECT 1) AS one "
            "LEFT JOIN sessions s ON s.conversation = $2",
            event_key, record)
        assert row is not None
        if row[1] is None:
            return Loaded(bool(row[0]), None)
        own = await self._keys.for_read(record, row[1])
        return Loaded(bool(row[0]), session_from(own, conversation, row[1], row[2], row[3],
                                                 row[4]))

    async def save(self, session: Session, event_key: str) -> None:
        record = self._keys.record(session.conversation)
        blob = (await self._keys.for_write([record]))[record].sealer.seal_json(
            session.to_dict())
        expires = session.expires_at if session.expires_at and session.active else None
        if session.version == 0:
            write = ("INSERT INTO sessions (conversation, data, version, updated_at, expires_at) "
                     "VALUES ($1, $2, 1, $3, $4) ON CONFLICT (conversation) DO NOTHING "
                     "RETURNING 1")
        else:
            write = ("UPDATE sessions SET data = $2, version = version + 1, updated_at = $3, "
                     "expires_at = $4 WHERE conversation = $1 AND version = $6 RETURNING 1")
        # One statement: the session and its event id are written together or not at all.
        count = await self._pool.fetchval(
            f"WITH s AS ({write}), e AS (INSERT INTO handled_events (event_key, handled_at) "
            "SELECT $5, $3 FROM s ON CONFLICT (event_key) DO NOTHING) SELECT count(*) FROM s",
            record, blob, session.updated_at, expires,
            event_key, *([session.version] if session.version else []))
        if count != 1:
            raise StaleSession("session changed since it was loaded")
        session.version += 1

    async def sweep_idle(self, now: datetime) -> int:
        rows = await self._pool.fetch(
            "SELECT conversation, data, version FROM sessions "
            "WHERE expires_at IS NOT NULL AND expires_at < $1 LIMIT 500", now)
        if not rows:
            return 0
        owns = await self._keys.for_write([r[0] for r in rows])
        updates = []
        for key, blob, version in rows:
            session = session_from(await self._keys.for_read(key, blob), key, blob, version,
                                   now, None)
            session.end()
            session.expired = True
            updates.append((owns[key].sealer.seal_json(session.to_dict()), key, version))
        # Conditional on the version: a message that arrived meanwhile wins over the sweep.
        ended = await self._pool.fetchval(
            "WITH u AS (UPDATE sessions s SET data = v.data, version = s.version + 1, "
            "expires_at = NULL FROM unnest($1::bytea[], $2::text[], $3::bigint[]) "
            "AS v(data, conversation, version) "
            "WHERE s.conversation = v.conversation AND s.version = v.version RETURNING 1) "
            "SELECT count(*) FROM u",
            [u[0] for u in updates], [u[1] for u in updates], [u[2] for u in updates])
        return int(ended)

    async def erase(self, conversation: str) -> int:
        return changed(await self._pool.execute(
            "DELETE FROM sessions WHERE conversation = $1", self._sealer.digest(conversation)))

    async def forget_events(self, before: datetime) -> int:
        return changed(await self._pool.execute(
            "DELETE FROM handled_events WHERE handled_at < $1", before))


def _lock_key(sealer: Sealer, conversation: str) -> int:
    """The advisory lock's number: from the keyed digest, as every other key of a
    conversation (pg_locks is visible to any database user; a bare hash of "sms:+66…" would
    be reversed by enumerating Thai numbers)."""
    return int.from_bytes(bytes.fromhex(sealer.digest(conversation))[:8], "big", signed=True)


class PgLocks:
    """Conversation locks across processes without Redis: session-level advisory locks.

    Each holder keeps one connection of a separate pool (so holders waiting for the main pool
    can never starve the lock they hold); a crashed holder's connection closes and the server
    frees its locks. The pool's default reset (pg_advisory_unlock_all) releases the lock when
    the connection goes back, whatever happened in between. In-process waiters queue on a
    local FIFO lock first, so only one of them per conversation waits in PostgreSQL.
    """

    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._sealer = sealer
        self._local = LocalLocks()

    @asynccontextmanager
    async def hold(self, conversation: str,
                   event_key: str | None = None) -> AsyncIterator[int]:
        async with self._local.hold(conversation), self._pool.acquire() as conn:
            token = await conn.fetchval(
                "SELECT nextval('lock_fence') FROM (SELECT pg_advisory_lock($1)) AS l",
                _lock_key(self._sealer, conversation))
            yield int(token)

    def __len__(self) -> int:
        return len(self._local)


class PostgresStorage:
    """PostgreSQL for everything; `await PostgresStorage.open(settings, sealer)`."""

    def __init__(self, pool: asyncpg.Pool, lock_pool: asyncpg.Pool, sealer: Sealer,
                 timeout: float):
        self.pool = pool
        self._lock_pool = lock_pool
        self._timeout = timeout
        keyring = Keyring(sealer)
        self.vault = PgVault(pool, sealer, keyring)
        self.conversation_keys = self.vault.conversations = ConversationKeys(sealer, self.vault)
        self.sessions = PgSessions(pool, sealer, self.conversation_keys)
        self.locks = PgLocks(lock_pool, sealer)
        self.incidents = PgIncidents(pool, sealer, keyring)
        self.cases = PgCases(pool, sealer, keyring)
        self.case_photos = PgCasePhotos(pool, keyring)
        self.outbox = PgOutbox(pool, sealer, keyring)
        self.timers = PgTimers(pool)
        self.bindings = ListenedBindings(pool)
        self.dedupe = PgDedupe(pool, sealer)
        self.optouts = PgOptOuts(pool, sealer)
        self.transcripts = PgTranscripts(pool, self.conversation_keys)
        self.menus = PgMenus(pool, sealer)
        self.limits = PgRateLimits(pool, sealer)
        self.revocations = PgRevocations(pool, sealer)
        self.audit = PgAudit(pool, sealer)
        self.privacy = SqlPrivacy(pool, postgres=True)
        self.exports = SqlExports(pool, sealer, postgres=True)
        self.staff = PgStaff(pool, sealer)
        self.board = PgBoardLog(pool)
        self.journal = PgJournal(pool, self.conversation_keys)

    @classmethod
    async def open(cls, settings: Settings, sealer: Sealer,
                   init: Init | None = None) -> PostgresStorage:
        """Connect and check the schema version; StorageError (clear message) otherwise.

        `init` runs on every new connection (the tests count round trips with it).
        """
        pool = await create_pool(settings, init=init)
        try:
            await check_schema(pool)
            lock_pool = await create_pool(settings, minimum=1, reset=True, init=init)
        except BaseException:
            await pool.close()
            raise
        storage = cls(pool, lock_pool, sealer, settings.store_timeout)
        await storage.bindings.start()
        return storage

    async def ping(self) -> bool:
        try:
            return bool(await self.pool.fetchval("SELECT 1", timeout=self._timeout))
        except Exception:
            return False

    async def close(self) -> None:
        await self.bindings.stop()
        for pool in (self._lock_pool, self.pool):
            try:
                await pool.close()
            except Exception:
                pool.terminate()


async def schema_version(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return max(await applied_versions(conn), default=0)


async def applied_versions(conn: asyncpg.Connection | asyncpg.Pool) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {int(r[0]) for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def check_schema(pool: asyncpg.Pool) -> None:
    """Refuse a database that is behind (not migrated) or ahead (a newer release) of the code."""
    try:
        applied = await applied_versions(pool)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StorageError(f"cannot read the schema version: {type(exc).__name__}") from None
    check_version(BACKEND, max(applied, default=0))
    lacking = missing(BACKEND, applied)
    if lacking:
        raise SchemaMismatch(
            f"the database lacks schema version(s) {', '.join(str(m.version) for m in lacking)}"
            ": run `ess db migrate` first")


async def migrate(settings: Settings) -> tuple[int, int]:
    """Apply the pending migrations, each in its own transaction; (before, after) versions."""
    pool = await create_pool(settings, minimum=1, maximum=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer "
                               "PRIMARY KEY, name text NOT NULL, applied_at timestamptz)")
        before = await schema_version(pool)
        check_version(BACKEND, before)
        for migration in missing(BACKEND, await applied_versions(pool)):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
                # Checked again under the lock: another migrator may have applied it.
                if migration.version in await applied_versions(conn):
                    continue
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise StorageError(f"migration {migration.version}_{migration.name} "
                                       f"failed: {_reason(exc)}") from None
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                                   migration.version, migration.name, datetime.now(UTC))
        return before, await schema_version(pool)
    finally:
        await pool.close()
