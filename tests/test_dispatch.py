"""The dispatcher and the responder side on a controllable clock and a recording channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
import structlog.testing

from bot.incident import Notification
from bot.outbound import CardKind, SendResult
from bot.render import render_outbound, render_text
from bot.services import Services
from bot.types import Kind
from bot.wiring import open_services
from config.settings import Settings
from routing import lifecycle as lc
from routing.dispatcher import Dispatcher, DispatchPolicy
from routing.messages import KIND_NEW, KIND_RECEIPT, KIND_REMINDER, KIND_REPORTER
from routing.responders import Actor, dispatch_state
from routing.sender import RecordingSender
from tests.dispatch_kit import GULF_OF_THAILAND, Clock, report, settle, silent_report
from tests.helpers import event

STATION = "console:st6501"
WELFARE = "console:p65-welfare"


@dataclass
class Rig:
    services: Services
    sender: RecordingSender
    clock: Clock

    def text(self, index: int = -1, address: str | None = None) -> str:
        sent = self.sender.to(address) if address else self.sender.sent
        return "\n".join(render_outbound(sent[index].message, self.services.catalogs))


@pytest.fixture
async def rig(settings: Settings) -> AsyncIterator[Rig]:
    clock, sender = Clock(), RecordingSender()
    services = await open_services(settings, sender=sender, clock=clock)
    try:
        yield Rig(services, sender, clock)
    finally:
        await services.close()


async def status(rig: Rig, reference: str) -> str:
    incident = await rig.services.storage.incidents.get(reference)
    assert incident is not None
    return incident.status


async def kinds(rig: Rig, reference: str) -> list[str]:
    incident = await rig.services.storage.incidents.get(reference)
    assert incident is not None
    return [e.kind for e in await rig.services.storage.incidents.timeline(incident.id)]


async def test_card_reaches_the_area_and_the_reporter_is_told(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    cards = [s for s in rig.sender.sent if s.kind == KIND_NEW]
    assert {s.address for s in cards} == {STATION, "console:p65-police", WELFARE,
                                          "console:p65-shelter"}
    card = rig.text(address=STATION)
    assert incident.reference in card and "081-234-5678" in card
    assert "https://www.google.com/maps/search/?api=1&query=16.82110,100.26590" in card
    assert "0.9" in card  # km from the station
    typed = rig.sender.to(STATION)[0].card
    # Only what the state allows: nobody has it yet, so acknowledging is all there is.
    assert [a.token for a in typed.actions] == [f"act:ack:{incident.reference}"]
    # The plain facts too, for a channel that draws its own card.
    assert typed.silent is False and typed.type.key == "incident.threat"
    assert typed.distance_km is not None and typed.distance_km < 5
    assert (typed.province, typed.district) == ("พิษณุโลก", "เมืองพิษณุโลก")
    assert typed.station.startswith("สถานีตำรวจภูธรเมืองพิษณุโลก")
    assert await status(rig, incident.reference) == lc.DISPATCHED
    told = rig.sender.to("test:u1")
    # The receipt (written with the incident) first, then "the police have your report".
    assert [s.kind for s in told] == [KIND_RECEIPT, KIND_REPORTER]
    assert told[0].reply.text.key == "report.received"
    assert told[1].reply.text.key == "status.plain.dispatched"
    # One key per row, kept across retries: the channel's idempotency key.
    assert len({s.key for s in rig.sender.sent}) == len(rig.sender.sent)


async def test_silent_report_card_says_do_not_call_and_updates_are_neutral(rig: Rig) -> None:
    incident = await silent_report(rig.services, "s1")
    await settle(rig.services)
    assert "ห้ามโทร" in rig.text(address=STATION)  # SILENT — do not call, chat only
    receipt, update = rig.sender.to("test:s1")[:2]
    assert receipt.reply.silent and receipt.reply.text.key == "silent.received"
    assert update.reply.silent and update.reply.text.key == "status.silent.dispatched"
    await rig.services.responders.act(incident.reference, "ack", Actor(STATION), "test")
    await settle(rig.services)
    update = rig.sender.to("test:s1")[-1]
    assert update.reply.silent and update.reply.text.key == "status.silent.acknowledged"


async def test_escalation_then_second_escalation_then_bounded_reminders(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    rig.clock.advance(minutes=4)
    await settle(rig.services)
    assert await status(rig, incident.reference) == lc.DISPATCHED
    rig.clock.advance(minutes=1, seconds=1)
    await settle(rig.services)
    assert await status(rig, incident.reference) == lc.ESCALATED
    new = {s.address for s in rig.sender.sent if s.kind == KIND_NEW}
    assert "console:p65-191" in new and "console:1300" not in new
    # An escalation card says so, and why: it must not look like a new report.
    escalated = rig.sender.to("console:p65-191")[0].card
    assert escalated.kind is CardKind.ESCALATION and escalated.escalated
    said = rig.text(address="console:p65-191")
    assert "ยกระดับ" in said and "ไม่มีผู้รับเรื่องที่ สถานีตำรวจภูธรเมืองพิษณุโลก" in said
    assert "5 นาที" in said
    assert rig.sender.to(STATION)[-1].card.kind is CardKind.REMINDER
    assert any(s.kind == KIND_REMINDER for s in rig.sender.to(STATION))
    assert rig.sender.to("test:u1")[-1].reply.text.key == "status.plain.escalated"
    rig.clock.advance(minutes=5, seconds=1)
    await settle(rig.services)
    assert "console:1300" in {s.address for s in rig.sender.sent if s.kind == KIND_NEW}
    for _ in range(5):
        rig.clock.advance(minutes=5, seconds=1)
        await settle(rig.services)
    timeline = await kinds(rig, incident.reference)
    assert timeline.count("escalated") == 2
    assert timeline.count("reminded") == 3  # Policy.max_reminders


async def test_escalation_clock_starts_when_the_card_reaches_the_channel(rig: Rig) -> None:
    # The channel is down for the whole first minutes: the clock has not started.
    rig.sender.fail[STATION] = [SendResult.retry(0, "503")] * 3
    for address in ("console:p65-police", WELFARE, "console:p65-shelter"):
        rig.sender.fail[address] = [SendResult.retry(0, "503")] * 3
    incident = await report(rig.services, "u1")
    for _ in range(3):  # three failed attempts, a minute and a half apart
        await settle(rig.services)
        assert await status(rig, incident.reference) == lc.NEW
        rig.clock.advance(minutes=1, seconds=30)
    await settle(rig.services)  # delivered at +4.5 min
    assert await status(rig, incident.reference) == lc.DISPATCHED
    rig.clock.advance(minutes=4)  # +8.5 min from the report, +4 from delivery
    await settle(rig.services)
    assert await status(rig, incident.reference) == lc.DISPATCHED
    rig.clock.advance(minutes=1, seconds=30)
    await settle(rig.services)
    assert await status(rig, incident.reference) == lc.ESCALATED


async def test_a_report_nobody_receives_escalates_anyway(rig: Rig) -> None:
    for address in (STATION, "console:p65-police", WELFARE, "console:p65-shelter"):
        rig.sender.fail[address] = [SendResult.failed("blocked")]
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    assert await rig.services.storage.outbox.pending() == 0  # all four dead-lettered
    rig.clock.advance(minutes=5, seconds=1)
    await settle(rig.services)
    assert await status(rig, incident.reference) == lc.ESCALATED
    assert "console:p65-191" in {s.address for s in rig.sender.sent}


async def test_lifecycle_to_resolved_with_eta_and_reminder(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    ack = rig.sender.to(STATION)[0].card.actions[0].token
    acts = rig.services.responders
    result = await acts.act(ack, None, Actor(STATION, "U-sgt", "Sgt Somchai"), "line")
    assert result.outcome == "done" and result.status == lc.ACKNOWLEDGED
    assert f"act:eta10:{incident.reference}" in [c.value for c in result.reply.choices]
    await settle(rig.services)
    assert rig.sender.to("test:u1")[-1].reply.text.key == "status.plain.acknowledged"
    assert "Sgt Somchai" in rig.text(address=WELFARE)  # the others are told who has it
    rig.clock.advance(minutes=10, seconds=1)  # acknowledged, not moving: remind the holder
    await settle(rig.services)
    assert rig.sender.to(STATION)[-1].reply.text.key == "dispatch.remind.acknowledged"
    result = await acts.act(f"act:eta10:{incident.reference}", None, Actor(STATION),
                            "line")
    assert result.outcome == "done"
    await settle(rig.services)
    told = rig.sender.to("test:u1")[-1]
    assert told.reply.text.key == "status.plain.en_route"
    assert told.reply.text.params["minutes"] == 10
    assert (await acts.act(incident.reference, "on_scene", Actor(STATION), "line")).outcome \
        == "done"
    assert (await acts.act(incident.reference, "refer", Actor(STATION), "line")).outcome \
        == "done"
    assert await status(rig, incident.reference) == lc.REFERRED
    await settle(rig.services)
    assert rig.sender.to("test:u1")[-1].reply.text.key == "status.plain.closed"
    events = await rig.services.storage.incidents.timeline(incident.id)
    acked = next(e for e in events if e.kind == "acknowledged")
    assert acked.actor == f"{STATION}/U-sgt" and acked.channel == "line"
    assert [e.kind for e in events if e.kind in lc.STATES] == [
        "dispatched", "acknowledged", "en_route", "on_scene", "referred"]
    # Closed: no timer left to fire.
    rig.clock.advance(hours=2)
    assert await rig.services.dispatcher.fire_timers_once() == 0


async def test_eta_is_estimated_from_distance_when_not_given(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    acts = rig.services.responders
    await acts.act(incident.reference, "ack", Actor(STATION), "line")
    await acts.act(incident.reference, "en_route", Actor(STATION), "line")
    await settle(rig.services)
    # 0.9 km at 40 km/h plus five minutes to leave: rounded to 10 minutes.
    assert rig.sender.to("test:u1")[-1].reply.text.params["minutes"] == 10


async def test_only_notified_responders_act_and_only_the_holder_moves_it(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    acts = rig.services.responders
    outsider = await acts.act(incident.reference, "ack", Actor("console:st5001"), "line")
    assert outsider.outcome == "not_notified"
    early = await acts.act(incident.reference, "on_scene", Actor(STATION), "line")
    assert early.outcome == "need_ack"
    await acts.act(incident.reference, "ack", Actor(STATION), "line")
    other = await acts.act(incident.reference, "resolve", Actor(WELFARE), "line")
    assert other.outcome == "taken" and other.reply.choices == ()
    unknown = await acts.act("ESS-XXXXX", "ack", Actor(STATION), "line")
    assert unknown.outcome == "unknown"
    assert (await acts.act(incident.reference, "dance", Actor(STATION), "line")).outcome \
        == "invalid"


async def test_two_responders_acknowledging_at_once(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    acts = rig.services.responders
    a, b = await asyncio.gather(
        acts.act(incident.reference, "ack", Actor(STATION, name="Station"), "line"),
        acts.act(incident.reference, "ack", Actor(WELFARE, name="Welfare"), "line"))
    assert sorted([a.outcome, b.outcome]) == ["done", "taken"]
    loser = a if a.outcome == "taken" else b
    winner = "Station" if loser is b else "Welfare"
    assert winner in render_text(loser.reply, rig.services.catalogs)
    assert (await kinds(rig, incident.reference)).count("acknowledged") == 1


async def test_escalation_racing_an_acknowledgement_never_undoes_it(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    rig.clock.advance(minutes=5, seconds=1)
    # The escalation timer is due; the acknowledgement arrives at the same moment.
    _, acked = await asyncio.gather(
        rig.services.dispatcher.fire_timers_once(),
        rig.services.responders.act(incident.reference, "ack", Actor(STATION), "line"))
    assert acked.outcome == "done"
    assert await status(rig, incident.reference) == lc.ACKNOWLEDGED
    rig.clock.advance(minutes=5, seconds=1)
    await settle(rig.services)
    assert await status(rig, incident.reference) == lc.ACKNOWLEDGED
    events = await kinds(rig, incident.reference)
    # Either the escalation committed first (then the ack), or it saw the ack and stood down.
    assert events.index("acknowledged") > events.index("escalated") \
        if "escalated" in events else True


async def test_close_racing_an_acknowledgement(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    acts = rig.services.responders
    await acts.act(incident.reference, "ack", Actor(STATION), "line")
    # The holder closes it as a duplicate while a late responder taps Acknowledge.
    closed, late = await asyncio.gather(
        acts.act(incident.reference, "duplicate", Actor(STATION), "line"),
        acts.act(incident.reference, "ack", Actor(WELFARE), "line"))
    assert closed.outcome == "done"
    assert late.outcome in ("taken", "closed")
    assert await status(rig, incident.reference) == lc.DUPLICATE
    state = dispatch_state((await rig.services.storage.incidents.get(incident.reference))
                           or incident)
    assert state["holder"]["address"] == STATION


async def test_channel_failing_then_recovering(rig: Rig) -> None:
    rig.sender.fail[STATION] = [SendResult.retry(30, "429"), SendResult.retry(0, "timeout")]
    await report(rig.services, "u1")
    await settle(rig.services)
    assert rig.sender.to(STATION) == []
    rig.clock.advance(seconds=31)
    await settle(rig.services)
    assert rig.sender.to(STATION) == []
    rig.clock.advance(seconds=10)  # the backoff after the second failure is at most 4 s
    await settle(rig.services)
    assert len(rig.sender.to(STATION)) == 1
    assert await rig.services.storage.outbox.pending() == 0


async def test_a_send_slower_than_the_lease_keeps_its_rows(rig: Rig) -> None:
    """The dispatcher renews the lease of what it is sending: a slow channel (or a loaded
    host) must not let another dispatcher claim the same rows and send them twice."""
    gate, extended = asyncio.Event(), asyncio.Event()
    outbox = rig.services.storage.outbox
    extend = outbox.extend

    async def spied(*args: Any) -> int:
        renewed = await extend(*args)
        extended.set()
        return renewed

    class Slow:
        async def send(self, notification: Notification) -> SendResult:
            await gate.wait()
            return await rig.sender.send(notification)

    dispatcher = Dispatcher(rig.services.storage, Slow(), rig.services.responders,
                            DispatchPolicy(lease_seconds=6), clock=rig.clock, owner="slow")
    await report(rig.services, "u1")
    sending = asyncio.create_task(dispatcher.drain_once())
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(outbox, "extend", spied)
            await asyncio.wait_for(extended.wait(), 10)  # renewed after lease/3 = 2 s
            rig.clock.advance(seconds=5)  # past the first lease, within the renewed one
            assert await outbox.claim("other", 50, 6, rig.clock()) == []
            gate.set()
            assert await asyncio.wait_for(sending, 10) == 5
    finally:
        gate.set()
        await asyncio.wait_for(sending, 10)
    assert len(rig.sender.sent) == 5 and len({s.key for s in rig.sender.sent}) == 5


async def test_dead_letter_after_the_bound_with_an_alert(rig: Rig) -> None:
    dispatcher = Dispatcher(rig.services.storage, rig.sender, rig.services.responders,
                            DispatchPolicy(max_attempts=3, max_backoff=1), clock=rig.clock)
    rig.sender.fail[STATION] = [SendResult.retry(0, "503")] * 10
    await report(rig.services, "u1")
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            await dispatcher.run_once()
            rig.clock.advance(seconds=2)
    assert rig.sender.to(STATION) == []
    assert await rig.services.storage.outbox.pending() == 0
    dead = [e for e in logs if e["event"] == "dispatch.dead_letter"]
    assert len(dead) == 1 and dead[0]["alert"] is True and dead[0]["attempts"] == 3
    assert "+66" not in repr(logs) and "081" not in repr(logs)


async def test_restart_in_the_middle_of_a_dispatch(rig: Rig, settings: Settings) -> None:
    incident = await report(rig.services, "u1")
    # The first process leases every card, then dies before sending any.
    claimed = await rig.services.storage.outbox.claim("dead-process", 50, 60, rig.clock())
    assert len(claimed) == 5  # four cards and the reporter's receipt
    await rig.services.close()
    rig.clock.advance(seconds=30)
    sender = RecordingSender()
    restarted = await open_services(settings, sender=sender, clock=rig.clock)
    try:
        assert await restarted.dispatcher.drain_once() == 0  # still leased
        rig.clock.advance(seconds=31)
        await settle(restarted)
        assert {n.key for n in claimed} <= {s.key for s in sender.sent}
        assert [s.kind for s in sender.sent].count(KIND_RECEIPT) == 1
        assert not await restarted.storage.outbox.complete(claimed[0].id, "dead-process",
                                                           rig.clock())
        got = await restarted.storage.incidents.get(incident.reference)
        assert got is not None and got.status == lc.DISPATCHED
    finally:
        await restarted.close()


async def test_relay_chat_between_holder_and_reporter(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    acts = rig.services.responders
    early = await acts.relay_to_reporter(incident.reference, Actor(STATION), "line", "hi")
    assert early.outcome == "need_ack"
    await acts.act(incident.reference, "ack", Actor(STATION), "line")
    sent = await acts.relay_to_reporter(incident.reference, Actor(STATION), "line",
                                        "Are you somewhere safe?")
    assert sent.outcome == "done"
    assert await acts.relay_to_responders(incident.reference, "test:u1", "test", "Yes, inside")
    assert not await acts.relay_to_responders(incident.reference, "test:someone-else", "test",
                                              "hijack")
    await settle(rig.services)
    to_reporter = rig.sender.to("test:u1")[-1]
    assert "Are you somewhere safe?" in rig.text(address="test:u1")
    assert STATION not in rig.text(address="test:u1")  # the reporter never sees the address
    assert to_reporter.reply.text.key == "status.plain.relay"
    assert "Yes, inside" in rig.text(address=STATION)
    assert "test:u1" not in rig.text(address=STATION)
    assert all(s.address != WELFARE or "Yes, inside" not in rig.text(-1, WELFARE)
               for s in rig.sender.sent)
    events = await rig.services.storage.incidents.timeline(incident.id)
    relays = [e for e in events if e.kind == "relay"]
    assert len(relays) == 2 and all("text" not in e.data for e in relays)


async def test_reporter_safe_is_shown_to_responders_and_does_not_close(rig: Rig) -> None:
    engine = rig.services.engine
    from tests.helpers import choice, pin, start
    await engine.handle(start("s9", "silent"))
    await engine.handle(choice("s9", "go"))
    await engine.handle(choice("s9", "threat"))
    await engine.handle(pin("s9"))
    replies = await engine.handle(choice("s9", "no"))
    reference = replies[0].text.params["reference"]
    await engine.handle(choice("s9", "safe"))
    await settle(rig.services)
    assert rig.sender.to(STATION)[-1].reply.text.key == "dispatch.reporter_safe"
    assert await status(rig, reference) == lc.DISPATCHED


async def test_drills_notify_nobody(rig: Rig) -> None:
    from tests.helpers import choice, pin, text
    engine = rig.services.engine
    await engine.handle(text("d1", "drill"))
    await engine.handle(choice("d1", "threat"))
    await engine.handle(pin("d1"))
    await engine.handle(text("d1", "081-234-5678"))
    await engine.handle(choice("d1", "send"))
    await settle(rig.services)
    rig.clock.advance(minutes=30)
    await settle(rig.services)
    # The reporter is told it was a drill; nobody else hears of it.
    assert [(s.address, s.reply.text.key) for s in rig.sender.sent] == [
        ("test:d1", "report.drill_received")]


async def test_the_channels_hook_with_a_redelivered_tap(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    tap = event("Cgroup", Kind.CHOICE, f"act:ack:{incident.reference}", channel="console",
                event_id="tap-1", actor="line:Usgt", chat=STATION)
    first = await rig.services.responders.on_action(tap)
    again = await rig.services.responders.on_action(tap)
    assert first[0].text.key == "dispatch.done.acknowledge"
    assert again[0].text.key in ("dispatch.repeated", "dispatch.you_have_it")
    eta = event("Cgroup", Kind.CHOICE, f"act:eta15:{incident.reference}", channel="console",
                event_id="tap-2", actor="line:Usgt", chat=STATION)
    await rig.services.responders.on_action(eta)
    await rig.services.responders.on_action(eta)  # LINE redelivers: recorded once
    assert (await kinds(rig, incident.reference)).count("en_route") == 1
    events = await rig.services.storage.incidents.timeline(incident.id)
    assert next(e for e in events if e.kind == "acknowledged").actor == f"{STATION}/line:Usgt"


async def test_a_pin_at_sea_reaches_the_fallback_with_a_warning(rig: Rig) -> None:
    await report(rig.services, "u1", *GULF_OF_THAILAND)
    await settle(rig.services)
    cards = [s for s in rig.sender.sent if s.kind == KIND_NEW]
    assert [s.address for s in cards] == ["console:1300"]
    assert "⚠️" in rig.text(address="console:1300")


async def test_typed_actions_for_text_channels(rig: Rig) -> None:
    incident = await report(rig.services, "u1")
    await settle(rig.services)
    code = incident.reference.removeprefix("ESS-").lower()
    hook = rig.services.responders.on_action
    said = await hook(event("+66800000001", Kind.TEXT, f"รับ ess {code}", channel="console",
                            chat=STATION))
    assert said[0].text.key == "dispatch.done.acknowledge"
    said = await hook(event("+66800000001", Kind.TEXT, f"{incident.reference} 12",
                            channel="console", chat=STATION))
    assert said[0].text.key == "dispatch.done.en_route"
    await settle(rig.services)
    assert rig.sender.to("test:u1")[-1].reply.text.params["minutes"] == 12
    said = await hook(event("+66800000001", Kind.TEXT, "hello", channel="console",
                            chat=STATION))
    assert said[0].text.key == "dispatch.help"


async def test_typed_outcomes_notes_and_duplicates(rig: Rig) -> None:
    first = await report(rig.services, "u1")
    second = await report(rig.services, "u2")
    await settle(rig.services)
    hook = rig.services.responders.on_action

    async def say(text: str) -> str:
        said = await hook(event("op", Kind.TEXT, text, channel="console", chat=STATION))
        return said[0].text.key

    ref = second.reference
    assert await say(f"{ref} ack") == "dispatch.done.acknowledge"
    assert await say(f"{ref} note he has left, neighbours say ok") == "dispatch.done.note"
    assert await status(rig, ref) == lc.ACKNOWLEDGED  # a note moves nothing ("ok" is text)
    assert await say(f"{ref} ซ้ำ {first.reference}") == "dispatch.done.duplicate"
    incident = await rig.services.storage.incidents.get(ref)
    assert incident is not None and incident.status == lc.DUPLICATE
    assert incident.details["notes"][0]["text"] == "he has left, neighbours say ok"
    events = await rig.services.storage.incidents.timeline(incident.id)
    assert [e.data.get("of") for e in events if e.kind == lc.DUPLICATE] == [first.reference]
    ref = first.reference
    assert await say(f"{ref} รับ") == "dispatch.done.acknowledge"
    assert await say(f"{ref} สวัสดิการ") == "dispatch.done.refer_welfare"
    incident = await rig.services.storage.incidents.get(ref)
    assert incident is not None and incident.status == lc.REFERRED
    events = await rig.services.storage.incidents.timeline(incident.id)
    assert [e.data.get("to") for e in events if e.kind == lc.REFERRED] == ["welfare"]
    # "Refer to a welfare case" opens a case linked to the incident; both timelines say so.
    cases = await rig.services.storage.cases.for_incident(incident.id)
    assert len(cases) == 1 and cases[0].incident_id == incident.id
    assert [e.data for e in events if e.kind == "case_opened"] == [
        {"case": cases[0].reference}]
    opened = (await rig.services.storage.cases.timeline(cases[0].id))[0]
    assert opened.kind == "opened" and opened.data["incident"] == incident.id
    assert await say("ESS-7K3F9 dance") == "dispatch.help"


async def test_relay_message_action_for_flows(rig: Rig) -> None:
    from bot.session import Session
    from flows.actions import ActionContext
    from tests.helpers import text

    incident = await report(rig.services, "u1")
    await settle(rig.services)
    action = rig.services.engine.runner.actions.get("relay_message")
    session = Session("test:u1", lang="th")
    session.slots.update(reference=incident.reference, message="The door is locked")
    result = await action(ActionContext(session, text("u1", "x"), rig.services))
    assert result.outcome == "sent"
    await settle(rig.services)
    assert "The door is locked" in rig.text(address=STATION)
    session.slots.update(message="")
    assert (await action(ActionContext(session, text("u1", "x"), rig.services))).outcome \
        == "failed"


async def test_the_service_runs_the_dispatcher(settings: Settings) -> None:
    from aiohttp.test_utils import TestServer

    from bot.app import create_app

    server = TestServer(create_app(settings))
    await server.start_server()
    try:
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert "ess-dispatcher" in names and "ess-sweeper" in names
    finally:
        await server.close()
