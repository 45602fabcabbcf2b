"""Every path through the report flow, its commands, expiry, drills and receipts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.incident import Incident
from bot.reports import ENRICHMENT
from bot.services import Services
from bot.session import Session
from bot.types import Ask, Kind, LocationSource, Reply, utcnow
from bot.wiring import open_services
from config.settings import Settings
from routing.ports import FallbackRouter
from tests.helpers import choice, event, pin, receipt_keys, receipts, start, text

REF = r"^ESS-[34679ACDEFGHJKMNPQRTWXY]{5}$"


def enrichment(incident: Incident) -> dict[str, object]:
    """The reporter's optional details (details also holds the dispatcher's own state)."""
    return {k: v for k, v in incident.details.items() if k in ENRICHMENT}


def keys(replies: list[Reply]) -> list[str]:
    return [r.text.key for r in replies]


async def session_of(services: Services, sender: str) -> Session | None:
    return (await services.storage.sessions.load(f"test:{sender}", "probe")).session


async def to_confirm(services: Services, sender: str = "u") -> list[Reply]:
    e = services.engine
    await e.handle(start(sender))
    await e.handle(choice(sender, "threat"))
    await e.handle(pin(sender))
    return await e.handle(text(sender, "081-234-5678"))


async def test_happy_path_three_steps_summary_submit_and_details(services: Services) -> None:
    e = services.engine
    replies = await e.handle(start("u"))
    assert keys(replies) == ["common.greeting", "report.type.prompt"]
    assert len(replies[1].choices) == 6  # five types + the silent switch
    replies = await e.handle(choice("u", "sexual_risk"))
    assert keys(replies) == ["report.location.prompt"]
    assert replies[0].ask is Ask.LOCATION
    replies = await e.handle(pin("u"))
    assert keys(replies) == ["report.phone.prompt"]
    assert replies[0].ask is Ask.PHONE
    replies = await e.handle(text("u", "+66 81 234 5678"))
    assert keys(replies) == ["report.confirm.prompt"]
    params = replies[0].text.params
    assert params["incident_type"].key == "incident.sexual_risk"
    assert params["phone"] == "081-234-5678"
    replies = await e.handle(choice("u", "send"))
    assert keys(replies) == ["report.after.role"]  # the receipt is the outbox's to tell
    [receipt] = await receipts(services.storage, "test:u")
    assert receipt.text.key == "report.received"
    assert receipt.text.params["phone"] == "081-234-5678"
    reference = receipt.text.params["reference"]
    assert __import__("re").match(REF, reference)
    # Optional details come only after the report is stored, and are saved tap by tap.
    incident = await services.storage.incidents.get(reference)
    assert incident is not None and enrichment(incident) == {}
    assert keys(await e.handle(choice("u", "witness"))) == ["report.after.injured"]
    assert keys(await e.handle(choice("u", "yes"))) == ["report.after.children"]
    assert keys(await e.handle(choice("u", "no"))) == ["report.after.thanks",
                                                       "report.waiting.prompt"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    assert enrichment(incident) == {"role": "witness", "injured": "yes", "children": "no"}
    assert (incident.type, incident.phone, incident.silent) == ("sexual_risk", "+66812345678",
                                                                False)
    assert incident.location.source is LocationSource.REPORTER_PIN
    assert incident.location.accuracy_m is None  # LINE-style pins carry no accuracy
    kinds = [ev.kind for ev in await services.storage.incidents.timeline(incident.id)]
    assert kinds == ["reported", "details", "details", "details"]
    # One notification for each responder the directory names for this place, and the receipt.
    assert await services.storage.outbox.pending() == \
        len(incident.details["dispatch"]["notified"]) + 1
    session = await session_of(services, "u")
    assert session is not None and session.state == "waiting"


async def test_the_reporter_can_write_to_the_responders_after_submitting(
        services: Services) -> None:
    e = services.engine
    await to_confirm(services)
    reference = (await e.handle(choice("u", "send")))[0].text.params["reference"]
    await e.handle(choice("u", "skip"))
    queued = await services.storage.outbox.pending()
    replies = await e.handle(text("u", "he has a knife, we are in the back room"))
    assert keys(replies) == ["report.waiting.relayed", "report.waiting.prompt"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    notified = incident.details["dispatch"]["notified"]
    assert await services.storage.outbox.pending() == queued + len(notified)
    session = await session_of(services, "u")
    assert session is not None
    assert "knife" not in str(session.slots)  # passed on, not kept
    kinds = [ev.kind for ev in await services.storage.incidents.timeline(incident.id)]
    assert kinds[-1] == "relay"
    # "New report" starts over cleanly.
    assert keys(await e.handle(choice("u", "cmd:restart")))[-1] == "report.type.prompt"


async def test_text_typed_while_the_optional_questions_show_reaches_the_responders(
        services: Services) -> None:
    e = services.engine
    await to_confirm(services)
    reference = (await e.handle(choice("u", "send")))[0].text.params["reference"]
    queued = await services.storage.outbox.pending()
    # The role question is showing; the reporter writes instead of tapping.
    replies = await e.handle(text("u", "he is coming back"))
    assert keys(replies) == ["report.waiting.relayed", "report.after.role"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    assert await services.storage.outbox.pending() == \
        queued + len(incident.details["dispatch"]["notified"])
    session = await session_of(services, "u")
    assert session is not None and session.state == "role"
    assert "coming back" not in str(session.slots)
    # The question is still answerable by tap, and by its number.
    assert keys(await e.handle(choice("u", "victim"))) == ["report.after.injured"]
    assert keys(await e.handle(text("u", "1"))) == ["report.after.children"]


async def test_skipping_details_ends_at_once(services: Services) -> None:
    await to_confirm(services)
    replies = await services.engine.handle(choice("u", "send"))
    reference = replies[0].text.params["reference"]
    assert keys(await services.engine.handle(choice("u", "skip"))) == [
        "report.after.thanks", "report.waiting.prompt"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None and enrichment(incident) == {}


async def test_fixing_from_the_summary_returns_to_the_summary(services: Services) -> None:
    e = services.engine
    await to_confirm(services)
    assert keys(await e.handle(choice("u", "fix_type"))) == ["report.type.prompt"]
    replies = await e.handle(choice("u", "gathering"))
    assert keys(replies) == ["report.confirm.prompt"]
    assert replies[0].text.params["incident_type"].key == "incident.gathering"
    assert keys(await e.handle(choice("u", "fix_location"))) == ["report.location.prompt"]
    replies = await e.handle(text("u", "หน้าตลาดอำเภอเมืองพิษณุโลก"))
    assert keys(replies) == ["report.confirm.prompt"]
    assert keys(await e.handle(choice("u", "fix_phone"))) == ["report.phone.prompt"]
    replies = await e.handle(text("u", "02-123-4567"))
    assert replies[0].text.params["phone"] == "02-123-4567"
    replies = await e.handle(choice("u", "send"))
    incident = await services.storage.incidents.get(replies[0].text.params["reference"])
    assert incident is not None
    assert (incident.type, incident.phone) == ("gathering", "+6621234567")
    assert incident.location.source is LocationSource.GAZETTEER
    assert incident.area_codes[:2] == ["65", "6501"]  # province, district (then station)


async def test_typed_location_unknown_place_is_kept_as_text(services: Services) -> None:
    e = services.engine
    await e.handle(start("u"))
    await e.handle(choice("u", "threat"))
    await e.handle(text("u", "  behind the blue house,   next to the temple "))
    await e.handle(text("u", "0812345678"))
    replies = await e.handle(choice("u", "send"))
    incident = await services.storage.incidents.get(replies[0].text.params["reference"])
    assert incident is not None
    assert incident.location.source is LocationSource.TEXT
    assert incident.location.text == "behind the blue house, next to the temple"
    assert incident.location.lat is None


async def test_choices_by_number_thai_digit_or_label(services: Services) -> None:
    e = services.engine
    for sender, typed, expected in (("a", "2", "confinement"), ("b", "๔", "deranged"),
                                    ("c", "Confined or detained", "confinement"),
                                    ("d", "มั่วสุมจนก่อให้เกิดเหตุร้าย", "gathering")):
        await e.handle(start(sender))
        assert keys(await e.handle(text(sender, typed))) == ["report.location.prompt"]
        session = await session_of(services, sender)
        assert session is not None and session.slots["incident_type"] == expected


async def test_cancel_by_button_or_word_sends_nothing(services: Services) -> None:
    e = services.engine
    await to_confirm(services, "a")
    assert keys(await e.handle(choice("a", "cmd:cancel"))) == ["common.cancelled"]
    await e.handle(start("b"))
    await e.handle(choice("b", "threat"))
    assert keys(await e.handle(text("b", " ยกเลิก "))) == ["common.cancelled"]
    assert await services.storage.incidents.recent() == []
    session = await session_of(services, "b")
    assert session is not None and not session.active and session.slots == {}
    # The next message starts cleanly.
    assert keys(await e.handle(text("b", "hello"))) == ["common.greeting", "report.type.prompt"]


async def test_restart_back_and_help(services: Services) -> None:
    e = services.engine
    await e.handle(start("u"))
    assert keys(await e.handle(text("u", "back"))) == ["common.back_none", "report.type.prompt"]
    await e.handle(choice("u", "threat"))
    await e.handle(pin("u"))
    assert keys(await e.handle(text("u", "ย้อนกลับ"))) == ["report.location.prompt"]
    assert keys(await e.handle(text("u", "help"))) == ["help.report", "report.location.prompt"]
    assert keys(await e.handle(text("u", "เริ่มใหม่"))) == ["common.restarted",
                                                         "report.type.prompt"]
    session = await session_of(services, "u")
    assert session is not None and set(session.slots) == {"run_id"} and session.state == "type"


async def test_language_switch_by_picker_and_by_number(services: Services) -> None:
    e = services.engine
    replies = await e.handle(start("u"))
    assert replies[0].lang == "th"
    replies = await e.handle(text("u", "language"))
    assert keys(replies) == ["common.language.prompt"]
    assert [c.value for c in replies[0].choices] == ["lang:th", "lang:en", "lang:km", "lang:lo",
                                                     "lang:my"]
    replies = await e.handle(choice("u", "lang:en"))
    assert keys(replies) == ["report.type.prompt"] and replies[0].lang == "en"
    await e.handle(text("u", "ภาษา"))
    replies = await e.handle(text("u", "1"))
    assert replies[0].lang == "th" and keys(replies) == ["report.type.prompt"]
    # A language hint from the channel (a browser's language) picks the first language.
    replies = await e.handle(start("v", lang="en"))
    assert replies[0].lang == "en"


async def test_switch_to_silent_from_the_first_step(services: Services) -> None:
    e = services.engine
    await e.handle(start("u"))
    replies = await e.handle(choice("u", "cmd:silent"))
    assert keys(replies) == ["silent.start.prompt"]
    assert replies[0].silent
    await e.handle(start("v"))
    replies = await e.handle(text("v", "6"))  # the typed number of a command button works too
    assert keys(replies) == ["silent.start.prompt"]


async def test_after_submit_cancel_is_not_offered(services: Services) -> None:
    e = services.engine
    await to_confirm(services)
    reference = (await e.handle(choice("u", "send")))[0].text.params["reference"]
    replies = await e.handle(text("u", "cancel"))
    assert keys(replies) == ["common.command_unavailable", "report.after.role"]
    assert await services.storage.incidents.get(reference) is not None


async def test_repeated_event_id_is_handled_once(services: Services) -> None:
    e = services.engine
    await e.handle(start("u"))
    first = choice("u", "threat", event_id="line-ev-1")
    assert keys(await e.handle(first)) == ["report.location.prompt"]
    assert await e.handle(first) == []
    assert await e.handle(choice("u", "confinement", event_id="line-ev-1")) == []
    session = await session_of(services, "u")
    assert session is not None and session.slots["incident_type"] == "threat"
    # The same id from another channel is another event.
    assert keys(await e.handle(event("u", Kind.START, channel="other",
                                     event_id="line-ev-1"))) != []


async def test_idle_session_expires_with_a_short_note(services: Services) -> None:
    now = [utcnow()]
    services.engine.clock = lambda: now[0]
    e = services.engine
    await e.handle(start("u"))
    await e.handle(choice("u", "threat"))
    now[0] += timedelta(minutes=31)
    replies = await e.handle(text("u", "hello again"))
    assert keys(replies) == ["common.expired", "common.greeting", "report.type.prompt"]


async def test_the_sweep_ends_idle_sessions_and_forgets_their_answers(
        services: Services) -> None:
    e = services.engine
    await to_confirm(services)
    later = utcnow() + timedelta(hours=1)
    services.sweeper.clock = lambda: later
    assert await services.sweeper.sweep_once() == 1
    session = await session_of(services, "u")
    assert session is not None and session.expired and session.slots == {}
    replies = await e.handle(text("u", "hi"))
    assert keys(replies)[0] == "common.expired"


async def test_drill_runs_end_to_end_and_is_never_dispatched(services: Services) -> None:
    e = services.engine
    replies = await e.handle(text("u", "ฝึกซ้อม"))
    assert keys(replies) == ["common.greeting", "common.drill", "report.type.prompt"]
    await e.handle(choice("u", "threat"))
    await e.handle(pin("u"))
    await e.handle(text("u", "0812345678"))
    replies = await e.handle(choice("u", "send"))
    assert keys(replies) == ["report.after.role"]
    [receipt] = await receipts(services.storage, "test:u")
    assert receipt.text.key == "report.drill_received"
    incident = await services.storage.incidents.get(receipt.text.params["reference"])
    assert incident is not None and incident.drill
    assert await services.storage.outbox.pending() == 1  # the receipt, no responder card


async def test_demo_mode_makes_every_report_a_drill(tmp_path: Path) -> None:
    services = await open_services(Settings(data_dir=str(tmp_path), demo_mode=True))
    try:
        await to_confirm(services)
        await services.engine.handle(choice("u", "send"))
        assert await receipt_keys(services.storage, "test:u") == ["report.drill_received"]
        assert await services.storage.outbox.pending() == 1  # the receipt only
    finally:
        await services.close()


async def test_no_responder_means_not_received_and_nothing_stored(tmp_path: Path) -> None:
    services = await open_services(Settings(data_dir=str(tmp_path)), router=FallbackRouter(""))
    try:
        await to_confirm(services)
        replies = await services.engine.handle(choice("u", "send"))
        assert keys(replies) == ["report.not_received"]
        assert await services.storage.incidents.recent() == []
    finally:
        await services.close()


async def test_storage_failure_at_submit_is_never_reported_as_received(
        services: Services) -> None:
    await to_confirm(services)
    # A real failure half-way through the transaction: the outbox insert fails, so the
    # incident insert before it must roll back too (invariant 1: both or neither).
    db = services.storage._db  # type: ignore[attr-defined]
    await db.conn.execute("ALTER TABLE outbox RENAME TO outbox_gone")
    replies = await services.engine.handle(choice("u", "send"))
    assert keys(replies) == ["report.not_received"]
    assert "191" in services.catalogs.render("th", replies[0].text)
    await db.conn.execute("ALTER TABLE outbox_gone RENAME TO outbox")
    assert await services.storage.incidents.recent() == []


async def test_storage_down_gets_a_clear_answer_not_an_exception(services: Services) -> None:
    await services.engine.handle(start("u"))
    await services.storage.close()
    replies = await services.engine.handle(choice("u", "threat"))
    assert keys(replies) == ["common.unavailable"]


async def test_a_retry_after_a_lost_session_write_gives_the_same_incident(
        services: Services) -> None:
    """The incident is keyed by the submitting event: a redelivery cannot make a second."""
    await to_confirm(services)
    send = choice("u", "send", event_id="submit-1")
    before = await session_of(services, "u")
    first = await services.engine.handle(send)
    reference = first[0].text.params["reference"]
    # Put the session back as it was before the submit, as if that write had been lost.
    assert before is not None
    db = services.storage._db  # type: ignore[attr-defined]
    await db.conn.execute("DELETE FROM handled_events WHERE event_key = 'test:submit-1'")
    sealer = services.storage.sessions._sealer  # type: ignore[attr-defined]
    await db.conn.execute("UPDATE sessions SET data = ?, version = ? WHERE conversation = ?",
                          (sealer.seal_json(before.to_dict()), before.version,
                           sealer.digest("test:u")))
    queued = await services.storage.outbox.pending()
    again = await services.engine.handle(send)
    assert again[0].text.params["reference"] == reference
    assert len(await services.storage.incidents.recent()) == 1
    assert await services.storage.outbox.pending() == queued




async def test_a_start_event_mid_flow_resumes_or_switches(services: Services) -> None:
    e = services.engine
    await e.handle(start("u"))
    await e.handle(choice("u", "threat"))
    assert keys(await e.handle(start("u"))) == ["report.location.prompt"]
    assert keys(await e.handle(start("u", "report"))) == ["report.location.prompt"]
    replies = await e.handle(start("u", "silent"))
    assert keys(replies) == ["silent.start.prompt"] and replies[0].silent
