"""Conversation keys (storage/conversation_keys.py) on every backend.

A conversation's live state (its session, its web transcript, its journal entries not yet
handled) is sealed with a data key of its own, held in the vault: what is checked is what a
copy of the data without the vault holds (the raw rows, the raw Redis values), before and
after the conversation's key is destroyed, and that a row from before conversation keys
still opens (an upgrade loses nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from bot.types import utcnow
from config.settings import Settings
from storage.conversation_keys import ConversationKeys
from storage.crypto import Sealer, SealError, legacy_lookup_key
from storage.factory import open_storage
from storage.ports import Storage
from tests import test_storage_contract as contract
from tests.test_storage_contract import CONVERSATION, PHONE, entry, session

backend_settings, store = contract.backend_settings, contract.store
SERVICE = Sealer([b"k" * 32])
RECORD = SERVICE.digest(CONVERSATION)
OTHER = "line:U" + "b" * 32


def keys_of(storage: Storage) -> ConversationKeys:
    """The store's conversation keys (the composite's are its database's)."""
    keys: ConversationKeys = getattr(storage, "database", storage).conversation_keys
    return keys


@contextmanager
def before_conversation_keys(storage: Storage) -> Iterator[None]:
    """Write as the code before conversation keys did: with the service keys."""
    keys = keys_of(storage)
    rows, keys._rows = keys._rows, None
    try:
        yield
    finally:
        keys._rows = rows


async def raw_blobs(settings: Settings, conversation: str) -> dict[str, list[bytes]]:
    """The sealed values a copy of the data holds for `conversation`, by kind."""
    record = SERVICE.digest(conversation)
    out: dict[str, list[bytes]] = {"session": [], "transcript": [], "journal": []}
    if settings.redis_url:
        client = aioredis.from_url(settings.redis_url)
        try:
            blob = await client.get(f"ess:s:{{{record}}}")
            out["session"] += [blob] if blob is not None else []
            for item in await client.lrange(f"ess:w:{{{record}}}", 0, -1):
                out["transcript"].append(item.partition(b":")[2])
        finally:
            await client.aclose()
    queries = {"session": "SELECT data FROM sessions WHERE conversation = {}",
               "transcript": "SELECT body FROM transcript_messages WHERE conversation = {}",
               "journal": "SELECT data FROM inbound_journal WHERE lane = {}"}
    if settings.database_url:
        conn = await asyncpg.connect(settings.database_url)
        try:
            for kind, sql in queries.items():
                if settings.redis_url and kind != "journal":
                    continue
                out[kind] += [bytes(r[0]) for r in await conn.fetch(sql.format("$1"), record)]
        finally:
            await conn.close()
    else:
        import sqlite3

        db = sqlite3.connect(settings.sqlite_path)
        try:
            for kind, sql in queries.items():
                out[kind] += [bytes(r[0]) for r in db.execute(sql.format("?"), (record,))]
        finally:
            db.close()
    return out


async def fill(storage: Storage, conversation: str = CONVERSATION) -> None:
    """A live session, a web transcript message and a journal entry not yet handled."""
    await storage.sessions.save(session(conversation), f"ev:{conversation}")
    await storage.transcripts.append(conversation, f"from {PHONE}".encode(), utcnow())
    await storage.journal.append([entry(conversation, 0)])


@pytest.fixture
async def second(backend_settings: Settings) -> AsyncIterator[Storage]:
    """Another process on the same backend."""
    storage = await open_storage(backend_settings, Sealer([b"k" * 32]))
    try:
        yield storage
    finally:
        await storage.close()


async def test_live_state_is_sealed_with_the_conversations_own_key(
        store: Storage, backend_settings: Settings) -> None:
    await fill(store)
    [status] = await store.vault.status([RECORD])
    assert status.live and status.kind == "conversation" and status.subject == RECORD
    blobs = await raw_blobs(backend_settings, CONVERSATION)
    assert all(len(v) == 1 for v in blobs.values()), blobs
    for blob in (b for v in blobs.values() for b in v):
        with pytest.raises(SealError):
            SERVICE.open(blob)  # the service keys alone open none of it
    loaded = await store.sessions.load(CONVERSATION, "ev:next")
    assert loaded.session is not None and loaded.session.slots["phone"] == PHONE
    [message] = await store.transcripts.after(CONVERSATION, 0)
    assert message.body == f"from {PHONE}".encode()
    [claimed] = await store.journal.claim("w", 10, 30, utcnow())
    assert claimed.conversation == CONVERSATION and claimed.data["from"] == PHONE


async def test_after_its_key_is_shredded_a_copy_opens_nothing_and_the_next_write_starts_afresh(
        store: Storage, backend_settings: Settings) -> None:
    await fill(store)
    await fill(store, OTHER)
    copy = await raw_blobs(backend_settings, CONVERSATION)
    assert await store.vault.shred([RECORD], utcnow()) == 1
    # The copy taken before: nothing opens, with the service keys or with the vault as it
    # is now; the other conversation's state in the same copy still does.
    now_keys = [k for k in await store.vault.status([RECORD]) if k.live]
    assert now_keys == []
    for blob in (b for v in copy.values() for b in v):
        with pytest.raises(SealError):
            SERVICE.open(blob)
        assert await keys_of(store).open(RECORD, blob) is None
    other = SERVICE.digest(OTHER)
    for blob in (b for v in (await raw_blobs(backend_settings, OTHER)).values() for b in v):
        assert await keys_of(store).open(other, blob) is not None
    # The live stores: the transcript reads as empty, the journal entry is dropped as owed
    # to nobody, the other conversation's is handled.
    assert await store.transcripts.after(CONVERSATION, 0) == []
    claimed = await store.journal.claim("w", 10, 30, utcnow())
    assert [e.conversation for e in claimed] == [OTHER]
    assert await store.journal.pending() == 1  # the other's, leased
    loaded = await store.sessions.load(CONVERSATION, "ev:after")
    assert loaded.session is not None and loaded.session.slots == {}  # unreadable: blank
    # What the person says after the erase is sealed with a new key and reads again.
    loaded.session.slots["said"] = "again"
    await store.sessions.save(loaded.session, "ev:after")
    reread = await store.sessions.load(CONVERSATION, "ev:later")
    assert reread.session is not None and reread.session.slots == {"said": "again"}
    await store.journal.append([entry(CONVERSATION, 1)])
    [again] = await store.journal.claim("w2", 10, 30, utcnow())
    assert again.id == entry(CONVERSATION, 1).id
    [status] = await store.vault.status([RECORD])
    assert status.live


async def test_rows_from_before_conversation_keys_still_open(store: Storage) -> None:
    with before_conversation_keys(store):
        await fill(store)
    assert await store.vault.status([RECORD]) == []  # written with the service keys
    loaded = await store.sessions.load(CONVERSATION, "ev:next")
    assert loaded.session is not None and loaded.session.slots["phone"] == PHONE
    [message] = await store.transcripts.after(CONVERSATION, 0)
    assert message.body == f"from {PHONE}".encode()
    [claimed] = await store.journal.claim("w", 10, 30, utcnow())
    assert claimed.data["from"] == PHONE
    # The next write seals with the conversation's new key; both read back.
    await store.transcripts.append(CONVERSATION, b"new", utcnow())
    assert [e.body for e in await store.transcripts.after(CONVERSATION, 0)] == [
        f"from {PHONE}".encode(), b"new"]
    [status] = await store.vault.status([RECORD])
    assert status.live and status.kind == "conversation"


async def test_an_arrival_after_an_erase_in_another_process_is_kept_readable(
        store: Storage, second: Storage) -> None:
    await store.journal.append([entry(CONVERSATION, 0)])  # `store` caches the key
    await second.vault.shred([RECORD], utcnow())  # another process erases the subject
    # `store` still holds the destroyed key: the journal must not seal with it.
    assert await store.journal.append([entry(CONVERSATION, 1), entry(OTHER, 0)]) == 2
    claimed = await second.journal.claim("w", 10, 30, utcnow())
    assert sorted(e.id for e in claimed) == sorted([entry(CONVERSATION, 1).id,
                                                   entry(OTHER, 0).id])
    # A redelivery is still kept once.
    assert await store.journal.append([entry(CONVERSATION, 1)]) == 0


async def test_a_key_made_by_another_process_opens_here(store: Storage,
                                                        second: Storage) -> None:
    await fill(second)
    loaded = await store.sessions.load(CONVERSATION, "ev:next")
    assert loaded.session is not None and loaded.session.slots["phone"] == PHONE
    assert [e.body for e in await store.transcripts.after(CONVERSATION, 0)] == [
        f"from {PHONE}".encode()]
    # Both write on: each with the one key the vault holds.
    await store.transcripts.append(CONVERSATION, b"two", utcnow())
    assert len(await second.transcripts.after(CONVERSATION, 0)) == 2


async def test_rotation_rewraps_conversation_keys(backend_settings: Settings) -> None:
    old, new = b"k" * 32, b"n" * 32
    first = await open_storage(backend_settings, Sealer([old]))
    try:
        await fill(first)
        [before] = await first.vault.status([RECORD])
    finally:
        await first.close()
    # The look-up key stays (factory.lookup_key): only the sealing keys rotate.
    rotated = await open_storage(backend_settings, Sealer([new, old], legacy_lookup_key(old)))
    try:
        assert await rotated.vault.rewrap() >= 1
        [after] = await rotated.vault.status([RECORD])
        assert after.wrapped_by != before.wrapped_by
        assert after.wrapped_by == Sealer([new]).key_ids()[0]
        loaded = await rotated.sessions.load(CONVERSATION, "ev:next")
        assert loaded.session is not None and loaded.session.slots["phone"] == PHONE
        await rotated.journal.append([entry(CONVERSATION, 1)])
        assert len(await rotated.journal.claim("w", 10, 30, utcnow())) == 2
    finally:
        await rotated.close()


async def test_a_key_no_configured_service_key_opens_is_replaced(
        backend_settings: Settings) -> None:
    old, new = b"k" * 32, b"n" * 32
    first = await open_storage(backend_settings, Sealer([old]))
    try:
        await first.transcripts.append(CONVERSATION, b"before", utcnow())
    finally:
        await first.close()
    # The old service key dropped before `ess keys rewrap`: the conversation key it wraps
    # is lost, as is what it sealed; the conversation goes on with a new key.
    dropped = await open_storage(backend_settings, Sealer([new], legacy_lookup_key(old)))
    try:
        assert await dropped.transcripts.after(CONVERSATION, 0) == []
        assert await dropped.transcripts.append(CONVERSATION, b"after", utcnow()) == 2
        assert [e.body for e in await dropped.transcripts.after(CONVERSATION, 0)] == [
            b"after"]
        [status] = await dropped.vault.status([RECORD])
        assert status.live and status.wrapped_by == Sealer([new]).key_ids()[0]
    finally:
        await dropped.close()


async def test_the_idle_sweep_ends_a_session_sealed_with_a_key_it_must_look_up(
        store: Storage, second: Storage, backend_settings: Settings) -> None:
    idle = session()
    idle.expires_at = utcnow() - timedelta(minutes=1)
    await store.sessions.save(idle, "ev:1")
    await store.vault.shred([RECORD], utcnow())
    await store.transcripts.append(CONVERSATION, b"x", utcnow())  # the conversation's new key
    # `second` caches the new key; the session names the old one, which it must look up
    # (SQLite: not under the transaction's lock, which would never be released).
    ended = await asyncio.wait_for(second.sessions.sweep_idle(utcnow()), 10)
    assert ended == (0 if backend_settings.redis_url else 1)  # Redis expires it itself
