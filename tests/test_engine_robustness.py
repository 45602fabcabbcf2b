"""At every step of every flow, anything a person can send gets a re-prompt, never an error.

Each asking step is reached by a known path; then every hostile or mistaken input is sent
and the conversation must still be at that step, with the step's prompt as the last reply.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.services import Services
from bot.types import Inbound, Kind
from tests.helpers import choice, event, pin, start, text

Path = list[Callable[[str], Inbound]]

# The volunteer flow's answers in order: each step is reached by the ones before it.
VOLUNTEER: Path = [lambda s: choice(s, "household"), lambda s: text(s, "2499"),
                   lambda s: choice(s, "female"), lambda s: text(s, "1101700230708"),
                   lambda s: choice(s, "child"), lambda s: text(s, "12"),
                   lambda s: choice(s, "male"), lambda s: choice(s, "done"), pin,
                   lambda s: text(s, "1 7"), lambda s: text(s, "food"),
                   lambda s: choice(s, "given")]

# Answers that lead from the flow's start to each asking step.
PATHS: dict[tuple[str, str], Path] = {
    ("report", "type"): [],
    ("report", "location"): [lambda s: choice(s, "threat")],
    ("report", "phone"): [lambda s: choice(s, "threat"), pin],
    ("report", "confirm"): [lambda s: choice(s, "threat"), pin,
                            lambda s: text(s, "0812345678")],
    ("report", "role"): [lambda s: choice(s, "threat"), pin, lambda s: text(s, "0812345678"),
                         lambda s: choice(s, "send")],
    ("report", "injured"): [lambda s: choice(s, "threat"), pin,
                            lambda s: text(s, "0812345678"), lambda s: choice(s, "send"),
                            lambda s: choice(s, "victim")],
    ("report", "children"): [lambda s: choice(s, "threat"), pin,
                             lambda s: text(s, "0812345678"), lambda s: choice(s, "send"),
                             lambda s: choice(s, "victim"), lambda s: choice(s, "no")],
    ("report", "waiting"): [lambda s: choice(s, "threat"), pin,
                            lambda s: text(s, "0812345678"), lambda s: choice(s, "send"),
                            lambda s: choice(s, "skip")],
    ("silent", "begin"): [],
    ("silent", "type"): [lambda s: choice(s, "go")],
    ("silent", "location"): [lambda s: choice(s, "go"), lambda s: choice(s, "threat")],
    ("silent", "callback"): [lambda s: choice(s, "go"), lambda s: choice(s, "threat"), pin],
    ("silent", "phone"): [lambda s: choice(s, "go"), lambda s: choice(s, "threat"), pin,
                          lambda s: choice(s, "yes")],
    ("silent", "waiting"): [lambda s: choice(s, "go"), lambda s: choice(s, "threat"), pin,
                            lambda s: choice(s, "no")],
    **{("volunteer_case", step): VOLUNTEER[:n] for n, step in enumerate(
        ("kind", "birth_year", "sex", "thai_id", "member_relation", "member_birth_year",
         "member_sex", "member_more", "location", "hardships", "needs", "consent",
         "confirm"))},
}

LONG = "ก" * 10_000
HOSTILE: dict[str, Callable[[str], Inbound]] = {
    "random_text": lambda s: text(s, "asdf qwerty zxcv"),
    "emoji": lambda s: text(s, "🆘"),
    "sticker": lambda s: event(s, Kind.MEDIA, "sticker"),
    "image": lambda s: event(s, Kind.MEDIA, None),
    "other": lambda s: event(s, Kind.OTHER, None),
    "empty": lambda s: text(s, "   "),
    "ten_thousand_chars": lambda s: text(s, LONG),
    "unknown_choice": lambda s: choice(s, "not-a-choice"),
    "out_of_range_number": lambda s: text(s, "99"),
    "bad_language_pick": lambda s: choice(s, "lang:xx"),
    "injection": lambda s: text(s, "'; DROP TABLE incidents; --{reference}{0}%s"),
    "null_payload_text": lambda s: event(s, Kind.TEXT, None),
    "bad_pin": lambda s: event(s, Kind.LOCATION, "not a location"),
    "location_at_wrong_step": pin,
}

# Inputs that are *valid* at some steps: typed words are an address at a location step,
# and any text at a waiting step is a message for the responders.
VALID_AT = {"location": {"random_text", "injection", "location_at_wrong_step"},
            "waiting": {"random_text", "emoji", "injection", "out_of_range_number"},
            "needs": {"random_text", "emoji", "injection", "out_of_range_number"},
            "birth_year": {"out_of_range_number"},  # 99 is an age
            "member_birth_year": {"out_of_range_number"}}


async def reach(services: Services, sender: str, flow: str, step: str) -> None:
    """Drive a new conversation to `step` of `flow` by its known path."""
    await services.engine.handle(start(sender, flow=flow))
    for answer in PATHS[(flow, step)]:
        await services.engine.handle(answer(sender))


def cases() -> list[tuple[str, str, str]]:
    return [(flow, step, name) for (flow, step) in PATHS for name in HOSTILE
            if name not in VALID_AT.get(step, set())]


@pytest.mark.parametrize(("flow", "step", "name"), cases())
async def test_hostile_input_re_prompts(services: Services, flow: str, step: str,
                                        name: str) -> None:
    sender = f"{flow}-{step}-{name}"
    e = services.engine
    await reach(services, sender, flow, step)
    before = (await services.storage.sessions.load(f"test:{sender}", "probe")).session
    assert before is not None and before.state == step
    replies = await e.handle(HOSTILE[name](sender))
    after = (await services.storage.sessions.load(f"test:{sender}", "probe")).session
    assert after is not None
    assert after.state == step, f"{name} moved {flow}.{step} to {after.state}"
    assert after.slots == before.slots
    assert replies, "every input gets an answer"
    assert replies[-1].text.key == services.flows[flow].flow.step(step).say
    if flow == "silent":
        assert all(r.silent for r in replies)


async def test_ten_thousand_chars_at_a_location_step_is_refused_as_too_long(
        services: Services) -> None:
    e = services.engine
    await e.handle(start("u"))
    await e.handle(choice("u", "threat"))
    replies = await e.handle(text("u", LONG))
    assert [r.text.key for r in replies] == ["common.invalid.too_long", "report.location.prompt"]


async def test_interleaved_conversations_do_not_mix(services: Services) -> None:
    e = services.engine
    await e.handle(start("a"))
    await e.handle(start("b", flow="silent"))
    await e.handle(choice("a", "threat"))
    await e.handle(choice("b", "go"))
    await e.handle(choice("b", "gathering"))
    await e.handle(pin("a", 13.75, 100.5))
    await e.handle(pin("b", 18.79, 98.98))
    a = (await services.storage.sessions.load("test:a", "p")).session
    b = (await services.storage.sessions.load("test:b", "p")).session
    assert a is not None and b is not None
    assert (a.flow, a.state, a.slots["incident_type"]) == ("report", "phone", "threat")
    assert (b.flow, b.state, b.slots["incident_type"]) == ("silent", "callback", "gathering")
    assert a.slots["location"]["lat"] == 13.75 and b.slots["location"]["lat"] == 18.79


COMMAND_WORDS = {"cancel": "ยกเลิก", "restart": "restart", "back": "ย้อนกลับ", "help": "help",
                 "language": "ภาษา", "silent": "แจ้งแบบเงียบ"}
FIRST_KEY = {"cancel": "common.cancelled", "restart": "common.restarted", "help": "help.",
             "language": "common.language.prompt", "silent": "silent.start.prompt"}


@pytest.mark.parametrize(("flow", "step", "command"),
                         [(f, s, c) for (f, s) in PATHS for c in COMMAND_WORDS])
async def test_typed_commands_at_every_step(services: Services, flow: str, step: str,
                                            command: str) -> None:
    sender = f"cmd-{flow}-{step}-{command}"
    e = services.engine
    await reach(services, sender, flow, step)
    spec = services.flows[flow].flow.step(step)
    allowed = spec.commands if spec.commands is not None else services.flows[flow].flow.commands
    got = [r.text.key for r in await e.handle(text(sender, COMMAND_WORDS[command]))]
    after = (await services.storage.sessions.load(f"test:{sender}", "probe")).session
    assert after is not None
    if command not in allowed:
        # Not offered here (after submitting, cancel/restart/back are not): never an answer.
        assert got == ["common.command_unavailable", spec.say]
        assert after.state == step
    elif command == "back":
        assert got[0] == "common.back_none" if not PATHS[(flow, step)] else after.state != step
    else:
        assert got[0].startswith(FIRST_KEY[command]), got
        if command == "cancel":
            assert not after.active
        if command == "restart":
            assert after.state == services.flows[flow].flow.start and set(after.slots) == {"run_id"}
