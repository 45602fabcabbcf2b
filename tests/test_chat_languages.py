"""Every flow path in Burmese, Khmer and Lao, through `ess chat --lang` as a person runs it.

Each script is typed into a real `ess chat` subprocess; what it prints is checked against the
language's own catalog, so a text that fell back to Thai or English, or a missing key, fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.i18n import Catalogs
from bot.types import Text
from tests.test_cli import ess

LANGS = ["my", "km", "lo"]
PIN = "16.8211,100.2659"
CATALOGS = Catalogs.load()


def said(lang: str, key: str) -> str:
    """The text of `key` up to its first placeholder: what must appear in the output."""
    return CATALOGS.render(lang, Text(key)).split("{")[0].strip()


def word(lang: str, command: str) -> str:
    """The language's own first word for a command (not the Thai or English one)."""
    return CATALOGS.words_of(lang, f"commands.{command}.words")[0]


def run(tmp_path: Path, lang: str, lines: list[str], flow: str = "report") -> str:
    done = ess(tmp_path, "chat", "--lang", lang, "--flow", flow, stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert not re.search(r"\b(report|silent|mine|common|commands|status|web)\.[a-z_.]+\b",
                         out), "a catalog key was shown instead of its text"
    return out


def assert_shows(out: str, lang: str, *keys: str) -> None:
    for key in keys:
        assert said(lang, key) in out, (lang, key)


@pytest.mark.parametrize("lang", LANGS)
def test_a_whole_report_with_every_fix_and_the_optional_questions(tmp_path: Path,
                                                                  lang: str) -> None:
    out = run(tmp_path, lang, [
        "1", PIN, "081-234-5678",  # type, where, phone
        "2", "2",  # fix the type, pick another
        "3", PIN,  # fix the place
        "4", "02-123-4567",  # fix the phone
        "1",  # send
        "1", "1", "2",  # victim, injured yes, children no
        "the door is locked",  # relayed to the responders
        word(lang, "mine"),  # my reports, in the language's own word
    ])
    assert_shows(out, lang, "common.greeting", "report.type.prompt", "report.location.prompt",
                 "report.phone.prompt", "report.confirm.prompt", "report.received",
                 "report.after.role", "report.after.injured", "report.after.children",
                 "report.after.thanks", "report.waiting.prompt", "report.waiting.relayed",
                 "mine.title", "mine.hint")
    assert said(lang, "incident.confinement") in out  # the type as fixed
    assert re.search(r"^reference: ESS-\w{5}$", out, re.M)
    # The listing shows the reference, and nothing personal: not the phone number.
    reference = re.search(r"^reference: (ESS-\w{5})$", out, re.M)
    assert reference is not None
    listing = out[out.rindex(said(lang, "mine.title")):]
    assert reference.group(1) in listing and "123-4567" not in listing


@pytest.mark.parametrize("lang", LANGS)
def test_commands_in_the_language_help_back_language_cancel(tmp_path: Path,
                                                            lang: str) -> None:
    out = run(tmp_path, lang, [
        word(lang, "help"),
        "1",  # a type
        word(lang, "back"),  # from the location step back to the type
        word(lang, "language"),  # the picker
        "2",  # English is second
        "cancel",  # English words keep working everywhere
    ])
    assert_shows(out, lang, "help.report", "common.language.prompt")
    # The picker lists every language in its own script.
    for name in ("ไทย", "English", "မြန်မာ", "ខ្មែរ", "ລາວ"):
        assert name in out
    assert out.count(said(lang, "report.type.prompt")) >= 2  # asked again after "back"
    assert "Cancelled. Nothing was sent to responders." in out  # now in English


@pytest.mark.parametrize("lang", LANGS)
def test_restart_skip_and_a_new_report(tmp_path: Path, lang: str) -> None:
    out = run(tmp_path, lang, [
        "1", word(lang, "restart"), "2", PIN, "0891234567", "1",
        "3",  # skip the optional questions
        "1",  # a new report from the waiting step
        word(lang, "cancel"),
    ])
    assert_shows(out, lang, "common.restarted", "report.after.thanks", "common.cancelled")
    assert out.count(said(lang, "report.type.prompt")) >= 3


@pytest.mark.parametrize("lang", LANGS)
def test_the_silent_command_inside_a_report(tmp_path: Path, lang: str) -> None:
    out = run(tmp_path, lang, [word(lang, "silent"), "1", "1", PIN, "2"])
    assert_shows(out, lang, "silent.start.prompt", "silent.type.prompt",
                 "silent.location.prompt", "silent.callback.prompt", "silent.received")


@pytest.mark.parametrize("lang", LANGS)
def test_silent_with_a_call_back_number_safe_and_a_message(tmp_path: Path, lang: str) -> None:
    out = run(tmp_path, lang, ["1", "3", PIN, "1", "0891234567", "1", "they left"],
              flow="silent")
    assert_shows(out, lang, "silent.start.prompt", "silent.phone.prompt", "silent.received",
                 "silent.waiting.prompt", "silent.safe_noted", "silent.relayed")
    assert said(lang, "common.greeting") not in out  # nothing that names the service
    reference = re.search(r"^reference: (ESS-\w{5})$", out, re.M)
    assert reference is not None


@pytest.mark.parametrize("lang", LANGS)
def test_silent_not_now_and_my_reports_is_not_offered(tmp_path: Path, lang: str) -> None:
    out = run(tmp_path, lang, ["2"], flow="silent")
    assert_shows(out, lang, "common.cancelled")
    out = run(tmp_path, lang, ["1", word(lang, "mine"), "4", PIN, "2", "ESS-33333"],
              flow="silent")
    assert_shows(out, lang, "common.command_unavailable", "silent.received")
    assert said(lang, "mine.title") not in out
    assert CATALOGS.render(lang, Text("silent.unknown", {"asked": "ESS-33333"})) in out
    assert "reference: ESS-33333" not in out  # a question is not a report
