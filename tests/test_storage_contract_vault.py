"""Per-record data keys (crypto-shredding) on every backend.

What is checked is what an intruder with a copy would see: the raw rows. After a record's
key is destroyed nothing of its personal fields opens, even with the service keys, while the
clear columns that statistics read stay as they were.
"""

from __future__ import annotations

import asyncpg
import pytest

from bot.incident import TimelineEvent
from bot.types import utcnow
from config.settings import Settings
from routing.lifecycle import CLOSED
from storage.crypto import Sealer, SealError
from storage.factory import open_storage
from storage.ports import Storage
from storage.vault import CLOSED_STATUSES, ERASED, ERASED_FLAG, is_erased
from tests import test_storage_contract as contract
from tests.test_storage_contract import CONVERSATION, PHONE, incident, notifications

backend_settings, store, dump = contract.backend_settings, contract.store, contract.dump
SERVICE = Sealer([b"k" * 32])


async def raw_phone(settings: Settings, incident_id: str) -> bytes:
    if settings.database_url:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return bytes(await conn.fetchval("SELECT phone FROM incidents WHERE id = $1",
                                             incident_id))
        finally:
            await conn.close()
    import sqlite3

    db = sqlite3.connect(settings.sqlite_path)
    try:
        return bytes(db.execute("SELECT phone FROM incidents WHERE id = ?",
                                (incident_id,)).fetchone()[0])
    finally:
        db.close()


def test_closed_statuses_match_the_lifecycle() -> None:
    assert set(CLOSED_STATUSES) == set(CLOSED)


async def test_each_record_has_its_own_key(store: Storage,
                                           backend_settings: Settings) -> None:
    a = await store.incidents.create(incident("v:a"), [], TimelineEvent("reported", "r", "sms"))
    blob = await raw_phone(backend_settings, a.id)
    with pytest.raises(SealError):
        SERVICE.open(blob)  # the service keys alone do not open a record's field
    [status] = await store.vault.status([a.id])
    assert status.live and status.kind == "incident"
    assert status.subject == SERVICE.digest(CONVERSATION)
    got = await store.incidents.get(a.reference)
    assert got is not None and got.phone == PHONE and not is_erased(got)


async def test_shredding_erases_the_personal_fields_and_keeps_the_statistics(
        store: Storage, backend_settings: Settings) -> None:
    since = utcnow()
    a = incident("v:s")
    a.details["injured"] = "yes"
    a = await store.incidents.create(a, notifications(2),
                                     TimelineEvent("reported", "r", "sms", data={"said": "x"}))
    await store.incidents.update(a, TimelineEvent("ack", "police", "line"))
    other = await store.incidents.create(incident("v:o"), [],
                                         TimelineEvent("reported", "r", "sms"))
    before = await store.incidents.milestones(since, ["ack"])
    digests = [SERVICE.digest(CONVERSATION)]
    assert {i.id for i in await store.incidents.for_subject(digests)} == {a.id, other.id}
    assert {i.id for i in await store.incidents.for_subject(
        [SERVICE.digest(f"phone:{PHONE}")])} == {a.id, other.id}
    assert await store.vault.shred([a.id], utcnow()) == 1
    assert await store.vault.shred([a.id], utcnow()) == 0  # idempotent
    assert await store.incidents.scrub([a.id]) == 1
    got = await store.incidents.get(a.reference)
    assert got is not None and is_erased(got)
    assert got.phone is None and got.location.text == ERASED and got.location.lat is None
    assert got.reporter.startswith("erased:") and "injured" not in got.details
    assert got.status == "new" or got.status  # clear columns stay
    assert got.area_codes == ["TH-65"] and got.type == "threat"
    events = await store.incidents.timeline(a.id)
    assert [e.kind for e in events] == ["reported", "ack"]
    assert events[0].data == {ERASED_FLAG: True}
    assert await store.incidents.milestones(since, ["ack"]) == before
    # Its undelivered notifications are never sent (the payload held the phone).
    assert await store.outbox.claim("A", 10, 30, utcnow()) == []
    assert await store.incidents.messages(a.id) == []
    assert [i.id for i in await store.incidents.for_subject(digests)] == [other.id]
    # Before the erase a record's messages open with its key (the export lists them).
    kept = await store.incidents.get(other.reference)
    assert kept is not None and kept.phone == PHONE  # another record, another key
    with pytest.raises(SealError):
        SERVICE.with_data_key(b"x" * 32).open(await raw_phone(backend_settings, other.id))


async def test_messages_of_a_record_open_with_its_key(store: Storage) -> None:
    a = await store.incidents.create(incident("v:m"), notifications(2),
                                     TimelineEvent("reported", "r", "sms"))
    found = await store.incidents.messages(a.id)
    assert sorted(n.recipient for n in found) == ["line:Cgroup0", "line:Cgroup1"]
    assert {n.payload["phone"] for n in found} == {PHONE}
    assert all(n.status == "pending" for n in found)


async def test_an_erased_record_can_still_change_status(store: Storage) -> None:
    a = await store.incidents.create(incident("v:u"), [], TimelineEvent("reported", "r", "sms"))
    await store.vault.shred([a.id], utcnow())
    got = await store.incidents.get(a.reference)
    assert got is not None
    got.status = "resolved"
    await store.incidents.update(got, TimelineEvent("resolve", "police", "line"))
    again = await store.incidents.get(a.reference)
    assert again is not None and again.status == "resolved" and is_erased(again)


async def test_rotation_rewraps_keys_and_leaves_the_data(store: Storage,
                                                         backend_settings: Settings) -> None:
    a = await store.incidents.create(incident("v:r"), [], TimelineEvent("reported", "r", "sms"))
    blob = await raw_phone(backend_settings, a.id)
    await store.close()
    new = b"n" * 32
    rotated = await open_storage(backend_settings, Sealer([new, b"k" * 32]))
    try:
        assert await rotated.vault.rewrap() == 1
        assert await rotated.vault.rewrap() == 0
        [status] = await rotated.vault.status([a.id])
        assert status.wrapped_by == Sealer([new]).seal(b"")[1:9].hex()
    finally:
        await rotated.close()
    assert await raw_phone(backend_settings, a.id) == blob  # not re-encrypted
    only_new = await open_storage(backend_settings, Sealer([new]))
    try:
        got = await only_new.incidents.get(a.reference)
        assert got is not None and got.phone == PHONE  # the old service key is gone
        assert [k.record for k in await only_new.vault.wrapped_by(
            [status.wrapped_by or ""])] == [a.id]
    finally:
        await only_new.close()


async def test_erasing_conversations(store: Storage) -> None:
    now = utcnow()
    await store.sessions.save(contract.session(), "sms:e1")
    await store.transcripts.append(CONVERSATION, b"hello", now, key="k1")
    assert await store.sessions.erase(CONVERSATION) >= 1
    assert await store.transcripts.erase(CONVERSATION) == 1
    assert (await store.sessions.load(CONVERSATION, "sms:e2")).session is None
    assert await store.transcripts.after(CONVERSATION, 0) == []
    assert await store.transcripts.append(CONVERSATION, b"again", now, key="k1") == 1


async def test_rows_from_before_record_keys_still_open(store: Storage,
                                                       backend_settings: Settings) -> None:
    """A row sealed with the service keys and no vault entry (written by an older release)."""
    import json
    import sqlite3

    from storage.crypto import seal_fields

    a = await store.incidents.create(incident("v:l"), [], TimelineEvent("reported", "r", "sms"))
    await store.close()
    columns = (SERVICE.seal_text(CONVERSATION), SERVICE.seal_text(PHONE),
               SERVICE.seal_json(a.location.to_dict()),
               seal_fields(SERVICE, {"injured": "no"}))
    if backend_settings.database_url:
        conn = await asyncpg.connect(backend_settings.database_url)
        try:
            await conn.execute("UPDATE incidents SET reporter = $1, phone = $2, location = $3, "
                               "details = $4::jsonb WHERE id = $5", *columns, a.id)
            await conn.execute("DELETE FROM vault.data_keys WHERE record = $1", a.id)
        finally:
            await conn.close()
    else:
        db = sqlite3.connect(backend_settings.sqlite_path)
        db.execute("ATTACH DATABASE ? AS vault",
                   (str(backend_settings.sqlite_path.with_name("ess-keys.db")),))
        db.execute("UPDATE incidents SET reporter = ?, phone = ?, location = ?, details = ? "
                   "WHERE id = ?", (*columns, a.id))
        db.execute("DELETE FROM vault.data_keys WHERE record = ?", (a.id,))
        db.commit()
        db.close()
    reopened = await open_storage(backend_settings, SERVICE)
    try:
        got = await reopened.incidents.get(a.reference)
        assert got is not None and got.phone == PHONE and got.reporter == CONVERSATION
        assert got.details == {"injured": "no"} and json.dumps(got.location.to_dict())
    finally:
        await reopened.close()


async def test_the_statistics_columns_read_back_as_stored_and_stay_after_an_erasure(
        store: Storage) -> None:
    from storage.analytics import DERIVED, local_columns

    a = await store.incidents.create(incident("v:d"), [],
                                     TimelineEvent("reported", "r", "sms"))
    await store.incidents.update(a, TimelineEvent("escalated", "sweeper", "timer"))
    await store.incidents.update(a, TimelineEvent("acknowledged", "police", "line"))
    before = await store.incidents.derived(a.id)
    assert before is not None
    assert (before.province, before.district, before.escalations) == ("TH-65", None, 1)
    assert before.acked_at is not None and before.acked_s is not None and before.acked_s >= 0
    assert before.local_day == local_columns(a.created_at)[0] and before.synthetic is False
    assert before.cell and before.delivered_at is None
    assert set(before.to_dict()) == set(DERIVED)
    assert before.to_dict()["acked_at"] == before.acked_at.isoformat()
    await store.vault.shred([a.id], utcnow())
    await store.incidents.scrub([a.id])
    assert await store.incidents.derived(a.id) == before  # coarse: kept for the statistics
    assert await store.incidents.derived("no-such-id") is None
