"""Catalogs: Thai and English complete; a new language is a file; flows use known keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.i18n import CatalogError, Catalogs
from bot.types import Text
from flows.registry import flow_files


def test_every_shipped_language_has_every_key() -> None:
    catalogs = Catalogs.load()
    assert {lang.code for lang in catalogs.languages} >= {"th", "en"}
    assert catalogs.missing() == {}


def test_thai_comes_first() -> None:
    assert Catalogs.load().languages[0].code == "th"


def test_placeholders_match_across_languages() -> None:
    catalogs = Catalogs.load()
    for key in catalogs.keys("th"):
        th = catalogs.render("th", Text(key))
        en = catalogs.render("en", Text(key))
        assert set(re.findall(r"{(\w+)}", th)) == set(re.findall(r"{(\w+)}", en)), key


def test_every_key_a_flow_names_exists() -> None:
    catalogs = Catalogs.load()
    for path in flow_files():
        for key in re.findall(r"(?:say|label|invalid): ([a-z_.]+)", path.read_text()):
            assert key in catalogs.keys("th"), f"{path.name}: {key}"


def test_adding_a_language_is_adding_a_file(tmp_path: Path) -> None:
    en = (Path(__file__).parents[1] / "bot" / "catalogs" / "en.yaml").read_text()
    (tmp_path / "my.yaml").write_text(en.replace("name: English", "name: မြန်မာ"))
    catalogs = Catalogs.load([tmp_path])
    assert catalogs.has("my")
    assert "my" in [lang.code for lang in catalogs.languages]
    assert catalogs.missing() == {}


def test_an_incomplete_language_is_reported(tmp_path: Path) -> None:
    (tmp_path / "lo.yaml").write_text("_meta:\n  name: ລາວ\n")
    missing = Catalogs.load([tmp_path]).missing()
    assert "report.type.prompt" in missing["lo"]


def test_a_broken_catalog_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "km.yaml").write_text("common: [1, {a: b}]\n")
    with pytest.raises(CatalogError, match=r"km.yaml: common"):
        Catalogs.load([tmp_path])


def test_render_fills_nested_texts_and_survives_bad_templates() -> None:
    catalogs = Catalogs.load()
    text = Text("report.confirm.prompt", {"incident_type": Text("incident.threat"),
                                          "location": "x", "phone": "y"})
    assert "Threatened" in catalogs.render("en", text)
    assert catalogs.render("en", Text("no.such.key")) == "no.such.key"
    assert "{missing}" not in catalogs.render("en", Text("report.received_short"))
