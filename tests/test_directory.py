"""The directory: the shipped sample loads; every problem names file, line and field."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from routing.directory import SHIPPED_DIR, DirectoryError, load_directory
from tests.dispatch_kit import reset_logging

STATIONS = "id,name_th,name_en,province_code,district_code,lat,lon,phone,addresses\n"
GROUPS = "id,area,agency,name_th,name_en,addresses,level,lang\n"
@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    yield
    reset_logging()


FALLBACK = "national,TH,1300,ศูนย์ 1300,1300 centre,console:1300,2,th\n"


def write(folder: Path, stations: str, groups: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stations.csv").write_text(STATIONS + stations, encoding="utf-8")
    (folder / "groups.csv").write_text(GROUPS + groups, encoding="utf-8")
    return folder


def test_shipped_sample_covers_every_province() -> None:
    directory = load_directory()
    provinces = {s.province_code for s in directory.stations}
    assert len(provinces) == 77
    assert len(directory.stations) > 800
    assert [g.agency for g in directory.national] == ["1300"]
    agencies = {(g.area, g.agency, g.level) for g in directory.groups}
    assert ("65", "191", 1) in agencies and ("65", "shelter", 0) in agencies
    assert "sample" in (SHIPPED_DIR / "README.md").read_text(encoding="utf-8").lower()


def test_every_problem_has_file_line_and_field(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "d",
        "s1,สภ.หนึ่ง,One,65,6501,16.8,100.2,191,console:s1\n"
        "s1,สภ.สอง,Two,65,6601,95,100.2,abc,not-an-address\n",
        "g1,99999,police,,x,,3,th\n")
    with pytest.raises(DirectoryError) as caught:
        load_directory(folder)
    problems = "\n".join(caught.value.problems)
    stations, groups = folder / "stations.csv", folder / "groups.csv"
    assert f"{stations}:3: id: 's1' is already used on line 2" in problems
    assert f"{stations}:3: district_code: 6601 is not in province 65" in problems
    assert f"{stations}:3: lat: 95 is outside -90..90" in problems
    assert f"{stations}:3: phone:" in problems
    assert f"{stations}:3: addresses: 'not-an-address'" in problems
    assert f"{groups}:2: area:" in problems
    assert f"{groups}:2: name_th: required" in problems
    assert f"{groups}:2: addresses: at least one" in problems
    assert f"{groups}:2: level: '3'" in problems
    assert f"{groups}: area: no group for area TH" in problems


def test_missing_column_and_polygons(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "stations.csv").write_text("id,name_th\nx,y\n", encoding="utf-8")
    (folder / "groups.csv").write_text(GROUPS + FALLBACK, encoding="utf-8")
    with pytest.raises(DirectoryError) as caught:
        load_directory(folder)
    assert f"{folder / 'stations.csv'}:1: province_code, district_code, lat, lon: missing " \
           "column" in caught.value.problems[0]

    folder = write(tmp_path / "p", "a,ก,A,65,6501,16.80,100.20,,console:a\n"
                                   "b,ข,B,65,6502,16.90,100.30,,console:b\n", FALLBACK)
    square = [[100.0, 16.0], [101.0, 16.0], [101.0, 17.0], [100.0, 17.0], [100.0, 16.0]]
    (folder / "jurisdictions.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"station_id": "a"},
             "geometry": {"type": "Polygon", "coordinates": [square]}},
            {"type": "Feature", "properties": {"station_id": "zz"},
             "geometry": {"type": "Polygon", "coordinates": [square]}}]}), encoding="utf-8")
    with pytest.raises(DirectoryError) as caught:
        load_directory(folder)
    assert caught.value.problems == [
        f"{folder / 'jurisdictions.geojson'}:1: features[1].properties.station_id: 'zz' is "
        "not a station in stations.csv"]
    # Pretty-printed: the line the feature starts on.
    data = json.loads((folder / "jurisdictions.geojson").read_text(encoding="utf-8"))
    data["features"][1]["geometry"] = {"type": "Point", "coordinates": [100, 16]}
    data["features"][1]["properties"]["station_id"] = "b"
    pretty = json.dumps(data, indent=2)
    (folder / "jurisdictions.geojson").write_text(pretty, encoding="utf-8")
    with pytest.raises(DirectoryError) as caught:
        load_directory(folder)
    line = [n for n, text in enumerate(pretty.splitlines(), 1) if '"Feature"' in text][1]
    assert caught.value.problems == [
        f"{folder / 'jurisdictions.geojson'}:{line}: features[1].geometry: geometry must be "
        "a Polygon or MultiPolygon"]


def test_polygon_owner_beats_nearest(tmp_path: Path) -> None:
    folder = write(tmp_path / "p", "a,ก,A,65,6501,16.10,100.10,,console:a\n"
                                   "b,ข,B,65,6502,16.90,100.90,,console:b\n", FALLBACK)
    # Station a's jurisdiction reaches to the doorstep of b.
    area = [[100.0, 16.0], [101.0, 16.0], [101.0, 17.0], [100.0, 17.0], [100.0, 16.0]]
    (folder / "jurisdictions.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"station_id": "a"},
             "geometry": {"type": "MultiPolygon", "coordinates": [[area]]}}]}),
        encoding="utf-8")
    directory = load_directory(folder)
    assert directory.nearest(16.89, 100.89)[0][0].id == "b"
    assert directory.containing(16.89, 100.89).id == "a"  # type: ignore[union-attr]


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["directory", "check", str(SHIPPED_DIR)]) == 0
    assert "ok (" in capsys.readouterr().out
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED_DIR, broken)
    with (broken / "stations.csv").open("a", encoding="utf-8") as fh:
        fh.write("bad,ก,B,65,6501,16.8,not-a-number,,console:bad\n")
    assert main(["directory", "check", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken / 'stations.csv'}:" in err and ": lon: 'not-a-number' is not a number" in err


def test_start_up_refuses_a_broken_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = write(tmp_path / "d", "a,ก,A,65,6501,16.8,100.2,,console:a\n", "")
    monkeypatch.setenv("ESS_DIRECTORY_DIR", str(folder))
    monkeypatch.setenv("ESS_DATA_DIR", str(tmp_path / "var"))
    assert main(["serve"]) == 2
    assert f"ess: {folder / 'groups.csv'}: area: no group for area TH" in capsys.readouterr().err
