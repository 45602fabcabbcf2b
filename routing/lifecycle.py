"""The incident lifecycle: one model-less `transitions` machine, built once.

    new → dispatched → acknowledged → en_route → on_scene → resolved | referred | unfounded
    new | dispatched | escalated → escalated                                    | duplicate

Like flows/compiler.py, no model is registered with the machine: each change rehydrates a
tiny model (`state`) and fires the trigger on it, so thousands of open incidents cost
nothing. Pure: it says whether a move is allowed and where it leads; the caller stores it.
"""

from __future__ import annotations

from dataclasses import dataclass

from transitions import Machine, MachineError

NEW, DISPATCHED, ESCALATED = "new", "dispatched", "escalated"
ACKNOWLEDGED, EN_ROUTE, ON_SCENE = "acknowledged", "en_route", "on_scene"
RESOLVED, REFERRED, UNFOUNDED, DUPLICATE = "resolved", "referred", "unfounded", "duplicate"

STATES = (NEW, DISPATCHED, ESCALATED, ACKNOWLEDGED, EN_ROUTE, ON_SCENE, RESOLVED, REFERRED,
          UNFOUNDED, DUPLICATE)
CLOSED = frozenset({RESOLVED, REFERRED, UNFOUNDED, DUPLICATE})
WAITING = frozenset({NEW, DISPATCHED, ESCALATED})  # nobody has acknowledged yet
HELD = frozenset({ACKNOWLEDGED, EN_ROUTE, ON_SCENE})  # a responder has it

# trigger → (sources, destination). Responder triggers are also the action names.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "dispatch": ((NEW,), DISPATCHED),
    "escalate": ((NEW, DISPATCHED, ESCALATED), ESCALATED),
    "acknowledge": ((NEW, DISPATCHED, ESCALATED), ACKNOWLEDGED),
    "en_route": ((ACKNOWLEDGED, EN_ROUTE), EN_ROUTE),
    "on_scene": ((ACKNOWLEDGED, EN_ROUTE), ON_SCENE),
    "resolve": ((ACKNOWLEDGED, EN_ROUTE, ON_SCENE), RESOLVED),
    "refer": ((ACKNOWLEDGED, EN_ROUTE, ON_SCENE), REFERRED),
    "unfounded": ((ACKNOWLEDGED, EN_ROUTE, ON_SCENE), UNFOUNDED),
    "duplicate": ((ACKNOWLEDGED, EN_ROUTE, ON_SCENE), DUPLICATE),
}
SYSTEM_TRIGGERS = frozenset({"dispatch", "escalate"})
RESPONDER_TRIGGERS = frozenset(TRANSITIONS) - SYSTEM_TRIGGERS
CLOSING_TRIGGERS = frozenset({"resolve", "refer", "unfounded", "duplicate"})


class InvalidTransition(ValueError):
    """The trigger is not allowed from the incident's current state."""

    def __init__(self, trigger: str, state: str):
        super().__init__(f"{trigger} is not allowed from {state}")
        self.trigger = trigger
        self.state = state


@dataclass
class _Model:
    state: str


def _machine() -> Machine:
    machine = Machine(model=None, states=list(STATES), initial=NEW, auto_transitions=False,
                      ignore_invalid_triggers=False)
    for trigger, (sources, dest) in TRANSITIONS.items():
        machine.add_transition(trigger, list(sources), dest)
    return machine


_MACHINE = _machine()


def apply(state: str, trigger: str) -> str:
    """The state after `trigger`; InvalidTransition when it is not allowed from `state`."""
    if trigger not in _MACHINE.events or state not in STATES:
        raise InvalidTransition(trigger, state)
    model = _Model(state)
    try:
        _MACHINE.events[trigger].trigger(model)
    except MachineError:
        raise InvalidTransition(trigger, state) from None
    return model.state


def allowed(state: str) -> list[str]:
    """Triggers allowed from `state`, in the machine's order."""
    if state not in STATES:
        return []
    return [t for t in _MACHINE.get_triggers(state) if t in TRANSITIONS]
