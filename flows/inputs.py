"""Input kinds a step can expect, and validators a step can add; both are registries.

A parser turns any `Inbound` into `Accepted(value)` or `Rejected(catalog key)`; it never
raises, whatever arrives (invariant 3). Values are JSON-able so sessions can be stored.
Plugins add kinds with `InputRegistry.register` (or the `ess.inputs` entry-point group).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.i18n import Catalogs
from bot.phone import display_thai_phone, normalize_thai_phone, to_ascii_digits
from bot.types import Inbound, Kind, Location, LocationSource, Text
from flows.model import Step
from routing.gazetteer import Gazetteer

MAX_LOCATION_TEXT = 300
MAX_FREE_TEXT = 2000


@dataclass(frozen=True, slots=True)
class Accepted:
    value: Any


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str  # catalog key of the explanation; the step's prompt follows it
    params: Mapping[str, Any] = field(default_factory=dict)


Outcome = Accepted | Rejected


@dataclass(frozen=True)
class InputContext:
    catalogs: Catalogs
    gazetteer: Gazetteer | None


Parser = Callable[[Inbound, Step, InputContext], Outcome]
Display = Callable[[Any, Step], "str | Text"]
Validator = Callable[[Any, Any], "str | None"]  # (value, argument) -> reason key or None


@dataclass(frozen=True)
class InputKind:
    parse: Parser
    display: Display


def _clean(text: str) -> str:
    return " ".join(to_ascii_digits(text).split())


def parse_choice(inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
    answers = [c for c in step.choices if c.command is None]
    payloads = {c.payload for c in answers}
    if inbound.kind is Kind.CHOICE and inbound.payload in payloads:
        return Accepted(inbound.payload)
    if inbound.kind in (Kind.TEXT, Kind.CHOICE) and isinstance(inbound.payload, str):
        typed = _clean(inbound.payload).casefold()
        # Numbers refer to the choices as shown, commands included (see bot.render).
        if typed.isdecimal() and len(typed) < 4 and 1 <= int(typed) <= len(step.choices):
            picked = step.choices[int(typed) - 1]
            return Accepted(picked.payload) if picked.command is None else \
                Rejected("common.invalid.choice")
        for choice in answers:
            labels = {ctx.catalogs.render(lang.code, Text(choice.label)).casefold()
                      for lang in ctx.catalogs.languages}
            if typed == str(choice.value).casefold() or typed in labels:
                return Accepted(choice.payload)
    return Rejected("common.invalid.choice")


def display_choice(value: Any, step: Step) -> str | Text:
    for choice in step.choices:
        if choice.payload == value:
            return Text(choice.label)
    return str(value)


def parse_location(inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
    if inbound.kind is Kind.LOCATION and isinstance(inbound.payload, Location):
        loc = inbound.payload
        if loc.lat is None or loc.lon is None or not (-90 <= loc.lat <= 90) \
                or not (-180 <= loc.lon <= 180):
            return Rejected("common.invalid.location")
        return Accepted(loc.to_dict())
    if inbound.kind is Kind.TEXT and isinstance(inbound.payload, str):
        text = " ".join(inbound.payload.split())
        # A place is described with words; "99" or "!!" is a mistyped answer, not an address.
        if len(text) < 2 or not any(ch.isalpha() for ch in text):
            return Rejected("common.invalid.location")
        if len(text) > MAX_LOCATION_TEXT:
            return Rejected("common.invalid.too_long", {"max": MAX_LOCATION_TEXT})
        place = ctx.gazetteer.resolve(text) if ctx.gazetteer else None
        if place is not None:
            return Accepted(Location(place.lat, place.lon, LocationSource.GAZETTEER,
                                     text=text, place_id=place.id).to_dict())
        return Accepted(Location(None, None, LocationSource.TEXT, text=text).to_dict())
    return Rejected("common.invalid.location")


def display_location(value: Any, step: Step) -> str | Text:
    loc = Location.from_dict(value)
    if loc.source in (LocationSource.TEXT, LocationSource.GAZETTEER):
        return loc.text or ""
    return Text("common.location.pin", {"lat": f"{loc.lat:.5f}", "lon": f"{loc.lon:.5f}"})


def parse_phone(inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
    if inbound.kind in (Kind.PHONE, Kind.TEXT) and isinstance(inbound.payload, str):
        number = normalize_thai_phone(inbound.payload)
        if number:
            return Accepted(number)
    return Rejected("common.invalid.phone")


def display_phone(value: Any, step: Step) -> str | Text:
    return display_thai_phone(str(value))


def parse_text(inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
    if inbound.kind is Kind.TEXT and isinstance(inbound.payload, str):
        text = inbound.payload.strip()
        if not text:
            return Rejected("common.invalid.text")
        if len(text) > MAX_FREE_TEXT:
            return Rejected("common.invalid.too_long", {"max": MAX_FREE_TEXT})
        return Accepted(text)
    return Rejected("common.invalid.text")


def display_text(value: Any, step: Step) -> str | Text:
    return str(value)


def parse_choice_or_text(inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
    """A tap on one of the step's buttons, or else free text (a message to pass on)."""
    picked = parse_choice(inbound, step, ctx)
    if isinstance(picked, Accepted):
        return picked
    return parse_text(inbound, step, ctx)


def display_choice_or_text(value: Any, step: Step) -> str | Text:
    return display_choice(value, step)


def _max_length(value: Any, arg: Any) -> str | None:
    return "common.invalid.too_long" if len(str(value)) > int(arg) else None


def _min_length(value: Any, arg: Any) -> str | None:
    return "common.invalid.too_short" if len(str(value).strip()) < int(arg) else None


def _mobile_only(value: Any, arg: Any) -> str | None:
    return None if str(value)[3:4] in ("6", "8", "9") else "common.invalid.mobile"


class InputRegistry:
    """Input kinds and validators by name."""

    def __init__(self) -> None:
        self.kinds: dict[str, InputKind] = {}
        self.validators: dict[str, Validator] = {}

    def register(self, name: str, parse: Parser, display: Display) -> None:
        self.kinds[name] = InputKind(parse, display)

    def register_validator(self, name: str, check: Validator) -> None:
        self.validators[name] = check

    @classmethod
    def default(cls) -> InputRegistry:
        reg = cls()
        reg.register("choice", parse_choice, display_choice)
        reg.register("location", parse_location, display_location)
        reg.register("phone", parse_phone, display_phone)
        reg.register("text", parse_text, display_text)
        reg.register("choice_or_text", parse_choice_or_text, display_choice_or_text)
        reg.register_validator("max_length", _max_length)
        reg.register_validator("min_length", _min_length)
        reg.register_validator("mobile_only", _mobile_only)
        return reg

    def parse(self, inbound: Inbound, step: Step, ctx: InputContext) -> Outcome:
        assert step.expect is not None
        outcome = self.kinds[step.expect].parse(inbound, step, ctx)
        if isinstance(outcome, Accepted):
            for name, arg in step.validate:
                reason = self.validators[name](outcome.value, arg)
                if reason:
                    return Rejected(reason, {"max": arg, "min": arg})
        return outcome

    def display(self, step: Step, value: Any) -> str | Text:
        assert step.expect is not None
        return self.kinds[step.expect].display(value, step)
