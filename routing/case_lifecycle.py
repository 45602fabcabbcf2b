"""The welfare case lifecycle and the referral lifecycle: model-less `transitions` machines.

    new → screening → assessed → referred → accepted → in_service → closed → reopened
                                          ↘ rejected (with a reason) ↗ (closed)

Built like routing/lifecycle.py: one shared machine, a tiny model rehydrated per change, no
registered models. Closing needs a supervisor (an approval, as Primero's closure approval);
a rejection needs a reason. Pure: the caller stores what `apply` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from transitions import Machine, MachineError

NEW, SCREENING, ASSESSED, REFERRED = "new", "screening", "assessed", "referred"
ACCEPTED, REJECTED, IN_SERVICE = "accepted", "rejected", "in_service"
CLOSED, REOPENED = "closed", "reopened"
CASE_STATES = (NEW, SCREENING, ASSESSED, REFERRED, ACCEPTED, REJECTED, IN_SERVICE, CLOSED,
               REOPENED)
OPEN_CASE = frozenset(CASE_STATES) - {CLOSED}

CASE_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "screen": ((NEW, REOPENED), SCREENING),
    "assess": ((SCREENING, REOPENED), ASSESSED),
    "refer": ((ASSESSED, REJECTED), REFERRED),
    "accept": ((REFERRED,), ACCEPTED),
    "reject": ((REFERRED,), REJECTED),
    "start_service": ((ACCEPTED,), IN_SERVICE),
    "close": ((IN_SERVICE, REJECTED, ASSESSED), CLOSED),
    "reopen": ((CLOSED,), REOPENED),
}
NEEDS_REASON = frozenset({"reject", "reopen"})
NEEDS_SUPERVISOR = frozenset({"close"})

PENDING, R_ACCEPTED, R_REJECTED, DONE, REVOKED = (
    "pending", "accepted", "rejected", "done", "revoked")
REFERRAL_STATES = (PENDING, R_ACCEPTED, R_REJECTED, DONE, REVOKED)
OPEN_REFERRAL = frozenset({PENDING, R_ACCEPTED})
REFERRAL_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "accept": ((PENDING,), R_ACCEPTED),
    "reject": ((PENDING,), R_REJECTED),
    "done": ((R_ACCEPTED,), DONE),
    "revoke": ((PENDING, R_ACCEPTED), REVOKED),
}


class InvalidTransition(ValueError):
    """The trigger is not allowed from the current state, or lacks what it needs."""

    def __init__(self, trigger: str, state: str, why: str = "not allowed"):
        super().__init__(f"{trigger} from {state}: {why}")
        self.trigger = trigger
        self.state = state
        self.why = why


@dataclass
class _Model:
    state: str


class Lifecycle:
    """One shared machine over `states`; `apply` moves a state by a trigger."""

    def __init__(self, states: tuple[str, ...],
                 transitions: Mapping[str, tuple[tuple[str, ...], str]]):
        self.states = states
        self.transitions = transitions
        self._machine = Machine(model=None, states=list(states), initial=states[0],
                                auto_transitions=False, ignore_invalid_triggers=False)
        for trigger, (sources, dest) in transitions.items():
            self._machine.add_transition(trigger, list(sources), dest)

    def apply(self, state: str, trigger: str) -> str:
        if trigger not in self.transitions or state not in self.states:
            raise InvalidTransition(trigger, state)
        model = _Model(state)
        try:
            self._machine.events[trigger].trigger(model)
        except MachineError:
            raise InvalidTransition(trigger, state) from None
        return model.state

    def allowed(self, state: str) -> list[str]:
        if state not in self.states:
            return []
        return [t for t in self._machine.get_triggers(state) if t in self.transitions]


CASES = Lifecycle(CASE_STATES, CASE_TRANSITIONS)
REFERRALS = Lifecycle(REFERRAL_STATES, REFERRAL_TRANSITIONS)


def move_case(state: str, trigger: str, *, reason: str = "", supervisor: bool = False) -> str:
    """The case's next state; a rejection or reopening needs a reason, closing a supervisor."""
    if trigger in NEEDS_REASON and not reason.strip():
        raise InvalidTransition(trigger, state, "a reason is required")
    if trigger in NEEDS_SUPERVISOR and not supervisor:
        raise InvalidTransition(trigger, state, "a supervisor must approve")
    return CASES.apply(state, trigger)


def move_referral(state: str, trigger: str, *, reason: str = "") -> str:
    if trigger == "reject" and not reason.strip():
        raise InvalidTransition(trigger, state, "a reason is required")
    return REFERRALS.apply(state, trigger)
