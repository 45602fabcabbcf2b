"""The responder directory: police stations and responder groups, loaded from CSV files.

Formats are documented in docs/directory.md. Loading checks everything and collects every
problem as `file:line: field: what is wrong`, so `ess directory check` and start-up refuse a
broken directory with the same messages. After loading, a Directory is immutable and answers
spatial questions: which station's jurisdiction holds a point, which stations are nearest.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routing.geo import Ring, in_polygon, valid_point
from routing.spatial import SphereIndex

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "config" / "directory"
STATIONS_FILE = "stations.csv"
GROUPS_FILE = "groups.csv"
POLYGONS_FILE = "jurisdictions.geojson"
NATIONAL = "TH"  # the area code of groups that serve the whole country
MAX_LEVEL = 2  # escalation levels: 0 at once, 1 first escalation, 2 second

STATION_FIELDS = ("id", "name_th", "name_en", "province_code", "district_code", "lat", "lon",
                  "phone", "addresses")
GROUP_FIELDS = ("id", "area", "agency", "name_th", "name_en", "addresses", "level", "lang")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PROVINCE = re.compile(r"^\d{2}$")
_DISTRICT = re.compile(r"^\d{4}$")
_ADDRESS = re.compile(r"^[a-z][a-z0-9_-]*:\S{1,200}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{1,19}$")


class DirectoryError(ValueError):
    """A directory that cannot be used; `problems` lists every one, file:line: field: why."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}" if problems else "invalid directory")


@dataclass(frozen=True, slots=True)
class Station:
    """A police station: where it is, which areas it belongs to, how to reach it."""

    id: str
    name_th: str
    name_en: str
    province_code: str
    district_code: str
    lat: float
    lon: float
    phone: str = ""
    addresses: tuple[str, ...] = ()

    @property
    def areas(self) -> tuple[str, ...]:
        """Area codes from the most to the least specific."""
        return (self.id, self.district_code, self.province_code)


@dataclass(frozen=True, slots=True)
class Group:
    """A responder group for an area (province, district, station or the country).

    `level` is the escalation level at which it is told: 0 with every report, 1 when nobody
    acknowledged in time, 2 at the second escalation.
    """

    id: str
    area: str
    agency: str
    name_th: str
    name_en: str
    addresses: tuple[str, ...]
    level: int = 0
    lang: str = "th"


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    station_id: str
    polygons: tuple[tuple[Ring, ...], ...]  # each: outer ring, then holes
    bbox: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat

    def contains(self, lat: float, lon: float) -> bool:
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        return any(in_polygon(lon, lat, rings) for rings in self.polygons)


@dataclass(frozen=True)
class Directory:
    """Stations, groups and optional jurisdictions, with a spatial index over stations."""

    stations: tuple[Station, ...]
    groups: tuple[Group, ...]
    jurisdictions: tuple[Jurisdiction, ...] = ()
    source: str = ""
    _index: SphereIndex = field(init=False, repr=False, compare=False)
    _by_id: dict[str, Station] = field(init=False, repr=False, compare=False)
    _groups_by_area: dict[str, tuple[Group, ...]] = field(init=False, repr=False,
                                                          compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", SphereIndex([(s.lat, s.lon) for s in self.stations]))
        object.__setattr__(self, "_by_id", {s.id: s for s in self.stations})
        by_area: dict[str, list[Group]] = {}
        for group in self.groups:
            by_area.setdefault(group.area, []).append(group)
        object.__setattr__(self, "_groups_by_area", {k: tuple(v) for k, v in by_area.items()})

    def station(self, station_id: str) -> Station | None:
        return self._by_id.get(station_id)

    def nearest(self, lat: float, lon: float, k: int = 1) -> list[tuple[Station, float]]:
        """The `k` nearest stations with their great-circle distance in km."""
        return [(self.stations[i], km) for i, km in self._index.nearest(lat, lon, k)]

    def containing(self, lat: float, lon: float) -> Station | None:
        """The station whose jurisdiction polygon holds the point, when polygons are given."""
        for jurisdiction in self.jurisdictions:
            if jurisdiction.contains(lat, lon):
                return self._by_id.get(jurisdiction.station_id)
        return None

    def groups_for(self, areas: Iterable[str]) -> list[Group]:
        found: list[Group] = []
        for area in areas:
            found.extend(self._groups_by_area.get(area, ()))
        return found

    @property
    def national(self) -> tuple[Group, ...]:
        """The national fallback: every group whose area is the whole country."""
        return self._groups_by_area.get(NATIONAL, ())


# -- loading -------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, line: int | None, fieldname: str, why: str) -> None:
        at = f"{where}:{line}" if line is not None else where
        self.items.append(f"{at}: {fieldname}: {why}" if fieldname else f"{at}: {why}")


def _rows(path: Path, fields: Sequence[str], required: Sequence[str],
          problems: _Problems) -> list[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problems.add(str(path), None, "", "file not found")
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(str(path), None, "", f"cannot read: {exc}")
        return []
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [f for f in required if f not in header]
    if missing:
        problems.add(str(path), 1, ", ".join(missing), f"missing column; expected "
                     f"{','.join(fields)}")
        return []
    unknown = [h for h in header if h not in fields]
    if unknown:
        problems.add(str(path), 1, ", ".join(unknown), f"unknown column; known: "
                     f"{','.join(fields)}")
    rows = []
    for row in reader:
        clean = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if None in row:
            problems.add(str(path), reader.line_num, "", "more values than columns")
        if any(clean.values()):
            rows.append((reader.line_num, clean))
    return rows


def _addresses(value: str, where: str, line: int, problems: _Problems) -> tuple[str, ...]:
    found = tuple(a for a in re.split(r"[\s;]+", value) if a)
    for address in found:
        if not _ADDRESS.match(address):
            problems.add(where, line, "addresses", f"{address!r} is not a channel address "
                         "such as line:C1234…, sms:+6681…, console:name")
    return found


def _coordinate(value: str, low: float, high: float, name: str, where: str, line: int,
                problems: _Problems) -> float | None:
    try:
        number = float(value)
    except ValueError:
        problems.add(where, line, name, f"{value!r} is not a number")
        return None
    if math.isnan(number) or not low <= number <= high:
        problems.add(where, line, name, f"{value} is outside {low:g}..{high:g}")
        return None
    return number


def _check_id(ident: str, seen: dict[str, int], where: str, line: int,
              problems: _Problems) -> bool:
    """An id is well formed and not used before in its file; `seen` remembers the line."""
    if not _ID.match(ident):
        problems.add(where, line, "id", f"{ident!r}: letters, digits, . _ - (max 64)")
        return False
    if ident in seen:
        problems.add(where, line, "id", f"{ident!r} is already used on line {seen[ident]}")
        return False
    seen[ident] = line
    return True


def _stations(path: Path, problems: _Problems) -> list[Station]:
    where = str(path)
    stations: list[Station] = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, STATION_FIELDS, ("id", "name_th", "province_code",
                                                   "district_code", "lat", "lon"), problems):
        sid = row.get("id", "")
        ok = _check_id(sid, seen, where, line, problems)
        if not row.get("name_th"):
            problems.add(where, line, "name_th", "required")
            ok = False
        if not _PROVINCE.match(row.get("province_code", "")):
            problems.add(where, line, "province_code", "two digits, e.g. 65")
            ok = False
        district = row.get("district_code", "")
        if not _DISTRICT.match(district):
            problems.add(where, line, "district_code", "four digits, e.g. 6501")
            ok = False
        elif district[:2] != row.get("province_code"):
            problems.add(where, line, "district_code",
                         f"{district} is not in province {row.get('province_code')}")
            ok = False
        lat = _coordinate(row.get("lat", ""), -90, 90, "lat", where, line, problems)
        lon = _coordinate(row.get("lon", ""), -180, 180, "lon", where, line, problems)
        phone = row.get("phone", "")
        if phone and not _PHONE.match(phone):
            problems.add(where, line, "phone", f"{phone!r} is not a phone number")
            ok = False
        addresses = _addresses(row.get("addresses", ""), where, line, problems)
        if ok and lat is not None and lon is not None:
            stations.append(Station(sid, row["name_th"], row.get("name_en") or row["name_th"],
                                    row["province_code"], district, lat, lon, phone,
                                    addresses))
    return stations


def _groups(path: Path, stations: Sequence[Station], problems: _Problems) -> list[Group]:
    where = str(path)
    station_ids = {s.id for s in stations}
    groups: list[Group] = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, GROUP_FIELDS, ("id", "area", "agency", "name_th",
                                                 "addresses"), problems):
        gid = row.get("id", "")
        ok = _check_id(gid, seen, where, line, problems)
        area = row.get("area", "")
        if not (area == NATIONAL or _PROVINCE.match(area) or _DISTRICT.match(area)
                or area in station_ids):
            problems.add(where, line, "area", f"{area!r} is not {NATIONAL}, a province code "
                         "(2 digits), a district code (4 digits) or a station id")
            ok = False
        if not _ID.match(row.get("agency", "")):
            problems.add(where, line, "agency", "a short name such as police, welfare, 191")
            ok = False
        if not row.get("name_th"):
            problems.add(where, line, "name_th", "required")
            ok = False
        addresses = _addresses(row.get("addresses", ""), where, line, problems)
        if not addresses:
            problems.add(where, line, "addresses", "at least one channel address")
            ok = False
        level_text = row.get("level") or "0"
        if level_text not in {str(n) for n in range(MAX_LEVEL + 1)}:
            problems.add(where, line, "level", f"{level_text!r}: 0, 1 or 2")
            ok = False
        if ok:
            groups.append(Group(gid, area, row["agency"], row["name_th"],
                                row.get("name_en") or row["name_th"], addresses,
                                int(level_text), row.get("lang") or "th"))
    if not any(g.area == NATIONAL for g in groups):
        problems.add(where, None, "area", f"no group for area {NATIONAL}: the national "
                     "fallback (e.g. the 1300 centre) is required")
    return groups


def _rings(coords: Any) -> tuple[Ring, ...]:
    rings: list[Ring] = []
    for ring in coords:
        points = tuple((float(p[0]), float(p[1])) for p in ring)
        if len(points) < 4:
            raise ValueError("a ring needs at least 4 positions")
        if not all(valid_point(lat, lon) for lon, lat in points):
            raise ValueError("a position is outside -180..180, -90..90")
        rings.append(points)
    if not rings:
        raise ValueError("a polygon needs an outer ring")
    return tuple(rings)


def _jurisdictions(path: Path, stations: Sequence[Station],
                   problems: _Problems) -> list[Jurisdiction]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(where, None, "", f"cannot read: {exc}")
        return []
    except json.JSONDecodeError as exc:
        problems.add(where, exc.lineno, "", f"not valid JSON: {exc.msg}")
        return []
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        problems.add(where, None, "type", "a GeoJSON FeatureCollection")
        return []
    station_ids = {s.id for s in stations}
    found: list[Jurisdiction] = []
    # The line each feature starts on, so an error points into the file like the CSV ones.
    starts = [text.count("\n", 0, m.start()) + 1
              for m in re.finditer(r'"type"\s*:\s*"Feature"', text)]
    for n, feature in enumerate(data.get("features") or []):
        at = f"features[{n}]"
        line = starts[n] if n < len(starts) else None
        props = (feature or {}).get("properties") or {}
        sid = str(props.get("station_id", ""))
        if sid not in station_ids:
            problems.add(where, line, f"{at}.properties.station_id",
                         f"{sid!r} is not a station in {STATIONS_FILE}")
            continue
        geometry = feature.get("geometry") or {}
        try:
            polygons: tuple[tuple[Ring, ...], ...]
            if geometry.get("type") == "Polygon":
                polygons = (_rings(geometry["coordinates"]),)
            elif geometry.get("type") == "MultiPolygon":
                polygons = tuple(_rings(p) for p in geometry["coordinates"])
            else:
                raise ValueError("geometry must be a Polygon or MultiPolygon")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            problems.add(where, line, f"{at}.geometry", str(exc))
            continue
        xs = [x for rings in polygons for x, _ in rings[0]]
        ys = [y for rings in polygons for _, y in rings[0]]
        found.append(Jurisdiction(sid, polygons, (min(xs), min(ys), max(xs), max(ys))))
    return found


def load_directory(folder: Path = SHIPPED_DIR) -> Directory:
    """Read and check a directory folder; raise DirectoryError listing every problem."""
    problems = _Problems()
    if not folder.is_dir():
        raise DirectoryError([f"{folder}: not a folder"])
    stations = _stations(folder / STATIONS_FILE, problems)
    groups = _groups(folder / GROUPS_FILE, stations, problems)
    polygons_path = folder / POLYGONS_FILE
    jurisdictions = _jurisdictions(polygons_path, stations, problems) \
        if polygons_path.exists() else []
    if not stations and not problems.items:
        problems.add(str(folder / STATIONS_FILE), None, "", "no stations")
    if problems.items:
        raise DirectoryError(problems.items)
    return Directory(tuple(stations), tuple(groups), tuple(jurisdictions), str(folder))
