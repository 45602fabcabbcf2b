"""Known place names (provinces, districts) for resolving a typed location to a point.

Text-only channels get an address, a landmark or a district name instead of a pin. We look
for the longest known place name inside what was typed; anything we cannot resolve is kept as
the reporter wrote it, for a person to read.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PLACES = Path(__file__).resolve().parents[1] / "config" / "directory" / "places.csv"

# Prefixes people type before a name ("อำเภอเมืองพิษณุโลก", "จ.ตาก", "Amphoe Mae Sot").
_PREFIXES = re.compile(
    r"^(อำเภอ|อ\.|จังหวัด|จ\.|เขต|ตำบล|ต\.|amphoe|changwat|khet|district|province)\s*", re.I
)


@dataclass(frozen=True, slots=True)
class Place:
    id: str
    kind: str  # province | district
    name_th: str
    name_en: str
    province_code: str
    lat: float | None
    lon: float | None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.casefold()).strip()


class Gazetteer:
    """Place names → places. Immutable after load."""

    def __init__(self, places: list[Place]):
        self.places = places
        self._names: list[tuple[str, Place]] = []
        for place in places:
            for name in {place.name_th, place.name_en}:
                if not name:
                    continue
                self._names.append((_norm(name), place))
                stripped = _norm(_PREFIXES.sub("", name))
                if stripped and stripped != _norm(name):
                    self._names.append((stripped, place))
        # Longest names first: "เมืองพิษณุโลก" must win over "พิษณุโลก".
        self._names.sort(key=lambda item: -len(item[0]))
        # Every report's card names its province and district: look them up by code.
        self._provinces = {p.province_code: p for p in reversed(places)
                           if p.kind == "province"}
        self._districts = {p.id: p for p in places if p.kind == "district"}

    @classmethod
    def load(cls, path: Path = DEFAULT_PLACES) -> Gazetteer:
        places: list[Place] = []
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                places.append(Place(
                    id=row["id"], kind=row["kind"], name_th=row["name_th"],
                    name_en=row["name_en"], province_code=row["province_code"],
                    lat=float(row["lat"]) if row.get("lat") else None,
                    lon=float(row["lon"]) if row.get("lon") else None,
                ))
        return cls(places)

    def provinces(self) -> list[Place]:
        """Every province, each once (the map's place names when it has no tiles)."""
        return list(self._provinces.values())

    def resolve(self, text: str) -> Place | None:
        """The most specific known place named in `text` that has coordinates, if any."""
        needle = _norm(text)
        if len(needle) < 3:
            return None
        for name, place in self._names:
            # Three Thai characters can be part of many words; ask for a real name.
            if len(name) >= 4 and name in needle and place.lat is not None:
                return place
        return None

    def province(self, code: str) -> Place | None:
        return self._provinces.get(code)

    def district(self, code: str) -> Place | None:
        """A district by its four-digit code (6501)."""
        return self._districts.get(f"d{code}")
