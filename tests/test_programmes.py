"""Screening as data: the shipped rules against hand-made people, and broken rules files."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from bot.case import Case, Person
from bot.types import Location, LocationSource
from routing.programmes import ProgrammeError, load_programmes, programme_files, screen

TODAY = date(2026, 12, 1)
PROGRAMMES = load_programmes(programme_files())


def person_case(person: Person, *, members: list[Person] | None = None,
                hardships: list[str] | None = None, lang: str = "en") -> Case:
    return Case("CASE-7K3F9", "sms:x", "sms", lang, "6501",
                Location(16.8, 100.2, LocationSource.REPORTER_PIN), person,
                members=members or [], hardships=hardships or [])


def found(case: Case) -> list[str]:
    return [f.programme for f in screen(case, PROGRAMMES, TODAY)]


def test_every_shipped_rules_file_is_marked_as_sample() -> None:
    assert sorted(p.id for p in PROGRAMMES) == [
        "child_support", "disability_allowance", "elderly_allowance", "emergency_relief",
        "welfare_card"]
    assert all(p.sample and p.legal_source and p.documents for p in PROGRAMMES)


def test_a_woman_born_1961_may_get_the_elderly_allowance_and_is_asked_about_a_pension() -> None:
    case = person_case(Person(birth_year=1961, sex="female"), hardships=["old_age"])
    findings = screen(case, PROGRAMMES, TODAY)
    assert [f.programme for f in findings] == ["elderly_allowance", "emergency_relief"]
    elderly = findings[0]
    assert elderly.why == "aged 65 (60 or over)"
    assert "whether a government pension is paid" in elderly.missing
    assert elderly.missing_facts == ("nationality", "government_pension")


def test_a_man_of_40_with_a_disability_and_no_income() -> None:
    case = person_case(Person(birth_year=1986, sex="male"), hardships=["disability", "income"])
    assert found(case) == ["disability_allowance", "emergency_relief", "welfare_card"]


def test_a_household_with_a_baby_and_a_grandmother() -> None:
    case = person_case(Person(birth_year=1950, sex="female"),
                       members=[Person(birth_year=2024, sex="male", relation="grandchild")],
                       hardships=["child_care"])
    findings = screen(case, PROGRAMMES, TODAY)
    assert [f.programme for f in findings] == ["child_support", "elderly_allowance",
                                               "emergency_relief"]
    assert findings[0].why == "a child aged 2 (under 6)"


def test_a_teenager_out_of_school_gets_only_emergency_relief() -> None:
    case = person_case(Person(birth_year=2011, sex="female"), hardships=["out_of_school"])
    assert found(case) == ["emergency_relief"]


def test_an_elderly_household_member_is_found_and_named() -> None:
    case = person_case(Person(birth_year=1990), members=[Person(birth_year=1940,
                                                                relation="parent")])
    elderly = next(f for f in screen(case, PROGRAMMES, TODAY)
                   if f.programme == "elderly_allowance")
    assert elderly.why.endswith("(parent)")


def test_thai_words_come_from_the_rules_file() -> None:
    case = person_case(Person(birth_year=1961), lang="th")
    assert screen(case, PROGRAMMES, TODAY)[0].why == "อายุ 65 ปี (60 ปีขึ้นไป)"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = (Path(programme_files()[0])).read_text(encoding="utf-8")


def test_a_typo_in_a_rules_file_names_file_line_and_why(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("fact: youngest_child_age", "fact: youngest_chlid_age")
                 .replace("sample: true", "sampel: true"))
    with pytest.raises(ProgrammeError) as info:
        load_programmes([path])
    text = [str(p) for p in info.value.problems]
    assert any(p.startswith(f"{path}:5: unknown setting 'sampel'") for p in text), text
    assert any(":11: unknown fact 'youngest_chlid_age'" in p for p in text), text
    assert any("sample: true or false is required" in p for p in text), text


@pytest.mark.parametrize("bad,expected", [
    ("op: \"<\"", "op: \"<<\""),
    ("value: 6", "value: six"),
    ("programme: child_support", "programme: ''"),
])
def test_bad_values_are_refused(tmp_path: Path, bad: str, expected: str) -> None:
    with pytest.raises(ProgrammeError):
        load_programmes([write(tmp_path, GOOD.replace(bad, expected))])


def test_broken_yaml_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ProgrammeError, match=r"broken.yaml:\d+: not valid YAML"):
        load_programmes([write(tmp_path, "programme: [unclosed\n")])
    with pytest.raises(ProgrammeError, match="defined twice"):
        load_programmes([programme_files()[0], programme_files()[0]])


def test_ess_programmes_check(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "bot.cli", "programmes", "check"],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout.count(": ok (") == 5
    bad = write(tmp_path, GOOD.replace("op: \"<\"", "op: less"))
    done = subprocess.run([sys.executable, "-m", "bot.cli", "programmes", "check", str(bad)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "unknown op 'less'" in done.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ess(tmp_path: Path, *args: str, rules: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "ESS_DATA_DIR": str(tmp_path / "var"),
           "ESS_PROGRAMMES_DIR": str(rules), "ESS_PORT": str(_free_port())}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_another_rules_folder_replaces_the_sample_and_is_checked_at_start_up(
        tmp_path: Path) -> None:
    from bot.wiring import programme_paths
    from config.settings import Settings, SettingsError

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "elderly.yaml").write_text(
        (programme_files()[0].parent / "elderly_allowance.yaml").read_text(encoding="utf-8"),
        encoding="utf-8")
    assert programme_paths(Settings(programmes_dir=str(rules))) == [rules / "elderly.yaml"]
    checked = _ess(tmp_path, "programmes", "check", rules=rules)
    assert checked.returncode == 0 and checked.stdout.count(": ok (") == 1, checked.stderr
    write(rules, GOOD.replace("op: \"<\"", "op: less"))
    checked = _ess(tmp_path, "programmes", "check", rules=rules)
    assert checked.returncode == 1
    assert re.search(rf"{re.escape(str(rules / 'broken.yaml'))}:\d+: .*unknown op 'less'",
                     checked.stderr), checked.stderr
    # `ess serve` refuses to start on it, with the same file:line, before listening.
    served = _ess(tmp_path, "serve", rules=rules)
    assert served.returncode != 0 and "listening" not in served.stdout
    assert "broken.yaml:" in served.stderr and "unknown op 'less'" in served.stderr
    (tmp_path / "empty").mkdir()
    for folder, why in ((tmp_path / "nowhere", "not a folder"),
                        (tmp_path / "empty", "no programme rules")):
        served = _ess(tmp_path, "serve", rules=folder)
        assert served.returncode != 0 and why in served.stderr, served.stderr
        with pytest.raises(SettingsError, match=why):
            programme_paths(Settings(programmes_dir=str(folder)))
