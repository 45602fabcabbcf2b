"""The PDPA ledger on every backend: requests and deadlines, append-only consent with its
gate and override, breaches; and retention on a controllable clock."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import asyncpg
import pytest

from bot.incident import Notification, TimelineEvent
from bot.privacy import retention
from bot.privacy.breach import open_breach
from bot.privacy.consent import ConsentError, Consents
from bot.privacy.processing import load_processing
from bot.types import utcnow
from config.settings import Settings
from storage.crypto import Sealer
from storage.ports import Storage
from storage.privacy import DONE, OPEN, REFUSED, SubjectRequest
from storage.vault import is_erased
from tests import test_storage_contract as contract
from tests.test_storage_contract import incident

backend_settings, store, dump = contract.backend_settings, contract.store, contract.dump


async def test_requests_keep_deadlines_and_close_once(store: Storage) -> None:
    now = utcnow()
    late = SubjectRequest("R-1", "erasure", "S-a", "phone", now, now + timedelta(days=90), "x")
    soon = SubjectRequest("R-2", "access", "S-a", "phone", now, now + timedelta(days=30), "x")
    await store.privacy.add_request(late)
    await store.privacy.add_request(soon)
    assert [r.id for r in await store.privacy.requests()] == ["R-2", "R-1"]
    assert await store.privacy.close_request("R-2", DONE, now, "", ["ESS-AAAAA"])
    assert not await store.privacy.close_request("R-2", REFUSED, now, "again")
    assert await store.privacy.close_request("R-1", REFUSED, now, "not their number")
    assert await store.privacy.requests() == []
    got = await store.privacy.request("R-1")
    assert got is not None and got.status == REFUSED and got.reason == "not their number"
    r2 = await store.privacy.request("R-2")
    assert r2 is not None and r2.references == ("ESS-AAAAA",) and r2.status == DONE
    assert r2.due_at.date() == (now + timedelta(days=30)).date()
    assert OPEN not in {r.status for r in await store.privacy.requests(open_only=False)}


async def test_consent_gate_revocation_and_override(store: Storage,
                                                    backend_settings: Settings) -> None:
    consents = Consents(store)
    now = utcnow()
    assert not (await consents.may_refer("S-b", "programme:elderly")).allowed
    await consents.give("S-b", ["programme:elderly"], "line", "volunteer:7", now,
                        catalog_key="case.consent", catalog_version="3",
                        text="ยินยอมให้ส่งต่อ…", reference="CASE-1")
    gate = await consents.may_refer("S-b", "programme:elderly")
    assert gate.allowed and gate.why == "consent" and gate.event is not None
    assert gate.event.catalog_version == "3" and gate.event.text.startswith("ยินยอม")
    assert not (await consents.may_refer("S-b", "programme:other")).allowed
    await consents.revoke("S-b", ["programme:elderly"], "line", "S-b", now)
    assert (await consents.may_refer("S-b", "programme:elderly")).why == "revoked"
    with pytest.raises(ConsentError):
        await consents.override("S-b", "programme:elderly", "supervisor:2", " ", now,
                                "CASE-1")
    await consents.override("S-b", "programme:elderly", "supervisor:2",
                            "unconscious, in danger", now, "CASE-1")
    assert (await consents.may_refer("S-b", "programme:elderly", "CASE-1")).why == "override"
    assert not (await consents.may_refer("S-b", "programme:elderly", "CASE-2")).allowed
    events = await store.privacy.consents("S-b")
    assert [e.kind for e in events] == ["given", "revoked", "override"]
    assert {r.entry.action for r in await store.audit.find(subject="S-b")} == {
        "consent.give", "consent.revoke", "consent.override"}
    # Append-only: the receipts cannot be edited in place.
    if backend_settings.database_url:
        conn = await asyncpg.connect(backend_settings.database_url)
        try:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("UPDATE consent_events SET kind = 'given'")
        finally:
            await conn.close()
    else:
        db = sqlite3.connect(backend_settings.sqlite_path)
        try:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute("DELETE FROM consent_events")
        finally:
            db.close()


async def test_retention_on_a_controllable_clock(store: Storage) -> None:
    processing = load_processing()
    days = processing.kinds["incident"].days("personal_after_resolution_days")
    relay_days = processing.kinds["incident"].days("relay_messages_days")
    assert days and relay_days
    start = utcnow()
    closed = incident("ret:closed")
    closed.created_at = closed.updated_at = start
    closed = await store.incidents.create(closed, [], TimelineEvent("reported", "r", "sms"))
    closed.status = "resolved"
    relay = Notification("sms:+66812345678", "relay.to_reporter", {"text": "we are near"})
    await store.incidents.update(closed, TimelineEvent("resolve", "police", "line", start),
                                 [relay])
    [sent] = await store.outbox.claim("A", 10, 30, utcnow())
    assert await store.outbox.complete(sent.id, "A", start)
    still_open = await store.incidents.create(incident("ret:open"), [],
                                              TimelineEvent("reported", "r", "sms"))
    since = start - timedelta(minutes=1)
    counts = await store.incidents.milestones(since, ["resolve"])

    soon = start + timedelta(days=days - 3)
    due = await retention.due(store, processing, soon, timedelta(days=7))
    assert [d.reference for d in due] == [closed.reference]
    assert await retention.due(store, processing, soon, timedelta(days=1)) == []
    # Nothing before its time; the relay text goes first.
    assert await retention.run(store, processing, start + timedelta(days=1)) == 0
    assert await retention.run(store, processing,
                               start + timedelta(days=relay_days + 1)) == 1
    assert await retention.run(store, processing,
                               start + timedelta(days=relay_days + 2)) == 0  # idempotent
    got = await store.incidents.get(closed.reference)
    assert got is not None and not is_erased(got)
    later = start + timedelta(days=days + 1)
    assert await retention.run(store, processing, later) == 1
    assert await retention.run(store, processing, later) == 0  # idempotent
    got = await store.incidents.get(closed.reference)
    assert got is not None and is_erased(got) and got.phone is None
    kept = await store.incidents.get(still_open.reference)
    assert kept is not None and not is_erased(kept)  # open reports are never erased
    assert await store.incidents.milestones(since, ["resolve"]) == counts
    actions = [r.entry.action for r in await store.audit.records()]
    assert actions == ["retention.relay", "retention.erase"]
    assert (await store.audit.verify()).intact


async def test_a_breach_lists_what_a_leaked_key_wraps(store: Storage) -> None:
    a = await store.incidents.create(incident("b:a"), [], TimelineEvent("reported", "r", "sms"))
    now = utcnow()
    [key_id] = Sealer([b"k" * 32]).key_ids()
    breach = await open_breach(store, load_processing(), "cli:dpo", now, key_ids=[key_id],
                               description="a laptop with the key file was stolen")
    assert breach.references == (a.reference,)
    assert breach.deadline - breach.opened_at == timedelta(hours=72)
    assert a.reference in breach.notice and "laptop" in breach.notice
    assert contract.PHONE not in breach.notice
    none = await open_breach(store, load_processing(), "cli:dpo", now, key_ids=["0" * 16])
    assert none.references == ()
    since = await open_breach(store, load_processing(), "cli:dpo", now,
                              since=now - timedelta(hours=1))
    assert since.references == (a.reference,)
    assert {b.id for b in await store.privacy.breaches()} == {since.id, none.id, breach.id}


async def test_logins_and_reads_are_chained(store: Storage) -> None:
    from bot.privacy.access import LOGIN_FAILED, READ, record_login, record_read

    await record_login(store, "staff:9", ok=False)
    await record_login(store, "staff:9", ok=True)
    await record_read(store, "staff:9", "ESS-AAAAA", what="board")
    rows = await store.audit.find(staff="staff:9")
    assert [r.entry.action for r in rows] == [READ, "staff.login", LOGIN_FAILED]
    assert (await store.audit.verify()).intact


async def test_the_sweeper_runs_retention_hourly(store: Storage) -> None:
    from bot.sweeper import Sweeper

    now = [utcnow()]
    calls: list[object] = []

    async def retain(at: object) -> int:
        calls.append(at)
        return 0

    sweeper = Sweeper(store, clock=lambda: now[0], retention=retain)
    await sweeper.sweep_once()
    await sweeper.sweep_once()
    assert calls == [now[0]]
    now[0] += timedelta(hours=1)
    await sweeper.sweep_once()
    assert calls[-1] == now[0] and len(calls) == 2
