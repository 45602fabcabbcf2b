"""Build the sample responder directory under `config/directory/` from `places.csv`.

One sample police station at each district seat that has coordinates; per province the
provincial police, the provincial social-development office (พมจ.), the children and family
shelter and the 191 centre (told at the first escalation); Bangkok's 1300 social help centre
as the national fallback (told at the second escalation, or at once for a point outside the
coverage). Every channel address is `console:<id>`, so `ess serve` works with nothing
configured. SAMPLE DATA: names and places are generated, not the official list; a real
deployment imports the Royal Thai Police and MSDHS lists in the same format.
Run: `python scripts/build_directory.py` (after `scripts/build_places.py` when rebuilding).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "config" / "directory"
sys.path.insert(0, str(HERE.parents[1]))

from routing.directory import GROUP_FIELDS, STATION_FIELDS  # noqa: E402

AGENCIES = (
    # agency, level, Thai name prefix, English name prefix
    ("police", 0, "ตำรวจภูธรจังหวัด", "Provincial Police,"),
    ("welfare", 0, "สำนักงานพัฒนาสังคมและความมั่นคงของมนุษย์จังหวัด",
     "Provincial Social Development and Human Security Office,"),
    # Told of welfare cases only (a child out of school: Zero Dropout), never of incidents.
    ("education", 0, "สำนักงานศึกษาธิการจังหวัด", "Provincial Education Office,"),
    ("shelter", 0, "บ้านพักเด็กและครอบครัวจังหวัด", "Children and Family Shelter,"),
    ("191", 1, "ศูนย์รับแจ้งเหตุ 191 จังหวัด", "191 Emergency Centre,"),
)


def _bare(name: str) -> str:
    return name.removeprefix("อำเภอ").removeprefix("เขต").strip()


def build() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    with (HERE / "places.csv").open(encoding="utf-8", newline="") as fh:
        places = list(csv.DictReader(fh))
    stations: list[dict[str, str]] = []
    groups: list[dict[str, str]] = []
    for place in places:
        if place["kind"] == "district" and place["lat"]:
            code = place["id"][1:]
            bangkok = place["province_code"] == "10"
            stations.append({
                "id": f"st{code}",
                "name_th": f"สถานีตำรวจ{'นครบาล' if bangkok else 'ภูธร'}{_bare(place['name_th'])}"
                           " (ตัวอย่าง)",
                "name_en": f"{place['name_en']} Police Station (sample)",
                "province_code": place["province_code"], "district_code": code,
                "lat": place["lat"], "lon": place["lon"], "phone": "191",
                "addresses": f"console:st{code}",
            })
        elif place["kind"] == "province":
            code = place["province_code"]
            for agency, level, th, en in AGENCIES:
                if code == "10" and agency == "police":
                    th, en = "กองบัญชาการตำรวจนครบาล", "Metropolitan Police Bureau,"
                groups.append({
                    "id": f"p{code}-{agency}", "area": code, "agency": agency,
                    "name_th": f"{th}{place['name_th']} (ตัวอย่าง)".replace(
                        "จังหวัดกรุงเทพมหานคร", "กรุงเทพมหานคร"),
                    "name_en": f"{en} {place['name_en']} (sample)",
                    "addresses": f"console:p{code}-{agency}", "level": str(level),
                    "lang": "th",
                })
    groups.append({
        "id": "national-1300", "area": "TH", "agency": "1300",
        "name_th": "ศูนย์ช่วยเหลือสังคม สายด่วน 1300 (ตัวอย่าง)",
        "name_en": "1300 Social Help Centre, national fallback (sample)",
        "addresses": "console:1300", "level": "2", "lang": "th",
    })
    return stations, groups


def _write(name: str, fields: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with (HERE / name).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> int:
    stations, groups = build()
    _write("stations.csv", STATION_FIELDS, stations)
    _write("groups.csv", GROUP_FIELDS, groups)
    print(f"wrote {len(stations)} stations and {len(groups)} groups to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
