"""Input kinds of the volunteer case flow: a birth year or age, a Thai ID, several choices.

Like flows/inputs.py, every parser accepts anything and answers Accepted or Rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.phone import to_ascii_digits
from bot.thai_id import BE_OFFSET, birth_year_ce, display_thai_id, normalize_thai_id
from bot.types import Inbound, Kind, Text
from flows.inputs import Accepted, InputContext, InputRegistry, Outcome, Rejected, parse_choice
from flows.model import CHOICES_DONE as DONE
from flows.model import Step


def parse_birth_year(inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
    if inbound.kind is Kind.TEXT and isinstance(inbound.payload, str):
        year = birth_year_ce(inbound.payload, datetime.now(UTC).date())
        if year is not None:
            return Accepted(year)
    return Rejected("case.invalid.birth_year")


def display_birth_year(value: Any, step: Step) -> str | Text:
    return Text("case.birth_year.shown", {"ce": int(value), "be": int(value) + BE_OFFSET})


def parse_thai_id(inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
    if inbound.kind is Kind.TEXT and isinstance(inbound.payload, str):
        digits = normalize_thai_id(inbound.payload)
        if digits is not None:
            return Accepted(digits)
    return Rejected("case.invalid.thai_id")


def display_thai_id_value(value: Any, step: Step) -> str | Text:
    return display_thai_id(str(value))


def parse_choices(inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
    """One tap, or several numbers or labels typed at once ("1 3 5", "1,3"): a list."""
    if inbound.kind is Kind.TEXT and isinstance(inbound.payload, str):
        parts = to_ascii_digits(inbound.payload).replace(",", " ").split()
        if len(parts) > 1:
            picked: list[str] = []
            for part in parts[:len(step.choices)]:
                one = parse_choice(Inbound(inbound.channel, inbound.sender, Kind.TEXT,
                                           inbound.event_id, part), step, ctx)
                if not isinstance(one, Accepted):
                    return Rejected("common.invalid.choice")
                if one.value not in picked:
                    picked.append(str(one.value))
            return Accepted(picked)
    one = parse_choice(inbound, step, ctx)
    return Accepted([one.value]) if isinstance(one, Accepted) else one


def display_choices(value: Any, step: Step) -> str | Text:
    """The picked labels as one catalog text: "a, b, c" in the reader's language."""
    labels = {c.value: c.label for c in step.choices}
    items = [labels[v] for v in (value or []) if v != DONE and v in labels]
    if not items:
        return Text("case.none")
    shown = Text(items[-1])
    for label in reversed(items[:-1]):
        shown = Text("case.list", {"first": Text(label), "rest": shown})
    return shown


def register_case_inputs(inputs: InputRegistry) -> None:
    inputs.register("birth_year", parse_birth_year, display_birth_year)
    inputs.register("thai_id", parse_thai_id, display_thai_id_value)
    inputs.register("choices", parse_choices, display_choices)
