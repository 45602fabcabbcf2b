"""Read a flow file, check it, and report every problem with file, line and a fix hint.

`load_flow` collects all problems before failing, so an author fixes a file in one pass.
The same check runs for `ess flows check FILE` and when the service starts.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.durations import parse_duration
from bot.yamlfiles import UniqueKeyLoader, check_unique_keys
from flows.model import (
    CHOICES_DONE,
    COMMANDS,
    SET,
    UNSET,
    Branch,
    ChoiceSpec,
    Flow,
    Group,
    Section,
    Step,
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

STEP_KEYS = {
    "say", "expect", "choices", "save", "validate", "invalid", "run", "next", "end", "commands",
    "summary", "collect", "photos",
}
FLOW_KEYS = {"flow", "description", "start", "steps", "commands", "idle_timeout", "silent",
             "groups", "sections", "media"}
GROUP_KEYS = {"first", "steps", "max", "after", "full"}
SECTION_KEYS = {"first", "steps", "after", "skip"}
# However a flow is written, no group grows past this (a household of 200 is a typo).
MAX_GROUP_ITEMS = 50


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow file."""

    path: str
    line: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class FlowError(Exception):
    """A flow file that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _LineLoader(UniqueKeyLoader):
    """A YAML loader that remembers the line of every mapping and of every key in it."""


class _Map(dict[str, Any]):
    line = 0
    key_lines: dict[str, int]


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    check_unique_keys(loader, node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[str(key)] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


class _Checker:
    def __init__(self, path: str, inputs: Collection[str], actions: Collection[str],
                 catalog_keys: Collection[str] | None, validators: Collection[str]):
        self.path = path
        self.inputs = inputs
        self.actions = actions
        self.catalog_keys = catalog_keys
        self.validators = validators
        self.problems: list[Problem] = []

    def problem(self, line: int, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.path, line, message, hint))

    def key(self, line: int, key: Any, what: str) -> str | None:
        if not isinstance(key, str) or not key:
            self.problem(line, f"{what} must be a catalog key", "for example report.type.prompt")
            return None
        if self.catalog_keys is not None and key not in self.catalog_keys:
            self.problem(line, f"{what} {key!r} is not in the catalogs",
                         "add it to every file in bot/catalogs/ or fix the spelling")
        return key

    def line_of(self, node: Any, key: str, default: int) -> int:
        if isinstance(node, _Map):
            return node.key_lines.get(key, node.line)
        return default


def load_flow(path: str | Path, *, inputs: Collection[str], actions: Collection[str],
              validators: Collection[str], catalog_keys: Collection[str] | None = None) -> Flow:
    """Parse and check one flow file; raise FlowError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError([Problem(str(path), 0, f"cannot read the file: {exc.strerror}")]) from None
    return parse_flow(text, str(path), inputs=inputs, actions=actions, validators=validators,
                      catalog_keys=catalog_keys)


def parse_flow(text: str, path: str, *, inputs: Collection[str], actions: Collection[str],
               validators: Collection[str], catalog_keys: Collection[str] | None = None) -> Flow:
    """Parse and check flow text; `path` is only used in messages."""
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise FlowError([Problem(path, line, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                 "check indentation and quoting around this line")]) from None
    c = _Checker(path, inputs, actions, catalog_keys, validators)
    if not isinstance(doc, _Map):
        raise FlowError([Problem(path, 1, "a flow file is a mapping with flow, start and steps",
                                 "see flows/shipped/report.yaml for the shape")])
    for key in doc:
        if key not in FLOW_KEYS:
            c.problem(c.line_of(doc, key, 1), f"unknown flow setting {key!r}",
                      f"one of: {', '.join(sorted(FLOW_KEYS))}")
    name = doc.get("flow")
    if not isinstance(name, str) or not _NAME.match(name):
        c.problem(c.line_of(doc, "flow", doc.line), "flow needs a name of lowercase letters, "
                  "digits and _", "flow: report")
        name = "invalid"
    commands = _commands(c, doc, doc.get("commands", list(COMMANDS)), doc.line)
    idle: float | None = None
    if "idle_timeout" in doc:
        idle = parse_duration(doc["idle_timeout"])
        if idle is None:
            c.problem(c.line_of(doc, "idle_timeout", doc.line),
                      f"idle_timeout {doc['idle_timeout']!r} is not a duration", "30m, 900s or 2h")
    raw_steps = doc.get("steps")
    steps: dict[str, Step] = {}
    if not isinstance(raw_steps, _Map) or not raw_steps:
        c.problem(c.line_of(doc, "steps", doc.line), "steps must be a mapping of step names",
                  "steps:\n  first_step:\n    say: ...")
        raw_steps = _Map()
    for step_name, raw in raw_steps.items():
        line = raw_steps.key_lines.get(step_name, raw_steps.line)
        step = _step(c, step_name, raw, line, commands)
        if step is not None:
            steps[step_name] = step
    start = doc.get("start")
    if start not in raw_steps:
        c.problem(c.line_of(doc, "start", doc.line), f"start step {start!r} is not defined",
                  f"one of: {', '.join(raw_steps) or '(no steps)'}")
    media = ""
    if "media" in doc:  # what a photo, sticker or file gets in this flow, before the prompt
        media = c.key(c.line_of(doc, "media", doc.line), doc["media"], "media") or ""
    groups = _groups(c, doc, steps)
    sections = _sections(c, doc, steps)
    _check_graph(c, steps, str(start), groups, sections)
    if c.problems:
        raise FlowError(c.problems)
    return Flow(name=name, path=path, start=str(start), steps=steps, commands=commands,
                idle_timeout=idle, silent=bool(doc.get("silent", False)),
                description=str(doc.get("description", "")), groups=groups,
                sections=sections, media=media)


def _part(c: _Checker, kind: str, name: str, raw: Any, line: int, keys: set[str],
          steps: Mapping[str, Step]) -> tuple[str, tuple[str, ...], str] | None:
    """The shape groups and sections share: first, steps, after; None when unusable."""
    if not _NAME.match(name):
        c.problem(line, f"{kind} name {name!r} must be lowercase letters, digits and _",
                  "members")
    if not isinstance(raw, _Map):
        c.problem(line, f"{kind} {name!r} must be a mapping", ", ".join(sorted(keys)))
        return None
    for key in raw:
        if key not in keys:
            c.problem(c.line_of(raw, key, raw.line), f"unknown {kind} setting {key!r} in "
                      f"{name!r}", f"one of: {', '.join(sorted(keys))}")
    members = raw.get("steps")
    if not isinstance(members, list) or not members or \
            not all(isinstance(m, str) for m in members):
        c.problem(c.line_of(raw, "steps", raw.line), f"{kind} {name!r} needs a list of steps",
                  "steps: [member_age, member_sex]")
        return None
    for member in members:
        if member not in steps:
            c.problem(c.line_of(raw, "steps", raw.line), f"{kind} {name!r} names step "
                      f"{member!r}, which is not defined", f"one of: {', '.join(steps)}")
    first, after = raw.get("first"), raw.get("after")
    if first not in members:
        c.problem(c.line_of(raw, "first", raw.line), f"{kind} {name!r} starts at {first!r}, "
                  "which is not one of its steps", f"one of: {', '.join(members)}")
    if after not in steps:
        c.problem(c.line_of(raw, "after", raw.line), f"{kind} {name!r} goes on to "
                  f"{after!r}, which is not defined", f"one of: {', '.join(steps)}")
    return str(first), tuple(members), str(after)


def _groups(c: _Checker, doc: _Map, steps: Mapping[str, Step]) -> dict[str, Group]:
    raw_groups = doc.get("groups", _Map())
    if not isinstance(raw_groups, _Map):
        c.problem(c.line_of(doc, "groups", doc.line), "groups must be a mapping of names",
                  "groups:\n  members:\n    first: member_age")
        return {}
    out: dict[str, Group] = {}
    owner: dict[str, str] = {}
    for name, raw in raw_groups.items():
        line = raw_groups.key_lines.get(name, raw_groups.line)
        shape = _part(c, "group", name, raw, line, GROUP_KEYS, steps)
        if shape is None:
            continue
        first, members, after = shape
        limit = raw.get("max")
        if isinstance(limit, bool) or not isinstance(limit, int) or \
                not 1 <= limit <= MAX_GROUP_ITEMS:
            c.problem(c.line_of(raw, "max", raw.line), f"group {name!r} needs max, a whole "
                      f"number from 1 to {MAX_GROUP_ITEMS}", "max: 20")
            limit = 1
        full = c.key(c.line_of(raw, "full", raw.line), raw.get("full"), "full")
        for member in members:
            step = steps.get(member)
            if step is not None and not step.asks:
                c.problem(step.line, f"step {member!r} of group {name!r} asks nothing",
                          "a group's steps are questions; say and run steps go outside")
            if member in owner:
                c.problem(line, f"step {member!r} is in groups {owner[member]!r} and "
                          f"{name!r}", "a step belongs to one group")
            owner[member] = name
        if any(s.save == name for s in steps.values()):
            c.problem(line, f"group {name!r} has the name of a slot a step saves",
                      "rename the group or the slot")
        collectors = [s for s in steps.values() if s.collect == name]
        if len(collectors) != 1:
            c.problem(line, f"group {name!r} needs exactly one step with collect: {name}, "
                      f"found {len(collectors)}", "the 'add another?' step collects")
        out[name] = Group(name=name, line=line, first=first, steps=members, max=limit,
                          after=after, full=full or "")
    for step in steps.values():
        if step.collect is not None and step.collect not in out and \
                step.collect not in raw_groups:
            c.problem(step.line, f"step {step.name!r} collects unknown group "
                      f"{step.collect!r}", f"one of: {', '.join(out) or '(no groups)'}")
    return out


def _sections(c: _Checker, doc: _Map, steps: Mapping[str, Step]) -> dict[str, Section]:
    raw_sections = doc.get("sections", _Map())
    if not isinstance(raw_sections, _Map):
        c.problem(c.line_of(doc, "sections", doc.line), "sections must be a mapping of names",
                  "sections:\n  documents:\n    first: ask_photo")
        return {}
    out: dict[str, Section] = {}
    for name, raw in raw_sections.items():
        line = raw_sections.key_lines.get(name, raw_sections.line)
        shape = _part(c, "section", name, raw, line, SECTION_KEYS, steps)
        if shape is None:
            continue
        first, members, after = shape
        skip = c.key(c.line_of(raw, "skip", raw.line), raw.get("skip"), "skip")
        step = steps.get(first)
        if step is not None and not step.asks:
            c.problem(step.line, f"section {name!r} starts at {first!r}, which asks nothing",
                      "the skip button is offered with the first question")
        if after in members:
            c.problem(c.line_of(raw, "after", raw.line), f"section {name!r} goes on to "
                      f"{after!r}, which is inside it", "after is the step past the section")
        out[name] = Section(name=name, line=line, first=first, steps=members, after=after,
                            skip=skip or "")
    return out


def _commands(c: _Checker, node: Any, value: Any, line: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        c.problem(c.line_of(node, "commands", line), "commands must be a list",
                  f"any of: {', '.join(COMMANDS)}")
        return ()
    for cmd in value:
        if cmd not in COMMANDS:
            c.problem(c.line_of(node, "commands", line), f"unknown command {cmd!r}",
                      f"any of: {', '.join(COMMANDS)}")
    return tuple(cmd for cmd in value if cmd in COMMANDS)


def _step(c: _Checker, name: str, raw: Any, line: int,
          flow_commands: tuple[str, ...]) -> Step | None:
    if not _NAME.match(name):
        c.problem(line, f"step name {name!r} must be lowercase letters, digits and _", "ask_phone")
    if not isinstance(raw, _Map):
        c.problem(line, f"step {name!r} must be a mapping", "say: some.key")
        return None
    at = raw.line
    for key in raw:
        if key not in STEP_KEYS:
            c.problem(c.line_of(raw, key, at), f"unknown step setting {key!r} in {name!r}",
                      f"one of: {', '.join(sorted(STEP_KEYS))}")
    say = c.key(c.line_of(raw, "say", at), raw["say"], "say") if "say" in raw else None
    expect = raw.get("expect")
    if expect is not None and expect not in c.inputs:
        c.problem(c.line_of(raw, "expect", at), f"unknown input kind {expect!r}",
                  f"one of: {', '.join(sorted(c.inputs))}")
    if expect is not None and say is None:
        c.problem(at, f"step {name!r} asks for input but says nothing", "add say: <catalog key>")
    run = raw.get("run")
    if run is not None and run not in c.actions:
        c.problem(c.line_of(raw, "run", at), f"unknown action {run!r}",
                  f"registered actions: {', '.join(sorted(c.actions)) or '(none)'}")
    photos = raw.get("photos")
    if photos is not None and photos not in c.actions:
        c.problem(c.line_of(raw, "photos", at), f"unknown action {photos!r}",
                  f"registered actions: {', '.join(sorted(c.actions)) or '(none)'}")
    if photos is not None and expect is None:
        c.problem(c.line_of(raw, "photos", at), f"step {name!r} keeps photos but asks "
                  "nothing", "photos go on a step with expect: (a 'done' button)")
    save = raw.get("save")
    if save is not None and (not isinstance(save, str) or not _NAME.match(save)):
        c.problem(c.line_of(raw, "save", at), "save must be a slot name", "save: incident_type")
    if expect is not None and save is None:
        c.problem(at, f"step {name!r} asks for input but does not save it", "save: slot_name")
    choices = _choices(c, raw, at, flow_commands)
    if expect in ("choice", "choices") and not choices:
        c.problem(at, f"step {name!r} expects a choice but lists no choices",
                  "choices:\n  - {value: yes, label: common.yes}")
    if expect == "choices" and not any(ch.value == CHOICES_DONE for ch in choices):
        c.problem(at, f"step {name!r} takes several choices but offers no {CHOICES_DONE!r}",
                  f"- {{value: {CHOICES_DONE}, label: case.done}}")
    if choices and expect not in ("choice", "choice_or_text", "choices"):
        c.problem(c.line_of(raw, "choices", at), f"step {name!r} has choices but expects "
                  f"{expect!r}", "set expect: choice")
    validate = _validators(c, raw, at)
    invalid = c.key(c.line_of(raw, "invalid", at), raw["invalid"], "invalid") \
        if "invalid" in raw else None
    commands = _commands(c, raw, raw["commands"], at) if "commands" in raw else None
    branches = _branches(c, raw, at)
    end = raw.get("end", False)
    if not isinstance(end, bool):
        c.problem(c.line_of(raw, "end", at), "end is true or false", "end: true")
        end = False
    if end and branches:
        c.problem(c.line_of(raw, "end", at), f"step {name!r} ends the flow but has next",
                  "remove next or end")
    if not end and not branches:
        c.problem(at, f"step {name!r} has no next and does not end the flow",
                  "add next: <step> or end: true")
    collect = raw.get("collect")
    if collect is not None and (not isinstance(collect, str) or not _NAME.match(collect)):
        c.problem(c.line_of(raw, "collect", at), "collect names a group", "collect: members")
        collect = None
    return Step(name=name, line=at, say=say, expect=expect, choices=choices, save=save,
                validate=validate, invalid=invalid, run=run, next=branches, end=end,
                commands=commands, summary=bool(raw.get("summary", False)), collect=collect,
                photos=str(photos) if photos is not None else None)


def _choices(c: _Checker, raw: _Map, at: int, commands: tuple[str, ...]) -> tuple[ChoiceSpec, ...]:
    items = raw.get("choices", [])
    line = c.line_of(raw, "choices", at)
    if not isinstance(items, list):
        c.problem(line, "choices must be a list", "- {value: yes, label: common.yes}")
        return ()
    out: list[ChoiceSpec] = []
    seen: set[str] = set()
    for item in items:
        item_line = item.line if isinstance(item, _Map) else line
        if not isinstance(item, _Map) or "label" not in item or \
                ("value" in item) == ("command" in item):
            c.problem(item_line, "a choice needs a label and either a value or a command",
                      "- {value: threat, label: incident.threat}")
            continue
        label = c.key(item_line, item["label"], "label")
        if "command" in item and item["command"] not in COMMANDS:
            c.problem(item_line, f"unknown command {item['command']!r}",
                      f"one of: {', '.join(COMMANDS)}")
            continue
        spec = ChoiceSpec(label=label or "", value=None if "value" not in item
                          else str(item["value"]), command=item.get("command"))
        if spec.payload in seen:
            c.problem(item_line, f"choice {spec.payload!r} appears twice", "make values unique")
        seen.add(spec.payload)
        out.append(spec)
    if len(out) > 12:
        c.problem(line, f"{len(out)} choices are too many to tap", "at most 12 (LINE shows 13)")
    return tuple(out)


def _validators(c: _Checker, raw: _Map, at: int) -> tuple[tuple[str, Any], ...]:
    items = raw.get("validate", [])
    line = c.line_of(raw, "validate", at)
    if not isinstance(items, list):
        c.problem(line, "validate must be a list", "- {max_length: 500}")
        return ()
    out: list[tuple[str, Any]] = []
    for item in items:
        name, arg = (item, None) if isinstance(item, str) else \
            next(iter(item.items())) if isinstance(item, dict) and len(item) == 1 else (None, None)
        if name not in c.validators:
            c.problem(line, f"unknown validator {item!r}",
                      f"one of: {', '.join(sorted(c.validators))}")
            continue
        out.append((str(name), arg))
    return tuple(out)


def _branches(c: _Checker, raw: _Map, at: int) -> tuple[Branch, ...]:
    value = raw.get("next")
    line = c.line_of(raw, "next", at)
    if value is None:
        return ()
    if isinstance(value, str):
        return (Branch(goto=value),)
    if not isinstance(value, list):
        c.problem(line, "next is a step name or a list of branches",
                  "next:\n  - {when: {confirm: fix}, goto: type}\n  - {goto: submit}")
        return ()
    out: list[Branch] = []
    for item in value:
        item_line = item.line if isinstance(item, _Map) else line
        if not isinstance(item, _Map) or not isinstance(item.get("goto"), str):
            c.problem(item_line, "a branch needs goto", "- {when: {slot: value}, goto: step}")
            continue
        when = item.get("when", {})
        if not isinstance(when, dict):
            c.problem(item_line, "when must map slot names to values", "when: {confirm: submit}")
            continue
        conds = {str(k): tuple(str(x) for x in (v if isinstance(v, list) else [v]))
                 for k, v in when.items()}
        out.append(Branch(goto=item["goto"], when=conds))
    if out and out[-1].when:
        c.problem(line, "the last branch must have no when, so that every answer goes somewhere",
                  "end with - {goto: some_step}")
    return tuple(out)


def _check_graph(c: _Checker, steps: Mapping[str, Step], start: str,
                 groups: Mapping[str, Group], sections: Mapping[str, Section]) -> None:
    derived = {slot for g in groups.values() for slot in (g.name, g.count_slot, g.full_slot)}
    for step in steps.values():
        for branch in step.next:
            if branch.goto not in steps:
                c.problem(step.line, f"step {step.name!r} goes to {branch.goto!r}, "
                          "which is not defined", f"one of: {', '.join(steps)}")
            for slot, values in branch.when.items():
                if not any(s.save == slot for s in steps.values()) and slot not in derived \
                        and not \
                        set(values) <= {SET, UNSET}:
                    c.problem(step.line, f"step {step.name!r} branches on slot {slot!r}, "
                              "which no step saves", "check the slot name")
    # Every step must be reachable; an unreachable one is almost always a typo in a goto.
    if start in steps:
        seen, todo = {start}, [start]
        while todo:
            here = todo.pop()
            targets = [b.goto for b in steps[here].next]
            # A full group jumps from its first step to `after`, a skipped section likewise.
            targets += [g.after for g in groups.values() if g.first == here]
            targets += [s.after for s in sections.values() if s.first == here]
            for target in targets:
                if target in steps and target not in seen:
                    seen.add(target)
                    todo.append(target)
        for name in steps:
            if name not in seen:
                c.problem(steps[name].line, f"step {name!r} cannot be reached from {start!r}",
                          "point a next at it or remove it")
