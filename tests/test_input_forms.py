"""Regression tests: digits from any keyboard, and YAML keys written twice (issue 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.i18n import CatalogError, Catalogs
from bot.phone import normalize_thai_phone, to_ascii_digits
from bot.services import Services
from flows.loader import FlowError
from tests.helpers import choice, pin, start, text
from tests.test_flows_loader import GOOD, parse, problems

SPELLINGS = {
    "arabic-indic": "٠٨١-٢٣٤-٥٦٧٨",
    "mixed": "08١-٢٣٤-٥٦٧٨",
    "extended arabic-indic (persian)": "۰۸۱-۲۳۴-۵۶۷۸",
    "thai": "๐๘๑-๒๓๔-๕๖๗๘",
    "burmese": "၀၈၁-၂၃၄-၅၆၇၈",
    "lao": "໐໘໑-໒໓໔-໕໖໗໘",
    "khmer": "០៨១-២៣៤-៥៦៧៨",
    "full-width": "０８１-２３４-５６７８",
    "devanagari": "०८१-२३४-५६७८",
}


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
async def test_the_summary_shows_the_number_in_ascii_whatever_the_digits(
        services: Services, spelling: str) -> None:
    e = services.engine
    await e.handle(start("u"))
    await e.handle(choice("u", "threat"))
    await e.handle(pin("u"))
    replies = await e.handle(text("u", spelling))
    assert [r.text.key for r in replies] == ["report.confirm.prompt"]
    assert replies[0].text.params["phone"] == "081-234-5678"
    assert normalize_thai_phone(spelling) == "+66812345678"


def test_only_ascii_digits_come_out() -> None:
    assert to_ascii_digits("a١b") == "a1b" and to_ascii_digits("²") == "²"  # not decimal
    assert normalize_thai_phone("08¹2345678") is None  # a superscript is not a digit


def test_a_step_written_twice_names_both_lines() -> None:
    twice = GOOD.replace("  bye:\n", "  ask:\n    say: report.phone.prompt\n    end: true\n"
                         "  bye:\n")
    found = problems(twice)
    assert len(found) == 1
    assert found[0].startswith("t.yaml:9:") and "'ask'" in found[0] and "line 4" in found[0]


def test_a_key_written_twice_inside_a_step_is_refused_too() -> None:
    with pytest.raises(FlowError, match=r"t.yaml:7: .*duplicate key 'expect' \(first at line 6"):
        parse(GOOD.replace("    save: phone\n", "    expect: text\n    save: phone\n", 1))


def test_a_catalog_key_written_twice_names_both_lines(tmp_path: Path) -> None:
    (tmp_path / "km.yaml").write_text("common:\n  greeting: a\n  cancel: b\n  greeting: c\n",
                                      encoding="utf-8")
    with pytest.raises(CatalogError, match=r"km.yaml:4: duplicate key 'greeting' "
                                           r"\(first at line 2\)"):
        Catalogs.load([tmp_path])


@pytest.mark.parametrize("typed", ["¹", "²٣", "1" * 5000, "๑" * 4500])
async def test_digits_that_int_refuses_are_re_prompted(services: Services, typed: str) -> None:
    # "¹".isdigit() is True but int("¹") raises; so does int() of 4300+ digits (found by
    # tests/test_fuzz.py): each was a "NOT received" at the first step.
    e = services.engine
    await e.handle(start("u"))
    replies = await e.handle(text("u", typed))
    assert "common.unavailable" not in [r.text.key for r in replies]
    assert replies and replies[-1].text.key == "report.type.prompt"


def test_responder_words_with_odd_digits_are_not_actions() -> None:
    from routing.messages import parse_token, parse_typed

    assert parse_token("act:eta¹:ESS-7K3F9") is None
    assert parse_typed("ESS-7K3F9 ¹", {"ack": {"ack"}}) is None
