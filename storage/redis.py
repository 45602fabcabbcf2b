"""Redis for the hot, short-lived state: sessions, conversation locks, dedupe, live updates.

Key layout (`<p>` is the prefix, `<c>` a keyed hash of the conversation key, never the key
itself: an SMS conversation key is a phone number). The braces are Redis Cluster hash tags:
every key of one conversation lives in one slot, so one Lua script can touch them all.

    <p>:s:{<c>}        sealed session answers     PXAT = the session's idle deadline
    <p>:m:{<c>}        hash v(ersion) l(ang) a(ctive) u(pdated) x(expires)
                       lives `keep` past the deadline, so the next message can say
                       "your report timed out" and the version keeps growing
    <p>:l:{<c>}        the lock; value = the holder's fencing token, PX = lock_ttl
    <p>:f:{<c>}        the fencing counter (INCR)
    <p>:e:{<c>}:<h>    an event handled (dedupe), PX = dedupe window; <h> = hash of event id
    <p>:live:<topic>   pub/sub channel

A message costs two round trips: lock and load (Lua: the fencing token, the dedupe flag,
the session, read under the lock just taken), then save and unlock (Lua: fencing token,
version, session, dedupe record, and the lock deleted once all of that is written). The save
of the event a hold was taken for is the last write of that step (the engine's only one), so
it releases the lock itself; the hold's exit then has nothing to send. A refused save (stale
token or version) keeps the lock, for the reload and the next try. A hold without an event
key, or left without a save (a duplicate, a failure), is released by its own script as
before. A reload after a stale save is one pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bot.session import Session
from bot.text import dump_json
from config.settings import Settings
from storage.conversation_keys import ConversationKeys, session_from
from storage.crypto import Sealer
from storage.locks import LocalLocks, renewed
from storage.ports import DEDUPE_WINDOW, Loaded, StaleSession, StorageError
from storage.shared_redis import RedisDedupe, RedisRateLimits, RedisTranscripts

KEEP_AFTER_EXPIRY = timedelta(hours=48)

# KEYS: lock, fencing counter, then (optionally) event, session, meta: what `load` reads,
# read here under the lock just taken. GET answers false for a missing key, never nil, so
# the reply keeps its shape.
_LOCK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
if #KEYS == 2 then return {token} end
return {token, redis.call('EXISTS', KEYS[3]), redis.call('GET', KEYS[4]),
        redis.call('HMGET', KEYS[5], 'v', 'l', 'a', 'u', 'x')}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: session, meta, lock, event. ARGV: version, token ('' = no lock held), blob,
# updated ms, expires ms ('' = none), lang, active, dedupe ms, keep ms, release ('1': delete
# the lock once written; only with a token, which was just checked to be the lock's value).
_SAVE = """
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[2] then return -1 end
local v = tonumber(redis.call('HGET', KEYS[2], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -2 end
v = v + 1
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[9])
end
redis.call('HSET', KEYS[2], 'v', v, 'l', ARGV[6], 'a', ARGV[7], 'u', ARGV[4], 'x', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[9])
redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[8])
if ARGV[10] == '1' and ARGV[2] ~= '' then redis.call('DEL', KEYS[3]) end
return v
"""



@dataclass(slots=True)
class _Hold:
    """What this task's lock on one conversation brought: its fencing token, and the load
    read with it (taken by the first `load` of that event)."""

    token: str
    event_key: str | None = None
    loaded: Loaded | None = None
    released: bool = False  # by the save of `event_key`: nothing left to unlock


# The lock this task holds, per conversation: the engine holds the lock, loads and saves in
# the same task, so the save can prove it still holds it without a new argument.
_held: contextvars.ContextVar[dict[str, _Hold] | None] = contextvars.ContextVar(
    "ess_redis_held", default=None)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class Keys:
    def __init__(self, prefix: str, sealer: Sealer):
        self.prefix = prefix
        self._sealer = sealer

    def tag(self, conversation: str) -> str:
        return "{" + self._sealer.digest(conversation) + "}"

    def of(self, kind: str, conversation: str) -> str:
        return f"{self.prefix}:{kind}:{self.tag(conversation)}"

    def event(self, conversation: str, event_key: str) -> str:
        return f"{self.of('e', conversation)}:{self._sealer.digest(event_key)}"


class RedisSessions:
    """Sessions with a TTL: Redis ends idle sessions itself, so the sweep has nothing to do."""

    def __init__(self, client: aioredis.Redis, keys: Keys, own: ConversationKeys):
        self._client = client
        self._keys = keys
        self._own = own  # the conversations' data keys, in the PostgreSQL vault
        self._save = client.register_script(_SAVE)

    def seal_with(self, own: ConversationKeys) -> None:
        self._own = own

    async def load(self, conversation: str, event_key: str) -> Loaded:
        hold = (_held.get() or {}).get(conversation)
        if hold is not None and hold.loaded is not None and hold.event_key == event_key:
            loaded, hold.loaded = hold.loaded, None  # once: a reload after a stale save reads
            return loaded
        k = self._keys
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.exists(k.event(conversation, event_key))
            pipe.get(k.of("s", conversation))
            pipe.hmget(k.of("m", conversation), "v", "l", "a", "u", "x")
            duplicate, blob, meta = await pipe.execute()
        return await self.loaded(conversation, duplicate, blob, meta)

    async def loaded(self, conversation: str, duplicate: Any, blob: bytes | None,
                     meta: list[bytes | None]) -> Loaded:
        """`Loaded` from the raw replies: the dedupe flag, the sealed answers, the meta hash."""
        version, lang, active, updated, expires = meta
        if version is None:
            return Loaded(bool(duplicate), None)
        assert updated is not None and lang is not None  # written with the version
        updated_at = datetime.fromtimestamp(int(updated) / 1000, UTC)
        if blob is None:
            # The answers expired with the idle deadline; say so, as the SQL sweep does.
            session = Session(conversation, lang=lang.decode(), version=int(version),
                              updated_at=updated_at, expired=active == b"1")
            return Loaded(bool(duplicate), session)
        expires_at = datetime.fromtimestamp(int(expires) / 1000, UTC) if expires else None
        record = self._own.record(conversation)
        own = await self._own.for_read(record, blob)
        return Loaded(bool(duplicate), session_from(own, conversation, blob, int(version),
                                                    updated_at, expires_at))

    async def save(self, session: Session, event_key: str) -> None:
        k, conversation = self._keys, session.conversation
        hold = (_held.get() or {}).get(conversation)
        token = hold.token if hold is not None else ""
        # The save of the event the hold was taken for ends the step: unlock in the same trip.
        release = hold is not None and hold.event_key == event_key and not hold.released
        expires = session.expires_at if session.expires_at and session.active else None
        keep_until = (expires or session.updated_at) + KEEP_AFTER_EXPIRY
        keep_ms = max(1, _ms(keep_until) - _ms(session.updated_at))
        blob = await self._own.seal(self._own.record(conversation),
                                    dump_json(session.to_dict()).encode())
        result = await self._save(
            keys=[k.of("s", conversation), k.of("m", conversation), k.of("l", conversation),
                  k.event(conversation, event_key)],
            args=[session.version, token, blob,
                  _ms(session.updated_at), _ms(expires) if expires else "", session.lang,
                  "1" if session.active else "0", int(DEDUPE_WINDOW.total_seconds() * 1000),
                  keep_ms, "1" if release else "0"])
        if int(result) == -1:
            raise StaleSession("the conversation lock expired and was taken over")
        if int(result) < 0:
            raise StaleSession("session changed since it was loaded")
        session.version += 1
        if release:
            assert hold is not None
            hold.released = True

    async def sweep_idle(self, now: datetime) -> int:
        return 0  # PXAT on the session key: Redis forgets the answers at the deadline

    async def forget_events(self, before: datetime) -> int:
        return 0  # dedupe keys expire by themselves after DEDUPE_WINDOW

    async def erase(self, conversation: str) -> int:
        k = self._keys
        return int(await self._client.delete(k.of("s", conversation), k.of("m", conversation)))


class RedisLocks:
    """Per-conversation locks across processes that a crashed holder cannot keep.

    The lock key expires after `ttl`; each holder gets a fencing token (a per-conversation
    counter) stored as the lock's value, and the session save checks it, so a holder that
    stalled past its expiry cannot overwrite the work of the next one. In-process waiters
    queue on a local FIFO lock first: one poller per conversation per process. While the
    holder is alive its lock is renewed every third of `ttl` (a long step keeps it).
    """

    def __init__(self, client: aioredis.Redis, keys: Keys, ttl: float, wait: float,
                 sessions: RedisSessions):
        self._keys = keys
        self._sessions = sessions
        self._ttl_ms = int(ttl * 1000)
        self._wait = wait
        self._local = LocalLocks()
        self._lock = client.register_script(_LOCK)
        self._unlock = client.register_script(_UNLOCK)
        self._renew = client.register_script(_RENEW)

    @asynccontextmanager
    async def hold(self, conversation: str,
                   event_key: str | None = None) -> AsyncIterator[int]:
        k = self._keys
        lock_key = k.of("l", conversation)
        keys = [lock_key, k.of("f", conversation)]
        if event_key is not None:
            keys += [k.event(conversation, event_key), k.of("s", conversation),
                     k.of("m", conversation)]
        async with self._local.hold(conversation):
            token, reply = 0, []
            delay, deadline = 0.002, asyncio.get_running_loop().time() + self._wait
            while True:  # bounded by the deadline
                reply = await self._lock(keys=keys, args=[self._ttl_ms, 7 * 86_400_000])
                token = int(reply[0])
                if token or asyncio.get_running_loop().time() >= deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
            if not token:
                raise StorageError("the conversation is busy in another process")
            hold = _Hold(str(token))
            if event_key is not None:
                hold.event_key = event_key
                hold.loaded = await self._sessions.loaded(conversation, *reply[1:])
            held = dict(_held.get() or {})
            held[conversation] = hold
            reset = _held.set(held)

            async def renew() -> bool:
                if hold.released:
                    return True  # the save let it go: nothing to keep, nothing lost
                return bool(await self._renew(keys=[lock_key], args=[token, self._ttl_ms]))

            try:
                async with renewed(renew, self._ttl_ms / 3000):
                    yield token
            finally:
                _held.reset(reset)
                if not hold.released:
                    # If Redis is gone, the key expires after lock_ttl anyway.
                    with contextlib.suppress(RedisError, OSError):
                        await self._unlock(keys=[lock_key], args=[token])

    def __len__(self) -> int:
        return len(self._local)


class RedisLive:
    """Live updates (dashboard) over pub/sub. Payloads must carry no personal data."""

    def __init__(self, client: aioredis.Redis, prefix: str):
        self._client = client
        self._prefix = prefix

    async def publish(self, topic: str, message: dict[str, Any]) -> int:
        return int(await self._client.publish(f"{self._prefix}:live:{topic}",
                                              json.dumps(message, ensure_ascii=False)))

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """`async with live.subscribe(t) as messages: async for m in messages: …`"""
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(f"{self._prefix}:live:{topic}")

        async def messages() -> AsyncIterator[dict[str, Any]]:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    yield json.loads(item["data"])

        try:
            yield messages()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


def describe_url(url: str) -> str:
    """`host:port/db` for messages: never the password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    try:
        port = str(parts.port or 6379)
    except ValueError:  # a malformed port: say so without echoing the rest
        port = "?"
    return f"{parts.hostname or 'localhost'}:{port}{parts.path or '/0'}"


def make_client(settings: Settings, **pool_options: Any) -> aioredis.Redis:
    """A client whose every call gives up after `store_timeout` and is never retried.

    No automatic retry: a retried save whose first reply was lost would look stale, and a
    lost server must fail the request at once (the channel redelivers). A broken pooled
    connection is detected and replaced on its next use, so recovery needs no restart.
    """
    # Blocking pool: at the limit a call waits (up to store_timeout) for a free connection,
    # where the default pool would fail at once under a burst.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_pool_max,
        timeout=settings.store_timeout,
        socket_timeout=settings.store_timeout, socket_connect_timeout=settings.store_timeout,
        retry=Retry(NoBackoff(), 0), **pool_options)
    return aioredis.Redis(connection_pool=pool)


class RedisState:
    """The Redis half of the production storage: sessions, locks, dedupe, live updates, web
    transcripts and rate limits (storage/shared_redis.py)."""

    def __init__(self, client: aioredis.Redis, sealer: Sealer, settings: Settings,
                 prefix: str = "ess"):
        self.client = client
        keys = Keys(prefix, sealer)
        # On its own, without a database's vault: the service keys (see `seal_with`).
        own = ConversationKeys.service_only(sealer)
        self.sessions = RedisSessions(client, keys, own)
        # Waiting longer than a crashed holder's lock lives would fail messages needlessly.
        self.locks = RedisLocks(client, keys, settings.lock_ttl,
                                wait=settings.lock_ttl + settings.store_timeout,
                                sessions=self.sessions)
        self.dedupe = RedisDedupe(client, prefix, sealer)
        self.transcripts = RedisTranscripts(client, prefix, own)
        self.limits = RedisRateLimits(client, prefix, sealer)
        self.live = RedisLive(client, prefix)

    @classmethod
    async def open(cls, settings: Settings, sealer: Sealer, prefix: str = "ess",
                   **pool_options: Any) -> RedisState:
        try:
            client = make_client(settings, **pool_options)
        except ValueError:
            # The parser's message may quote the URL, password included: name the setting.
            raise StorageError("ESS_REDIS_URL is not a valid Redis URL "
                               "(redis://:password@host:port/db)") from None
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise StorageError(f"cannot reach Redis at {describe_url(settings.redis_url)} "
                               f"(ESS_REDIS_URL): {type(exc).__name__}") from None
        return cls(client, sealer, settings, prefix)

    def seal_with(self, own: ConversationKeys) -> None:
        """Seal sessions and transcripts with the conversation keys of the database's vault
        (the composite store does this: the keys must outlive a Redis flush, and a Redis
        dump must hold none)."""
        self.sessions.seal_with(own)
        self.transcripts.seal_with(own)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self.client.aclose()
