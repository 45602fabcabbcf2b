"""Issue 14's test for the live conversation state: a backup taken before an erase holds
nothing readable of the subject afterwards.

The subject has a report, a live session, a web chat transcript and a journal entry not yet
handled; another subject has a session in the same copy. The copy is taken before the
erase (the SQLite files; the raw PostgreSQL rows; the raw Redis values), then opened after
it with the service keys and with the vault as it is now.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from bot.incident import TimelineEvent
from bot.privacy.rights import Rights
from bot.privacy.subjects import Selector
from bot.types import utcnow
from config.settings import Settings
from storage import analytics
from storage.crypto import SealError
from storage.ports import Storage
from storage.sqlite import SQLiteStorage
from tests import test_storage_contract as contract
from tests.test_storage_contract import PHONE, entry, incident, session
from tests.test_storage_contract_conversation_keys import (
    OTHER,
    SERVICE,
    keys_of,
    raw_blobs,
)

backend_settings, store = contract.backend_settings, contract.store
WEB = "web:" + "w" * 22  # a web chat's conversation key
SAID = "my husband is outside the door"


async def counts(storage: Storage) -> list[analytics.CountRow]:
    now = utcnow()
    return await storage.incidents.counts(
        analytics.Query(now - timedelta(days=1), now + timedelta(days=1)), ["type", "status"])


async def subject_with_everything(storage: Storage) -> str:
    """A web chat reporter with a report, a live session, a transcript and a journal entry
    not yet handled; the reference of their report."""
    report = incident("web:ev-1")
    report.reporter, report.channel = WEB, "web"
    created = await storage.incidents.create(report, [], TimelineEvent(
        "reported", "reporter", "web"))
    live = session(WEB)
    live.slots["said"] = SAID
    await storage.sessions.save(live, "web:ev-2")
    await storage.transcripts.append(WEB, SAID.encode(), utcnow())
    await storage.journal.append([entry(WEB, 7)])
    await storage.sessions.save(session(OTHER), "line:ev-3")  # somebody else
    return created.reference


async def test_a_backup_taken_before_an_erase_holds_nothing_readable_of_the_subject(
        store: Storage, backend_settings: Settings, tmp_path: Path) -> None:
    reference = await subject_with_everything(store)
    rights = Rights(store, SERVICE.digest, "test:officer")
    selector = Selector("reference", reference)
    stats = await counts(store)

    # The export, before: the live session and the transcript are in it.
    _, exported = await rights.export(selector, utcnow())
    [conversation] = [r["data"] for r in exported["records"] if r["kind"] == "conversation"]
    assert conversation["session"]["slots"]["said"] == SAID
    assert [m["message"] for m in conversation["transcript"]] == [SAID]

    # The copy of the data, without the vault.
    copy = tmp_path / "copy"
    copy.mkdir()
    if not backend_settings.database_url:
        for part in backend_settings.sqlite_path.parent.glob("ess.db*"):
            shutil.copy(part, copy / part.name)
    held = await raw_blobs(backend_settings, WEB)
    others = await raw_blobs(backend_settings, OTHER)
    assert held["session"] and held["transcript"] and held["journal"], held
    assert others["session"]

    _, erased = await rights.erase(selector, "the reporter asked", utcnow())
    assert erased >= 2  # the report and the conversation
    assert await counts(store) == stats  # the statistics stay

    # Nothing of the subject opens, with the service keys or the vault as it is now.
    record, other = SERVICE.digest(WEB), SERVICE.digest(OTHER)
    for blob in (b for v in held.values() for b in v):
        with pytest.raises(SealError):
            SERVICE.open(blob)
        assert await keys_of(store).open(record, blob) is None
    # The other subject's session in the same copy still does.
    [other_session] = others["session"]
    assert await keys_of(store).open(other, other_session) is not None
    # The live stores hold nothing of the subject: no session, no transcript, the journal
    # entry dropped unhandled.
    assert (await store.sessions.load(WEB, "web:ev-9")).session is None
    assert await store.transcripts.after(WEB, 0) == []
    assert await store.journal.claim("w", 10, 30, utcnow()) == []
    assert await store.journal.pending() == 0

    if backend_settings.database_url:
        return
    # SQLite: the backup restored next to today's vault file opens nothing of the subject,
    # the other subject's session as it was, and the same statistics.
    vault = backend_settings.sqlite_path.with_name("ess-keys.db")
    for part in vault.parent.glob("ess-keys.db*"):
        shutil.copy(part, copy / part.name)
    raw = b"".join(p.read_bytes() for p in copy.glob("ess.db*"))
    assert PHONE.encode() not in raw and SAID.encode() not in raw
    restored = await SQLiteStorage.open(copy / "ess.db", SERVICE)
    try:
        stale = (await restored.sessions.load(WEB, "web:ev-9")).session
        assert stale is not None and stale.slots == {}  # there, but opens as nothing
        assert await restored.transcripts.after(WEB, 0) == []
        assert await restored.journal.claim("w", 10, 30, utcnow()) == []
        kept = (await restored.sessions.load(OTHER, "line:ev-9")).session
        assert kept is not None and kept.slots["phone"] == PHONE
        [found] = await restored.incidents.for_subject([record])
        assert found.phone is None and found.location.text == "[erased]"
        assert await counts(restored) == stats
    finally:
        await restored.close()


async def test_a_breach_of_a_service_key_counts_the_subjects_of_live_conversations(
        store: Storage) -> None:
    from bot.privacy.breach import affected

    await store.sessions.save(session("line:U" + "c" * 32), "line:ev-1")  # no report
    references, subjects = await affected(store, key_ids=SERVICE.key_ids())
    assert (references, subjects) == ([], 1)
    reference = await subject_with_everything(store)
    references, subjects = await affected(store, key_ids=SERVICE.key_ids())
    # The reporter once, with their report; the other conversation of `subject_with_…`.
    assert (references, subjects) == ([reference], 3)
