"""Sealed exports on every backend: one download, by its admin, before it expires; the
link's token never stored as such; two downloads at once, from two processes: exactly one
gets the file."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from bot.types import utcnow
from config.settings import Settings
from storage.crypto import Sealer
from storage.exports import HeldExport
from storage.factory import open_storage
from storage.ports import Storage
from tests import test_storage_contract as contract

backend_settings, store, dump = contract.backend_settings, contract.store, contract.dump


def held(minutes: float = 15, login: str = "dpo") -> HeldExport:
    return HeldExport(login, "S-abc", "REQ-1", b"\x00sealed\xffbytes" * 100,
                      utcnow() + timedelta(minutes=minutes))


async def test_an_export_is_taken_once_by_its_admin(store: Storage) -> None:
    token, now = secrets.token_urlsafe(32), utcnow()
    await store.exports.put(token, held(), now)
    got = await store.exports.take(token, "dpo", now)
    assert got is not None and got.blob == held().blob
    assert (got.login, got.subject, got.request) == ("dpo", "S-abc", "REQ-1")
    assert await store.exports.take(token, "dpo", now) is None  # once
    assert await store.exports.take("no-such-token", "dpo", now) is None


async def test_another_login_spends_the_link(store: Storage) -> None:
    token, now = secrets.token_urlsafe(32), utcnow()
    await store.exports.put(token, held(), now)
    assert await store.exports.take(token, "somchai", now) is None
    assert await store.exports.take(token, "dpo", now) is None  # seen by another: spent


async def test_an_expired_export_is_not_served_and_is_swept(store: Storage) -> None:
    token, now = secrets.token_urlsafe(32), utcnow()
    await store.exports.put(token, held(minutes=1), now)
    await store.exports.put("kept", held(minutes=30), now)
    later = now + timedelta(minutes=2)
    assert await store.exports.sweep(later) == 1
    assert await store.exports.take(token, "dpo", later) is None
    await store.exports.put("short", held(minutes=1), now)
    assert await store.exports.take("short", "dpo", later) is None  # expired on read
    assert await store.exports.take("kept", "dpo", later) is not None


async def test_two_processes_downloading_at_once_get_it_exactly_once(
        store: Storage, backend_settings: Settings) -> None:
    other = await open_storage(backend_settings, Sealer([b"k" * 32]))
    try:
        for _ in range(5):
            token, now = secrets.token_urlsafe(32), utcnow()
            await store.exports.put(token, held(), now)
            got = await asyncio.gather(*(s.exports.take(token, "dpo", now)
                                         for s in (store, other, store, other)))
            assert sum(g is not None for g in got) == 1
    finally:
        await other.close()


async def test_the_token_is_stored_only_as_a_keyed_digest(store: Storage,
                                                          dump: contract.Dump) -> None:
    token = secrets.token_urlsafe(32)
    await store.exports.put(token, held(), utcnow())
    await store.close()
    raw = await dump()
    assert token.encode() not in raw and b"S-abc" in raw


async def test_the_sweeper_deletes_exports_nobody_downloaded(store: Storage) -> None:
    from bot.sweeper import Sweeper

    now = [utcnow()]
    await store.exports.put("never-taken", held(minutes=1), now[0])
    sweeper = Sweeper(store, clock=lambda: now[0])
    await sweeper.sweep_once()
    assert await store.exports.take("never-taken", "dpo", now[0] - timedelta(seconds=1)) \
        is not None  # not due: kept (and taken here, so put it back)
    await store.exports.put("never-taken", held(minutes=1), now[0])
    now[0] += timedelta(minutes=2)
    await sweeper.sweep_once()
    assert await store.exports.sweep(now[0]) == 0  # the sweeper did it
