"""The storage contract, continued: photos of documents kept with cases, on every backend.

The fixtures are the contract suite's own (tests/test_storage_contract.py), so each test
runs on SQLite, PostgreSQL and PostgreSQL + Redis.
"""

from __future__ import annotations

from datetime import timedelta

from bot.case import CasePhoto, photo_type
from bot.incident import TimelineEvent
from bot.privacy import retention
from bot.privacy.processing import load_processing
from bot.types import utcnow
from storage.cases import is_erased_case
from storage.ports import Storage
from tests import test_storage_contract as contract
from tests.test_storage_contract import Dump
from tests.test_storage_contract_cases import a_case, opened

backend_settings, store, dump = contract.backend_settings, contract.store, contract.dump

# A JPEG's first bytes, then something recognisable that must never be in clear.
JPEG = b"\xff\xd8\xff\xe0" + b"HOUSE-REGISTRATION-6501-page-1" * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"ID-CARD-BACK" * 10


def a_photo(case_id: str, photo_id: str = "p1", data: bytes = JPEG) -> CasePhoto:
    kind = photo_type(data)
    assert kind is not None
    return CasePhoto(photo_id, case_id, kind, len(data), utcnow(), data)


async def test_a_photo_round_trips_once_per_id_and_lists_without_its_bytes(
        store: Storage) -> None:
    case = await store.cases.create(a_case(), opened())
    assert await store.case_photos.add(a_photo(case.id))
    assert await store.case_photos.add(a_photo(case.id))  # the same event again: kept once
    assert await store.case_photos.add(a_photo(case.id, "p2", PNG))
    listed = await store.case_photos.listed(case.id)
    assert [(p.id, p.content_type, p.size, p.data) for p in listed] == [
        ("p1", "image/jpeg", len(JPEG), b""), ("p2", "image/png", len(PNG), b"")]
    got = await store.case_photos.get(case.id, "p2")
    assert got is not None and got.data == PNG and got.content_type == "image/png"
    other = await store.cases.create(a_case(reference="CASE-CCCCC"), opened())
    assert await store.case_photos.get(other.id, "p2") is None  # another case's photo
    assert await store.case_photos.listed(other.id) == []
    assert not await store.case_photos.add(a_photo("no-such-case"))
    assert await store.case_photos.counts([case.id, other.id, "no-such-case"]) == {case.id: 2}
    assert await store.case_photos.counts([]) == {}


async def test_a_photo_is_sealed_with_the_case_key_and_erasing_the_case_shreds_it(
        store: Storage, dump: Dump) -> None:
    case = await store.cases.create(a_case(), opened())
    assert await store.case_photos.add(a_photo(case.id))
    backup = await dump()  # what a backup taken before the erase holds
    # PostgreSQL's dump shows bytea as hex: look for both forms.
    assert b"HOUSE-REGISTRATION" not in backup
    assert b"HOUSE-REGISTRATION".hex().encode() not in backup
    assert await store.vault.shred([case.id], utcnow()) == 1
    assert await store.case_photos.get(case.id, "p1") is None  # unreadable at once
    assert not await store.case_photos.add(a_photo(case.id, "p9"))  # nothing kept after
    assert await store.case_photos.drop([case.id]) == 1
    assert await store.case_photos.listed(case.id) == []
    assert await store.case_photos.drop([]) == 0


async def test_retention_removes_a_closed_cases_photos_before_the_case(
        store: Storage) -> None:
    processing = load_processing()
    days = processing.kinds["case"].days("photos_after_resolution_days")
    case_days = processing.kinds["case"].days("personal_after_resolution_days")
    assert days and case_days and days < case_days
    start = utcnow()
    closed = await store.cases.create(a_case(created_at=start, updated_at=start), opened())
    open_one = await store.cases.create(a_case(reference="CASE-EEEEE"), opened())
    for case in (closed, open_one):
        assert await store.case_photos.add(a_photo(case.id, f"p-{case.reference}"))
    closed.status = "closed"
    await store.cases.update(closed, TimelineEvent("close", "head", "cli", start))
    soon = start + timedelta(days=days - 2)
    due = await retention.due(store, processing, soon, timedelta(days=7))
    assert [(d.kind, d.reference, d.what) for d in due] == [
        ("case photos", closed.reference, "1 photo(s) of documents")]
    assert await retention.run(store, processing, start + timedelta(days=days - 1)) == 0
    later = start + timedelta(days=days + 1)
    assert await retention.run(store, processing, later) == 1
    assert await retention.run(store, processing, later) == 0  # idempotent
    assert await store.case_photos.listed(closed.id) == []
    kept = await store.cases.get(closed.reference)
    assert kept is not None and not is_erased_case(kept)  # the case stays its own period
    assert len(await store.case_photos.listed(open_one.id)) == 1  # open: never
    # When the case itself is erased by retention, whatever photo is left goes with it.
    assert await store.case_photos.add(a_photo(closed.id, "late"))
    assert await retention.run(store, processing,
                               start + timedelta(days=case_days + 1)) >= 1
    assert await store.case_photos.listed(closed.id) == []
