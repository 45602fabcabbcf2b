"""The shared channel state in Redis: dedupe, web transcripts, rate limits.

Key layout (`<p>` the prefix; `<h>`, `<c>` keyed hashes, never the value itself):

    <p>:d:<h>            a channel event seen (LINE group events), PX = its window
    <p>:w:{<c>}          a web conversation's transcript: list of "<seq>:<sealed body>"
    <p>:wn:{<c>}         its sequence counter
    <p>:wk:{<c>}:<h>     an idempotency key already appended
    <p>:r:{rl}:<h>       a token bucket: hash t(okens) u(pdated ms); PX = until full again

A transcript's keys share the conversation's hash tag and the buckets share `{rl}`, so one
Lua script touches keys of one Redis Cluster slot. Everything expires by itself: the sweeps
have nothing to do. STOP is not here: it is a durable record, kept in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from storage.conversation_keys import ConversationKeys, opened_entries
from storage.crypto import Sealer
from storage.ports import TRANSCRIPT_KEEP, TRANSCRIPT_MESSAGES, Entry, Limit

# KEYS: list, counter, key record ('' = none). ARGV: sealed body, max kept, keep ms.
_APPEND = """
if KEYS[3] ~= '' and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then
  return 0
end
local seq = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], seq .. ':' .. ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return seq
"""

# KEYS: buckets. ARGV: now ms, then capacity and tokens-per-ms for each bucket. All or none:
# returns 0 when every bucket gave a token, else the (1-based) index of the first that had none.
_TAKE = """
local now = tonumber(ARGV[1])
local left, at = {}, {}
for i, key in ipairs(KEYS) do
  local cap, rate = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local stored = redis.call('HMGET', key, 't', 'u')
  local tokens, updated = cap, now
  if stored[1] then
    updated = tonumber(stored[2])
    tokens = math.min(cap, tonumber(stored[1]) + math.max(0, now - updated) * rate)
  end
  if tokens < 1 then return i end
  left[i], at[i] = tokens - 1, math.max(now, updated)
end
for i, key in ipairs(KEYS) do
  local cap, rate = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('HSET', key, 't', tostring(left[i]), 'u', string.format('%d', at[i]))
  redis.call('PEXPIRE', key, math.ceil((cap - left[i]) / rate) + 1)
end
return 0
"""


class RedisDedupe:
    """`SET NX` with expiry: True the first time a key is seen within the window."""

    def __init__(self, client: aioredis.Redis, prefix: str, sealer: Sealer):
        self._client = client
        self._prefix = prefix
        self._sealer = sealer

    async def first(self, key: str, window: timedelta, now: datetime) -> bool:
        return bool(await self._client.set(
            f"{self._prefix}:d:{self._sealer.digest(key)}", b"1", nx=True,
            px=max(1, int(window.total_seconds() * 1000))))

    async def forget(self, now: datetime) -> int:
        return 0  # the keys expire by themselves

    async def release(self, key: str) -> None:
        await self._client.delete(f"{self._prefix}:d:{self._sealer.digest(key)}")


class RedisTranscripts:
    """Messages sealed with the conversation's own key (storage/conversation_keys.py)."""

    def __init__(self, client: aioredis.Redis, prefix: str, keys: ConversationKeys):
        self._client = client
        self._prefix = prefix
        self._keys = keys
        self._sealer = keys.sealer
        self._append = client.register_script(_APPEND)

    def seal_with(self, keys: ConversationKeys) -> None:
        self._keys = keys

    def _tag(self, conversation: str) -> str:
        return "{" + self._sealer.digest(conversation) + "}"

    async def append(self, conversation: str, body: bytes, now: datetime,
                     key: str | None = None) -> int | None:
        tag, p = self._tag(conversation), self._prefix
        record = f"{p}:wk:{tag}:{self._sealer.digest(key)}" if key is not None else ""
        seq = int(await self._append(
            keys=[f"{p}:w:{tag}", f"{p}:wn:{tag}", record],
            args=[await self._keys.seal(self._keys.record(conversation), body),
                  TRANSCRIPT_MESSAGES,
                  int(TRANSCRIPT_KEEP.total_seconds() * 1000)]))
        return seq or None

    async def after(self, conversation: str, seq: int) -> list[Entry]:
        items = await self._client.lrange(f"{self._prefix}:w:{self._tag(conversation)}", 0, -1)
        rows = []
        for item in items:
            raw = item if isinstance(item, bytes) else item.encode()
            number, _, blob = raw.partition(b":")
            if int(number) > seq:
                rows.append((int(number), blob))
        return await opened_entries(self._keys, self._keys.record(conversation), rows)

    async def forget(self, before: datetime) -> int:
        return 0  # the keys expire TRANSCRIPT_KEEP after the last append

    async def erase(self, conversation: str) -> int:
        tag, p = self._tag(conversation), self._prefix
        keys = [f"{p}:w:{tag}", f"{p}:wn:{tag}"]
        keys += [k async for k in self._client.scan_iter(match=f"{p}:wk:{tag}:*")]
        return 1 if await self._client.delete(*keys) else 0


class RedisRateLimits:
    def __init__(self, client: aioredis.Redis, prefix: str, sealer: Sealer):
        self._prefix = prefix
        self._sealer = sealer
        self._take = client.register_script(_TAKE)

    async def take(self, limits: Sequence[Limit], now: datetime) -> Limit | None:
        args: list[float] = [int(now.timestamp() * 1000)]  # whole ms: exact in Lua
        for limit in limits:
            args += [limit.capacity, limit.rate / 1000]
        refused = int(await self._take(
            keys=[f"{self._prefix}:r:{{rl}}:{self._sealer.digest(limit.key)}"
                  for limit in limits], args=args))
        return limits[refused - 1] if refused else None

    async def forget(self, now: datetime) -> int:
        return 0  # a bucket expires when it is full again
