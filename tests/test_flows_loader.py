"""The flow language: shipped flows load; every mistake is reported with line and hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.durations import parse_duration
from bot.i18n import Catalogs
from bot.wiring import default_registries
from flows.compiler import FlowModel, compile_flow
from flows.loader import FlowError, parse_flow
from flows.registry import SHIPPED_DIR, flow_files, load_flows

INPUTS, ACTIONS = default_registries()
CATALOGS = Catalogs.load()


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_flow(text, "t.yaml", inputs=INPUTS.kinds, actions=ACTIONS.names(),
                      validators=INPUTS.validators, catalog_keys=CATALOGS.keys("th"))


def problems(text: str) -> list[str]:
    with pytest.raises(FlowError) as info:
        parse(text)
    return [str(p) for p in info.value.problems]


GOOD = """\
flow: tiny
start: ask
steps:
  ask:
    say: report.phone.prompt
    expect: phone
    save: phone
    next: bye
  bye:
    say: report.after.thanks
    end: true
"""


def test_shipped_flows_load_and_compile() -> None:
    flows = load_flows(flow_files(), inputs=INPUTS.kinds, actions=ACTIONS.names(),
                       validators=INPUTS.validators, catalog_keys=CATALOGS.keys("th"))
    assert {"report", "silent"} <= set(flows)
    report = flows["report"].flow
    # Exactly the five incident types of the seeds, in their order, plus the silent switch.
    values = [c.value for c in report.step("type").choices if c.value]
    assert values == ["threat", "confinement", "sexual_risk", "deranged", "gathering"]
    assert flows["silent"].flow.silent


def test_the_seed_thai_labels_are_used() -> None:
    labels = [CATALOGS.render("th", __import__("bot.types").types.Text(f"incident.{v}"))
              for v in ("threat", "confinement", "sexual_risk", "deranged", "gathering")]
    assert labels[0].startswith("ถูกข่มขู่ว่าจะทำร้าย")
    assert "กักขังหน่วงเหนี่ยว" in labels[1]
    assert "ล่วงละเมิดทางเพศ" in labels[2]
    assert "คลุ้มคลั่ง" in labels[3]
    assert "มั่วสุม" in labels[4]


def test_a_good_flow_compiles_to_one_machine_and_branches_in_order() -> None:
    compiled = compile_flow(parse(GOOD))
    model = FlowModel(state="ask", slots={})
    assert compiled.advance(model) == "bye"
    # No auto transitions and no registered models: the machine is shared by everyone.
    assert "to_bye" not in compiled.machine.events
    assert compiled.machine.models == []


def test_yaml_syntax_error_names_the_line() -> None:
    found = problems("flow: x\nsteps:\n  a: [unclosed\n")
    assert found[0].startswith("t.yaml:")
    assert "not valid YAML" in found[0]


def test_every_problem_is_reported_at_once_with_line_and_hint() -> None:
    text = """\
flow: Bad-Name
start: nowhere
colour: blue
steps:
  ask:
    say: no.such.key
    expect: telepathy
    next: missing
  choose:
    say: report.type.prompt
    expect: choice
    save: x
    next: ask
  orphan:
    say: report.after.thanks
"""
    found = problems(text)
    joined = "\n".join(found)
    assert "t.yaml:1: flow needs a name" in joined
    assert "t.yaml:2: start step 'nowhere' is not defined" in joined
    assert "t.yaml:3: unknown flow setting 'colour'" in joined
    assert "t.yaml:6: say 'no.such.key' is not in the catalogs" in joined
    assert "t.yaml:7: unknown input kind 'telepathy'" in joined
    assert "asks for input but does not save it" in joined
    assert "goes to 'missing', which is not defined" in joined
    assert "expects a choice but lists no choices" in joined
    assert "has no next and does not end the flow" in joined
    assert all("(hint: " in p for p in found)


def test_unknown_action_and_validator_and_unreachable_step() -> None:
    lost = "  lost:\n    say: report.after.thanks\n    end: true\n"
    text = GOOD.replace("    next: bye\n", "    run: launch_rockets\n    validate: [psychic]\n"
                        "    next: bye\n") + lost
    joined = "\n".join(problems(text))
    assert "unknown action 'launch_rockets'" in joined
    assert "unknown validator 'psychic'" in joined
    assert "step 'lost' cannot be reached from 'ask'" in joined


def test_last_branch_must_catch_everything() -> None:
    text = GOOD.replace("    next: bye\n", "    next:\n      - {when: {phone: x}, goto: bye}\n")
    assert any("the last branch must have no when" in p for p in problems(text))


def test_branch_on_a_slot_nobody_saves_is_an_error() -> None:
    text = GOOD.replace("    next: bye\n", "    next:\n      - {when: {colour: red}, goto: bye}\n"
                        "      - {goto: bye}\n")
    assert any("branches on slot 'colour', which no step saves" in p for p in problems(text))


def test_choices_need_label_and_value_and_unique_values() -> None:
    text = GOOD.replace("    expect: phone\n", "    expect: choice\n    choices:\n"
                        "      - {value: a, label: report.after.yes}\n"
                        "      - {value: a, label: report.after.no}\n"
                        "      - {label: report.after.no}\n")
    joined = "\n".join(problems(text))
    assert "choice 'a' appears twice" in joined
    assert "a choice needs a label and either a value or a command" in joined


def test_durations() -> None:
    assert parse_duration("30m") == 1800
    assert parse_duration("2h") == 7200
    assert parse_duration(90) == 90
    assert parse_duration("soon") is None
    assert parse_duration(0) is None


def test_ess_flows_check_reports_file_line_and_exit_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("expect: phone", "expect: telepathy"), encoding="utf-8")
    good = SHIPPED_DIR / "report.yaml"
    run = subprocess.run([sys.executable, "-m", "bot.cli", "flows", "check", str(good), str(bad)],
                         capture_output=True, text=True, env={"PATH": "", "ESS_DATA_DIR":
                                                              str(tmp_path)}, check=False)
    assert run.returncode == 1
    assert f"{good}: ok" in run.stdout
    assert f"{bad}:6: unknown input kind 'telepathy'" in run.stderr
    assert "Traceback" not in run.stderr


def test_service_refuses_to_start_with_a_broken_flow(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "broken.yaml").write_text("flow: broken\nstart: a\nsteps:\n  a: {say: nope}\n")
    run = subprocess.run([sys.executable, "-m", "bot.cli", "serve"], capture_output=True,
                         text=True, check=False, timeout=60,
                         env={"PATH": "", "ESS_DATA_DIR": str(tmp_path),
                              "ESS_FLOWS_DIR": str(flows)})
    assert run.returncode == 2
    assert "broken.yaml:4: say 'nope' is not in the catalogs" in run.stderr
    assert "Traceback" not in run.stderr
