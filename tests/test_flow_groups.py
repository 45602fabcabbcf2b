"""Repeated groups and optional sections in the flow language: loader, compiler, runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.i18n import Catalogs
from bot.session import Session
from bot.types import Inbound, Kind, Media, Reply, Text
from bot.wiring import default_registries
from flows.actions import ActionContext, ActionRegistry, ActionResult
from flows.compiler import compile_flow
from flows.inputs import InputContext
from flows.loader import MAX_GROUP_ITEMS, FlowError, parse_flow
from flows.runtime import FlowRunner
from tests.helpers import choice, event, start, text

INPUTS, ACTIONS = default_registries()
CATALOGS = Catalogs.load()

HOUSEHOLD = """\
flow: household
start: name
groups:
  members:
    first: name
    steps: [name, phone]
    max: 3
    after: notes
    full: common.group.full
sections:
  extra:
    first: notes
    steps: [notes]
    after: bye
    skip: common.skip
steps:
  name:
    say: report.location.prompt
    expect: text
    save: name
    next: phone
  phone:
    say: report.phone.prompt
    expect: phone
    save: phone
    next: more
  more:
    say: report.confirm.prompt
    collect: members
    expect: choice
    choices:
      - {value: add, label: report.after.yes}
      - {value: done, label: report.after.no}
    save: more
    next:
      - {when: {more: add}, goto: name}
      - {goto: notes}
  notes:
    say: report.waiting.prompt
    expect: text
    save: notes
    next: bye
  bye:
    say: report.after.thanks
    end: true
"""


def parse(text_: str):  # type: ignore[no-untyped-def]
    return parse_flow(text_, "t.yaml", inputs=INPUTS.kinds, actions=ACTIONS.names(),
                      validators=INPUTS.validators, catalog_keys=CATALOGS.keys("th"))


def problems(text_: str) -> list[str]:
    with pytest.raises(FlowError) as info:
        parse(text_)
    return [str(p) for p in info.value.problems]


def runner() -> FlowRunner:
    flow = compile_flow(parse(HOUSEHOLD))
    return FlowRunner({"household": flow}, INPUTS, ACTIONS, CATALOGS,
                      InputContext(CATALOGS, None))


def keys(replies: list[Reply]) -> list[str]:
    return [r.text.key for r in replies]


async def test_a_group_is_asked_again_and_each_item_kept() -> None:
    r, s = runner(), Session(conversation="test:u", lang="en")
    assert keys(await r.start(s, "household", start("u"), None)) == ["report.location.prompt"]
    await r.handle(s, text("u", "Somchai"), None)
    replies = await r.handle(s, text("u", "0812345678"), None)
    assert keys(replies) == ["report.confirm.prompt"]
    assert replies[0].text.params["members_count"] == 1
    await r.handle(s, choice("u", "add"), None)
    await r.handle(s, text("u", "Malee"), None)
    await r.handle(s, text("u", "0898765432"), None)
    assert keys(await r.handle(s, choice("u", "done"), None)) == ["report.waiting.prompt"]
    assert s.slots["members"] == [{"name": "Somchai", "phone": "+66812345678"},
                                  {"name": "Malee", "phone": "+66898765432"}]
    assert "name" not in s.slots and s.slots["members_full"] == "no"


async def test_a_full_group_goes_past_itself_whatever_the_person_taps() -> None:
    r, s = runner(), Session(conversation="test:u", lang="en")
    await r.start(s, "household", start("u"), None)
    for i in range(3):
        await r.handle(s, text("u", f"person {i}"), None)
        replies = await r.handle(s, text("u", "0812345678"), None)
        if i < 2:
            await r.handle(s, choice("u", "add"), None)
    assert s.slots["members_full"] == "yes"
    replies = await r.handle(s, choice("u", "add"), None)
    assert keys(replies) == ["common.group.full", "report.waiting.prompt"]
    assert replies[0].text.params == {"max": 3}
    assert len(s.slots["members"]) == 3


async def test_an_optional_section_offers_skip_and_forgets_its_answers() -> None:
    r, s = runner(), Session(conversation="test:u", lang="en")
    await r.start(s, "household", start("u"), None)
    await r.handle(s, text("u", "Somchai"), None)
    await r.handle(s, text("u", "0812345678"), None)
    replies = await r.handle(s, choice("u", "done"), None)
    assert replies[-1].choices[-1].value == "skip:extra"
    assert keys(await r.handle(s, choice("u", "skip:extra"), None)) == ["report.after.thanks"]
    assert "notes" not in s.slots


@pytest.mark.parametrize("typed", ["1", "Skip", "ข้าม"])
async def test_skip_can_be_typed_as_the_label_or_its_number(typed: str) -> None:
    r, s = runner(), Session(conversation="test:u", lang="en")
    await r.start(s, "household", start("u"), None)
    await r.handle(s, text("u", "Somchai"), None)
    await r.handle(s, text("u", "0812345678"), None)
    await r.handle(s, choice("u", "done"), None)
    assert keys(await r.handle(s, text("u", typed), None)) == ["report.after.thanks"]


async def test_a_skip_payload_elsewhere_is_a_wrong_answer_not_a_jump() -> None:
    r, s = runner(), Session(conversation="test:u", lang="en")
    await r.start(s, "household", start("u"), None)
    replies = await r.handle(s, choice("u", "skip:extra"), None)
    assert s.state == "name"  # only the section's first step can be skipped
    assert keys(replies) == ["common.invalid.text", "report.location.prompt"]


def test_group_and_section_mistakes_are_reported_with_lines() -> None:
    broken = HOUSEHOLD.replace("max: 3", "max: 200").replace("first: notes", "first: nope")
    broken = broken.replace("    collect: members\n", "")
    found = problems(broken)
    assert any(f"t.yaml:7: group 'members' needs max, a whole number from 1 to "
               f"{MAX_GROUP_ITEMS}" in p for p in found), found
    assert any("t.yaml:3:" not in p and "needs exactly one step with collect" in p
               for p in found), found
    assert any("t.yaml:12: section 'extra' starts at 'nope'" in p for p in found), found


def test_a_group_step_that_asks_nothing_and_unknown_keys_are_refused() -> None:
    broken = HOUSEHOLD.replace("    steps: [name, phone]\n", "    steps: [name, bye]\n"
                               "    repeat: 2\n")
    found = problems(broken)
    assert any("step 'bye' of group 'members' asks nothing" in p for p in found), found
    assert any("unknown group setting 'repeat'" in p for p in found), found


def test_collect_of_an_unknown_group_is_refused() -> None:
    found = problems(HOUSEHOLD.replace("collect: members", "collect: memebrs"))
    assert any("collects unknown group 'memebrs'" in p for p in found), found


def test_ess_flows_check_names_the_line_of_a_group_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "household.yaml"
    bad.write_text(HOUSEHOLD.replace("after: notes", "after: nowhere"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bot.cli", "flows", "check", str(bad)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert f"{bad}:8: group 'members' goes on to 'nowhere'" in done.stdout + done.stderr


async def test_a_flows_media_line_is_said_before_the_prompt_and_loses_nothing() -> None:
    with_media = HOUSEHOLD.replace("start: name\n",
                                   "start: name\nmedia: case.photos_not_received\n")
    run = FlowRunner({"household": compile_flow(parse(with_media))}, INPUTS, ACTIONS,
                     CATALOGS, InputContext(CATALOGS, None))
    s = Session(conversation="test:a", lang="en")
    await run.start(s, "household", start("a"), None)
    await run.handle(s, text("a", "Somchai"), None)
    replies = await run.handle(s, event("a", Kind.MEDIA), None)
    assert keys(replies) == ["case.photos_not_received", "report.phone.prompt"]
    assert s.state == "phone" and s.slots["name"] == "Somchai"
    # Without the setting a photo gets the step's usual re-prompt.
    plain, s2 = runner(), Session(conversation="test:b", lang="en")
    await plain.start(s2, "household", start("b"), None)
    assert keys(await plain.handle(s2, event("b", Kind.MEDIA), None)) == [
        "common.invalid.text", "report.location.prompt"]


def test_a_media_line_that_is_not_in_the_catalogs_is_refused_with_its_line() -> None:
    found = problems(HOUSEHOLD.replace("start: name\n", "start: name\nmedia: case.fotos\n"))
    assert any("t.yaml:3: media 'case.fotos' is not in the catalogs" in p for p in found), found


def test_a_photos_step_names_a_registered_action_and_asks_something() -> None:
    unknown = problems(HOUSEHOLD.replace("    expect: text\n    save: notes\n",
                                         "    expect: text\n    photos: keep_fotos\n"
                                         "    save: notes\n"))
    assert any("unknown action 'keep_fotos'" in p for p in unknown), unknown
    telling = problems(HOUSEHOLD.replace("    say: report.after.thanks\n    end: true\n",
                                         "    say: report.after.thanks\n"
                                         "    photos: keep_case_photo\n    end: true\n"))
    assert any("keeps photos but asks nothing" in p for p in telling), telling


async def test_a_photo_at_a_photos_step_runs_its_action_and_the_step_stays() -> None:
    kept: list[str] = []

    async def keep(ctx: ActionContext) -> ActionResult:
        assert isinstance(ctx.inbound.payload, Media)
        kept.append(ctx.inbound.payload.ref)
        return ActionResult("kept", {"photo_count": len(kept)},
                            say=(Text("case.photos.kept", {"count": len(kept)}),))

    actions = ActionRegistry()
    for name in ACTIONS.names():
        actions.add(name, ACTIONS.get(name))
    actions.add("keep_test_photo", keep)
    flow = parse_flow(HOUSEHOLD.replace("    expect: text\n    save: notes\n",
                                        "    expect: text\n    photos: keep_test_photo\n"
                                        "    save: notes\n"), "t.yaml",
                      inputs=INPUTS.kinds, actions=actions.names(),
                      validators=INPUTS.validators, catalog_keys=CATALOGS.keys("th"))
    run = FlowRunner({"household": compile_flow(flow)}, INPUTS, actions, CATALOGS,
                     InputContext(CATALOGS, None))
    s = Session(conversation="test:p", lang="en")
    await run.start(s, "household", start("p"), None)
    s.state = "notes"
    photo = Inbound("test", "p", Kind.MEDIA, "ev-photo", Media("image", "m-1"))
    assert keys(await run.handle(s, photo, None)) == ["case.photos.kept",
                                                     "report.waiting.prompt"]
    assert s.state == "notes" and kept == ["m-1"] and s.slots["photo_count"] == 1
    # Elsewhere a photo is the step's usual re-prompt: the action is not run.
    s.state = "name"
    assert keys(await run.handle(s, photo, None)) == ["common.invalid.text",
                                                     "report.location.prompt"]
    assert kept == ["m-1"]
