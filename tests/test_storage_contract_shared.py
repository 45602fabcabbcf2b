"""The storage contract, continued: the channels' shared state on every backend.

Dedupe (LINE group events), STOP (SMS), web-chat transcripts and rate limits: what one
process writes, every process sees, and nothing personal is in clear. The fixtures are the
contract suite's own (tests/test_storage_contract.py), so each test runs on SQLite,
PostgreSQL and PostgreSQL + Redis.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.types import utcnow
from storage.ports import TRANSCRIPT_KEEP, TRANSCRIPT_MESSAGES, Limit, Menu, Storage
from tests import test_storage_contract as contract
from tests.test_storage_contract import PHONE, Dump

# The contract's fixtures, so these tests run on the same three backends.
backend_settings, store, dump = contract.backend_settings, contract.store, contract.dump

ADDRESS = f"sms:{PHONE}"
CLIENT = "203.0.113.77"


async def test_dedupe_first_once_per_window(store: Storage) -> None:
    now = utcnow()
    window = timedelta(hours=48)
    assert await store.dedupe.first("line:ev-1", window, now)
    assert not await store.dedupe.first("line:ev-1", window, now)
    assert await store.dedupe.first("line:ev-2", window, now)
    assert await store.dedupe.forget(now + 2 * window) >= 0


async def test_a_released_key_is_first_again(store: Storage) -> None:
    now = utcnow()
    window = timedelta(hours=48)
    assert await store.dedupe.first("line:ev-failed", window, now)
    assert await store.dedupe.first("line:ev-kept", window, now)
    await store.dedupe.release("line:ev-failed")
    assert await store.dedupe.first("line:ev-failed", window, now)  # its retry is handled
    assert not await store.dedupe.first("line:ev-kept", window, now)


async def test_dedupe_expires_after_its_window(store: Storage) -> None:
    window = timedelta(milliseconds=200)
    assert await store.dedupe.first("line:short", window, utcnow())
    await asyncio.sleep(0.3)
    # Every backend forgets by the window: SQL by the time given, Redis by its own clock.
    assert await store.dedupe.first("line:short", window, utcnow())


async def test_dedupe_is_one_winner_under_a_race(store: Storage) -> None:
    now = utcnow()
    results = await asyncio.gather(*(store.dedupe.first("line:race", timedelta(hours=1), now)
                                      for _ in range(10)))
    assert results.count(True) == 1


async def test_stop_holds_until_start(store: Storage) -> None:
    assert not await store.optouts.stopped(ADDRESS)
    await store.optouts.stop(ADDRESS, utcnow())
    await store.optouts.stop(ADDRESS, utcnow())  # twice is once
    assert await store.optouts.stopped(ADDRESS)
    assert not await store.optouts.stopped("sms:+66899999999")
    assert await store.optouts.start(ADDRESS)
    assert not await store.optouts.stopped(ADDRESS)
    assert not await store.optouts.start(ADDRESS)


async def test_transcript_numbers_replays_and_dedupes(store: Storage) -> None:
    now = utcnow()
    conv = "web:abc"
    assert await store.transcripts.after(conv, 0) == []
    assert await store.transcripts.append(conv, b"one", now) == 1
    assert await store.transcripts.append(conv, b"two", now, key="k1") == 2
    assert await store.transcripts.append(conv, b"two again", now, key="k1") is None
    assert await store.transcripts.append("web:other", b"elsewhere", now) == 1
    entries = await store.transcripts.after(conv, 0)
    assert [(e.seq, e.body) for e in entries] == [(1, b"one"), (2, b"two")]
    assert [e.seq for e in await store.transcripts.after(conv, 1)] == [2]
    assert await store.transcripts.after(conv, 2) == []


async def test_transcript_keeps_the_last_messages_and_numbers_concurrent_appends(
        store: Storage) -> None:
    now = utcnow()
    total = TRANSCRIPT_MESSAGES + 20
    seqs = await asyncio.gather(*(store.transcripts.append("web:busy", f"m{i}".encode(), now)
                                  for i in range(total)))
    assert sorted(s for s in seqs if s is not None) == list(range(1, total + 1))
    kept = await store.transcripts.after("web:busy", 0)
    assert [e.seq for e in kept] == list(range(21, total + 1))


async def test_transcript_forgets_idle_conversations(store: Storage) -> None:
    old = utcnow() - TRANSCRIPT_KEEP - timedelta(hours=1)
    await store.transcripts.append("web:old", b"old", old, key="k")
    await store.transcripts.append("web:new", b"new", utcnow())
    await store.transcripts.forget(utcnow() - TRANSCRIPT_KEEP)
    assert [e.body for e in await store.transcripts.after("web:new", 0)] == [b"new"]
    # SQL drops the idle one now; Redis expires it TRANSCRIPT_KEEP after its last append.
    assert len(await store.transcripts.after("web:old", 0)) <= 1


async def test_rate_limit_is_a_token_bucket_over_all_limits(store: Storage) -> None:
    now = utcnow()
    mine = Limit(f"web:frame:addr:{CLIENT}", capacity=3, period=60)
    overall = Limit("web:frame:all", capacity=5, period=60)
    other = Limit("web:frame:addr:198.51.100.2", capacity=3, period=60)
    assert [await store.limits.take([mine, overall], now) for _ in range(4)] == \
        [None, None, None, mine]
    # The refused take took nothing from the overall bucket: two are left there.
    assert await store.limits.take([other, overall], now) is None
    assert await store.limits.take([other, overall], now) is None
    assert await store.limits.take([other, overall], now) is overall
    # One token comes back every period / capacity (20) seconds.
    assert await store.limits.take([mine], now + timedelta(seconds=21)) is None
    assert await store.limits.take([mine], now + timedelta(seconds=21)) is mine
    assert await store.limits.forget(now + timedelta(minutes=5)) >= 0
    assert await store.limits.take([mine, overall], now + timedelta(minutes=5)) is None


async def test_rate_limit_holds_under_a_race(store: Storage) -> None:
    now = utcnow()
    limit = Limit("web:connect:all", capacity=7, period=3600)
    results = await asyncio.gather(*(store.limits.take([limit], now) for _ in range(20)))
    assert results.count(None) == 7


async def test_the_last_menu_replaces_the_one_before(store: Storage) -> None:
    assert await store.menus.last(ADDRESS) is None
    soon = utcnow().replace(microsecond=0) + timedelta(hours=2)
    first = Menu((("act:ack:ESS-7K3F9", "dispatch.action.acknowledge"),), "th", soon)
    await store.menus.remember(ADDRESS, first)
    assert await store.menus.last(ADDRESS) == first
    second = Menu((("act:eta10:ESS-7K3F9", "dispatch.action.eta_10"),
                   ("act:scene:ESS-7K3F9", "dispatch.action.on_scene")), "en",
                  soon + timedelta(minutes=5))
    await store.menus.remember(ADDRESS, second)
    assert await store.menus.last(ADDRESS) == second
    assert await store.menus.last("sms:+66899999999") is None
    # An expired menu is still told apart from none (its number gets "expired").
    gone = Menu(first.choices, "th", utcnow().replace(microsecond=0) - timedelta(hours=1))
    await store.menus.remember("sms:+66811111111", gone)
    assert await store.menus.last("sms:+66811111111") == gone


async def test_shared_state_keeps_nothing_personal_in_clear(store: Storage, dump: Dump
                                                            ) -> None:
    now = utcnow()
    await store.optouts.stop(ADDRESS, now)
    await store.menus.remember(ADDRESS, Menu((("act:ack:ESS-MENU1", "menulabelmark"),), "th",
                                             now))
    await store.dedupe.first(f"sms:{PHONE}:event", timedelta(hours=1), now)
    await store.transcripts.append(f"web:{PHONE}", f"call back {PHONE}".encode(), now,
                                   key=f"k{PHONE}")
    await store.limits.take([Limit(f"sms:sender:{PHONE}", 5, 60),
                             Limit(f"web:frame:addr:{CLIENT}", 5, 60)], now)
    await store.close()
    raw = await dump()
    assert raw  # the dump saw the rows
    for needle in (b"812345678", CLIENT.encode(), b"ESS-MENU1", b"menulabelmark"):
        assert needle not in raw, needle
