"""A volunteer (อพม.) registers with a one-time code, reports a household in hardship, and
follows the case; the offices are told; every change reaches the volunteer."""

from __future__ import annotations

from datetime import timedelta

from bot.case import DUPLICATE, ZERO_DROPOUT
from bot.casework import TIMER_FOLLOW_UP
from bot.services import Services
from bot.types import Reply, utcnow
from routing.agencies import VOLUNTEER
from routing.messages import notification_reply
from tests.helpers import choice, pin, start, text

VOL = "vol"
ADDRESS = f"test:{VOL}"
THAI_ID = "1101700230708"


def keys(replies: list[Reply]) -> list[str]:
    return [r.text.key for r in replies]


async def register(services: Services, sender: str = VOL, area: str = "6501") -> list[Reply]:
    code = await services.storage.bindings.create_code(area, VOLUNTEER, 3600, utcnow())
    return await services.inbound.handle(text(sender, f"/register {code}"))


async def intake(services: Services, sender: str = VOL, *, thai_id: str | None = THAI_ID,
                 hardships: tuple[str, ...] = ("old_age", "out_of_school")) -> list[Reply]:
    h = services.inbound.handle
    assert keys(await h(start(sender))) == ["common.greeting", "case.kind.prompt"]
    assert keys(await h(choice(sender, "household"))) == ["case.birth_year.prompt"]
    assert keys(await h(text(sender, "2499"))) == ["case.sex.prompt"]
    assert keys(await h(choice(sender, "female"))) == ["case.thai_id.prompt"]
    if thai_id:
        assert keys(await h(text(sender, thai_id))) == ["case.thai_id.noted",
                                                        "case.member.relation"]
    else:
        assert keys(await h(choice(sender, "skip:identity"))) == ["case.thai_id.noted",
                                                                  "case.member.relation"]
    await h(choice(sender, "grandchild"))
    await h(text(sender, "2558"))  # BE: born 2015
    replies = await h(choice(sender, "male"))
    assert keys(replies) == ["case.member.more"]
    assert keys(await h(choice(sender, "done"))) == ["case.location.prompt"]
    assert keys(await h(pin(sender))) == ["case.hardships.prompt"]
    for value in hardships:
        assert keys(await h(choice(sender, value))) == ["case.hardships.prompt"]
    assert keys(await h(choice(sender, "done"))) == ["case.needs.prompt"]
    assert keys(await h(text(sender, "rice and school fees"))) == ["case.consent.prompt"]
    replies = await h(choice(sender, "given"))
    assert keys(replies) == ["case.confirm.prompt"]
    return await h(choice(sender, "send"))


async def test_register_report_a_household_and_follow_it(services: Services) -> None:
    replies = await register(services)
    assert keys(replies) == ["volunteer.bound"] and replies[0].text.params["area"] == "6501"
    replies = await intake(services)
    assert keys(replies) == ["case.screening.title", "case.opened"]
    reference = replies[1].text.params["case_reference"]
    rendered = services.catalogs.render("th", replies[0].text)
    assert "เบี้ยยังชีพผู้สูงอายุ" in rendered  # born 2499: the elderly allowance may apply
    case = await services.storage.cases.get(reference)
    assert case is not None
    assert case.person.birth_year == 1956 and case.person.thai_id == THAI_ID
    assert [(m.relation, m.birth_year, m.sex) for m in case.members] == [
        ("grandchild", 2015, "male")]
    assert case.hardships == ["old_age", "out_of_school"]
    assert case.flags == [ZERO_DROPOUT] and case.area == "6501"
    assert case.consent is not None and case.consent.ground == "consent"
    assert case.consent.recorded_by == ADDRESS and case.consent.version == "2026-12-01"
    assert "กระทรวงการพัฒนาสังคม" in case.consent.text  # the exact words shown, in Thai
    assert [f["programme"] for f in case.screening][:1] == ["elderly_allowance"]
    # Zero Dropout: the province's social-welfare office and its education-side group.
    timeline = await services.storage.cases.timeline(case.id)
    assert timeline[0].kind == "opened"
    assert sorted(timeline[0].data["offices"]) == ["education", "welfare"]
    assert await services.storage.outbox.pending() == 2
    # "My cases" in the chat.
    mine = await services.inbound.handle(text(VOL, "my"))
    assert keys(mine) == ["case.mine.title", "case.mine.item"]
    assert mine[1].text.params["reference"] == reference


async def test_every_change_reaches_the_volunteer(services: Services) -> None:
    await register(services)
    reference = (await intake(services))[1].text.params["case_reference"]
    cw = services.casework
    before = await services.storage.outbox.pending()
    assert (await cw.move(reference, "screen", "officer")).error == ""
    assert (await cw.move(reference, "assess", "officer")).error == ""
    changed = await cw.refer(reference, "elderly_allowance", "officer")
    assert changed.case is not None and changed.case.status == "referred"
    referral = changed.case.referrals[0]
    assert (await cw.move(reference, "reject", "officer")).error == "a reason is required"
    assert (await cw.move(reference, "accept", "officer")).error == ""
    assert (await cw.move_referral(reference, referral.id, "accept", "officer")).error == ""
    assert (await cw.move_referral(reference, referral.id, "done", "officer")).error == ""
    assert (await cw.move(reference, "start_service", "officer")).error == ""
    assert (await cw.move(reference, "close", "officer")).error == "a supervisor must approve"
    assert (await cw.move(reference, "close", "head", supervisor=True)).error == ""
    assert (await cw.move(reference, "reopen", "head", reason="payment stopped")).error == ""
    told = [n for n in await _outbox(services) if n.recipient == ADDRESS]
    assert [notification_reply(n).text.key for n in told] == [
        "case.update.assess", "case.update.refer", "case.update.accept",
        "case.update.referral_accept", "case.update.referral_done",
        "case.update.start_service", "case.update.close", "case.update.reopen"]
    assert await services.storage.outbox.pending() == before + 8
    case = await services.storage.cases.get(reference)
    assert case is not None and case.status == "reopened"
    kinds = [e.kind for e in await services.storage.cases.timeline(case.id)]
    assert kinds == ["opened", "screen", "assess", "referral", "accept", "referral_accept",
                     "referral_done", "start_service", "close", "reopen"]


async def test_an_overdue_referral_reminds_the_office_from_a_durable_timer(
        services: Services) -> None:
    await register(services)
    reference = (await intake(services))[1].text.params["case_reference"]
    for trigger in ("screen", "assess"):
        await services.casework.move(reference, trigger, "officer")
    await services.casework.refer(reference, "p65-welfare", "officer", due=timedelta(days=-1))
    fired = await services.dispatcher.fire_timers_once()
    assert fired == 1
    case = await services.storage.cases.get(reference)
    assert case is not None
    assert [e.kind for e in await services.storage.cases.timeline(case.id)][-1] == "overdue"
    reminders = [n for n in await _outbox(services)
                 if notification_reply(n).text.key == "case.overdue"]
    assert {n.recipient for n in reminders} == {"console:p65-welfare", "console:p65-education"}
    assert await services.storage.timers.cancel(case.id, TIMER_FOLLOW_UP) == 0  # fired: gone


async def test_settling_one_referral_keeps_the_others_reminder(services: Services) -> None:
    await register(services)
    reference = (await intake(services))[1].text.params["case_reference"]
    for trigger in ("screen", "assess"):
        await services.casework.move(reference, trigger, "officer")
    first = await services.casework.refer(reference, "elderly_allowance", "officer",
                                          due=timedelta(days=-1))
    await services.casework.refer(reference, "p65-education", "officer",
                                  due=timedelta(days=-1))
    assert first.case is not None
    settled = await services.casework.move_referral(
        reference, first.case.referrals[0].id, "revoke", "officer")
    assert settled.error == ""
    assert await services.dispatcher.fire_timers_once() == 1  # the education follow-up
    case = await services.storage.cases.get(reference)
    assert case is not None
    last = (await services.storage.cases.timeline(case.id))[-1]
    assert last.kind == "overdue" and last.data["to"] == "p65-education"


async def test_the_same_thai_id_is_flagged_never_merged(services: Services) -> None:
    await register(services)
    first = (await intake(services))[1].text.params["case_reference"]
    await register(services, "vol2")
    second = (await intake(services, "vol2"))[1].text.params["case_reference"]
    assert first != second
    case = await services.storage.cases.get(second)
    assert case is not None and DUPLICATE in case.flags
    opened = (await services.storage.cases.timeline(case.id))[0]
    assert opened.data["duplicates"] == [first]


async def test_a_citizen_gets_the_report_flow_and_cannot_open_a_case(
        services: Services) -> None:
    replies = await services.inbound.handle(start("citizen"))
    assert keys(replies) == ["common.greeting", "report.type.prompt"]
    # Even a page that names the case flow ends without a case: the chat is no volunteer's.
    h = services.inbound.handle
    await h(start("c2", flow="volunteer_case"))
    for step in (choice("c2", "person"), text("c2", "1956"), choice("c2", "male"),
                 choice("c2", "skip:identity"), pin("c2"), choice("c2", "income"),
                 choice("c2", "done"), text("c2", "food"), choice("c2", "given")):
        await h(step)
    assert keys(await h(choice("c2", "send"))) == ["case.not_volunteer"]
    assert await services.storage.cases.recent() == []


async def test_hostile_answers_get_a_reprompt(services: Services) -> None:
    await register(services)
    h = services.inbound.handle
    await h(start(VOL))
    await h(choice(VOL, "person"))
    for bad in ("2600", "1800", "abc", "-1", "9" * 40, "'; DROP TABLE cases; --", "\x00"):
        assert keys(await h(text(VOL, bad))) == ["case.invalid.birth_year",
                                                 "case.birth_year.prompt"], bad
    assert keys(await h(text(VOL, "68"))) == ["case.sex.prompt"]
    await h(choice(VOL, "female"))
    for bad in ("1101700230709", "123", "x" * 13):
        assert keys(await h(text(VOL, bad))) == ["case.invalid.thai_id",
                                                 "case.thai_id.prompt"], bad
    await h(choice(VOL, "skip:identity"))
    assert keys(await h(pin(VOL))) == ["case.hardships.prompt"]
    assert keys(await h(choice(VOL, "done"))) == ["common.invalid.none_picked",
                                                  "case.hardships.prompt"]
    assert keys(await h(text(VOL, "1 99"))) == ["common.invalid.choice",
                                                "case.hardships.prompt"]
    assert keys(await h(text(VOL, "1 7"))) == ["case.needs.prompt"]
    assert keys(await h(text(VOL, "x" * 501))) == ["common.invalid.too_long",
                                                   "case.needs.prompt"]


async def test_a_household_of_200_stops_at_20(services: Services) -> None:
    await register(services)
    h = services.inbound.handle
    await h(start(VOL))
    await h(choice(VOL, "household"))
    await h(text(VOL, "1970"))
    await h(choice(VOL, "male"))
    await h(choice(VOL, "skip:identity"))
    replies: list[Reply] = []
    for _ in range(20):
        await h(choice(VOL, "child"))
        await h(text(VOL, "10"))
        replies = await h(choice(VOL, "female"))
        replies = await h(choice(VOL, "add"))
    assert keys(replies) == ["case.members.full", "case.location.prompt"]
    session = (await services.storage.sessions.load(ADDRESS, "probe")).session
    assert session is not None and len(session.slots["members"]) == 20


async def _outbox(services: Services) -> list:  # type: ignore[type-arg]
    return await services.storage.outbox.claim("probe", 1000, 60, utcnow() + timedelta(days=1))
