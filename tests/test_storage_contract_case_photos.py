"""The storage contract, continued: photos of documents kept with cases, on every backend.

The fixtures are the contract suite's own (tests/test_storage_contract.py), so each test
runs on SQLite, PostgreSQL and PostgreSQL + Redis.
"""

from __future__ import annotations

from bot.case import CasePhoto, photo_type
from bot.types import utcnow
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
