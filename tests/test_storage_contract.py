"""One contract for every storage backend: SQLite, PostgreSQL, PostgreSQL + Redis.

Each test runs once per backend against real servers (started by tests/stores_plugin.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from bot.incident import Incident, Notification, TimelineEvent
from bot.session import Session
from bot.types import Location, LocationSource, utcnow
from config.settings import Settings
from storage.crypto import Sealer
from storage.factory import open_storage
from storage.ports import JournalEntry, StaleSession, Storage, Timer

BACKENDS = ["sqlite", "postgres", "postgres+redis"]
PHONE = "+66812345678"
CONVERSATION = f"sms:{PHONE}"  # an SMS conversation key is the reporter's number
LAT, LON = 16.82113, 100.26594
Dump = Callable[[], Awaitable[bytes]]


@pytest.fixture(params=BACKENDS)
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(data_dir=str(tmp_path / "var"), log_format="console")
    pg_url = request.getfixturevalue("pg_url")
    redis_url = request.getfixturevalue("redis_url") if "redis" in request.param else ""
    return Settings(data_dir=str(tmp_path / "var"), log_format="console",
                    database_url=pg_url, redis_url=redis_url)


@pytest.fixture
async def store(backend_settings: Settings) -> AsyncIterator[Storage]:
    storage = await open_storage(backend_settings, Sealer([b"k" * 32]))
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
def dump(backend_settings: Settings) -> Dump:
    """Everything the backend holds, as raw bytes, for looking for personal data in clear."""
    async def raw() -> bytes:
        out = b""
        if backend_settings.database_url:
            conn = await asyncpg.connect(backend_settings.database_url)
            try:
                tables = await conn.fetch("SELECT tablename FROM pg_tables "
                                          "WHERE schemaname = 'public'")
                for t in tables:
                    for row in await conn.fetch(f'SELECT x::text FROM "{t[0]}" AS x'):
                        out += row[0].encode() + b"\n"
            finally:
                await conn.close()
        else:
            for path in backend_settings.sqlite_path.parent.glob("ess.db*"):
                out += path.read_bytes()
        if backend_settings.redis_url:
            client = aioredis.from_url(backend_settings.redis_url)
            try:
                async for key in client.scan_iter():
                    out += key + b"\n"
                    kind = await client.type(key)
                    if kind == b"hash":
                        for k, v in (await client.hgetall(key)).items():
                            out += k + b"=" + v + b"\n"
                    elif kind == b"string":
                        out += (await client.get(key) or b"") + b"\n"
                    elif kind == b"list":
                        out += b"\n".join(await client.lrange(key, 0, -1)) + b"\n"
            finally:
                await client.aclose()
        return out
    return raw


def incident(source_event: str | None = "test:ev-1", drill: bool = False) -> Incident:
    from bot.incident import new_reference

    return Incident(reference=new_reference(), type="threat",
                    location=Location(LAT, LON, LocationSource.REPORTER_PIN),
                    channel="sms", reporter=CONVERSATION, lang="th", phone=PHONE,
                    area_codes=["TH-65"], source_event=source_event, drill=drill)


def notifications(n: int = 2) -> list[Notification]:
    return [Notification(f"line:Cgroup{i}", "incident.new", {"phone": PHONE, "n": i})
            for i in range(n)]


def session(conversation: str = CONVERSATION) -> Session:
    now = utcnow()
    return Session(conversation, lang="th", flow="report", state="phone",
                   slots={"phone": PHONE, "location": {"lat": LAT, "lon": LON}},
                   updated_at=now, expires_at=now + timedelta(minutes=30))


# --- sessions and dedupe -------------------------------------------------------------------

async def test_session_round_trip_and_dedupe(store: Storage) -> None:
    assert (await store.sessions.load(CONVERSATION, "sms:e1")).session is None
    s = session()
    await store.sessions.save(s, "sms:e1")
    assert s.version == 1
    loaded = await store.sessions.load(CONVERSATION, "sms:e1")
    assert loaded.duplicate is True
    assert loaded.session is not None and loaded.session.slots == s.slots
    assert loaded.session.version == 1 and loaded.session.state == "phone"
    fresh = await store.sessions.load(CONVERSATION, "sms:e2")
    assert fresh.duplicate is False and fresh.session is not None
    await store.sessions.save(fresh.session, "sms:e2")
    assert (await store.sessions.load(CONVERSATION, "sms:e3")).session.version == 2  # type: ignore[union-attr]


async def test_stale_save_is_refused(store: Storage) -> None:
    first, second = session(), session()
    await store.sessions.save(first, "sms:a")
    with pytest.raises(StaleSession):
        await store.sessions.save(second, "sms:b")  # both started from "no session"
    loaded = (await store.sessions.load(CONVERSATION, "sms:c")).session
    assert loaded is not None
    late = (await store.sessions.load(CONVERSATION, "sms:c")).session
    assert late is not None
    await store.sessions.save(loaded, "sms:c")
    with pytest.raises(StaleSession):
        await store.sessions.save(late, "sms:d")
    # The refused save did not record its event: a redelivery is handled, not dropped.
    assert (await store.sessions.load(CONVERSATION, "sms:d")).duplicate is False


async def test_load_under_a_lock_taken_for_the_event_reads_the_same(store: Storage) -> None:
    # A store may read the session with the lock (Redis: one script); what the engine then
    # loads must be exactly what a plain load reads, and only once.
    async with store.locks.hold(CONVERSATION, "sms:h1"):
        assert await store.sessions.load(CONVERSATION, "sms:h1") == \
            await store.sessions.load(CONVERSATION, "sms:h1")
        first = await store.sessions.load(CONVERSATION, "sms:h1")
        assert first.session is None and not first.duplicate
        await store.sessions.save(session(), "sms:h1")
    async with store.locks.hold(CONVERSATION, "sms:h1"):
        again = await store.sessions.load(CONVERSATION, "sms:h1")
        assert again.duplicate and again.session is not None
        assert again.session.slots == session().slots and again.session.version == 1
    async with store.locks.hold(CONVERSATION, "sms:h2"):
        loaded = (await store.sessions.load(CONVERSATION, "sms:h2"))
        assert not loaded.duplicate and loaded.session is not None
        stale = replace(loaded.session)
        await store.sessions.save(loaded.session, "sms:h2")
        with pytest.raises(StaleSession):
            await store.sessions.save(stale, "sms:h3")
        # The read that came with the lock is spent: a reload sees the save just made.
        reloaded = await store.sessions.load(CONVERSATION, "sms:h2")
        assert reloaded.duplicate and reloaded.session is not None
        assert reloaded.session.version == 2
    # Another event's load under the lock is not served the lock's read.
    async with store.locks.hold(CONVERSATION, "sms:h9"):
        other = await store.sessions.load(CONVERSATION, "sms:h2")
        assert other.duplicate


async def test_idle_session_loses_its_answers(store: Storage) -> None:
    s = session()
    s.expires_at = utcnow() - timedelta(seconds=1)
    await store.sessions.save(s, "sms:old")
    await store.sessions.sweep_idle(utcnow())
    loaded = (await store.sessions.load(CONVERSATION, "sms:new")).session
    assert loaded is None or (loaded.slots == {} and loaded.expired and not loaded.active)


async def test_forgetting_old_events_keeps_recent_ones(store: Storage) -> None:
    await store.sessions.save(session(), "sms:kept")
    assert await store.sessions.forget_events(utcnow() - timedelta(days=3)) >= 0
    assert (await store.sessions.load(CONVERSATION, "sms:kept")).duplicate


# --- locks ---------------------------------------------------------------------------------

async def test_locks_serialise_one_conversation_and_fence(store: Storage) -> None:
    inside: list[str] = []
    tokens: list[int] = []

    async def holder(name: str) -> None:
        async with store.locks.hold("c1") as token:
            tokens.append(token)
            inside.append(f"{name}+")
            await asyncio.sleep(0.01)
            inside.append(f"{name}-")

    await asyncio.gather(*(holder(str(i)) for i in range(5)))
    assert all(inside[k][:-1] == inside[k + 1][:-1] for k in range(0, len(inside), 2))
    assert tokens == sorted(tokens) and len(set(tokens)) == 5
    # Another conversation is not blocked by a held one.
    async with store.locks.hold("c1"), store.locks.hold("c2"):
        pass


# --- incidents -----------------------------------------------------------------------------

async def test_incident_create_is_atomic_and_idempotent(store: Storage) -> None:
    first = incident()
    event = TimelineEvent("reported", "reporter", "sms")
    stored = await store.incidents.create(first, notifications(2), event)
    assert await store.outbox.pending() == 2
    again = await store.incidents.create(incident(), notifications(2), event)
    assert again.reference == stored.reference and again.id == stored.id
    assert await store.outbox.pending() == 2  # nothing queued twice
    got = await store.incidents.get(stored.reference)
    assert got is not None and got.phone == PHONE and got.reporter == CONVERSATION
    assert got.location.lat == LAT and got.area_codes == ["TH-65"]
    assert (await store.incidents.get_by_id(stored.id)) is not None
    assert await store.incidents.get("ESS-00000") is None
    assert [e.kind for e in await store.incidents.timeline(stored.id)] == ["reported"]


async def test_incident_timers_commit_with_the_incident_once(store: Storage) -> None:
    first = incident(source_event="test:ev-timer")
    due = utcnow() - timedelta(seconds=1)
    watchdog = Timer(f"watch-{first.id}", "watchdog", first.id, due, 1, {"level": 0})
    event = TimelineEvent("reported", "reporter", "sms")
    stored = await store.incidents.create(first, notifications(1), event, [watchdog])
    again = incident(source_event="test:ev-timer")
    repeat = Timer(f"watch-{again.id}", "watchdog", again.id, due, 1, {})
    assert (await store.incidents.create(again, notifications(1), event, [repeat])).id == \
        stored.id
    claimed = await store.timers.claim_due("A", utcnow(), 10, 30)
    assert [t.id for t in claimed] == [watchdog.id]  # the repeat wrote no second timer


async def test_incident_update_and_recent(store: Storage) -> None:
    a = await store.incidents.create(incident("e:a"), [], TimelineEvent("reported", "r", "sms"))
    await store.incidents.create(incident("e:b", drill=True), [],
                                 TimelineEvent("reported", "r", "sms"))
    assert len(await store.incidents.recent()) == 2
    assert [i.reference for i in await store.incidents.recent(include_drills=False)] == \
        [a.reference]
    stale = await store.incidents.get(a.reference)
    assert stale is not None
    a.status = "acknowledged"
    a.details["injured"] = "yes"
    await store.incidents.update(a, TimelineEvent("ack", "police", "line"), notifications(1))
    assert a.version == 2
    with pytest.raises(StaleSession):
        await store.incidents.update(stale, TimelineEvent("ack", "other", "line"))
    got = await store.incidents.get(a.reference)
    assert got is not None and got.status == "acknowledged" and got.version == 2
    assert got.details == {"injured": "yes"}
    assert [e.kind for e in await store.incidents.timeline(a.id)] == ["reported", "ack"]
    assert await store.outbox.pending() == 1
    await store.incidents.record_access("officer:1", "incident.show", a.reference)


async def test_incident_update_schedules_its_timers_in_the_same_transaction(
        store: Storage) -> None:
    a = await store.incidents.create(incident("e:t"), [], TimelineEvent("reported", "r", "sms"))
    stale = await store.incidents.get(a.reference)
    assert stale is not None
    now = utcnow()
    await store.timers.schedule(Timer(f"escalate:{a.id}", "escalate", a.id, now, 0, {}))
    assert [t.id for t in await store.timers.claim_due("A", now, 10, 30)] == [f"escalate:{a.id}"]
    # Replaced, its lease dropped: due again at the new time with the new version.
    later = now + timedelta(minutes=5)
    await store.incidents.update(a, TimelineEvent("dispatched", "dispatcher", "line"), [], [
        Timer(f"escalate:{a.id}", "escalate", a.id, later, 1, {"level": 0}),
        Timer(f"remind:{a.id}", "remind", a.id, later, 1, {})])
    assert await store.timers.claim_due("B", now + timedelta(minutes=1), 10, 30) == []
    due = await store.timers.claim_due("B", later, 10, 30)
    assert sorted((t.id, t.subject_version, t.data) for t in due) == [
        (f"escalate:{a.id}", 1, {"level": 0}), (f"remind:{a.id}", 1, {})]
    # A stale update writes nothing, its timers neither.
    with pytest.raises(StaleSession):
        await store.incidents.update(stale, TimelineEvent("x", "x", "line"), [], [
            Timer(f"undelivered:{a.id}", "undelivered", a.id, now, 9, {})])
    assert await store.timers.claim_due("C", later + timedelta(seconds=10), 10, 30) == []


async def test_incidents_of_one_reporter_newest_first_within_the_window(
        store: Storage) -> None:
    now = utcnow()
    old = incident("e:old")
    old.created_at = now - timedelta(days=40)
    first = incident("e:first")
    first.created_at = now - timedelta(days=2)
    second = incident("e:second", drill=True)
    second.silent = True
    second.created_at = now - timedelta(hours=1)
    other = incident("e:other")
    other.reporter = "line:Uother"
    for item in (old, first, second, other):
        await store.incidents.create(item, [], TimelineEvent("reported", "r", "sms"))
    since = now - timedelta(days=30)
    mine = await store.incidents.for_reporter(CONVERSATION, since)
    # Silent and drill reports are returned: what a person may see is the caller's decision.
    assert [i.reference for i in mine] == [second.reference, first.reference]
    assert mine[0].silent and mine[0].reporter == CONVERSATION
    assert [i.reference for i in await store.incidents.for_reporter(CONVERSATION, since, 1)] \
        == [second.reference]
    assert [i.reference for i in await store.incidents.for_reporter("line:Uother", since)] \
        == [other.reference]
    assert await store.incidents.for_reporter("web:nobody", since) == []


async def test_milestones(store: Storage) -> None:
    now = utcnow()
    a = await store.incidents.create(incident("e:a"), [], TimelineEvent("reported", "r", "sms"))
    b = await store.incidents.create(incident("e:b"), [], TimelineEvent("reported", "r", "sms"))
    await store.incidents.create(incident("e:c", drill=True), [],
                                 TimelineEvent("reported", "r", "sms"))
    first = now + timedelta(minutes=3)
    await store.incidents.update(a, TimelineEvent("acknowledged", "police", "line", at=first))
    await store.incidents.update(a, TimelineEvent("acknowledged", "police", "line",
                                                  at=first + timedelta(minutes=1)))
    rows = await store.incidents.milestones(now - timedelta(hours=1),
                                            ["acknowledged", "on_the_way"])
    got = sorted((m.incident_id, m.kind, m.at) for m in rows)
    assert got == sorted([(a.id, "acknowledged", first), (b.id, None, None)])
    assert all(m.area_codes == ("TH-65",) for m in rows)
    assert await store.incidents.milestones(now + timedelta(hours=1), ["acknowledged"]) == []


# --- outbox --------------------------------------------------------------------------------

async def test_outbox_lease_renewed_by_its_owner_is_not_taken(store: Storage) -> None:
    await store.incidents.create(incident(), notifications(2), TimelineEvent("r", "r", "sms"))
    now = utcnow()
    held = await store.outbox.claim("A", 10, 30, now)
    ids = [n.id for n in held]
    assert len(ids) == 2
    assert await store.outbox.extend(ids, "B", 30, now) == 0  # not B's
    # A, still sending 20 s later, renews: at 31 s nobody else may take the rows.
    assert await store.outbox.extend(ids, "A", 30, now + timedelta(seconds=20)) == 2
    assert await store.outbox.claim("B", 10, 30, now + timedelta(seconds=31)) == []
    assert await store.outbox.complete(ids[0], "A", now + timedelta(seconds=31))
    assert await store.outbox.extend(ids, "A", 30, now + timedelta(seconds=32)) == 1  # sent
    # A stops renewing (it died): the other row comes back when the lease runs out.
    taken = await store.outbox.claim("B", 10, 30, now + timedelta(seconds=63))
    assert [n.id for n in taken] == [ids[1]]


async def test_outbox_complete_all_marks_only_the_owners_unsent_rows(store: Storage) -> None:
    await store.incidents.create(incident(), notifications(4), TimelineEvent("r", "r", "sms"))
    now = utcnow()
    held = await store.outbox.claim("A", 3, 30, now)
    ids = [n.id for n in held]
    rest = await store.outbox.claim("B", 10, 30, now)
    assert len(ids) == 3 and len(rest) == 1
    assert await store.outbox.complete_all([*ids, rest[0].id], "C", now) == []  # not C's
    assert await store.outbox.complete(ids[0], "A", now)
    # One statement for the batch: B's row and the one already sent are left out.
    done = await store.outbox.complete_all([*ids, rest[0].id], "A", now)
    assert sorted(done) == sorted(ids[1:])
    assert await store.outbox.complete_all(ids, "A", now) == []  # exactly once
    assert await store.outbox.complete_all([], "A", now) == []
    assert await store.outbox.pending() == 1
    states = {n.id: (n.status, n.sent_at is not None)
              for n in await store.outbox.for_incident(held[0].incident_id or "")}
    assert all(states[i] == ("sent", True) for i in ids)


async def test_outbox_lease_is_exclusive_and_taken_over(store: Storage) -> None:
    await store.incidents.create(incident(), notifications(10), TimelineEvent("r", "r", "sms"))
    now = utcnow()
    a, b = await asyncio.gather(store.outbox.claim("A", 6, 30, now),
                                store.outbox.claim("B", 6, 30, now))
    ids_a, ids_b = {n.id for n in a}, {n.id for n in b}
    assert not ids_a & ids_b and len(ids_a | ids_b) == 10
    assert all(n.payload["phone"] == PHONE and n.attempts == 1 for n in a + b)
    assert await store.outbox.claim("C", 10, 30, now) == []  # all leased
    first = a[0] if a else b[0]
    owner = "A" if a else "B"
    assert not await store.outbox.complete(first.id, "C", now)  # not the lease owner
    # The owner "crashes"; its lease runs out and C takes the rows over.
    later = now + timedelta(seconds=31)
    taken = await store.outbox.claim("C", 20, 30, later)
    assert {n.id for n in taken} == ids_a | ids_b
    assert not await store.outbox.complete(first.id, owner, later)  # lease lost
    assert await store.outbox.complete(first.id, "C", later)
    assert not await store.outbox.complete(first.id, "C", later)  # exactly once
    second, third = taken[1], taken[2]
    assert await store.outbox.retry(second.id, "C", later + timedelta(minutes=5), "HTTP 500")
    assert await store.outbox.bury(third.id, "C", "blocked")
    assert await store.outbox.pending() == 8
    retried = await store.outbox.claim("D", 20, 30, later + timedelta(minutes=6))
    assert second.id in {n.id for n in retried} and third.id not in {n.id for n in retried}
    assert next(n for n in retried if n.id == second.id).last_error == "HTTP 500"


# --- timers --------------------------------------------------------------------------------

async def test_timers(store: Storage) -> None:
    now = utcnow()
    await store.timers.schedule(Timer("t1", "escalate", "inc1", now, 1, {"level": 1}))
    await store.timers.schedule(Timer("t1", "escalate", "inc1", now, 2, {"level": 2}))
    await store.timers.schedule(Timer("t2", "remind", "inc1", now + timedelta(hours=1), 1))
    await store.timers.schedule(Timer("t3", "escalate", "inc2", now, 1))
    a, b = await asyncio.gather(store.timers.claim_due("A", now, 10, 30),
                                store.timers.claim_due("B", now, 10, 30))
    assert sorted(t.id for t in a + b) == ["t1", "t3"]  # t2 not due; none twice
    t1 = next(t for t in a + b if t.id == "t1")
    assert t1.subject_version == 2 and t1.data == {"level": 2}
    owner = "A" if t1 in a else "B"
    assert not await store.timers.done("t1", "C")
    assert await store.timers.done("t1", owner)
    assert await store.timers.cancel("inc1", "remind") == 1
    assert await store.timers.cancel("inc2") == 1
    assert await store.timers.claim_due("A", now + timedelta(days=1), 10, 30) == []


# --- bindings ------------------------------------------------------------------------------

async def test_bindings(store: Storage) -> None:
    now = utcnow()
    code = await store.bindings.create_code("TH-65", "police", 600, now)
    bound = await store.bindings.redeem(code.lower(), "line:Cpolice", now)
    assert bound is not None and (bound.area, bound.agency) == ("TH-65", "police")
    assert await store.bindings.redeem(code, "line:Cother", now) is None  # one time only
    old = await store.bindings.create_code("TH-10", "welfare", 1, now)
    assert await store.bindings.redeem(old, "line:Cx", now + timedelta(seconds=2)) is None
    code2 = await store.bindings.create_code("TH-10", "welfare", 600, now)
    assert await store.bindings.redeem(code2, "line:Cpolice", now + timedelta(seconds=1))
    assert [b.area for b in await store.bindings.for_areas(["TH-65", "TH-10"])] == \
        ["TH-65", "TH-10"]
    assert await store.bindings.for_areas([]) == []
    assert len(await store.bindings.for_address("line:Cpolice")) == 2
    assert await store.bindings.unbind("line:Cpolice") == 2
    assert await store.bindings.for_address("line:Cpolice") == []


async def test_a_binding_made_or_removed_elsewhere_is_seen(
        store: Storage, backend_settings: Settings) -> None:
    # Another process (or the CLI) binds and unbinds: this store's answers follow, however
    # it keeps them (PostgreSQL answers from memory and is told of changes).
    other = await open_storage(backend_settings, Sealer([b"k" * 32]))
    now = utcnow()

    async def seen(address: str, count: int) -> bool:
        for _ in range(50):
            if len(await store.bindings.for_address(address)) == count:
                return True
            await asyncio.sleep(0.1)
        return False

    try:
        assert await store.bindings.for_address("line:Uvolunteer") == []
        assert await store.bindings.for_address("line:Uvolunteer") == []  # asked again
        code = await other.bindings.create_code("TH-65", "volunteer", 600, now)
        assert await other.bindings.redeem(code, "line:Uvolunteer", now)
        assert await seen("line:Uvolunteer", 1)
        assert await other.bindings.unbind("line:Uvolunteer") == 1
        assert await seen("line:Uvolunteer", 0)
        # Its own change is seen at once.
        code = await store.bindings.create_code("TH-65", "police", 600, now)
        assert await store.bindings.redeem(code, "line:Uvolunteer", now)
        assert len(await store.bindings.for_address("line:Uvolunteer")) == 1
        assert await store.bindings.unbind("line:Uvolunteer") == 1
        assert await store.bindings.for_address("line:Uvolunteer") == []
    finally:
        await other.close()


# --- sealing and health --------------------------------------------------------------------

async def test_personal_data_is_never_in_clear(store: Storage, dump: Dump) -> None:
    await store.sessions.save(session(), "sms:e1")
    notes = [*notifications(1), Notification(CONVERSATION, "reporter.update", {"ok": 1})]
    await store.incidents.create(incident(), notes, TimelineEvent("reported", "r", "sms"))
    await store.close()  # SQLite: everything reaches the files
    raw = await dump()
    assert b"threat" in raw  # the dump did see the data
    for needle in (b"812345678", str(LAT).encode(), str(LON).encode()):
        assert needle not in raw, needle


async def test_enrichment_answers_are_sealed_too(store: Storage, dump: Dump) -> None:
    # Victim or witness, injured, children involved: health data (PDPA s.26).
    answers = {"role": "rolevictimmark", "injured": "injuredyesmark",
               "children": "childrenyesmark"}
    created = await store.incidents.create(incident(), [], TimelineEvent("reported", "r", "sms"))
    created.details.update(answers)
    created.details["dispatch"] = {"flags": ["far"]}
    await store.incidents.update(created, TimelineEvent("details", "reporter", "sms",
                                                        data=dict(answers)))
    again = await store.incidents.get(created.reference)
    assert again is not None and again.details == {**answers, "dispatch": {"flags": ["far"]}}
    assert (await store.incidents.timeline(created.id))[-1].data == answers
    await store.close()
    raw = await dump()
    assert b"threat" in raw and b"far" in raw  # the dump saw the row; dispatch stays readable
    for needle in answers.values():
        assert needle.encode() not in raw, needle


async def test_text_no_encoder_takes_is_stored_not_refused(store: Storage) -> None:
    # A lone surrogate is valid JSON ("\ud800") and NUL is valid text: neither may fail a
    # save and lose a report; both come back as U+FFFD.
    bad = "Bangkok \ud800 road\x00"
    s = session()
    s.slots["location"] = {"text": bad}
    await store.sessions.save(s, "sms:e1")
    loaded = (await store.sessions.load(CONVERSATION, "sms:e2")).session
    assert loaded is not None and loaded.slots["location"]["text"] == "Bangkok \ufffd road\ufffd"
    item = incident()
    item.reporter = f"sms:{bad}"
    item.location = Location(LAT, LON, LocationSource.TEXT, text=bad)
    item.details = {"note": bad}
    created = await store.incidents.create(item, notifications(1),
                                           TimelineEvent("reported", "r", "sms", data={"t": bad}))
    again = await store.incidents.get(created.reference)
    assert again is not None and again.location.text == "Bangkok \ufffd road\ufffd"
    assert again.details["note"] == "Bangkok \ufffd road\ufffd"


async def test_revocations_are_shared_and_expire(store: Storage, backend_settings: Settings,
                                                 dump: Dump) -> None:
    now = utcnow()
    assert not await store.revocations.revoked("conv-1", now)
    await store.revocations.revoke("conv-1", now + timedelta(hours=1))
    assert await store.revocations.revoked("conv-1", now)
    assert not await store.revocations.revoked("conv-2", now)
    assert not await store.revocations.revoked("conv-1", now + timedelta(hours=2))
    await store.revocations.revoke("conv-1", now + timedelta(minutes=1))  # never shortened
    assert await store.revocations.revoked("conv-1", now + timedelta(minutes=30))
    # Another process (another connection to the same store) sees it.
    other = await open_storage(backend_settings, Sealer([b"k" * 32]))
    try:
        assert await other.revocations.revoked("conv-1", now)
    finally:
        await other.close()
    await store.close()
    assert b"conv-1" not in await dump()  # only a keyed digest is kept


async def test_reads_are_audited(store: Storage, dump: Dump) -> None:
    await store.incidents.record_access("officer:77", "incident.show", "ESS-7K3F9")
    await store.close()
    raw = await dump()
    assert b"officer:77" in raw and b"incident.show" in raw


async def test_ping(store: Storage) -> None:
    assert await store.ping()


# --- the inbound journal -------------------------------------------------------------------

def entry(conversation: str, n: int, event_key: str | None = None) -> JournalEntry:
    return JournalEntry(f"id-{conversation}-{n}", "sms", conversation,
                        event_key or f"sms:{conversation}-{n}",
                        {"text": f"message {n} at {LAT}", "from": PHONE}, utcnow())


async def test_journal_keeps_each_event_once_in_arrival_order(store: Storage) -> None:
    journal = store.journal
    first = [entry(CONVERSATION, n) for n in range(3)]
    assert await journal.append(first) == 3
    # A redelivered event (same key, new id) is not kept twice; the new one is.
    again = [replace(entry(CONVERSATION, 1), id="id-redelivered"), entry(CONVERSATION, 3)]
    assert await journal.append(again) == 1
    assert await journal.pending() == 4
    claimed = await journal.claim("a", 10, 30, utcnow())
    assert [e.id for e in claimed] == [*(e.id for e in first), f"id-{CONVERSATION}-3"]
    got = claimed[0]
    assert (got.channel, got.conversation, got.event_key, got.data, got.attempts) == (
        "sms", CONVERSATION, first[0].event_key, first[0].data, 1)
    assert abs((got.received_at - first[0].received_at).total_seconds()) < 0.01


async def test_journal_leases_whole_conversations_and_a_crashed_owner_is_taken_over(
        store: Storage) -> None:
    journal, now = store.journal, utcnow()
    await journal.append([entry("web:a", 0), entry("web:b", 0), entry("web:a", 1)])
    # Oldest conversation first, all of its entries; the limit counts conversations.
    assert [e.id for e in await journal.claim("p1", 1, 30, now)] == \
        ["id-web:a-0", "id-web:a-1"]
    # While p1 holds web:a, a new event of web:a waits for it; nobody else gets web:a.
    await journal.append([entry("web:a", 2)])
    assert [e.id for e in await journal.claim("p2", 10, 30, now)] == ["id-web:b-0"]
    assert await journal.claim("p3", 10, 30, now) == []
    assert await journal.done(["id-web:a-0"], "p1") == 1
    assert await journal.done(["id-web:a-1"], "p2") == 0  # not p2's
    # p1 dies. Its lease runs out; p3 takes the whole conversation, in order.
    later = now + timedelta(seconds=31)
    assert await journal.renew("p2", 30, later, ["id-web:b-0"]) == 1  # p2 is alive, working
    assert [e.id for e in await journal.claim("p3", 10, 30, later)] == \
        ["id-web:a-1", "id-web:a-2"]
    assert await journal.done(["id-web:a-1"], "p1") == 0  # the lease was lost
    assert await journal.done(["id-web:a-1", "id-web:a-2", "id-web:b-0"], "p3") == 2
    assert await journal.pending() == 1  # web:b, still p2's


async def test_journal_claim_forgets_what_its_owner_handled_before_it_claims(
        store: Storage) -> None:
    journal, now = store.journal, utcnow()
    await journal.append([entry("web:a", 0), entry("web:b", 0)])
    assert [e.id for e in await journal.claim("p1", 1, 30, now)] == ["id-web:a-0"]
    assert [e.id for e in await journal.claim("p2", 1, 30, now)] == ["id-web:b-0"]
    await journal.append([entry("web:a", 1), entry("web:b", 1)])
    # p1 handled web:a's entry: its next claim forgets it first, so web:a is free for that
    # very claim. p2's entry named among p1's handled ones is not p1's to forget: web:b
    # stays p2's.
    claimed = await journal.claim("p1", 10, 30, now, handled=["id-web:a-0", "id-web:b-0"])
    assert [e.id for e in claimed] == ["id-web:a-1"]
    assert await journal.pending() == 3
    assert [e.id for e in await journal.claim("p2", 10, 30, now, handled=["id-web:b-0"])
            ] == ["id-web:b-1"]
    # Nothing to claim, something handled: still forgotten.
    assert await journal.claim("p1", 10, 30, now, handled=["id-web:a-1"]) == []
    assert await journal.pending() == 1  # web:b's second, p2's


async def test_journal_lease_renewal_keeps_a_slow_owner(store: Storage) -> None:
    journal, now = store.journal, utcnow()
    await journal.append([entry("web:a", 0), entry("web:b", 0)])
    claimed = await journal.claim("p1", 10, 30, now)
    assert [e.attempts for e in claimed] == [1, 1]
    # p1 is still handling web:a; web:b's handling failed, so p1 renews web:a's lease only,
    # and web:b comes back when its own runs out, however long p1 stays busy.
    assert await journal.renew("p1", 30, now + timedelta(seconds=25), ["id-web:a-0"]) == 1
    [failed] = await journal.claim("p2", 10, 30, now + timedelta(seconds=40))
    assert (failed.id, failed.attempts) == ("id-web:b-0", 2)
    [again] = await journal.claim("p2", 10, 30, now + timedelta(seconds=56))
    assert (again.id, again.attempts) == ("id-web:a-0", 2)
    assert await journal.renew("p1", 30, now, ["id-web:a-0", "id-web:b-0"]) == 0


async def test_journal_seals_what_it_keeps(store: Storage, dump: Dump) -> None:
    await store.journal.append([replace(entry(CONVERSATION, 0), id="e1")])  # ids are random
    await store.close()
    raw = await dump()
    assert b"e1" in raw  # the dump did see the entry
    for needle in (b"812345678", str(LAT).encode(), b"message 0"):
        assert needle not in raw, needle
