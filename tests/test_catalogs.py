"""Catalogs: every shipped language complete; a new language is a file; flows use known keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.i18n import CatalogError, Catalogs
from bot.types import Text
from flows.registry import flow_files


def test_every_shipped_language_has_every_key() -> None:
    catalogs = Catalogs.load()
    assert {lang.code for lang in catalogs.languages} >= {"th", "en", "my", "km", "lo"}
    assert catalogs.missing() == {}


def test_every_language_is_listed_in_its_own_script() -> None:
    names = {lang.code: lang.name for lang in Catalogs.load().languages}
    assert names == {"th": "ไทย", "en": "English", "my": "မြန်မာ", "km": "ខ្មែរ", "lo": "ລາວ"}


@pytest.mark.parametrize("code", ["my", "km", "lo"])
def test_a_drafted_catalog_says_so_at_its_top(code: str) -> None:
    path = Path(__file__).parents[1] / "bot" / "catalogs" / f"{code}.yaml"
    top = path.read_text(encoding="utf-8")[:800]
    assert "machine-drafted" in top and "not a native speaker" in top
    assert "must review" in top and "before production" in top
    assert "review before production" in str(Catalogs.load().render(code, Text("_meta.drafted")))


def test_thai_comes_first() -> None:
    assert Catalogs.load().languages[0].code == "th"


def test_placeholders_match_across_languages() -> None:
    catalogs = Catalogs.load()
    for key in catalogs.keys("th"):
        th = set(re.findall(r"{(\w+)}", catalogs.render("th", Text(key))))
        for lang in catalogs.languages:
            shown = catalogs.render(lang.code, Text(key))
            assert set(re.findall(r"{(\w+)}", shown)) == th, (lang.code, key)


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
    (tmp_path / "shn.yaml").write_text("_meta:\n  name: လိၵ်ႈတႆး\n")
    missing = Catalogs.load([tmp_path]).missing()
    assert "report.type.prompt" in missing["shn"]
    # Metadata other than the name is optional: no language must copy another's prefixes.
    assert not any(key.startswith("_meta.") for key in missing["shn"])


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


def test_every_agency_of_the_directory_has_a_name_in_every_language() -> None:
    from routing.directory import SHIPPED_DIR, load_directory

    directory = load_directory(SHIPPED_DIR)
    kinds = {"station", *(group.agency for group in directory.groups)}
    catalogs = Catalogs.load()
    for lang in catalogs.languages:
        assert {f"agency.{k}" for k in kinds} <= catalogs.keys(lang.code), lang.code


def test_line_labels_fit_in_every_language() -> None:
    """Rich-menu and location-button labels: LINE refuses more than 20 characters, and a
    label cut inside a syllable shows a broken letter."""
    catalogs = Catalogs.load()
    for lang in catalogs.languages:
        for key in ("report", "silent", "mine_label", "help"):
            assert len(catalogs.render(lang.code, Text(f"line.menu.{key}"))) <= 20, \
                (lang.code, key)
        assert len(catalogs.render(lang.code, Text("line.location_button"))) <= 20
