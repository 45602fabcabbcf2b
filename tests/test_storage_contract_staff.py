"""The storage contract, continued: board accounts, their sessions, the area scope of the
incident reads and the board's event log, on SQLite, PostgreSQL and PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import aiosqlite
import asyncpg

from bot.incident import Incident, TimelineEvent, dispatched_agencies
from bot.staff import StaffMember
from bot.types import utcnow
from config.settings import Settings
from routing.ports import Route, Target
from routing.responders import plan_first_dispatch
from storage.ports import Storage
from tests import test_storage_contract as contract
from tests.analytics_history import MIGRATIONS
from tests.test_storage_contract import Dump, incident, notifications

backend_settings, store, dump = contract.backend_settings, contract.store, contract.dump

SUPERVISOR = StaffMember("somchai", "Somchai P.", "th", ("supervisor",), ("TH-65",),
                         ("police",))


async def test_staff_add_get_list_password_disable(store: Storage) -> None:
    assert await store.staff.add(SUPERVISOR, "$argon2id$hash")
    assert not await store.staff.add(replace(SUPERVISOR, name="other"), None)
    got = await store.staff.get("somchai")
    assert got is not None and got.areas == ("TH-65",) and got.roles == ("supervisor",)
    assert got.agencies == ("police",) and got.name == "Somchai P." and not got.disabled
    assert await store.staff.get("nobody") is None
    assert [m.login for m in await store.staff.all()] == ["somchai"]
    assert await store.staff.password_hash("somchai") == "$argon2id$hash"
    assert await store.staff.set_password("somchai", "$argon2id$new")
    assert not await store.staff.set_password("nobody", "$x")
    assert await store.staff.password_hash("somchai") == "$argon2id$new"
    now = utcnow()
    await store.staff.open_session("tok-1", "somchai", now, now + timedelta(hours=8))
    assert (await store.staff.session("tok-1", now)) == got
    assert await store.staff.session("tok-2", now) is None
    assert await store.staff.session("tok-1", now + timedelta(hours=9)) is None  # expired
    assert await store.staff.disable("somchai")
    assert await store.staff.session("tok-1", now) is None  # a disable ends every session
    assert await store.staff.password_hash("somchai") is None
    assert (await store.staff.get("somchai")).disabled  # type: ignore[union-attr]


async def test_staff_sessions_end_and_tokens_are_one_time(store: Storage, dump: Dump) -> None:
    await store.staff.add(SUPERVISOR, None)
    now = utcnow()
    await store.staff.open_session("session-secret-abc", "somchai", now, now + timedelta(hours=1))
    await store.staff.end_session("session-secret-abc")
    assert await store.staff.session("session-secret-abc", now) is None
    await store.staff.issue_token("somchai", "first-token-xyz", now + timedelta(hours=1))
    await store.staff.issue_token("somchai", "second-token-xyz", now + timedelta(hours=1))
    assert await store.staff.redeem_token("first-token-xyz", now) is None  # replaced
    await store.staff.open_session("session-secret-def", "somchai", now, now + timedelta(hours=1))
    raw = await dump()
    assert b"second-token-xyz" not in raw and b"session-secret-def" not in raw
    assert await store.staff.redeem_token("second-token-xyz", now) == "somchai"
    assert await store.staff.redeem_token("second-token-xyz", now) is None
    await store.staff.issue_token("somchai", "old-token", now - timedelta(seconds=1))
    assert await store.staff.redeem_token("old-token", now) is None


async def test_incident_reads_are_scoped_to_areas(store: Storage) -> None:
    here = incident("t:here")
    here.area_codes = ["TH-65", "TH-6501"]
    there = incident("t:there")
    there.area_codes = ["TH-50"]
    for i in (here, there):
        await store.incidents.create(i, [], TimelineEvent("reported", "reporter", "sms"))
    assert [i.reference for i in await store.incidents.in_areas(["TH-65"])] == [here.reference]
    assert [i.reference for i in await store.incidents.in_areas(["TH-6501", "TH-99"])] == \
        [here.reference]
    assert {i.reference for i in await store.incidents.in_areas(["TH"])} == \
        {here.reference, there.reference}
    assert await store.incidents.in_areas([]) == []
    assert await store.incidents.get_in(there.reference, ["TH-65"]) is None
    assert (await store.incidents.get_in(here.reference, ["TH-65"])) is not None
    assert await store.incidents.get_in(there.reference, ["TH"]) is not None
    here.status = "resolved"
    await store.incidents.update(here, TimelineEvent("resolved", "x", "board"))
    assert await store.incidents.in_areas(["TH-65"], exclude_status=["resolved"]) == []


async def test_board_log_is_ordered_and_fed_by_every_incident_write(store: Storage) -> None:
    start = await store.board.last()
    a = incident("t:a")
    await store.incidents.create(a, notifications(1), TimelineEvent("reported", "r", "sms"))
    a.status = "dispatched"
    await store.incidents.update(a, TimelineEvent("dispatched", "d", "line"))
    events = await store.board.after(start)
    assert [(e.reference, e.kind, e.status) for e in events] == [
        (a.reference, "reported", "dispatched"), (a.reference, "dispatched", "dispatched")]
    assert events[0].seq < events[1].seq and events[1].seq == await store.board.last()
    assert events[0].area_codes == ("TH-65",)
    assert await store.board.after(events[1].seq) == []
    assert [e.seq for e in await store.board.after(start, limit=1)] == [events[0].seq]


async def test_board_log_numbers_concurrent_writers_without_gaps(store: Storage) -> None:
    start = await store.board.last()
    made = [incident(f"t:c{i}") for i in range(8)]
    await asyncio.gather(*(store.incidents.create(i, [], TimelineEvent("reported", "r", "sms"))
                           for i in made))
    seqs = [e.seq for e in await store.board.after(start)]
    assert seqs == list(range(start + 1, start + 9))


async def test_board_log_wakes_a_listener_until_it_stops(store: Storage) -> None:
    # PostgreSQL by NOTIFY (any process); SQLite by this process's own commits (one file has
    # no notifications; another process's appends reach the reader by its poll).
    woken = asyncio.Event()
    stop = await store.board.wake_on_append(woken.set)
    try:
        await store.incidents.create(incident("t:wake"), [],
                                     TimelineEvent("reported", "r", "sms"))
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await stop()
    if type(store).__name__ == "SQLiteStorage":  # NOTIFY may still be in flight elsewhere
        woken.clear()
        await store.incidents.create(incident("t:after"), [],
                                     TimelineEvent("reported", "r", "sms"))
        assert not woken.is_set()


async def test_staff_update_changes_roles_and_areas_only(store: Storage) -> None:
    await store.staff.add(SUPERVISOR, "$argon2id$hash")
    changed = replace(SUPERVISOR, name="Somchai", lang="en", roles=("responder", "analyst"),
                      areas=("TH-65", "TH-6501"), agencies=(), disabled=True)
    assert await store.staff.update(changed)
    got = await store.staff.get("somchai")
    assert got is not None and got.roles == ("responder", "analyst") and got.lang == "en"
    assert got.areas == ("TH-65", "TH-6501") and got.agencies == () and got.name == "Somchai"
    assert not got.disabled  # a disable goes through disable(), which ends the sessions
    assert await store.staff.password_hash("somchai") == "$argon2id$hash"
    assert not await store.staff.update(replace(SUPERVISOR, login="nobody"))


async def test_totp_secret_is_sealed_and_each_step_is_accepted_once(
        store: Storage, dump: Dump) -> None:
    await store.staff.add(SUPERVISOR, None)
    assert await store.staff.totp_secret("somchai") is None
    assert not await store.staff.use_totp_step("somchai", 5)  # nothing enrolled
    secret = b"totp-secret-0123456789"
    assert await store.staff.set_totp("somchai", secret)
    assert not await store.staff.set_totp("nobody", secret)
    assert await store.staff.totp_secret("somchai") == secret
    assert await store.staff.use_totp_step("somchai", 1000)
    assert not await store.staff.use_totp_step("somchai", 1000)  # replayed
    assert not await store.staff.use_totp_step("somchai", 999)  # older
    results = await asyncio.gather(*(store.staff.use_totp_step("somchai", 1001)
                                     for _ in range(4)))
    assert sorted(results) == [False, False, False, True]  # one code, one sign-in
    raw = await dump()
    assert secret not in raw
    assert await store.staff.set_totp("somchai", secret)  # re-enrolled: the steps start again
    assert await store.staff.use_totp_step("somchai", 1000)
    assert await store.staff.set_totp("somchai", None)
    assert await store.staff.totp_secret("somchai") is None
    await store.staff.set_totp("somchai", secret)
    await store.staff.disable("somchai")
    assert await store.staff.totp_secret("somchai") is None  # disabled: no sign-in at all


async def test_outbox_reads_one_incidents_notifications_in_every_state(store: Storage) -> None:
    first, other = incident(), incident("test:ev-2")
    cards = notifications(3)
    await store.incidents.create(first, cards, TimelineEvent("reported", "r", "sms"))
    await store.incidents.create(other, notifications(1), TimelineEvent("reported", "r", "sms"))
    now = utcnow()
    claimed = await store.outbox.claim("A", 10, 30, now)
    mine = [n for n in claimed if n.incident_id == first.id]
    await store.outbox.complete(mine[0].id, "A", now)
    await store.outbox.bury(mine[1].id, "A", "HTTP 400")
    got = await store.outbox.for_incident(first.id)
    assert sorted(n.recipient for n in got) == sorted(n.recipient for n in cards)
    assert all(n.incident_id == first.id and n.payload["phone"] == contract.PHONE
               for n in got)
    by_id = {n.id: n for n in got}
    assert by_id[mine[0].id].status == "sent" and by_id[mine[0].id].sent_at is not None
    assert abs((by_id[mine[0].id].sent_at - now).total_seconds()) < 1  # type: ignore[operator]
    assert by_id[mine[1].id].status == "dead" and by_id[mine[2].id].status == "pending"
    assert await store.outbox.for_incident("no-such-incident") == []


def dispatched(source_event: str, area_codes: list[str], *agencies: str) -> Incident:
    """An incident whose dispatch details are what the dispatcher records (the real
    producer, `plan_first_dispatch`) for a route to one group of each of `agencies`."""
    made = incident(source_event)
    made.area_codes = area_codes
    plan_first_dispatch(made, Route(tuple(f"line:C{a}{source_event}" for a in agencies),
                                    tuple(area_codes), targets=tuple(
        Target(f"line:C{a}{source_event}", a, f"{a} th", f"{a} en", area_codes[0])
        for a in agencies)))
    return made


async def test_agencies_scope_the_incident_reads_with_the_areas(store: Storage) -> None:
    police = dispatched("t:police", ["TH-65", "TH-6501"], "police")
    welfare = dispatched("t:welfare", ["TH-65", "TH-6502"], "welfare")
    both = dispatched("t:both", ["TH-65"], "police", "shelter")
    elsewhere = dispatched("t:elsewhere", ["TH-50"], "welfare")
    for i in (police, welfare, both, elsewhere):
        await store.incidents.create(i, [], TimelineEvent("reported", "reporter", "sms"))

    async def seen(areas: list[str], agencies: list[str]) -> set[str]:
        return {i.reference for i in await store.incidents.in_areas(areas, agencies=agencies)}

    assert await seen(["TH-65"], ["police"]) == {police.reference, both.reference}
    assert await seen(["TH-65"], ["welfare"]) == {welfare.reference}
    assert await seen(["TH-65"], ["welfare", "shelter"]) == {welfare.reference, both.reference}
    assert await seen(["TH-65"], []) == {police.reference, welfare.reference, both.reference}
    assert await seen(["TH-65"], ["education"]) == set()
    assert await seen(["TH-50"], ["police"]) == set()  # the areas still hold
    assert await seen(["TH"], ["police"]) == {i.reference for i in
                                              (police, welfare, both, elsewhere)}
    assert await store.incidents.get_in(welfare.reference, ["TH-65"], ["police"]) is None
    assert await store.incidents.get_in(welfare.reference, ["TH-65"], ["welfare"]) is not None
    assert await store.incidents.get_in(welfare.reference, ["TH-65"]) is not None
    assert await store.incidents.get_in(welfare.reference, ["TH"], ["police"]) is not None
    assert await store.incidents.get_in(elsewhere.reference, ["TH-65"], ["welfare"]) is None

    # The dispatcher tells one more agency (an escalation): the index follows the update,
    # and the closed filter still applies.
    plan_first_dispatch(welfare, Route(("line:Cpolice-more",), ("TH-65",), targets=(
        Target("line:Cpolice-more", "police", "p", "p", "TH-65", level=1),)))
    await store.incidents.update(welfare, TimelineEvent("escalated", "system", "system"))
    assert await seen(["TH-65"], ["police"]) == {police.reference, welfare.reference,
                                                 both.reference}
    assert dispatched_agencies(welfare.details) == ["police", "welfare"]
    welfare.status = "resolved"
    await store.incidents.update(welfare, TimelineEvent("resolved", "x", "board"))
    assert {i.reference for i in await store.incidents.in_areas(
        ["TH-65"], agencies=["welfare"], exclude_status=["resolved"])} == set()


async def test_board_log_records_the_agencies_each_event_was_visible_to(
        store: Storage) -> None:
    # With the event, the incident's dispatched agencies when it was written (the same
    # index the scoped reads use): an agency the escalation adds is not in the earlier rows.
    start = await store.board.last()
    made = dispatched("t:told", ["TH-65"], "police")
    await store.incidents.create(made, [], TimelineEvent("reported", "reporter", "sms"))
    nobody = dispatched("t:nobody", ["TH-65"])
    await store.incidents.create(nobody, [], TimelineEvent("reported", "reporter", "sms"))
    plan_first_dispatch(made, Route(("line:Cwelfare-more",), ("TH-65",), targets=(
        Target("line:Cwelfare-more", "welfare", "w", "w", "TH-65", level=1),)))
    await store.incidents.update(made, TimelineEvent("escalated", "system", "system"))
    made.status = "acknowledged"
    await store.incidents.update(made, TimelineEvent("acknowledged", "x", "board"))
    got = [(e.reference, e.kind, e.agencies) for e in await store.board.after(start)]
    assert got == [(made.reference, "reported", ("police",)),
                   (nobody.reference, "reported", ()),
                   (made.reference, "escalated", ("police", "welfare")),
                   (made.reference, "acknowledged", ("police", "welfare"))]


async def test_migration_0170_backfills_the_agencies_the_stores_index(
        store: Storage, backend_settings: Settings) -> None:
    # A database from before 0170 gets, from the dispatch details it holds, the very index
    # the stores now keep with each write.
    for i in (dispatched("t:p", ["TH-65"], "police"), dispatched("t:w", ["TH-65"], "welfare"),
              dispatched("t:pw", ["TH-65"], "welfare", "police"), dispatched("t:n", ["TH-65"])):
        await store.incidents.create(i, [], TimelineEvent("reported", "reporter", "sms"))
    text = (MIGRATIONS / ("postgres" if backend_settings.database_url else "sqlite")
            / "0170_incident_agencies.sql").read_text()
    backfill = text[text.index("-- Backfill"):]
    if backend_settings.database_url:
        select = ("SELECT reference, agencies FROM incidents WHERE source_event LIKE 't:%' "
                  "ORDER BY reference")
        conn = await asyncpg.connect(backend_settings.database_url)
        try:
            written = [(r[0], list(r[1])) for r in await conn.fetch(select)]
            await conn.execute("UPDATE incidents SET agencies = '{}'")
            await conn.execute(backfill)
            backfilled = [(r[0], list(r[1])) for r in await conn.fetch(select)]
        finally:
            await conn.close()
    else:
        select = ("SELECT i.reference, a.agency FROM incidents i LEFT JOIN incident_agencies a "
                  "ON a.incident_id = i.id ORDER BY i.reference, a.agency")

        async with aiosqlite.connect(backend_settings.sqlite_path) as db:
            written = list(await db.execute_fetchall(select))
            await db.execute("DELETE FROM incident_agencies")
            await db.executescript(backfill)
            backfilled = list(await db.execute_fetchall(select))
    assert sorted(a for r in written for a in ([r[1]] if isinstance(r[1], str) else
                                               r[1] or [])) == \
        ["police", "police", "welfare", "welfare"]
    assert backfilled == written
