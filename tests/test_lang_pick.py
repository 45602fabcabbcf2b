"""Choosing a reporter's language: Accept-Language with q-values, SMS country prefixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.i18n import Catalogs
from bot.lang_pick import accept_language, best_language, language_for_phone


@pytest.mark.parametrize(("header", "tags"), [
    ("my-MM,my;q=0.9,en;q=0.8", ["my-mm", "my", "en"]),
    ("en;q=0.5, km;q=0.9, th", ["th", "km", "en"]),  # weights, not order, decide
    ("lo;q=0, en", ["en"]),  # q=0: "not this one"
    ("th;q=0.7,en;q=0.7", ["th", "en"]),  # a tie keeps the order sent
    ("*;q=0.1, my", ["my", "*"]),
    ("en;q=abc, my;q=2, km;q=0.3", ["km"]),  # unreadable weights are skipped, not guessed
    ("", []),
    (";;,,=,q=1", []),
    ("x" * 5000, []),
])
def test_accept_language_is_parsed_with_weights(header: str, tags: list[str]) -> None:
    assert accept_language(header) == tags


@pytest.mark.parametrize(("header", "lang"), [
    ("my-MM,my;q=0.9,en;q=0.8", "my"),
    ("fr-FR,fr;q=0.9,km;q=0.5,en;q=0.4", "km"),  # the first language we have
    ("en-US;q=0.2,lo-LA", "lo"),
    ("th-TH", "th"),
    ("fr, de", None),
    ("*", None),
])
def test_the_best_language_we_have(header: str, lang: str | None) -> None:
    assert best_language(accept_language(header), Catalogs.load()) == lang


@pytest.mark.parametrize(("number", "lang"), [
    ("+959123456789", "my"),
    ("+85512345678", "km"),
    ("+8562055512345", "lo"),
    ("00855 12 345 678", "km"),
    ("+66812345678", "th"),
    ("0812345678", None),  # a national number says nothing about a country
    ("+4479460000", None),
    ("", None),
])
def test_a_country_prefix_names_the_language(number: str, lang: str | None) -> None:
    assert language_for_phone(number, Catalogs.load()) == lang


def test_a_new_language_brings_its_own_prefix(tmp_path: Path) -> None:
    en = (Path(__file__).parents[1] / "bot" / "catalogs" / "en.yaml").read_text()
    (tmp_path / "vi.yaml").write_text(en.replace(
        "  name: English\n", '  name: Tiếng Việt\n  phone_prefixes: ["+84"]\n'))
    catalogs = Catalogs.load([tmp_path])
    assert catalogs.missing() == {}
    assert language_for_phone("+84912345678", catalogs) == "vi"
    assert best_language(accept_language("vi-VN"), catalogs) == "vi"
