"""The record of processing: `config/pdpa/processing.yaml`, validated, and as Markdown.

Each kind of record declares its purposes, lawful basis (PDPA s.24/s.26), data, recipients
and retention; `retention` periods are what bot/privacy/retention.py enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.yamlfiles import load_yaml

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "config" / "pdpa" / "processing.yaml"
BASES = {
    "consent": "consent",
    "vital_interest": "vital interest (danger to life, body or health)",
    "legal_duty": "legal duty / public task of the agencies",
    "contract": "contract",
    "legitimate_interest": "legitimate interest",
}
REQUIRED = ("title", "purposes", "lawful_basis", "subjects", "data", "sensitive",
            "recipients", "transfers_abroad", "retention")


class ProcessingError(ValueError):
    """The record of processing is not valid; every problem is listed."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    title: str
    purposes: tuple[str, ...]
    bases: tuple[tuple[str, str], ...]  # (basis, section)
    subjects: tuple[str, ...]
    data: tuple[str, ...]
    sensitive: bool
    recipients: tuple[str, ...]
    transfers_abroad: str
    retention: dict[str, Any]

    def days(self, name: str) -> int | None:
        value = self.retention.get(name)
        return value if isinstance(value, int) else None


@dataclass(frozen=True, slots=True)
class Processing:
    controller: dict[str, str]
    kinds: dict[str, Kind]


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, str) and v.strip() for v in value)


def load_processing(path: Path = DEFAULT_PATH) -> Processing:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProcessingError([f"{path}: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ProcessingError([f"{path}: {str(exc).splitlines()[0]}"]) from None
    problems: list[str] = []
    if not isinstance(raw, dict) or not isinstance(raw.get("kinds"), dict) or \
            not raw["kinds"]:
        raise ProcessingError([f"{path}: expected `controller:` and `kinds:` mappings"])
    controller = raw.get("controller")
    if not isinstance(controller, dict) or not all(
            isinstance(controller.get(k), str) for k in ("name", "contact")):
        problems.append(f"{path}: controller: needs name and contact")
        controller = {}
    kinds = {}
    for name, body in raw["kinds"].items():
        where = f"{path}: kinds.{name}"
        if not isinstance(body, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        missing = [k for k in REQUIRED if k not in body]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        for key in ("purposes", "subjects", "data", "recipients"):
            if not _strings(body[key]):
                problems.append(f"{where}.{key}: a list of texts")
        bases = []
        for item in body["lawful_basis"] if isinstance(body["lawful_basis"], list) else [None]:
            if not isinstance(item, dict) or item.get("basis") not in BASES or \
                    not isinstance(item.get("section"), str):
                problems.append(f"{where}.lawful_basis: each item is {{basis, section}} with "
                                f"basis one of {', '.join(BASES)}")
                break
            bases.append((item["basis"], item["section"]))
        if not bases and not any("lawful_basis" in p for p in problems[-1:]):
            problems.append(f"{where}.lawful_basis: at least one")
        retention = body["retention"]
        if not isinstance(retention, dict) or not retention:
            problems.append(f"{where}.retention: a mapping")
            retention = {}
        for key, value in retention.items():
            if key.endswith("_days") and (not isinstance(value, int) or isinstance(value, bool)
                                          or value < 1):
                problems.append(f"{where}.retention.{key}: a whole number of days (>= 1)")
        if not isinstance(body["sensitive"], bool):
            problems.append(f"{where}.sensitive: true or false")
        if body.get("sensitive") is True and not any(b[0] in ("consent", "vital_interest",
                                                              "legal_duty") for b in bases):
            problems.append(f"{where}: sensitive data (s.26) needs consent, vital interest "
                            "or a legal duty")
        kinds[name] = Kind(str(name), str(body["title"]), tuple(body["purposes"]),
                           tuple(bases), tuple(body["subjects"]), tuple(body["data"]),
                           bool(body["sensitive"]), tuple(body["recipients"]),
                           str(body["transfers_abroad"]), dict(retention))
    if problems:
        raise ProcessingError(problems)
    return Processing(dict(controller), kinds)


def record_markdown(processing: Processing, generated: str) -> str:
    """The record of processing (PDPA s.39) as a document an officer can hand in."""
    c = processing.controller
    lines = ["# Record of processing activities (PDPA s.39)", "",
             f"- Controller: {c.get('name', '')}", f"- Contact: {c.get('contact', '')}",
             f"- Generated: {generated}", ""]
    for kind in processing.kinds.values():
        lines += [f"## {kind.title} (`{kind.name}`)", "",
                  "| | |", "|---|---|",
                  f"| Purposes | {'; '.join(kind.purposes)} |",
                  "| Lawful basis | " + "; ".join(f"{BASES[b]} ({s})" for b, s in kind.bases)
                  + " |",
                  f"| Data subjects | {', '.join(kind.subjects)} |",
                  f"| Personal data | {'; '.join(kind.data)} |",
                  f"| Sensitive data (s.26) | {'yes' if kind.sensitive else 'no'} |",
                  f"| Recipients | {'; '.join(kind.recipients)} |",
                  f"| Transfers abroad | {kind.transfers_abroad} |",
                  "| Retention | " + "; ".join(
                      f"{k.replace('_', ' ')}: {v}" for k, v in kind.retention.items()) + " |",
                  ""]
    lines += ["Security: personal fields sealed per record (AES-GCM, per-record keys wrapped "
              "by service keys; erasure destroys the key, backups included); keyed hashes in "
              "logs; an append-only, hash-chained audit trail of every read.", ""]
    return "\n".join(lines)
