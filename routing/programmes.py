"""The five MSDHS welfare programmes as data: `config/programmes/*.yaml`, one per programme.

A rules file names the programme, its amount, the documents to bring, its legal source, and
conditions on facts about the people of a case. Screening is a hint for the officer, never a
decision: a programme *may apply* when no known fact rules it out and at least one condition
is met; the facts nobody has asked yet are listed as what to ask. Every shipped file is
marked `sample: true` — a deployment must check each rule against the current regulation.

Loading checks every file and reports `file:line: why` for each problem (at start-up and by
`ess programmes check`), like flows and the directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from bot.case import Case, Person
from bot.yamlfiles import UniqueKeyLoader, check_unique_keys

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "config" / "programmes"
FILE_KEYS = {"programme", "name_th", "name_en", "sample", "amount", "documents",
             "legal_source", "applies_to", "conditions"}
CONDITION_KEYS = {"fact", "op", "value", "why", "ask"}
OPS = {">=", "<=", ">", "<", "==", "!=", "has", "in"}
# Facts screening can know from a case, and facts it must ask (never in a case yet).
KNOWN_FACTS = {"age", "sex", "hardships", "youngest_child_age", "household_size"}
ASKED_FACTS = {"disability_card", "household_income", "nationality", "government_pension",
               "already_receiving", "registered_welfare_card", "in_crisis"}
FACTS = KNOWN_FACTS | ASKED_FACTS
APPLIES_TO = {"person", "household"}


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ProgrammeError(Exception):
    """Rules files that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Condition:
    fact: str
    op: str
    value: Any
    why: Mapping[str, str]  # lang → text, shown when met ("{value}" is the fact's value)
    ask: Mapping[str, str]  # lang → text, shown when the fact is not known

    def holds(self, fact: Any) -> bool:
        if self.op == "has":
            return bool(self.value in (fact or []))
        if self.op == "in":
            return bool(fact in self.value)
        if self.op in ("==", "!="):
            return bool(fact == self.value) == (self.op == "==")
        if not isinstance(fact, int | float):
            return False
        limit = float(self.value)
        return {">=": fact >= limit, "<=": fact <= limit, ">": fact > limit,
                "<": fact < limit}[self.op]


@dataclass(frozen=True)
class Programme:
    id: str
    path: str
    name_th: str
    name_en: str
    sample: bool
    amount: str
    documents: tuple[str, ...]
    legal_source: str
    applies_to: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Finding:
    """One programme that may apply to a case: why, and what is still to ask."""

    programme: str
    why: str
    missing: str
    missing_facts: tuple[str, ...]
    amount: str
    documents: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"programme": self.programme, "why": self.why, "missing": self.missing,
                "missing_facts": list(self.missing_facts), "amount": self.amount,
                "documents": list(self.documents)}


class _Loader(UniqueKeyLoader):
    """Remembers the line of every mapping."""


class _Map(dict[str, Any]):
    line = 0
    key_lines: dict[str, int]

    def at(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


def _construct(loader: _Loader, node: yaml.MappingNode) -> _Map:
    check_unique_keys(loader, node)
    out = _Map(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    out.key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct)


def programme_files(folder: Path = SHIPPED_DIR) -> list[Path]:
    return sorted(folder.glob("*.yaml"))


def _texts(value: Any) -> dict[str, str] | None:
    if isinstance(value, str):
        return {"en": value}
    if isinstance(value, dict) and value and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return dict(value)
    return None


def _condition(raw: Any, path: str, line: int, problems: list[Problem]) -> Condition | None:
    if not isinstance(raw, _Map):
        problems.append(Problem(path, line, "a condition is a mapping: {fact, op, value, "
                                            "why, ask}"))
        return None
    at = raw.line
    start = len(problems)
    for key in raw:
        if key not in CONDITION_KEYS:
            problems.append(Problem(path, raw.at(key), f"unknown condition setting {key!r} "
                                    f"(one of: {', '.join(sorted(CONDITION_KEYS))})"))
    fact, op = raw.get("fact"), raw.get("op")
    if fact not in FACTS:
        problems.append(Problem(path, raw.at("fact"), f"unknown fact {fact!r} (one of: "
                                          f"{', '.join(sorted(FACTS))})"))
    if op not in OPS:
        problems.append(Problem(path, raw.at("op"), f"unknown op {op!r} (one of: "
                                          f"{', '.join(sorted(OPS))})"))
    if "value" not in raw:
        problems.append(Problem(path, at, "a condition needs a value"))
    elif op in (">=", "<=", ">", "<") and (isinstance(raw["value"], bool)
                                           or not isinstance(raw["value"], int | float)):
        problems.append(Problem(path, raw.at("value"),
                                f"op {op} needs a number, not {raw['value']!r}"))
    elif op == "in" and not isinstance(raw["value"], list):
        problems.append(Problem(path, at, "op in needs a list of values"))
    why, ask = _texts(raw.get("why")), _texts(raw.get("ask"))
    if why is None or ask is None:
        problems.append(Problem(path, at, "a condition needs why and ask, text or "
                                          "{th: …, en: …}"))
    if len(problems) > start or why is None or ask is None:
        return None
    return Condition(str(fact), str(op), raw["value"], why, ask)


def load_programme(path: Path) -> Programme:
    problems: list[Problem] = []
    where = str(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except OSError as exc:
        raise ProgrammeError([Problem(where, 0, f"cannot read the file: {exc.strerror}")]
                             ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ProgrammeError([Problem(where, mark.line + 1 if mark else 0,
                                      f"not valid YAML: {getattr(exc, 'problem', exc)}")]
                             ) from None
    if not isinstance(doc, _Map):
        raise ProgrammeError([Problem(where, 1, "a rules file is a mapping (see "
                                                "config/programmes/README.md)")])
    for key in doc:
        if key not in FILE_KEYS:
            problems.append(Problem(where, doc.at(key), f"unknown setting {key!r} (one of: "
                                                     f"{', '.join(sorted(FILE_KEYS))})"))
    for key in ("programme", "name_th", "name_en", "amount", "legal_source"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            problems.append(Problem(where, doc.at(key), f"{key} is required (text)"))
    if not isinstance(doc.get("sample"), bool):
        problems.append(Problem(where, doc.at("sample"), "sample: true or false is required (true "
                                                 "until checked against the regulation)"))
    documents = doc.get("documents")
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        problems.append(Problem(where, doc.at("documents"), "documents is a list of text"))
        documents = []
    applies = doc.get("applies_to", "person")
    if applies not in APPLIES_TO:
        problems.append(Problem(where, doc.at("applies_to"), f"applies_to {applies!r} is not "
                                f"one of: {', '.join(sorted(APPLIES_TO))}"))
    raw_conditions = doc.get("conditions")
    conditions: list[Condition] = []
    if not isinstance(raw_conditions, list) or not raw_conditions:
        problems.append(Problem(where, doc.at("conditions"), "conditions is a non-empty list"))
        raw_conditions = []
    for raw in raw_conditions:
        found = _condition(raw, where, doc.line, problems)
        if found is not None:
            conditions.append(found)
    if problems:
        raise ProgrammeError(problems)
    return Programme(id=str(doc["programme"]), path=where, name_th=doc["name_th"],
                     name_en=doc["name_en"], sample=bool(doc["sample"]),
                     amount=str(doc["amount"]), documents=tuple(documents),
                     legal_source=str(doc["legal_source"]), applies_to=str(applies),
                     conditions=tuple(conditions))


def load_programmes(paths: Iterable[Path]) -> list[Programme]:
    """Every file, or one ProgrammeError with the problems of all of them."""
    found: list[Programme] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            programme = load_programme(Path(path))
        except ProgrammeError as exc:
            problems.extend(exc.problems)
            continue
        if any(p.id == programme.id for p in found):
            problems.append(Problem(str(path), 1, f"programme {programme.id!r} is defined "
                                                  "twice"))
            continue
        found.append(programme)
    if problems:
        raise ProgrammeError(problems)
    return found


def _age(person: Person, today: date) -> int | None:
    return None if person.birth_year is None else today.year - person.birth_year


def facts(case: Case, person: Person, today: date) -> dict[str, Any]:
    """What the case tells about `person` (and their household); unknown facts absent."""
    ages = [a for a in (_age(p, today) for p in case.everyone) if a is not None and a < 18]
    known: dict[str, Any] = {"hardships": list(case.hardships),
                             "household_size": len(case.everyone)}
    age = _age(person, today)
    if age is not None:
        known["age"] = age
    if person.sex:
        known["sex"] = person.sex
    if ages:
        known["youngest_child_age"] = min(ages)
    return known


def _text(texts: Mapping[str, str], lang: str, value: Any) -> str:
    template = texts.get(lang) or texts.get("en") or next(iter(texts.values()))
    return template.replace("{value}", str(value))


def screen(case: Case, programmes: Sequence[Programme], today: date,
           lang: str | None = None) -> list[Finding]:
    """The programmes that may apply to the case, in file order, each once."""
    lang = lang or case.lang
    out: list[Finding] = []
    for programme in programmes:
        people = [case.person] if programme.applies_to == "household" else case.everyone
        for person in people:
            known = facts(case, person, today)
            met: list[str] = []
            missing: list[Condition] = []
            ruled_out = False
            for cond in programme.conditions:
                if cond.fact not in known:
                    missing.append(cond)
                elif cond.holds(known[cond.fact]):
                    met.append(_text(cond.why, lang, known[cond.fact]))
                else:
                    ruled_out = True
                    break
            if ruled_out or not met:
                continue
            who = "" if person is case.person else f" ({person.relation or 'member'})"
            out.append(Finding(programme.id, "; ".join(met) + who,
                               "; ".join(_text(c.ask, lang, "") for c in missing),
                               tuple(c.fact for c in missing), programme.amount,
                               programme.documents))
            break
    return out
