"""The storage contract, continued: welfare cases on every backend.

The fixtures are the contract suite's own (tests/test_storage_contract.py), so each test
runs on SQLite, PostgreSQL and PostgreSQL + Redis.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.case import Case, Consent, Person, Referral
from bot.incident import Notification, TimelineEvent
from bot.privacy import retention
from bot.privacy.breach import open_breach
from bot.privacy.processing import load_processing
from bot.types import Location, LocationSource, utcnow
from storage.cases import is_erased_case
from storage.crypto import Sealer
from storage.ports import StaleSession, Storage, Timer
from tests import test_storage_contract as contract
from tests.test_storage_contract import Dump

backend_settings, store, dump = contract.backend_settings, contract.store, contract.dump

VOLUNTEER = "sms:+66898765432"
THAI_ID = "1101700230708"  # check digit valid
NEEDS = "needs rice and a wheelchair urgently"


def a_case(**kw: object) -> Case:
    fields: dict[str, object] = dict(
        reference="CASE-7K3F9", volunteer=VOLUNTEER, channel="sms", lang="th", area="65",
        location=Location(16.82113, 100.26594, LocationSource.REPORTER_PIN),
        person=Person(birth_year=1956, sex="female", thai_id=THAI_ID),
        members=[Person(birth_year=2015, sex="male", relation="grandchild")],
        hardships=["old_age", "out_of_school"], needs=NEEDS,
        consent=Consent("consent", VOLUNTEER, utcnow(), "case.consent.text",
                        "I agree to share", "1", "en"),
        flags=["zero_dropout"])
    fields.update(kw)
    return Case(**fields)  # type: ignore[arg-type]


def opened() -> TimelineEvent:
    return TimelineEvent("opened", "volunteer", "sms", data={"note": "first visit"})


async def test_a_case_round_trips_with_everything_it_holds(store: Storage) -> None:
    case = a_case()
    await store.cases.create(case, opened())
    got = await store.cases.get(case.reference)
    assert got is not None and got.id == case.id
    assert got.person == case.person and got.members == case.members
    assert (got.hardships, got.needs, got.flags, got.area) == (
        case.hardships, NEEDS, ["zero_dropout"], "65")
    assert got.consent == case.consent
    assert got.location.lat == pytest.approx(16.82113)
    assert (await store.cases.get_by_id(case.id)) is not None
    assert [e.kind for e in await store.cases.timeline(case.id)] == ["opened"]
    assert (await store.cases.timeline(case.id))[0].data == {"note": "first visit"}


async def test_create_is_idempotent_on_the_source_event(store: Storage) -> None:
    first = await store.cases.create(a_case(source_event="line:ev-1"), opened())
    again = await store.cases.create(a_case(source_event="line:ev-1", reference="CASE-AAAAA"),
                                     opened())
    assert again.id == first.id and again.reference == first.reference
    assert len(await store.cases.recent()) == 1


async def test_a_reference_collision_gets_a_fresh_reference(store: Storage) -> None:
    await store.cases.create(a_case(), opened())
    second = await store.cases.create(a_case(), opened())
    assert second.reference != "CASE-7K3F9" and second.reference.startswith("CASE-")


async def test_update_bumps_the_version_and_refuses_a_stale_copy(store: Storage) -> None:
    case = await store.cases.create(a_case(), opened())
    stale = await store.cases.get(case.reference)
    assert stale is not None
    case.status = "screening"
    due = utcnow() + timedelta(days=7)
    case.referrals.append(Referral(to="elderly_allowance", due_at=due))
    note = Notification(VOLUNTEER, "case_update", {"reference": case.reference})
    timer = Timer(f"case-follow-up:{case.id}", "case_follow_up", case.id, due, 2)
    await store.cases.update(case, TimelineEvent("screen", "officer", "cli"), [note], [timer])
    assert case.version == 2
    got = await store.cases.get(case.reference)
    assert got is not None and got.status == "screening" and got.version == 2
    assert got.referrals[0].to == "elderly_allowance" and got.referrals[0].state == "pending"
    assert await store.outbox.pending() == 1
    fired = await store.timers.claim_due("A", due + timedelta(seconds=1), 10, 30)
    assert [t.kind for t in fired] == ["case_follow_up"]
    with pytest.raises(StaleSession):
        await store.cases.update(stale, TimelineEvent("assess", "officer", "cli"))


async def test_lists_by_volunteer_area_and_incident(store: Storage) -> None:
    a = await store.cases.create(a_case(), opened())
    await store.cases.create(a_case(volunteer="line:Uother", area="10"), opened())
    assert [c.id for c in await store.cases.for_volunteer(VOLUNTEER)] == [a.id]
    assert [c.id for c in await store.cases.recent(areas=["65"])] == [a.id]
    assert await store.cases.recent(areas=[]) == []
    assert len(await store.cases.recent()) == 2
    assert await store.cases.for_incident("nope") == []


async def test_duplicates_by_thai_id_any_time_and_person_place_within_the_window(
        store: Storage) -> None:
    old = await store.cases.create(a_case(created_at=utcnow() - timedelta(days=400)), opened())
    same_id = a_case(reference="CASE-AAAAA", person=Person(birth_year=1990, thai_id=THAI_ID))
    await store.cases.create(same_id, opened())
    assert await store.cases.possible_duplicates(same_id, utcnow() - timedelta(days=30)) == [
        old.reference]
    # Same person and place but no ID: only within the window.
    no_id = a_case(reference="CASE-CCCCC", person=Person(birth_year=1956, sex="female"),
                   members=[])
    await store.cases.create(no_id, opened())
    assert await store.cases.possible_duplicates(no_id, utcnow() - timedelta(days=30)) == []
    assert await store.cases.possible_duplicates(
        no_id, utcnow() - timedelta(days=500)) == [old.reference]
    stranger = a_case(reference="CASE-DDDDD", person=Person(birth_year=1970), members=[],
                      location=Location(13.7, 100.5, LocationSource.REPORTER_PIN))
    await store.cases.create(stranger, opened())
    assert await store.cases.possible_duplicates(stranger, utcnow() - timedelta(days=500)) == []


async def test_nothing_personal_of_a_case_is_in_clear(store: Storage, dump: Dump) -> None:
    await store.cases.create(a_case(), opened())
    raw = await dump()
    for secret in (THAI_ID.encode(), VOLUNTEER.encode(), b"+66898765432", b"16.82113",
                   b"wheelchair", b"I agree to share", b"first visit", b"out_of_school"):
        assert secret not in raw, secret


async def test_a_case_has_its_own_key_and_shredding_it_erases_every_copy(
        store: Storage, dump: Dump) -> None:
    case = await store.cases.create(a_case(), opened())
    copy = await dump()  # what a backup taken before the erase holds
    [status] = await store.vault.status([case.id])
    assert status.live and status.kind == "case"
    again = a_case(reference="CASE-BBBBB", person=Person(birth_year=1990, thai_id=THAI_ID))
    assert await store.cases.possible_duplicates(again, utcnow()) == [case.reference]
    assert await store.vault.shred([case.id], utcnow()) == 1
    assert await store.cases.scrub([case.id]) >= 1
    got = await store.cases.get(case.reference)
    assert got is not None and is_erased_case(got)
    assert got.person == Person() and got.members == [] and got.consent is None
    assert (got.status, got.area, got.reference) == ("new", "65", case.reference)
    assert [e.kind for e in await store.cases.timeline(case.id)] == ["opened"]
    assert (await store.cases.timeline(case.id))[0].data == {"erased": True}
    assert await store.cases.possible_duplicates(again, utcnow()) == []
    # A change after the erase keeps the case erased (its key is gone for good).
    got.status = "closed"
    await store.cases.update(got, TimelineEvent("close", "head", "cli", data={"n": "x"}))
    closed = await store.cases.get(case.reference)
    assert closed is not None and closed.status == "closed" and is_erased_case(closed)
    assert THAI_ID.encode() not in copy and NEEDS.encode() not in copy


async def test_retention_erases_a_closed_case_after_its_period(store: Storage) -> None:
    processing = load_processing()
    days = processing.kinds["case"].days("personal_after_resolution_days")
    assert days
    start = utcnow()
    closed = await store.cases.create(a_case(created_at=start, updated_at=start), opened())
    open_one = await store.cases.create(a_case(reference="CASE-EEEEE"), opened())
    closed.status = "closed"
    await store.cases.update(closed, TimelineEvent("close", "head", "cli", start))
    soon = start + timedelta(days=days - 2)
    due = await retention.due(store, processing, soon, timedelta(days=7))
    assert [(d.kind, d.reference) for d in due] == [("case", closed.reference)]
    assert await retention.due(store, processing, soon, timedelta(days=1)) == []
    assert await retention.run(store, processing, start + timedelta(days=days - 1)) == 0
    later = start + timedelta(days=days + 1)
    assert await retention.run(store, processing, later) == 1
    assert await retention.run(store, processing, later) == 0  # idempotent
    got = await store.cases.get(closed.reference)
    assert got is not None and is_erased_case(got) and got.status == "closed"
    kept = await store.cases.get(open_one.reference)
    assert kept is not None and not is_erased_case(kept) and kept.needs == NEEDS
    assert await retention.due(store, processing, later, timedelta(days=7)) == []


async def test_a_breach_of_a_service_key_lists_the_cases_it_wraps(store: Storage) -> None:
    case = await store.cases.create(a_case(), opened())
    [key_id] = Sealer([b"k" * 32]).key_ids()
    now = utcnow()
    breach = await open_breach(store, load_processing(), "cli:dpo", now, key_ids=[key_id])
    assert breach.references == (case.reference,)
    assert THAI_ID not in breach.notice and NEEDS not in breach.notice
    since = await open_breach(store, load_processing(), "cli:dpo", now,
                              since=now - timedelta(hours=1))
    assert since.references == (case.reference,)


async def test_the_area_scope_is_in_the_read_by_province_district_and_national(
        store: Storage) -> None:
    district = await store.cases.create(a_case(area="6501"), opened())
    province = await store.cases.create(a_case(reference="CASE-BBBBB", flags=[]), opened())
    other = await store.cases.create(a_case(reference="CASE-CCCCC", area="5001"), opened())
    # A province's officer sees its districts; a district's officer only the district.
    assert {c.id for c in await store.cases.recent(areas=["65"])} == {district.id, province.id}
    assert [c.id for c in await store.cases.recent(areas=["6501"])] == [district.id]
    assert len(await store.cases.recent(areas=["TH"])) == 3
    assert [c.id for c in await store.cases.recent(areas=["50", "10"])] == [other.id]
    got = await store.cases.get_in(district.reference, ["65"])
    assert got is not None and got.id == district.id
    assert await store.cases.get_in(district.reference, ["50"]) is None
    assert await store.cases.get_in(province.reference, ["6501"]) is None
    assert await store.cases.get_in(other.reference, []) is None
    assert await store.cases.get_in(other.reference, ["TH"]) is not None
    assert await store.cases.get_in("CASE-ZZZZZ", ["TH"]) is None


async def test_the_zero_dropout_list_is_filtered_by_flag_in_the_read(store: Storage) -> None:
    child = await store.cases.create(a_case(area="6501"), opened())
    await store.cases.create(a_case(reference="CASE-BBBBB", flags=["possible_duplicate"]),
                             opened())
    await store.cases.create(a_case(reference="CASE-CCCCC", area="5001"), opened())
    assert [c.id for c in await store.cases.recent(areas=["65"], flag="zero_dropout")] == [
        child.id]
    assert len(await store.cases.recent(flag="zero_dropout")) == 2
    assert await store.cases.recent(areas=["65"], flag="drop") == []
