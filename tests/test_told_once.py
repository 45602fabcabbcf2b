"""A report submitted once, told once: a "send" tapped again after a crash finds the first
incident, and the receipt is one outbox row written with it (bot.reports)."""

from __future__ import annotations

from bot.services import Services
from bot.types import Inbound
from flows.runtime import RUN_ID
from tests.helpers import choice, pin, receipts, start, text


async def test_a_retap_after_a_crash_before_the_session_save_is_the_same_report(
        services: Services) -> None:
    e, sessions = services.engine, services.storage.sessions
    for msg in (start("u"), choice("u", "threat"), pin("u"), text("u", "081-234-5678")):
        await e.handle(msg)
    at_summary = (await sessions.load("test:u", "probe")).session
    assert at_summary is not None and at_summary.state == "confirm"
    run = at_summary.slots[RUN_ID]
    await e.handle(choice("u", "send"))
    # The crash: the incident and its outbox rows were committed, the session was not saved.
    now = (await sessions.load("test:u", "probe")).session
    assert now is not None and now.state != "confirm"
    at_summary.version = now.version
    await sessions.save(at_summary, "test:crash")
    # The reporter, never told, taps "send" again (a new event).
    replies = await e.handle(choice("u", "send"))
    assert [r.text.key for r in replies] == ["report.after.role"]
    [incident] = await services.storage.incidents.recent()
    assert incident.source_event == f"run:{run}"
    [receipt] = await receipts(services.storage, "test:u")  # told once
    assert receipt.text.params["reference"] == incident.reference


async def test_a_new_report_is_a_new_run(services: Services) -> None:
    e = services.engine
    def report() -> list[Inbound]:  # fresh event ids each time
        return [choice("a", "threat"), pin("a"), text("a", "081-234-5678"),
                choice("a", "send")]

    for msg in (start("a"), *report(), choice("a", "skip"), text("a", "restart"), *report()):
        await e.handle(msg)
    assert len(await services.storage.incidents.recent()) == 2
    assert len(await receipts(services.storage, "test:a")) == 2
