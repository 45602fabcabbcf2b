"""The parsed form of a flow file: plain frozen data, no behaviour.

A flow is a set of named steps. A step does one of three things:
- asks (`expect` is set): says its prompt, waits for an answer, validates it, saves it in a slot;
- runs an action (`run` without `expect`): resolved by name in the action registry;
- says something (neither): a message, then moves on at once.
An ask step may also `run` an action after its answer is saved (enrichment after submit).
`next` is a list of branches tried in order; the first whose `when` matches wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Commands a flow may allow; each has its words in every catalog under `commands.<name>`.
COMMANDS = ("cancel", "restart", "back", "help", "language", "silent", "mine", "report")

# The value that ends a step expecting several choices (`expect: choices`).
CHOICES_DONE = "done"

# A `when` value that tests presence rather than equality.
SET, UNSET = "$set", "$unset"


@dataclass(frozen=True)
class ChoiceSpec:
    """A button: an answer `value`, or a flow-wide `command` offered as a button."""

    label: str  # catalog key
    value: str | None = None
    command: str | None = None

    @property
    def payload(self) -> str:
        return f"cmd:{self.command}" if self.command else str(self.value)


@dataclass(frozen=True)
class Branch:
    goto: str
    when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def matches(self, slots: Mapping[str, Any]) -> bool:
        for slot, wanted in self.when.items():
            value = slots.get(slot)
            if SET in wanted and value is not None:
                continue
            if UNSET in wanted and value is None:
                continue
            if value is None or str(value) not in wanted:
                return False
        return True


@dataclass(frozen=True)
class Step:
    name: str
    line: int
    say: str | None = None  # catalog key of the prompt or message
    expect: str | None = None  # input kind: choice, location, phone, text, or a plugin's
    choices: tuple[ChoiceSpec, ...] = ()
    save: str | None = None  # slot name
    validate: tuple[tuple[str, Any], ...] = ()  # (validator name, argument)
    invalid: str | None = None  # catalog key of the re-prompt; default per input kind
    run: str | None = None  # action name
    next: tuple[Branch, ...] = ()
    end: bool = False
    commands: tuple[str, ...] | None = None  # None: the flow's commands
    summary: bool = False  # pass every saved slot to the prompt as a parameter
    collect: str | None = None  # a group name: close the group's current item here
    photos: str | None = None  # an action run for each photo sent at this ask step

    @property
    def asks(self) -> bool:
        return self.expect is not None


@dataclass(frozen=True)
class Group:
    """Steps asked once per item (household members), at most `max` times.

    The answers of `steps` form one item; the step that `collect`s the group appends it to
    the list slot named like the group and clears them. Entering `first` with `max` items
    already collected says `full` and goes to `after` instead: the bound holds whatever the
    flow's branches say.
    """

    name: str
    line: int
    first: str
    steps: tuple[str, ...]
    max: int
    after: str
    full: str  # catalog key

    @property
    def count_slot(self) -> str:
        return f"{self.name}_count"

    @property
    def full_slot(self) -> str:
        return f"{self.name}_full"


@dataclass(frozen=True)
class Section:
    """Steps a person may skip as a whole: `first` offers a skip button that goes to
    `after` and forgets whatever the section's steps had saved."""

    name: str
    line: int
    first: str
    steps: tuple[str, ...]
    after: str
    skip: str  # catalog key of the button

    @property
    def payload(self) -> str:
        return f"skip:{self.name}"


@dataclass(frozen=True)
class Flow:
    name: str
    path: str
    start: str
    steps: Mapping[str, Step]
    commands: tuple[str, ...] = COMMANDS
    idle_timeout: float | None = None  # seconds; None means the service setting
    silent: bool = False  # every reply of this flow carries the silent flag
    description: str = ""
    groups: Mapping[str, Group] = field(default_factory=dict)
    sections: Mapping[str, Section] = field(default_factory=dict)
    # A catalog key said when a photo, sticker or file arrives (a channel's media message),
    # before the step's prompt again; empty: the step's usual re-prompt.
    media: str = ""

    def group_starting(self, step: str) -> Group | None:
        return next((g for g in self.groups.values() if g.first == step), None)

    def section_starting(self, step: str) -> Section | None:
        return next((s for s in self.sections.values() if s.first == step), None)

    def step(self, name: str) -> Step:
        return self.steps[name]
